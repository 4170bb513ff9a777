package redisstore

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wagate/wagate/internal/testredis"
)

// twoReplicas returns two Stores on separate connection pools to one Redis, as two
// worker replicas would have.
func twoReplicas(t *testing.T) (*Store, *Store) {
	t.Helper()
	url := testredis.URL(t)
	var stores [2]*Store
	for i := range stores {
		opts, err := redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(opts)
		t.Cleanup(func() { rdb.Close() })
		stores[i] = New(rdb, "")
	}
	return stores[0], stores[1]
}

func TestGovernorSharedRate(t *testing.T) {
	const (
		mps        = 100
		goroutines = 50
		run        = 1500 * time.Millisecond
	)
	a, b := twoReplicas(t)
	govs := []*Governor{a.Governor("1065", mps), b.Governor("1065", mps)}

	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()
	var (
		mu     sync.Mutex
		admits []time.Time
		wg     sync.WaitGroup
	)
	for i := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := govs[i%2]
			for {
				if err := g.Wait(ctx); err != nil {
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("Wait: %v", err)
					}
					return
				}
				now := time.Now()
				mu.Lock()
				admits = append(admits, now)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	slices.SortFunc(admits, func(x, y time.Time) int { return x.Compare(y) })
	// Every window [admit_i, admit_i + 1s) starts at an admission; a window holding the
	// most admissions can always be slid to start at one.
	worst := 0
	for i, start := range admits {
		n, _ := slices.BinarySearchFunc(admits[i:], start.Add(time.Second), func(x, end time.Time) int { return x.Compare(end) })
		if n > mps {
			t.Errorf("%d admissions in the second from %v (admission %d), want <= %d",
				n, start.Sub(admits[0]), i, mps)
		}
		worst = max(worst, n)
	}
	// Close to the rate: the ideal is 1 + 1.5s * mps / governorMargin ≈ 143.
	if min := int(0.85 * run.Seconds() * mps); len(admits) < min {
		t.Errorf("%d admissions in %v at %d/s, want at least %d", len(admits), run, mps, min)
	}
	t.Logf("%d admissions in %v, at most %d in any second", len(admits), run, worst)
}

func TestGovernorSlowDown(t *testing.T) {
	ctx := context.Background()
	s := newTaskTestStore(t)
	const d = 300 * time.Millisecond
	g := s.Governor("slow", 1000)
	other := s.Governor("fast", 1000)
	if err := g.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if err := g.SlowDown(ctx, d); err != nil {
		t.Fatalf("SlowDown: %v", err)
	}
	if err := other.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := time.Since(start); got > d/2 {
		t.Errorf("another number waited %v after SlowDown, want no delay", got)
	}
	if err := g.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := time.Since(start); got < d {
		t.Errorf("next admission %v after SlowDown(%v), want at least %v", got, d, d)
	}
	// A shorter SlowDown never pulls slots back in.
	if err := g.SlowDown(ctx, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := g.SlowDown(ctx, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := g.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := time.Since(start); got < 400*time.Millisecond {
		t.Errorf("admission after SlowDown(500ms) then SlowDown(1ms) came after %v, want about 500ms", got)
	}
}

func TestGovernorWait(t *testing.T) {
	s := newTaskTestStore(t)
	ctx := context.Background()

	t.Run("cancelled while waiting", func(t *testing.T) {
		g := s.Governor("one-per-second", 1)
		if err := g.Wait(ctx); err != nil {
			t.Fatalf("first Wait: %v", err)
		}
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := g.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("second Wait within a second = %v, want DeadlineExceeded", err)
		}
		if got := time.Since(start); got > 500*time.Millisecond {
			t.Errorf("cancelled Wait returned after %v, want about 50ms", got)
		}
	})

	t.Run("key expires", func(t *testing.T) {
		g := s.Governor("exp", 10)
		for range 3 {
			if err := g.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		ttl := s.rdb.PTTL(ctx, s.key("governor", "exp")).Val()
		if ttl <= 0 || ttl > 2*time.Second {
			t.Errorf("PTTL of governor key = %v, want (0, 2s]", ttl)
		}
	})

	t.Run("unlimited", func(t *testing.T) {
		g := s.Governor("free", 0)
		start := time.Now()
		for range 1000 {
			if err := g.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got := time.Since(start); got > 100*time.Millisecond {
			t.Errorf("1000 unlimited Waits took %v, want no waiting", got)
		}
		if n := s.rdb.Exists(ctx, s.key("governor", "free")).Val(); n != 0 {
			t.Errorf("unlimited governor wrote its key, want no Redis traffic")
		}
	})

	t.Run("one round trip per wait", func(t *testing.T) {
		g := s.Governor("rt", 1_000_000)
		before := commandCalls(t, s, "evalsha")
		for range 200 {
			if err := g.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got := commandCalls(t, s, "evalsha") - before; got != 200 {
			t.Errorf("200 Waits ran EVALSHA %d times, want 200", got)
		}
	})
}

// commandCalls returns how many times Redis has run a command, from INFO commandstats
// (lines like "cmdstat_evalsha:calls=12,usec=...").
func commandCalls(t *testing.T, s *Store, cmd string) int64 {
	t.Helper()
	stats, err := s.rdb.InfoMap(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, section := range stats {
		for _, kv := range strings.Split(section["cmdstat_"+cmd], ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatalf("commandstats of %s: %v", cmd, err)
				}
				return n
			}
		}
	}
	return 0
}
