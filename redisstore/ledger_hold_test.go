package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/testredis"
)

// A recipient in backoff is held in the ledger with its attempts and retry time, by
// its owner; a later owner (the next send activity, or the next attempt) resumes it,
// an earlier one cannot touch it, and a final outcome ends it.
func TestLedgerHoldsBackoffsForTheNextOwner(t *testing.T) {
	s := New(testredis.New(t), "")
	ctx := context.Background()
	at := time.UnixMilli(time.Now().Add(4 * time.Second).UnixMilli())
	owner := 2<<20 + 1
	retry := LedgerEntry{State: LedgerRetry, Attempt: owner, Charged: 1, Paired: 2, Throttled: 3, RetryAt: at}
	if r, err := s.Hold(ctx, "t", 7, retry); err != nil || r != ClaimGo {
		t.Fatalf("Hold retry = %v, %v", r, err)
	}
	e, err := s.Ledger(ctx, "t", 7, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := e[0]; got.State != LedgerRetry || got.Attempt != owner || got.Charged != 1 || got.Paired != 2 ||
		got.Throttled != 3 || !got.RetryAt.Equal(at) {
		t.Fatalf("ledger = %+v, want %+v", got, retry)
	}
	// An older owner (the old SendChunk's attempt 5, or the previous activity) is stale.
	if r, _ := s.Claim(ctx, "t", 7, 5); r != ClaimLost {
		t.Errorf("Claim by an older owner = %v, want ClaimLost", r)
	}
	// The next activity claims it, carrying its attempts.
	next := LedgerEntry{State: LedgerClaimed, Attempt: 3<<20 + 1, Charged: 1, Paired: 2, Throttled: 3}
	if r, _ := s.Hold(ctx, "t", 7, next); r != ClaimGo {
		t.Fatalf("Hold by the next owner = %v, want ClaimGo", r)
	}
	e, _ = s.Ledger(ctx, "t", 7, 1)
	if e[0].State != LedgerClaimed || e[0].Charged != 1 || e[0].Attempt != next.Attempt {
		t.Errorf("ledger after the claim = %+v", e[0])
	}
	if ok, _ := s.Record(ctx, "t", 7, LedgerEntry{State: LedgerSent, WAMID: "wamid.X"}); !ok {
		t.Fatal("Record did not write")
	}
	if r, _ := s.Hold(ctx, "t", 7, LedgerEntry{State: LedgerRetry, Attempt: 9 << 20, RetryAt: at}); r != ClaimDone {
		t.Errorf("Hold after the outcome = %v, want ClaimDone", r)
	}
	if _, err := s.Hold(ctx, "t", 8, LedgerEntry{State: LedgerSent}); err == nil {
		t.Error("Hold accepted a final state")
	}
	// Old entries ("c<attempt>") still decode.
	for _, v := range []string{"c", "c3", "c3|1|0|2", "r1048577|2|0|0|1700000000000"} {
		if _, err := decodeEntry(v); err != nil {
			t.Errorf("decode %q: %v", v, err)
		}
	}
	for _, v := range []string{"c3|1", "rx", "r1|2|3|4"} {
		if _, err := decodeEntry(v); err == nil {
			t.Errorf("decode %q: want an error", v)
		}
	}
}
