package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Concurrent callers share round trips, and each gets its own answers.
func TestRoundTripSharesPipelines(t *testing.T) {
	s := newTaskTestStore(t)
	ctx := context.Background()
	const callers = 400
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Claim(ctx, "share", i, 1); err != nil {
				errs <- err
				return
			}
			wrote, err := s.Record(ctx, "share", i, LedgerEntry{State: LedgerSent, WAMID: fmt.Sprintf("wamid.%d", i)})
			if err != nil || !wrote {
				errs <- fmt.Errorf("record %d: wrote=%v err=%v", i, wrote, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	sent, failed, err := s.Progress(ctx, "share")
	if err != nil || sent != callers || failed != 0 {
		t.Fatalf("progress = %d sent, %d failed (%v), want %d sent", sent, failed, err, callers)
	}
	entries, err := s.Ledger(ctx, "share", 0, callers)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		if e.State != LedgerSent || e.WAMID != fmt.Sprintf("wamid.%d", i) {
			t.Fatalf("recipient %d = %+v, want its own wamid", i, e)
		}
	}
	trips, calls := s.SendPathTrips()
	if calls != callers { // the claims do not go through the group commit, the records do
		t.Errorf("%d calls went through the group commit, want %d", calls, callers)
	}
	if trips >= calls {
		t.Errorf("%d round trips for %d concurrent calls: none was shared", trips, calls)
	}
	t.Logf("%d calls in %d round trips", calls, trips)
}

// A call whose context ends before it was sent is taken back and never made.
func TestRoundTripTakesBackCallsNotSent(t *testing.T) {
	s := newTaskTestStore(t)
	b := &s.batch
	// Every runner busy: the call waits in the queue.
	b.mu.Lock()
	b.running = batchRunners
	b.mu.Unlock()
	set := redis.NewScript(`redis.call('SET', KEYS[1], 'made') return 1`)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := s.roundTrip(ctx, &scriptCall{script: set, keys: []string{s.key("taken-back")}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("roundTrip = %v, want the context's deadline", err)
	}
	b.mu.Lock()
	queued := len(b.queue)
	b.running = 0
	b.mu.Unlock()
	if queued != 0 {
		t.Fatalf("%d requests left queued", queued)
	}
	// The next caller starts a runner; the call taken back must not go with it.
	call := &scriptCall{script: set, keys: []string{s.key("after")}}
	if err := s.roundTrip(context.Background(), call); err != nil || call.cmd.Err() != nil {
		t.Fatalf("next roundTrip = %v, %v", err, call.cmd.Err())
	}
	if n := s.rdb.Exists(context.Background(), s.key("taken-back")).Val(); n != 0 {
		t.Error("the call taken back was made")
	}
}

// A call already sent when its caller's context ends is waited for: its answer is there.
func TestRoundTripWaitsForCallsSent(t *testing.T) {
	s := newTaskTestStore(t)
	slow := redis.NewScript(`
local t0 = redis.call('TIME')
local start = tonumber(t0[1]) * 1000000 + tonumber(t0[2])
while true do
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000000 + tonumber(t[2]) - start > 300000 then break end
end
redis.call('SET', KEYS[1], 'made')
return 7`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The caller's context ends once a runner has taken the call (the queue is empty
	// again while a runner is out).
	cancelled := make(chan time.Time, 1)
	go func() {
		b := &s.batch
		for {
			b.mu.Lock()
			taken := len(b.queue) == 0 && b.running > 0
			b.mu.Unlock()
			if taken {
				cancel()
				cancelled <- time.Now()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	call := &scriptCall{script: slow, keys: []string{s.key("slow")}}
	start := time.Now()
	if err := s.roundTrip(ctx, call); err != nil {
		t.Fatalf("roundTrip = %v, want the call's answer", err)
	}
	returned := time.Now()
	if n, err := call.cmd.Int(); n != 7 || err != nil {
		t.Fatalf("answer = %d, %v; want 7", n, err)
	}
	if d := returned.Sub(start); d < 300*time.Millisecond {
		t.Errorf("returned after %v, before the call was over", d)
	}
	if at := <-cancelled; !at.Before(returned) {
		t.Error("the context ended only after the call returned; the test did not exercise the wait")
	}
}
