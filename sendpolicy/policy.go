// Package sendpolicy is the policy of wagate's send path, in one place for bulk tasks
// and direct single sends: pacing (the adaptive per-number governor), breaking (the
// per-number circuit breaker in front of the Graph API) and the per-recipient retry
// schedule. Its state lives in Redis (redisstore), so every task, worker and replica
// follows the same one.
//
// A send goes: Acquire (wait for the breaker to admit and for a governor slot), the
// Graph API call, Done (report the outcome: the breaker counts Meta's failures, the
// governor lowers the rate on 130429) and, for a bulk recipient, Next (what to do with
// the recipient: final, or again after a delay that holds no send slot).
package sendpolicy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/internal/metrics"
	"github.com/wagate/wagate/redisstore"
)

// Options shape a Policy. The zero value of a field means its default.
type Options struct {
	Breaker redisstore.BreakerOptions
	// Attempts is how many charged failures a recipient may have (3).
	Attempts int
	// RetryBackoff is the pause after the n-th charged failure (1 s, 2 s).
	RetryBackoff func(n int) time.Duration
	// PairBackoff are the pauses after each 131056 (Meta: 4^X s: 1, 4, 16 s); after the
	// last the recipient fails.
	PairBackoff []time.Duration
	// MaxThrottled bounds the 130429 answers one recipient may get before it fails; they
	// are not attempts (the rate is the number's, not the recipient's), but a number that
	// Meta throttles without end must not keep a task forever.
	MaxThrottled int
}

// DefaultRetryBackoff is 1 s, 2 s, 4 s, ... after the n-th charged failure.
func DefaultRetryBackoff(n int) time.Duration { return time.Duration(1<<(max(n, 1)-1)) * time.Second }

// DefaultPairBackoff is Meta's advice for 131056 (pair rate): 4^X seconds, X = 0, 1, 2.
var DefaultPairBackoff = []time.Duration{time.Second, 4 * time.Second, 16 * time.Second}

func (o Options) withDefaults() Options {
	d := redisstore.DefaultBreakerOptions
	if o.Breaker.Threshold <= 0 {
		o.Breaker.Threshold = d.Threshold
	}
	if o.Breaker.ProbeSpacing <= 0 {
		o.Breaker.ProbeSpacing = d.ProbeSpacing
	}
	if o.Breaker.MaxProbeSpacing <= 0 {
		o.Breaker.MaxProbeSpacing = d.MaxProbeSpacing
	}
	if o.Breaker.ProbeLease <= 0 {
		o.Breaker.ProbeLease = d.ProbeLease
	}
	if o.Breaker.Poll <= 0 {
		o.Breaker.Poll = d.Poll
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.RetryBackoff == nil {
		o.RetryBackoff = DefaultRetryBackoff
	}
	if o.PairBackoff == nil {
		o.PairBackoff = DefaultPairBackoff
	}
	if o.MaxThrottled <= 0 {
		o.MaxThrottled = 50
	}
	return o
}

// Policy is the send policy of one business phone number. It is safe for concurrent
// use; one per process and number is enough.
type Policy struct {
	b    *redisstore.Breaker
	opts Options
	log  *slog.Logger
	m    *metrics.Number // the number's send-path metrics, bound once

	// cuts counts the rate cuts this process made: a send slot reserved before a cut was
	// spaced for the old rate, so its holder takes a new one.
	cuts atomic.Int64
	// accepted holds the times (Unix ns) of the last acceptedRing sends Meta accepted
	// (this process's), for the floor of a rate cut: how many Meta accepted in the
	// second before a 130429 is what its sliding window holds, the number's limit.
	accepted  [acceptedRing]atomic.Int64
	acceptedN atomic.Uint64

	mu       sync.Mutex
	waiting  redisstore.FailureKind // what this process last saw the breaker open for; "" closed
	since    time.Time
	lastRate float64
}

// New returns the policy of phone number pnid with a ceiling of mps sends per second
// (WHATSAPP_MAX_MPS; <= 0 no limit).
func New(store *redisstore.Store, pnid string, mps int, opts Options, log *slog.Logger) *Policy {
	if log == nil {
		log = slog.Default()
	}
	opts = opts.withDefaults()
	return &Policy{b: store.Breaker(pnid, mps, opts.Breaker), opts: opts, log: log, m: metrics.ForNumber(pnid, mps)}
}

// Permit is one admitted send. Exactly one of Done or Abandon must follow it.
type Permit struct {
	p     *Policy
	token string
	fails int // the breaker's run of failures when admitted
	// Probe is set when this send is the breaker's probe: its outcome opens or closes
	// the breaker for everybody.
	Probe bool
}

// OpenError is TryAcquire's answer while the breaker is open.
type OpenError struct{ State redisstore.BreakerState }

func (e *OpenError) Error() string {
	return fmt.Sprintf("the Graph API circuit of this number is open since %s (%s: %s)",
		e.State.Since.UTC().Format(time.RFC3339), e.State.Reason, e.State.Error)
}

// Acquire waits until a send may go out: the breaker admits it (closed, or this caller
// holds the probe) and its governor slot has come. It returns an error only when ctx
// ends or Redis fails.
func (p *Policy) Acquire(ctx context.Context) (*Permit, error) {
	return p.acquire(ctx, true)
}

// TryAcquire is Acquire for a caller that cannot wait out an outage (a direct single
// send): while the breaker is open and the probe is not this caller's, it answers an
// *OpenError at once.
func (p *Policy) TryAcquire(ctx context.Context) (*Permit, error) {
	return p.acquire(ctx, false)
}

// AcquireHolding is Acquire for a bulk recipient: the ledger Hold h is made in the
// same Redis round trip as the first admission (see redisstore.Breaker.AdmitHolding).
// When the hold is not granted (the recipient is final, or a newer attempt holds it) it
// returns no permit and the hold's result; otherwise the permit, once admitted, and
// redisstore.ClaimGo.
func (p *Policy) AcquireHolding(ctx context.Context, h redisstore.HoldRequest) (*Permit, redisstore.ClaimResult, error) {
	cuts := p.cuts.Load()
	began := time.Now()
	a, claim, err := p.b.AdmitHolding(ctx, h)
	if err != nil {
		return nil, claim, err
	}
	p.m.RedisTrip(time.Since(began))
	if claim != redisstore.ClaimGo {
		// Not this caller's recipient to send (no send was abandoned): give the probe
		// lease back, if the admission handed it out.
		(&Permit{p: p, token: a.Token}).release()
		return nil, claim, nil
	}
	pm, err := p.acquireWith(ctx, true, &admitted{a: a, cuts: cuts})
	return pm, claim, err
}

// admitted is an admission already made, and the count of rate cuts before it.
type admitted struct {
	a    redisstore.Admission
	cuts int64
}

func (p *Policy) acquire(ctx context.Context, wait bool) (*Permit, error) {
	return p.acquireWith(ctx, wait, nil)
}

// acquireWith is acquire whose first admission, when first is not nil, was already made.
func (p *Policy) acquireWith(ctx context.Context, wait bool, first *admitted) (*Permit, error) {
	for {
		var a redisstore.Admission
		var cuts int64
		if first != nil {
			a, cuts, first = first.a, first.cuts, nil
		} else {
			cuts = p.cuts.Load()
			began := time.Now()
			var err error
			if a, err = p.b.Admit(ctx); err != nil {
				return nil, err
			}
			p.m.RedisTrip(time.Since(began))
		}
		switch a.Verdict {
		case redisstore.AdmitSend, redisstore.AdmitProbe:
			p.noteRate(a.Rate)
			p.m.Admitted(a.Wait)
			if a.Verdict == redisstore.AdmitSend {
				p.noteClosed()
			}
			pm := &Permit{p: p, token: a.Token, Probe: a.Verdict == redisstore.AdmitProbe, fails: a.Fails}
			if err := sleep(ctx, a.Wait); err != nil {
				pm.Abandon()
				return nil, err
			}
			if !pm.Probe && p.cuts.Load() != cuts {
				// The slot was reserved at the rate Meta just refused.
				continue
			}
			return pm, nil
		}
		st, err := p.b.State(ctx)
		if err != nil {
			return nil, err
		}
		p.noteOpen(st)
		if !wait {
			return nil, &OpenError{State: st}
		}
		// A little jitter keeps the waiters of many processes from asking in step.
		d := a.Wait + time.Duration(rand.Int64N(int64(p.opts.Breaker.Poll)+1))
		if err := sleep(ctx, d); err != nil {
			return nil, err
		}
	}
}

// Outcome is what one send's answer means.
type Outcome struct {
	Err   error
	Class graphapi.Class // 0: sent
	// Charged: the failure counts against the recipient's attempts (Meta's failures
	// while the breaker is open, and the one that opens it, do not).
	Charged bool
	Opened  bool // this answer opened the breaker
	Closed  bool // this answer (a successful probe) closed it
}

// Done reports the answer of the admitted send (err nil: Meta accepted it) to the
// breaker and the governor and says what it means. When Redis cannot be told, the
// failure is charged, as it would have been without a breaker.
func (pm *Permit) Done(ctx context.Context, err error) Outcome {
	o := Outcome{Err: err, Class: graphapi.Classify(err)}
	pm.p.m.Send(o.Class, err)
	kind := redisstore.OutcomeOK
	switch o.Class {
	case 0:
		pm.p.countAccepted()
	case graphapi.ClassRetryable:
		kind = redisstore.OutcomeUnavailable
	case graphapi.ClassAuth:
		kind = redisstore.OutcomeAuth
	case graphapi.ClassRateLimited:
		pm.p.throttled(ctx)
	}
	if kind == redisstore.OutcomeOK && pm.token == "" && pm.fails == 0 {
		// The common case costs no round trip: the circuit was closed with no failures
		// to reset.
		return o
	}
	// The report must land even when ctx ends now: the probe lease and the run of
	// failures are everybody's.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	text := ""
	if err != nil {
		text = err.Error()
	}
	r, rerr := pm.p.b.Report(rctx, kind, pm.token, graphapi.Code(err), text)
	if rerr != nil {
		pm.p.log.Warn("send policy: breaker report failed", "error", rerr)
		o.Charged = kind != redisstore.OutcomeOK
		return o
	}
	o.Charged, o.Opened, o.Closed = r.Charged, r.Opened, r.Closed
	switch {
	case r.Opened:
		pm.p.m.BreakerOpened()
		pm.p.log.Warn("Graph API circuit opened: sending paused for this number until a probe succeeds",
			"reason", kind, "code", graphapi.Code(err), "error", text)
		pm.p.mu.Lock()
		pm.p.waiting, pm.p.since = kind, time.Now()
		pm.p.mu.Unlock()
	case r.Closed:
		pm.p.m.BreakerClosed()
		pm.p.log.Info("Graph API circuit closed: the probe succeeded, sending resumes")
		pm.p.noteClosed()
	}
	return o
}

// Abandon gives up an admitted send that was not made or whose answer is unknown
// because the caller's context ended; a probe's lease is released.
func (pm *Permit) Abandon() {
	pm.p.m.Abandoned()
	pm.release()
}

// release gives a probe's lease back, if the permit holds one.
func (pm *Permit) release() {
	if pm.token == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = pm.p.b.Report(ctx, redisstore.OutcomeAbandoned, pm.token, 0, "")
}

// acceptedRing bounds the accepted sends remembered: more than Meta's highest
// throughput tier (1,000 mps) in a second.
const acceptedRing = 2048

// countAccepted notes one send Meta accepted.
func (p *Policy) countAccepted() {
	p.b.Governor().Accepted()
	n := p.acceptedN.Add(1)
	p.accepted[n%acceptedRing].Store(time.Now().UnixNano())
}

// acceptedIn is how many sends Meta accepted in the last second (a sliding second: a
// number Meta's limit is at least), and how many a second over the last 5 s, or since
// the process's first accepted send when that is less than 5 s ago (0 when that is
// less than 2 s ago, or the ring holds less than 5 s of them).
func (p *Policy) acceptedIn() (second int, sustained float64) {
	now := time.Now()
	s1, s5 := now.Add(-time.Second).UnixNano(), now.Add(-5*time.Second).UnixNano()
	five, oldest, before := 0, now.UnixNano(), false
	for i := range p.accepted {
		t := p.accepted[i].Load()
		switch {
		case t > s1:
			second++
			five++
		case t > s5:
			five++
		case t > 0:
			before = true
			continue
		default:
			continue
		}
		oldest = min(oldest, t)
	}
	span := 5 * time.Second
	if !before {
		span = time.Duration(now.UnixNano() - oldest)
	}
	if five < acceptedRing && span >= 2*time.Second {
		sustained = float64(five) / span.Seconds()
	}
	return second, sustained
}

func (p *Policy) throttled(ctx context.Context) {
	second, sustained := p.acceptedIn()
	cut, rate, err := p.b.Governor().Throttled(ctx, second, sustained)
	if err != nil {
		p.log.Warn("send policy: lowering the send rate failed", "error", err)
		return
	}
	if cut {
		p.cuts.Add(1)
		p.m.Cut()
		p.log.Info("Meta answered 130429: send rate lowered", "rate_mps", round(rate))
	}
	p.noteRate(rate)
}

func (p *Policy) noteRate(rate float64) {
	if rate <= 0 {
		return
	}
	p.m.Rate(rate)
	p.mu.Lock()
	defer p.mu.Unlock()
	// The increase back toward the ceiling is logged when it reaches a whole step of
	// 10%, not every second.
	if p.lastRate > 0 && rate > p.lastRate && int(rate*10/p.ceiling()) > int(p.lastRate*10/p.ceiling()) {
		p.log.Info("send rate raised after clean seconds", "rate_mps", round(rate))
	}
	p.lastRate = rate
}

func (p *Policy) ceiling() float64 {
	if c := p.b.Governor(); c != nil {
		if st := c.Ceiling(); st > 0 {
			return st
		}
	}
	return 1
}

func (p *Policy) noteOpen(st redisstore.BreakerState) {
	p.m.Breaker(st.Open)
	p.mu.Lock()
	defer p.mu.Unlock()
	if st.Open {
		p.waiting, p.since = st.Reason, st.Since
	} else {
		p.waiting = ""
	}
}

func (p *Policy) noteClosed() {
	p.m.Breaker(false)
	p.mu.Lock()
	p.waiting = ""
	p.mu.Unlock()
}

// Waiting says whether this process last saw the breaker open, why
// (redisstore.OutcomeUnavailable or OutcomeAuth) and since when. It costs nothing: a
// task's dispatcher reads it every second.
func (p *Policy) Waiting() (redisstore.FailureKind, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiting, p.since
}

// Attempts is a recipient's retry state; it is kept in the send ledger between
// activities.
type Attempts struct {
	Charged   int // failures that count against the recipient's attempts
	Paired    int // 131056 answers
	Throttled int // 130429 answers
}

// Step is what to do with a recipient after an answer.
type Step struct {
	Final bool          // the outcome is final: sent, or failed for good
	Delay time.Duration // otherwise, send again after Delay (0: at once, through Acquire)
}

// Next applies the per-recipient retry schedule to an outcome and updates a.
// Meta's failures that were not charged (the breaker is or became open) are sent again
// at once: Acquire holds them until the breaker lets them through. Charged retryable
// failures are tried Attempts times in all with RetryBackoff between; 131056 backs
// that recipient off along PairBackoff; 130429 is retried at once (the governor has
// slowed the number) up to MaxThrottled times; permanent errors are final.
func (p *Policy) Next(a *Attempts, o Outcome) Step {
	switch o.Class {
	case 0, graphapi.ClassPermanent:
		return Step{Final: true}
	case graphapi.ClassRateLimited:
		if a.Throttled++; a.Throttled > p.opts.MaxThrottled {
			return Step{Final: true}
		}
		return Step{}
	case graphapi.ClassPairRateLimited:
		if a.Paired >= len(p.opts.PairBackoff) {
			return Step{Final: true}
		}
		d := p.opts.PairBackoff[a.Paired]
		a.Paired++
		return Step{Delay: d}
	case graphapi.ClassRetryable, graphapi.ClassAuth:
		if !o.Charged {
			return Step{}
		}
		if a.Charged++; a.Charged >= p.opts.Attempts {
			return Step{Final: true}
		}
		return Step{Delay: p.opts.RetryBackoff(a.Charged)}
	}
	return Step{Final: true}
}

// Status is the send path's state for /api/status and task-status.
type Status struct {
	Breaker  redisstore.BreakerState
	Governor redisstore.GovernorState
}

// Status reads the breaker and the learned rate from Redis.
func (p *Policy) Status(ctx context.Context) (Status, error) {
	b, err := p.b.State(ctx)
	if err != nil {
		return Status{}, err
	}
	g, err := p.b.Governor().State(ctx)
	if err != nil {
		return Status{}, err
	}
	return Status{Breaker: b, Governor: g}, nil
}

// IsOpen reports whether err is TryAcquire's *OpenError.
func IsOpen(err error) bool {
	var oe *OpenError
	return errors.As(err, &oe)
}

func round(f float64) float64 { return float64(int(f*10+0.5)) / 10 }

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
