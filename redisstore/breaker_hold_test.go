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

// A hold may carry the final outcome of the slot's last send: it is written first, in
// the same round trip, with Record's rules.
func TestAdmitHoldingRecordsTheLastSend(t *testing.T) {
	s := newTaskTestStore(t)
	ctx := context.Background()
	b := s.Breaker("78", 0, DefaultBreakerOptions)
	hold := func(index int, rec *RecordRequest) HoldRequest {
		return HoldRequest{TaskID: "r", Index: index, Entry: LedgerEntry{State: LedgerClaimed, Attempt: 1}, Record: rec}
	}
	if _, c, err := b.AdmitHolding(ctx, hold(0, nil)); err != nil || c != ClaimGo {
		t.Fatalf("first hold: %v %v", c, err)
	}
	trips, _ := s.SendPathTrips()

	rec := &RecordRequest{Index: 0, Entry: LedgerEntry{State: LedgerSent, WAMID: "wamid.r0", Phone: "573100000000"}}
	if a, c, err := b.AdmitHolding(ctx, hold(1, rec)); err != nil || a.Verdict != AdmitSend || c != ClaimGo {
		t.Fatalf("hold with a record: %+v %v %v", a, c, err)
	}
	if !rec.Done || !rec.Wrote || rec.Err != nil {
		t.Fatalf("record = %+v, want done and written", rec)
	}
	if now, _ := s.SendPathTrips(); now != trips+1 {
		t.Errorf("%d round trips for a hold with its record, want 1", now-trips)
	}
	e, err := s.Ledger(ctx, "r", 0, 2)
	if err != nil || e[0].State != LedgerSent || e[0].WAMID != "wamid.r0" || e[1].State != LedgerClaimed {
		t.Fatalf("ledger = %+v (%v), want 0 sent and 1 claimed", e, err)
	}
	if m, err := s.Message(ctx, "wamid.r0"); err != nil || m.TaskID != "r" || m.Index == nil || *m.Index != 0 {
		t.Errorf("the record's delivery tracking: %+v %v, want task r, recipient 0", m, err)
	}

	// Written again (a hold whose answer was lost): counted once.
	again := &RecordRequest{Index: 0, Entry: LedgerEntry{State: LedgerSent, WAMID: "wamid.r0"}}
	if _, _, err := b.AdmitHolding(ctx, hold(2, again)); err != nil || !again.Done || again.Wrote || again.Err != nil {
		t.Fatalf("repeated record: %+v %v, want done and not written", again, err)
	}
	if sent, _, _ := s.Progress(ctx, "r"); sent != 1 {
		t.Errorf("sent = %d after a repeated record, want 1", sent)
	}

	// A record that is not a final outcome fails on its own; the hold is made.
	bad := &RecordRequest{Index: 1, Entry: LedgerEntry{State: LedgerClaimed}}
	if _, c, err := b.AdmitHolding(ctx, hold(3, bad)); err != nil || c != ClaimGo || !bad.Done || bad.Err == nil {
		t.Errorf("bad record: claim %v err %v record %+v; want the hold made and the record's error", c, err, bad)
	}

	// Taken back before it was sent: neither the record nor the hold is made.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	late := &RecordRequest{Index: 3, Entry: LedgerEntry{State: LedgerSent, WAMID: "wamid.r3"}}
	if _, _, err := b.AdmitHolding(cctx, hold(4, late)); err == nil || late.Done {
		t.Errorf("cancelled: err %v record %+v; want an error and the record not done", err, late)
	}
	if e, _ := s.Ledger(ctx, "r", 3, 2); e[0].State != LedgerClaimed || e[1].State != LedgerNone {
		t.Errorf("after a cancelled hold the ledger is %+v, want 3 claimed and 4 untouched", e)
	}
}
