package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/wagate/wagate/shared"
)

func TestAcceptInboundsLogsClaimedIDsInOrder(t *testing.T) {
	ctx := context.Background()
	s := newCacheTestStore(t)
	ev := func(id string) shared.InboundEvent {
		return shared.InboundEvent{ID: id, From: "1", Event: json.RawMessage(`{"id":"` + id + `"}`)}
	}
	if _, err := s.AcceptInbounds(ctx, []shared.InboundEvent{ev("a")}, time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := s.AcceptInbounds(ctx, []shared.InboundEvent{ev("b"), ev("a"), ev("c"), ev("b")}, time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false, true, false}; !slices.Equal(got, want) {
		t.Errorf("AcceptInbounds = %v; want %v", got, want)
	}
	if ok, err := s.AcquireForwarder(ctx, "f1", time.Minute); !ok || err != nil {
		t.Fatalf("AcquireForwarder(f1) = %v, %v", ok, err)
	}
	ids, err := s.NextForwardBatch(ctx, "f1", time.Minute, 10)
	if err != nil || !slices.Equal(ids, []string{"a", "b", "c"}) {
		t.Fatalf("log = %v, %v; want [a b c]", ids, err)
	}
	if evs, err := s.GetInboundEvents(ctx, ids); err != nil || !evs[2].Found || evs[2].Event.ID != "c" {
		t.Errorf("stored events = %+v, %v", evs, err)
	}
	if ttl := s.rdb.PTTL(ctx, s.inboundSeenKey("c")).Val(); ttl <= 50*time.Minute || ttl > time.Hour {
		t.Errorf("claim TTL = %v; want the dedupe TTL (1h)", ttl)
	}
	if _, err := s.AcceptInbounds(ctx, []shared.InboundEvent{ev("t")}, time.Hour, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	if ttl := s.rdb.PTTL(ctx, s.inboundEventKey("t")).Val(); ttl <= 110*time.Minute || ttl > 2*time.Hour {
		t.Errorf("event TTL = %v; want the event TTL (2h)", ttl)
	}
	// A wake token was left for an idle forwarder: the wait returns at once.
	start := time.Now()
	if err := s.WaitInbound(ctx, 2*time.Second); err != nil || time.Since(start) > time.Second {
		t.Errorf("WaitInbound with new ids = %v after %v; want an immediate wakeup", err, time.Since(start))
	}
}

func TestForwardStepIsGuardedByTheLease(t *testing.T) {
	ctx := context.Background()
	s := newCacheTestStore(t)
	var evs []shared.InboundEvent
	for _, id := range []string{"1", "2", "3", "4"} {
		evs = append(evs, shared.InboundEvent{ID: id, Event: json.RawMessage(`{}`)})
	}
	if _, err := s.AcceptInbounds(ctx, evs, time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.AcquireForwarder(ctx, "f1", time.Minute); !ok {
		t.Fatal("f1 did not get the free lease")
	}
	if ok, _ := s.AcquireForwarder(ctx, "f2", time.Minute); ok {
		t.Fatal("f2 got a lease f1 holds")
	}
	if _, err := s.NextForwardBatch(ctx, "f2", time.Minute, 2); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("NextForwardBatch(f2) = %v; want ErrLeaseLost", err)
	}
	ids, err := s.NextForwardBatch(ctx, "f1", time.Minute, 2)
	if err != nil || !slices.Equal(ids, []string{"1", "2"}) {
		t.Fatalf("batch = %v, %v; want [1 2]", ids, err)
	}
	// A step in flight: a clear must not drop the log under it.
	if n, err := s.DropInboundLog(ctx); err != nil || n != -1 {
		t.Fatalf("DropInboundLog during a step = %d, %v; want -1", n, err)
	}
	if idle, _ := s.ForwardIdle(ctx); idle {
		t.Error("ForwardIdle during a step = true")
	}
	if err := s.EndForwardStep(ctx, "f2", 2); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("EndForwardStep(f2) = %v; want ErrLeaseLost", err)
	}
	if err := s.EndForwardStep(ctx, "f1", 2); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.InboundLogLen(ctx); n != 2 {
		t.Fatalf("log length after trimming 2 of 4 = %d", n)
	}

	// The lease moves on: f1's next step is refused and trims nothing.
	ids, err = s.NextForwardBatch(ctx, "f1", time.Minute, 2)
	if err != nil || !slices.Equal(ids, []string{"3", "4"}) {
		t.Fatalf("batch = %v, %v; want [3 4]", ids, err)
	}
	if err := s.ReleaseForwarder(ctx, "f1"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.AcquireForwarder(ctx, "f2", time.Minute); !ok {
		t.Fatal("f2 did not get the released lease")
	}
	if err := s.EndForwardStep(ctx, "f1", 2); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("EndForwardStep after losing the lease = %v; want ErrLeaseLost", err)
	}
	if n, _ := s.InboundLogLen(ctx); n != 2 {
		t.Fatalf("log length = %d; a forwarder without the lease trimmed", n)
	}

	// A clear pauses forwarding, then drops the log and counts it.
	if err := s.PauseForwarding(ctx, "clear", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NextForwardBatch(ctx, "f2", time.Minute, 2); !errors.Is(err, ErrForwardPaused) {
		t.Fatalf("NextForwardBatch while paused = %v; want ErrForwardPaused", err)
	}
	if n, err := s.DropInboundLog(ctx); err != nil || n != 2 {
		t.Fatalf("DropInboundLog = %d, %v; want 2", n, err)
	}
	if err := s.ResumeForwarding(ctx, "clear"); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.NextForwardBatch(ctx, "f2", time.Minute, 2); err != nil || len(ids) != 0 {
		t.Fatalf("batch after the clear = %v, %v; want none", ids, err)
	}
}
