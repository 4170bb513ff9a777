package sendpolicy

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/internal/testredis"
	"github.com/wagate/wagate/redisstore"
)

var (
	errUnavailable = &graphapi.Error{HTTPStatus: 503, Code: 2, Message: "(#2) Service temporarily unavailable"}
	errAuth        = &graphapi.Error{HTTPStatus: 401, Code: 190, Message: "(#190) Invalid OAuth access token"}
	errThrottled   = &graphapi.Error{HTTPStatus: 400, Code: 130429, Message: "(#130429) Rate limit hit"}
	errUndeliver   = &graphapi.Error{HTTPStatus: 400, Code: 131026, Message: "(#131026) Message undeliverable"}
)

func fastOptions() Options {
	return Options{Breaker: redisstore.BreakerOptions{
		Threshold: 3, ProbeSpacing: 50 * time.Millisecond, MaxProbeSpacing: 200 * time.Millisecond,
		ProbeLease: 5 * time.Second, Poll: 10 * time.Millisecond,
	}}
}

func newPolicies(t *testing.T, n int, opts Options) []*Policy {
	t.Helper()
	rdb := testredis.New(t)
	out := make([]*Policy, n)
	for i := range out {
		// Separate Stores on one Redis, as separate worker replicas would have.
		out[i] = New(redisstore.New(rdb, ""), "1065", 0, opts, nil)
	}
	return out
}

func send(t *testing.T, p *Policy, err error) Outcome {
	t.Helper()
	pm, aerr := p.Acquire(context.Background())
	if aerr != nil {
		t.Fatalf("Acquire: %v", aerr)
	}
	return pm.Done(context.Background(), err)
}

func TestBreakerOpensAfterARunOfMetaFailuresWithoutChargingIt(t *testing.T) {
	p := newPolicies(t, 1, fastOptions())[0]
	ctx := context.Background()

	// A success between failures breaks the run.
	for _, err := range []error{errUnavailable, errUnavailable, nil, errUnavailable, errUnavailable} {
		o := send(t, p, err)
		if o.Opened {
			t.Fatalf("breaker opened on a broken run")
		}
		if err != nil && !o.Charged {
			t.Fatalf("a failure while closed was not charged")
		}
	}
	// The third in a row opens it and is not charged.
	o := send(t, p, errUnavailable)
	if !o.Opened || o.Charged {
		t.Fatalf("third failure in a row: %+v, want opened and not charged", o)
	}
	st, err := p.Status(ctx)
	if err != nil || !st.Breaker.Open || st.Breaker.Reason != redisstore.OutcomeUnavailable || st.Breaker.Code != 2 {
		t.Fatalf("status = %+v (%v), want open for graph_api_unavailable, code 2", st.Breaker, err)
	}
	if w, since := p.Waiting(); w != redisstore.OutcomeUnavailable || since.IsZero() {
		t.Fatalf("Waiting() = %q %v", w, since)
	}
	// While open, a direct send is refused at once.
	if _, err := p.TryAcquire(ctx); !IsOpen(err) {
		t.Fatalf("TryAcquire while open = %v, want an OpenError", err)
	}
	// The recipient's schedule: an uncharged failure is sent again at once (Acquire
	// holds it), and does not count.
	var a Attempts
	if step := p.Next(&a, o); step.Final || step.Delay != 0 || a.Charged != 0 {
		t.Fatalf("Next after an uncharged failure = %+v, attempts %+v", step, a)
	}
}

func TestBreakerProbesOneAtATimeWithGrowingSpacingAndClosesOnSuccess(t *testing.T) {
	policies := newPolicies(t, 3, fastOptions())
	for range 3 {
		send(t, policies[0], errUnavailable)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Ten callers in three "processes" wait; every probe fails until the fifth.
	var (
		mu       sync.Mutex
		probes   []time.Time
		inProbe  atomic.Int32
		maxProbe atomic.Int32
		admitted atomic.Int32
		charged  atomic.Int32
		wg       sync.WaitGroup
	)
	start := time.Now()
	for i := range 10 {
		wg.Go(func() {
			p := policies[i%3]
			for {
				pm, err := p.Acquire(ctx)
				if err != nil {
					t.Errorf("Acquire: %v", err)
					return
				}
				if !pm.Probe {
					admitted.Add(1)
					pm.Done(ctx, nil)
					return
				}
				n := inProbe.Add(1)
				if n > maxProbe.Load() {
					maxProbe.Store(n)
				}
				mu.Lock()
				probes = append(probes, time.Now())
				k := len(probes)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
				inProbe.Add(-1)
				var err2 error
				if k < 5 {
					err2 = errUnavailable
				}
				if o := pm.Done(ctx, err2); o.Charged {
					charged.Add(1)
				}
				if err2 == nil {
					admitted.Add(1)
					return
				}
			}
		})
	}
	wg.Wait()
	if maxProbe.Load() != 1 {
		t.Errorf("up to %d probes at once, want 1", maxProbe.Load())
	}
	if len(probes) != 5 {
		t.Fatalf("%d probes, want 5 (four failed, the fifth closed the breaker)", len(probes))
	}
	if admitted.Load() != 10 || charged.Load() != 0 {
		t.Errorf("admitted %d, charged %d; want all 10 through and no failed probe charged", admitted.Load(), charged.Load())
	}
	// Spacing 50, 100, 200, 200 ms (capped): each gap at least its spacing.
	want := []time.Duration{50, 100, 200, 200}
	if first := probes[0].Sub(start); first > 100*time.Millisecond {
		t.Errorf("first probe %v after the waiters started, want within the first spacing", first)
	}
	for i := 1; i < len(probes); i++ {
		gap := probes[i].Sub(probes[i-1])
		if w := want[i-1] * time.Millisecond; gap < w-5*time.Millisecond || gap > w+150*time.Millisecond {
			t.Errorf("probe %d came %v after the previous, want about %v", i+1, gap, w)
		}
	}
	st, _ := policies[1].Status(context.Background())
	if st.Breaker.Open || st.Breaker.Fails != 0 {
		t.Errorf("breaker after a successful probe = %+v, want closed", st.Breaker)
	}
}

func TestAuthFailureOpensAtOnceAndStaysOpenUntilAProbeSucceeds(t *testing.T) {
	p := newPolicies(t, 1, fastOptions())[0]
	o := send(t, p, errAuth)
	if !o.Opened || o.Charged {
		t.Fatalf("auth failure = %+v, want opened at once, not charged", o)
	}
	var a Attempts
	if step := p.Next(&a, o); step.Final {
		t.Fatalf("an auth failure made the recipient final: the task would fail silently")
	}
	// Probes that keep failing with auth keep it open, without charge.
	ctx := context.Background()
	for range 3 {
		pm, err := p.Acquire(ctx)
		if err != nil || !pm.Probe {
			t.Fatalf("Acquire = %+v, %v; want the probe", pm, err)
		}
		if o := pm.Done(ctx, errAuth); o.Charged || o.Closed {
			t.Fatalf("failed auth probe = %+v", o)
		}
		st, _ := p.Status(ctx)
		if !st.Breaker.Open || st.Breaker.Reason != redisstore.OutcomeAuth || st.Breaker.Code != 190 {
			t.Fatalf("breaker = %+v, want open for graph_api_auth", st.Breaker)
		}
	}
	// A probe that Meta answers about the recipient (131026) proves the account works.
	pm, err := p.Acquire(ctx)
	if err != nil || !pm.Probe {
		t.Fatalf("Acquire = %+v, %v", pm, err)
	}
	if o := pm.Done(ctx, errUndeliver); !o.Closed {
		t.Fatalf("probe answered 131026 = %+v, want the breaker closed", o)
	}
	if w, _ := p.Waiting(); w != "" {
		t.Errorf("Waiting() after close = %q", w)
	}
}

// A probe that hangs (Meta leaves the connection without an answer) holds the number
// back for ProbeLease only: then the next caller probes, so sending resumes within about
// that long of Meta's recovery. The late answers still count: a hung probe's success
// closes the breaker, and its failure, once the breaker has closed, is neither charged
// nor counted in the run of failures.
func TestHungProbeHoldsTheNumberForTheLeaseOnly(t *testing.T) {
	opts := fastOptions()
	opts.Breaker.ProbeLease = 300 * time.Millisecond
	policies := newPolicies(t, 2, opts)
	for range 3 {
		send(t, policies[0], errUnavailable)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	probe := func(p *Policy) (*Permit, time.Time) {
		t.Helper()
		pm, err := p.Acquire(ctx)
		if err != nil || !pm.Probe {
			t.Fatalf("Acquire = %+v, %v; want the probe", pm, err)
		}
		return pm, time.Now()
	}

	// The first probe hangs; within its lease nobody else probes.
	hung, at := probe(policies[0])
	early, cancelEarly := context.WithTimeout(ctx, 200*time.Millisecond)
	if pm, err := policies[1].Acquire(early); err == nil {
		t.Fatalf("a second admission (%+v) within the hung probe's lease", pm)
	}
	cancelEarly()
	// Past the lease, the next probe goes; it hangs too.
	hung2, at2 := probe(policies[1])
	if d := at2.Sub(at); d < opts.Breaker.ProbeLease-20*time.Millisecond || d > opts.Breaker.ProbeLease+200*time.Millisecond {
		t.Errorf("second probe %v after the first, want about the lease (%v)", d, opts.Breaker.ProbeLease)
	}
	// The first one's failure, answered late, moves nothing.
	if o := hung.Done(ctx, context.DeadlineExceeded); o.Charged || o.Opened || o.Closed {
		t.Errorf("late failure of a hung probe = %+v, want nothing moved", o)
	}
	// Meta is back: a third probe succeeds and closes the breaker for everybody.
	third, _ := probe(policies[0])
	if o := third.Done(ctx, nil); !o.Closed {
		t.Fatalf("successful probe = %+v, want the breaker closed", o)
	}
	// The second hung probe times out after the close: sent while the breaker was
	// open, it is not the recipient's fault, and no run of failures starts from it.
	if o := hung2.Done(ctx, context.DeadlineExceeded); o.Charged || o.Opened {
		t.Errorf("hung probe failing after the close = %+v, want not charged", o)
	}
	st, _ := policies[1].Status(ctx)
	if st.Breaker.Open || st.Breaker.Fails != 0 {
		t.Errorf("breaker = %+v, want closed with no failures", st.Breaker)
	}

	// A hung probe's late success closes the breaker too, while a newer probe is out.
	for range 3 {
		send(t, policies[0], errUnavailable)
	}
	slow, _ := probe(policies[0])
	newer, _ := probe(policies[1]) // after the lease
	if o := slow.Done(ctx, nil); !o.Closed {
		t.Fatalf("late success of a hung probe = %+v, want the breaker closed", o)
	}
	if o := newer.Done(ctx, nil); o.Closed || o.Charged {
		t.Errorf("the newer probe's success after the close = %+v, want nothing moved", o)
	}
	if pm, err := policies[1].Acquire(ctx); err != nil || pm.Probe {
		t.Errorf("Acquire after the close = %+v, %v; want a plain send", pm, err)
	} else {
		pm.Done(ctx, nil)
	}
}

func TestAbandonedProbeReleasesTheLease(t *testing.T) {
	p := newPolicies(t, 1, fastOptions())[0]
	send(t, p, errAuth)
	ctx := context.Background()
	pm, err := p.Acquire(ctx)
	if err != nil || !pm.Probe {
		t.Fatalf("Acquire = %+v, %v", pm, err)
	}
	pm.Abandon()
	ctx2, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	pm2, err := p.Acquire(ctx2)
	if err != nil || !pm2.Probe {
		t.Fatalf("after an abandoned probe, Acquire = %+v, %v; want the next probe at once", pm2, err)
	}
	pm2.Done(ctx, nil)
}

func TestNextSchedule(t *testing.T) {
	p := New(redisstore.New(testredis.New(t), ""), "1", 0, Options{}, nil)
	charged := Outcome{Err: errUnavailable, Class: graphapi.ClassRetryable, Charged: true}
	var a Attempts
	if s := p.Next(&a, charged); s.Final || s.Delay != time.Second {
		t.Errorf("first charged failure: %+v, want again after 1s", s)
	}
	if s := p.Next(&a, charged); s.Final || s.Delay != 2*time.Second {
		t.Errorf("second charged failure: %+v, want again after 2s", s)
	}
	if s := p.Next(&a, charged); !s.Final {
		t.Errorf("third charged failure: %+v, want final", s)
	}

	pair := Outcome{Class: graphapi.ClassPairRateLimited}
	a = Attempts{}
	for _, want := range []time.Duration{time.Second, 4 * time.Second, 16 * time.Second} {
		if s := p.Next(&a, pair); s.Final || s.Delay != want {
			t.Errorf("131056: %+v, want again after %v", s, want)
		}
	}
	if s := p.Next(&a, pair); !s.Final {
		t.Errorf("fourth 131056: %+v, want final", s)
	}

	a = Attempts{}
	thr := Outcome{Class: graphapi.ClassRateLimited}
	for range 50 {
		if s := p.Next(&a, thr); s.Final || s.Delay != 0 || a.Charged != 0 {
			t.Fatalf("130429: %+v attempts %+v, want again at once, uncharged", s, a)
		}
	}
	if s := p.Next(&a, Outcome{Class: graphapi.ClassPermanent}); !s.Final {
		t.Errorf("permanent: %+v, want final", s)
	}
}

func TestThrottledLowersTheSharedRateOncePerWindow(t *testing.T) {
	rdb := testredis.New(t)
	a := New(redisstore.New(rdb, ""), "1065", 80, fastOptions(), nil)
	b := New(redisstore.New(rdb, ""), "1065", 80, fastOptions(), nil)
	ctx := context.Background()
	// A second of sends at the ceiling (slots taken without waiting for them) ...
	for range 80 {
		if _, _, err := a.b.Governor().Reserve(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// ... then two replicas see 130429 at the same moment: one cut.
	for _, p := range []*Policy{a, b, a, b} {
		pm, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if o := pm.Done(ctx, errThrottled); o.Charged || o.Opened {
			t.Fatalf("130429 outcome = %+v: it is neither charged nor a breaker failure", o)
		}
	}
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.Governor.Rate, 80*redisstore.GovernorCut; got < want-0.01 || got > want+0.01 {
		t.Fatalf("rate after a burst of 130429 = %v, want one cut to %v", got, want)
	}
	if st.Breaker.Open {
		t.Fatalf("130429 opened the breaker")
	}
}

// acceptedIn's 5 s rate spans the process's sending when it began less than 5 s ago,
// and is unknown for less than 2 s of it: a refusal 3 s into a task can still be told
// from one after a last second above the rest.
func TestAcceptedInSpansTheSendingSoFar(t *testing.T) {
	fill := func(p *Policy, now time.Time, from, to time.Duration, perSec int) {
		for d := from; d < to; d += time.Second / time.Duration(perSec) {
			n := p.acceptedN.Add(1)
			p.accepted[n%acceptedRing].Store(now.Add(-d).UnixNano())
		}
	}
	for _, tc := range []struct {
		name   string
		fill   func(p *Policy, now time.Time)
		second int
		lo, hi float64
	}{
		{"3 s at 20", func(p *Policy, now time.Time) { fill(p, now, 0, 3*time.Second, 20) }, 20, 19.5, 20.5},
		{"1.5 s at 20", func(p *Policy, now time.Time) { fill(p, now, 0, 1500*time.Millisecond, 20) }, 20, 0, 0},
		{"10 s at 20", func(p *Policy, now time.Time) { fill(p, now, 0, 10*time.Second, 20) }, 20, 19.5, 20.5},
		{"a send 10 s ago, 3 s at 20", func(p *Policy, now time.Time) {
			fill(p, now, 0, 3*time.Second, 20)
			fill(p, now, 10*time.Second, 10*time.Second+time.Millisecond, 1000)
		}, 20, 11.5, 12.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Policy{}
			tc.fill(p, time.Now())
			second, sustained := p.acceptedIn()
			if second < tc.second-1 || second > tc.second || sustained < tc.lo || sustained > tc.hi {
				t.Errorf("acceptedIn = %d, %.2f; want %d, [%v, %v]", second, sustained, tc.second, tc.lo, tc.hi)
			}
		})
	}
}
