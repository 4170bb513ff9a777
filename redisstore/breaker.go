package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// BreakerOptions shape a phone number's circuit breaker.
type BreakerOptions struct {
	// Threshold is how many Meta-side failures in a row (no success between them) open
	// the breaker.
	Threshold int
	// ProbeSpacing is the pause before the first probe after opening; each failed probe
	// doubles it up to MaxProbeSpacing.
	ProbeSpacing, MaxProbeSpacing time.Duration
	// ProbeLease is how long one probe is the only one. A probe still unanswered after
	// it (Meta hangs instead of failing, or the prober's process died) no longer holds
	// the number back: the next caller probes, while the first waits out its own call.
	// Its answer still counts when it comes: a success closes the breaker, a failure is
	// never charged (it was sent while the breaker was open). So in an incident of
	// hanging connections a probe goes out every ProbeLease, and sending resumes within
	// about that long of Meta's recovery, as with failures answered at once.
	ProbeLease time.Duration
	// Poll is how often a caller asks again while another caller's probe is in flight.
	Poll time.Duration
}

// DefaultBreakerOptions: five Meta failures in a row open the breaker; probes 1 s,
// 2 s, 4 s, 4 s ... apart. Meta may recover just after a failed probe, so the spacing
// is the longest sending can wait after the recovery: 4 s, with the probe's own call
// and the waiters' wake-up inside the 5 s promised. A probe that hangs is followed by
// the next one 4 s after it went out, for the same bound.
var DefaultBreakerOptions = BreakerOptions{
	Threshold: 5, ProbeSpacing: time.Second, MaxProbeSpacing: 4 * time.Second,
	ProbeLease: 4 * time.Second, Poll: 100 * time.Millisecond,
}

// Breaker is the circuit breaker of one business phone number in front of the Graph
// API, shared by every task, worker and replica: when Meta itself fails (5xx, codes
// 1, 2, 131000, ..., time-outs) or refuses the account (auth), nobody sends for the
// number but one probe at a time. Its admission also takes the send-rate governor's
// slot, so a send costs one Redis round trip before it goes out.
type Breaker struct {
	s     *Store
	gov   *Governor
	key   string // hash: st, fails, reason, code, err, since, probe_at, spacing
	probe string // the probe lease: the token of the caller that may probe
	opts  BreakerOptions
}

// Breaker returns the breaker of a phone number, admitting through its governor with a
// ceiling of mps sends per second (mps <= 0: no rate limit).
func (s *Store) Breaker(phoneNumberID string, mps int, opts BreakerOptions) *Breaker {
	return &Breaker{s: s, gov: s.Governor(phoneNumberID, mps), key: s.key("breaker", phoneNumberID),
		probe: s.key("breaker", phoneNumberID, "probe"), opts: opts}
}

// Governor returns the send-rate governor the breaker admits through.
func (b *Breaker) Governor() *Governor { return b.gov }

// AdmitVerdict says what a caller may do.
type AdmitVerdict int

// Admission verdicts.
const (
	AdmitSend  AdmitVerdict = iota + 1 // closed: send after Wait
	AdmitProbe                         // open, and this caller is the one probe: send after Wait
	AdmitWait                          // open: ask again after Wait
)

// Admission is the answer of Admit.
type Admission struct {
	Verdict AdmitVerdict
	Wait    time.Duration // until the send slot (Send, Probe) or until asking again (Wait)
	Rate    float64       // the governor's rate when a slot was taken
	Fails   int           // Meta failures in a row so far
	Token   string        // the probe lease, for Report, when Probe
}

// breakerAdmit: KEYS = {slot, rate, breaker, probe}, ARGV = {ceiling, token, lease ms,
// poll µs, accepted, hold µs}, accepted being the sends Meta accepted that the caller's
// process has not yet told the governor of. It returns {verdict, wait µs, rate m-mps,
// fails}.
var breakerAdmit = redis.NewScript(governorLua + `
local now = redis_now()
local h = redis.call('HMGET', KEYS[3], 'st', 'probe_at', 'fails')
local fails = tonumber(h[3] or '0') or 0
accepted(KEYS[2], tonumber(ARGV[5]))
local function slot()
  if tonumber(ARGV[1]) <= 0 then return 0, 0 end
  return reserve(KEYS[1], KEYS[2], now, tonumber(ARGV[1]))
end
if h[1] == 'open' then
  local pa = tonumber(h[2] or '0') or 0
  if now < pa then return {3, pa - now, 0, fails} end
  if redis.call('SET', KEYS[4], ARGV[2], 'NX', 'PX', tonumber(ARGV[3])) then
    local w, r = slot()
    return {2, w, r, fails}
  end
  return {3, tonumber(ARGV[4]), 0, fails}
end
local w, r = slot()
return {1, w, r, fails}
`)

// Admit asks whether a send may go out now. Closed, it takes a governor slot. Open, it
// hands the probe to one caller at a time across all processes, once the probe
// spacing has passed; everybody else waits.
func (b *Breaker) Admit(ctx context.Context) (Admission, error) {
	keys, args, token, told := b.admitArgs()
	call := &scriptCall{script: breakerAdmit, keys: keys, args: args}
	if err := b.s.roundTrip(ctx, call); err != nil {
		b.gov.untold.Add(told)
		return Admission{}, fmt.Errorf("redis: send admission: %w", err)
	}
	v, err := call.cmd.Int64Slice()
	return b.admission(v, err, token)
}

// admitArgs also hands the governor the accepted sends not yet told (told: how many,
// for the caller to give back when the call fails).
func (b *Breaker) admitArgs() (keys []string, args []any, token string, told int64) {
	// The token only names a probe lease; a process-unique counter does, at no cost to
	// the common closed case.
	token = b.s.tokenPrefix + strconv.FormatUint(b.s.tokens.Add(1), 36)
	told = b.gov.untold.Swap(0) // always 0 without a ceiling (Governor.Accepted)
	return []string{b.gov.key, b.gov.rateKey, b.key, b.probe},
		[]any{b.gov.ceiling, token, b.opts.ProbeLease.Milliseconds(), b.opts.Poll.Microseconds(), told,
			governorHold.Microseconds()}, token, told
}

func (b *Breaker) admission(v []int64, err error, token string) (Admission, error) {
	if err != nil || len(v) != 4 {
		return Admission{}, fmt.Errorf("redis: send admission: %w", err)
	}
	a := Admission{Verdict: AdmitVerdict(v[0]), Wait: time.Duration(v[1]) * time.Microsecond,
		Rate: float64(v[2]) / 1000, Fails: int(v[3])}
	if a.Verdict == AdmitProbe {
		a.Token = token
	}
	return a, nil
}

// AdmitHolding is Admit and the ledger Hold h in one round trip, for a bulk recipient's
// send: the claim is made whatever the admission says (a claimed entry with no send
// behind it only means the recipient may be sent again, which it is anyway), so the
// common case, a closed circuit and a free recipient, costs one Redis round trip
// before the Graph API call instead of two. h.Record, when set, is written first in
// the same round trip (see RecordRequest).
func (b *Breaker) AdmitHolding(ctx context.Context, h HoldRequest) (Admission, ClaimResult, error) {
	if h.Entry.State != LedgerClaimed && h.Entry.State != LedgerRetry {
		return Admission{}, 0, fmt.Errorf("redis: hold recipient %d of task %s: state %q is not claimed or retry",
			h.Index, h.TaskID, h.Entry.State)
	}
	hkeys, hargs, err := b.s.ledgerScriptArgs(h.TaskID, h.Index, h.Entry.Attempt, encodeEntry(h.Entry))
	if err != nil {
		return Admission{}, 0, err
	}
	akeys, aargs, token, told := b.admitArgs()
	admit := &scriptCall{script: breakerAdmit, keys: akeys, args: aargs}
	claim := &scriptCall{script: ledgerClaimScript, keys: hkeys, args: hargs}
	calls := []*scriptCall{admit, claim}
	var rec *scriptCall
	if r := h.Record; r != nil {
		if rec, r.Err = b.s.recordCall(h.TaskID, r.Index, r.Entry); r.Err != nil {
			r.Done = true
		} else {
			calls = []*scriptCall{rec, admit, claim}
		}
	}
	err = b.s.roundTrip(ctx, calls...)
	if rec != nil && err == nil {
		h.Record.Done = true
		h.Record.Wrote, h.Record.Err = recorded(rec, h.TaskID, h.Record.Index)
	}
	if err != nil {
		b.gov.untold.Add(told)
		return Admission{}, 0, fmt.Errorf("redis: send admission: %w", err)
	}
	v, aerr := admit.cmd.Int64Slice()
	a, aerr := b.admission(v, aerr, token)
	if aerr != nil {
		return Admission{}, 0, aerr
	}
	n, cerr := claim.cmd.Int()
	if cerr != nil {
		return a, 0, fmt.Errorf("redis: claim recipient %d of task %s: %w", h.Index, h.TaskID, cerr)
	}
	return a, claimResult(n), nil
}

// FailureKind is what a Graph API outcome means for the breaker.
type FailureKind string

// Failure kinds.
const (
	// OutcomeOK: Meta answered about the message (accepted it, or refused it for the
	// recipient's or the rate's sake): Meta works.
	OutcomeOK FailureKind = "ok"
	// OutcomeUnavailable: Meta failed (5xx, codes 1, 2, 131000, ..., time-out, network).
	OutcomeUnavailable FailureKind = "graph_api_unavailable"
	// OutcomeAuth: Meta refused the token, the account or its payment.
	OutcomeAuth FailureKind = "graph_api_auth"
	// OutcomeAbandoned: the caller gave up before an answer (its context ended).
	OutcomeAbandoned FailureKind = "abandoned"
)

// Report is what the breaker made of one outcome.
type Report struct {
	// Charged: the failure counts against the recipient's attempts. Failures while the
	// breaker is open, and the one that opens it, are Meta's and are not charged.
	Charged bool
	Opened  bool // this outcome opened the breaker
	Closed  bool // this outcome (a successful probe) closed it
}

// breakerReport: KEYS = {breaker, probe}, ARGV = {kind, token, threshold, spacing µs,
// max spacing µs, code, error text}. It returns {charged, 1 opened | 2 closed | 0}. A
// token that no longer holds the lease is a probe that outlived it (stale): its
// success still closes the breaker; its failure moves nothing, and is not charged.
var breakerReport = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local kind = ARGV[1]
local h = redis.call('HMGET', KEYS[1], 'st', 'fails', 'spacing')
local open = h[1] == 'open'
local fails = tonumber(h[2] or '0') or 0
local probe = ARGV[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[2]
local stale = ARGV[2] ~= '' and not probe
if kind == 'abandoned' then
  if probe then redis.call('DEL', KEYS[2]) end
  return {0, 0}
end
if kind == 'ok' then
  if open then
    if probe or stale then
      redis.call('DEL', KEYS[1], KEYS[2])
      return {0, 2}
    end
    return {0, 0}
  end
  if fails > 0 then redis.call('HSET', KEYS[1], 'fails', 0) end
  return {0, 0}
end
if stale then return {0, 0} end
if open then
  if probe then
    local sp = (tonumber(h[3] or '0') or 0) * 2
    if sp > tonumber(ARGV[5]) then sp = tonumber(ARGV[5]) end
    if sp < tonumber(ARGV[4]) then sp = tonumber(ARGV[4]) end
    redis.call('HSET', KEYS[1], 'spacing', string.format('%.0f', sp), 'probe_at', string.format('%.0f', now + sp),
      'reason', kind, 'code', ARGV[6], 'err', ARGV[7])
    redis.call('DEL', KEYS[2])
  end
  return {0, 0}
end
fails = fails + 1
if kind == 'graph_api_auth' or fails >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'st', 'open', 'fails', fails, 'since', string.format('%.0f', now), 'reason', kind,
    'code', ARGV[6], 'err', ARGV[7], 'spacing', ARGV[4], 'probe_at', string.format('%.0f', now + tonumber(ARGV[4])))
  return {0, 1}
end
redis.call('HSET', KEYS[1], 'fails', fails)
return {1, 0}
`)

// Report tells the breaker the outcome of an admitted send. token is the Admission's
// (empty unless it was the probe); code and text describe a failure.
func (b *Breaker) Report(ctx context.Context, kind FailureKind, token string, code int, text string) (Report, error) {
	if len(text) > 300 {
		text = text[:300]
	}
	v, err := breakerReport.Run(ctx, b.s.rdb, []string{b.key, b.probe}, string(kind), token, max(b.opts.Threshold, 1),
		b.opts.ProbeSpacing.Microseconds(), b.opts.MaxProbeSpacing.Microseconds(), code, text).Int64Slice()
	if err != nil || len(v) != 2 {
		return Report{}, fmt.Errorf("redis: breaker report: %w", err)
	}
	return Report{Charged: v[0] == 1, Opened: v[1] == 1, Closed: v[1] == 2}, nil
}

// BreakerState is what the breaker of a phone number says now.
type BreakerState struct {
	Open      bool
	Reason    FailureKind // why it opened (the latest probe's failure): OutcomeUnavailable or OutcomeAuth
	Code      int         // Meta's code of that failure, 0 when none
	Error     string      // its text
	Since     time.Time   // when it opened
	NextProbe time.Time   // when the next probe may go
	Fails     int         // Meta failures in a row
}

// State reads the breaker.
func (b *Breaker) State(ctx context.Context) (BreakerState, error) {
	var st BreakerState
	v, err := b.s.rdb.HMGet(ctx, b.key, "st", "fails", "reason", "code", "err", "since", "probe_at").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return st, fmt.Errorf("redis: breaker state: %w", err)
	}
	str := func(i int) string { s, _ := v[i].(string); return s }
	num := func(i int) int64 { n, _ := strconv.ParseInt(str(i), 10, 64); return n }
	st.Open = str(0) == "open"
	st.Fails = int(num(1))
	if st.Open {
		st.Reason = FailureKind(str(2))
		st.Code = int(num(3))
		st.Error = str(4)
		st.Since = time.UnixMicro(num(5))
		st.NextProbe = time.UnixMicro(num(6))
	}
	return st, nil
}
