package redisstore

import (
	"context"
	"testing"
)

// AdmitHolding admits and claims in one round trip, with Hold's rules for the claim and
// Admit's for the admission; it recovers from a Redis that forgot its scripts.
func TestAdmitHoldingClaimsWithTheAdmission(t *testing.T) {
	s, _ := twoReplicas(t)
	ctx := context.Background()
	b := s.Breaker("77", 0, DefaultBreakerOptions)
	claim := func(index, owner int) HoldRequest {
		return HoldRequest{TaskID: "t", Index: index, Entry: LedgerEntry{State: LedgerClaimed, Attempt: owner, Charged: 1}}
	}

	a, c, err := b.AdmitHolding(ctx, claim(0, 5))
	if err != nil || a.Verdict != AdmitSend || c != ClaimGo {
		t.Fatalf("free recipient: %+v %v %v, want send and ClaimGo", a, c, err)
	}
	e, err := s.Ledger(ctx, "t", 0, 1)
	if err != nil || e[0].State != LedgerClaimed || e[0].Attempt != 5 || e[0].Charged != 1 {
		t.Fatalf("ledger after the claim = %+v (%v)", e, err)
	}
	// A newer owner holds it: lost. A final one: done.
	if _, c, _ := b.AdmitHolding(ctx, claim(0, 4)); c != ClaimLost {
		t.Errorf("claim by an older owner = %v, want ClaimLost", c)
	}
	if _, err := s.Record(ctx, "t", 1, LedgerEntry{State: LedgerSent, WAMID: "wamid.1"}); err != nil {
		t.Fatal(err)
	}
	if _, c, _ := b.AdmitHolding(ctx, claim(1, 9)); c != ClaimDone {
		t.Errorf("claim of a sent recipient = %v, want ClaimDone", c)
	}

	// An open breaker answers Wait; the claim is made all the same.
	for range DefaultBreakerOptions.Threshold {
		if _, err := b.Report(ctx, OutcomeUnavailable, "", 2, "down"); err != nil {
			t.Fatal(err)
		}
	}
	if a, c, err := b.AdmitHolding(ctx, claim(2, 5)); err != nil || a.Verdict != AdmitWait || c != ClaimGo {
		t.Errorf("open breaker: %+v %v %v, want wait and ClaimGo", a, c, err)
	}

	// Redis forgot the scripts (a restart without persistence of the script cache).
	if err := s.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, c, err := b.AdmitHolding(ctx, claim(3, 5)); err != nil || c != ClaimGo {
		t.Errorf("after SCRIPT FLUSH: %v %v, want ClaimGo", c, err)
	}
	if _, _, err := b.AdmitHolding(ctx, HoldRequest{TaskID: "t", Index: 4, Entry: LedgerEntry{State: LedgerSent}}); err == nil {
		t.Error("a hold of a final state was accepted")
	}
}
