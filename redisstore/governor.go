package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// governorMargin stretches the spacing of send slots a little beyond 1s/mps. Callers
// sleep until their slot and wake a little late by varying amounts, so with exact
// spacing a late wake-up and an on-time one mps slots later would both fall in the
// same 1-second window; the margin absorbs up to 50 ms of such jitter per window, at
// the cost of 5% of the rate.
const governorMargin = 1.05

// governorUnder is how far under the last refused rate the rate settles: the increase
// aims at it, and a cut never leaves the rate above it.
const governorUnder = 0.95

// The adaptive rate. WHATSAPP_MAX_MPS is the ceiling; Meta's real limit for a number
// may be lower (a new number, a quality downgrade), and only a 130429 tells. The rate
// is then cut multiplicatively, at most once per window so that the answers to sends
// already in flight count as one signal, and every clean second (no 130429) raises it
// again: quickly back to just under the rate that was last refused, slowly above it,
// so it settles just below the real limit instead of oscillating far under it.
const (
	// GovernorCut multiplies the rate on a 130429.
	GovernorCut = 0.7
	// GovernorCutWindow is the least time between two cuts; also the length of a
	// "clean second" for the increase.
	GovernorCutWindow = time.Second
	// governorFloor is the lowest rate a cut can reach, in messages per second.
	governorFloor = 1.0
)

// The increase, in governorLua: each clean second halves the distance to 95% of the
// last refused rate (at least 1% of the ceiling a second), and there the rate holds for
// governorHold after the last cut: Meta's limit of a number changes rarely (a tier
// upgrade, a quality rating), and every probe above it costs refused calls, so a task
// that found the limit sends just under it without refusals. After the hold it adds 1%
// of the ceiling a second (0.8 mps at the default 80) for three seconds and then k% in
// the (k+3)-th, so that it probes gently just above the limit last seen but still finds
// a much higher one (the number's tier was raised, or the refusal was another sender's
// burst) within seconds.

// governorHold is how long the rate stays just under the last refused rate after a
// cut before it probes above it. A variable for tests.
var governorHold = 2 * time.Minute

// Governor limits the sends of one business phone number to a rate shared by every
// task, worker and replica, because Meta counts them together. Its state is two Redis
// keys (the next free slot and the learned rate); Governor values are cheap and any
// number of them may share a phone number.
type Governor struct {
	s       *Store
	key     string // next free slot (GCRA theoretical arrival time)
	rateKey string // hash: rate, wmax (last refused rate), stamp (µs of the last change), cut (µs of the last cut), ok (accepted since the cut)
	ceiling float64
	// untold counts the sends Meta accepted that this process has not yet added to the
	// number's count: the next admission carries them, at no extra round trip.
	untold atomic.Int64
}

// Governor returns the limiter of one phone number with a ceiling of mps sends per
// second (WHATSAPP_MAX_MPS); mps <= 0 means no limit.
func (s *Store) Governor(phoneNumberID string, mps int) *Governor {
	return &Governor{s: s, key: s.key("governor", phoneNumberID), rateKey: s.key("governor", phoneNumberID, "rate"),
		ceiling: float64(max(mps, 0))}
}

// governorLua defines reserve(tatKey, rateKey, now, ceiling): the adaptive rate (with
// the additive increase of the clean seconds since its last change applied) and GCRA as
// a reservation on it. tatKey holds the theoretical arrival time (µs of Redis TIME) of
// the next free slot: reserve takes the next slot (never in the past), moves tat one
// interval on and returns how long the caller must wait for it, in µs, and the rate in
// thousandths of a message per second. Redis's own clock makes every process agree on
// time; the slot key expires once its slots are all in the past, the rate key is kept
// so that a restart does not forget what Meta allows. Every script built on it takes
// the hold (governorHold, µs) as its last ARGV; MARGIN and UNDER are governorMargin and
// governorUnder.
var governorLua = `
local MARGIN, UNDER = ` + strconv.FormatFloat(governorMargin, 'g', -1, 64) + `, ` +
	strconv.FormatFloat(governorUnder, 'g', -1, 64) + `
local HOLD_US = tonumber(ARGV[#ARGV]) or 0
local function rate_state(rateKey, now, ceiling)
  local h = redis.call('HMGET', rateKey, 'rate', 'wmax', 'stamp', 'cut', 'win', 'n')
  local rate = tonumber(h[1] or '') or ceiling
  local wmax = tonumber(h[2] or '') or ceiling
  local stamp = tonumber(h[3] or '') or now
  local cut = tonumber(h[4] or '') or 0
  if rate > ceiling then rate = ceiling end
  if wmax > ceiling then wmax = ceiling end
  local n = math.floor((now - stamp) / 1000000)
  if n >= 1 then
    local step = ceiling * 0.01
    if step < 0.1 then step = 0.1 end
    local above = tonumber(redis.call('HGET', rateKey, 'above') or '0') or 0
    for i = 1, math.min(n, 1000) do
      if rate >= ceiling then break end
      local target = wmax * UNDER
      if rate < target then
        local d = (target - rate) / 2
        if d < step then d = step end
        rate = rate + d
        if rate > target then rate = target end
      elseif cut > 0 and stamp + i * 1000000 - cut < HOLD_US then
        -- Just under the refused rate, within the hold: stay.
      else
        above = above + 1
        local k = above - 3
        if k < 1 then k = 1 end
        rate = rate + step * k
      end
    end
    if rate > ceiling then rate = ceiling end
    stamp = stamp + n * 1000000
    redis.call('HSET', rateKey, 'rate', string.format('%.4f', rate), 'wmax', string.format('%.4f', wmax),
      'stamp', string.format('%.0f', stamp), 'cut', string.format('%.0f', cut), 'above', above)
  elseif not h[3] then
    redis.call('HSET', rateKey, 'rate', string.format('%.4f', rate), 'wmax', string.format('%.4f', wmax),
      'stamp', string.format('%.0f', stamp), 'cut', '0')
  end
  return rate, wmax, stamp, cut, tonumber(h[5] or '0') or 0, tonumber(h[6] or '0') or 0
end
local function reserve(tatKey, rateKey, now, ceiling)
  local rate, wmax, stamp, cut, win, n = rate_state(rateKey, now, ceiling)
  -- Count the slots handed out per second: a cut starts from what was really sent,
  -- which may be far below a high ceiling.
  if now - win >= 1000000 then
    local prev = 0
    if now - win < 2000000 then prev = n end
    redis.call('HSET', rateKey, 'win', string.format('%.0f', now), 'n', 1, 'prev', prev)
  else
    redis.call('HINCRBY', rateKey, 'n', 1)
  end
  local interval = math.floor(1000000 * MARGIN / rate)
  local tat = tonumber(redis.call('GET', tatKey) or '0')
  if tat < now then tat = now end
  local next = tat + interval
  redis.call('SET', tatKey, string.format('%.0f', next), 'PX', math.floor((next - now) / 1000) + 1000)
  return tat - now, math.floor(rate * 1000)
end
-- accepted(rateKey, k): k more sends accepted by Meta since the last cut, as every
-- process tells them with its next admission.
local function accepted(rateKey, k)
  if k and k > 0 then redis.call('HINCRBY', rateKey, 'ok', k) end
end
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
`

// governorReserve: KEYS = {slot, rate}, ARGV = {ceiling, hold µs}; returns {wait µs,
// rate m-mps}.
var governorReserve = redis.NewScript(governorLua + `
local w, r = reserve(KEYS[1], KEYS[2], redis_now(), tonumber(ARGV[1]))
return {w, r}
`)

// governorPush moves the next free slot to at least ARGV[1] µs from now.
var governorPush = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = now + tonumber(ARGV[1])
if tat < want then tat = want end
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
return tat - now
`)

// governorCut lowers the rate after a 130429: KEYS = {slot, rate}, ARGV = {ceiling,
// factor, window µs, floor, accepted, sustained, hold µs}. At most once per window it remembers the
// refused rate (the rate, or what was really sent in the last second when that is less:
// under a ceiling far above Meta's limit, cutting the ceiling would take many windows to
// matter; but never less than what Meta accepted in the second before the refusal, as
// the reporting process counted it, which Meta's limit is at least) and multiplies it by
// factor, but not below 98% of that accepted count: the cut that finds the limit is
// deep, the ones that keep the rate at it are shallow; and never above 95% of the
// refused rate. Any 130429 restarts the clean second. It returns {1 when it cut, rate
// m-mps}.
var governorCut = redis.NewScript(governorLua + `
local now = redis_now()
local ceiling = tonumber(ARGV[1])
local rate, wmax, stamp, cut = rate_state(KEYS[2], now, ceiling)
local did = 0
local w = redis.call('HMGET', KEYS[2], 'win', 'n', 'prev')
local win, n, prev = tonumber(w[1] or '0') or 0, tonumber(w[2] or '0') or 0, tonumber(w[3] or '0') or 0
if now - cut >= tonumber(ARGV[3]) then
  -- What was sent in the last whole second (or this one, in the first second).
  local sent = 0
  if now - win >= 1000000 then
    if now - win < 2000000 then sent = n end
  elseif prev > 0 then
    sent = prev
  else
    sent = n
  end
  -- The refused rate, in the rate's own units (the margin stretches the spacing, so a
  -- rate r sends r / margin a second): the rate, or less when fewer were really sent,
  -- but not less than what Meta accepted in the second before the refusal (ARGV[5]), which its
  -- limit is at least.
  local seen = rate
  local acc = tonumber(ARGV[5]) * MARGIN
  if prev == 0 and now - win < 1000000 and acc >= 1 then
    -- The first second of sending: what was sent so far spans part of a second, but
    -- Meta already refuses, so what it accepted is its limit.
    seen = math.min(rate, acc)
  else
    if sent >= 1 and sent * MARGIN < seen then seen = sent * MARGIN end
    if acc > seen then seen = math.min(acc, rate) end
  end
  -- Meta refused although for 5 s it took about what it takes in a second
  -- (ARGV[6], sends accepted a second over the last 5 s, or over all of the sending
  -- when that began 2-5 s ago, is at least 99% of ARGV[5], both as the reporting
  -- process counted them): the rate was above Meta's sustained
  -- limit, not a timing accident at a rate it takes. Under a token bucket that is what a
  -- too high refused rate looks like (the bucket's burst passed more at the start), so
  -- the refused rate becomes the rate just refused, without the 2% step of a jitter
  -- refusal. (The rate, not the counts: a process counts only its own sends.)
  local sus = tonumber(ARGV[6]) or 0
  local sustained = sus > 0 and tonumber(ARGV[5]) > 0 and sus >= 0.99 * tonumber(ARGV[5])
  if cut > 0 and now - cut < HOLD_US and seen < wmax and seen >= 0.9 * wmax then
    -- A refusal near the rate refused last, within its hold (timing jitter put one send
    -- too many in Meta's window, or the limit is a little lower): the refused rate
    -- comes down a little, not to the rate that was just refused, so that jitter does
    -- not ratchet the rate down for the whole hold. A limit that really fell gives
    -- refusals far below it, which take it at once.
    wmax = math.max(seen, 0.98 * wmax)
  else
    wmax = seen
  end
  if sustained and wmax > seen then wmax = seen end
  if sustained and cut > 0 and now - cut >= 2000000 and now - cut <= 10000000 then
    -- Between two refusals after sustained sending Meta took what its limit lets
    -- through in that time: a token bucket empty at the first refusal is empty again at
    -- the second, so the sends it accepted in between (every process's) over that time
    -- are its rate, where the rate at the refusal is the highest the increase reached.
    -- A jitter refusal at a rate held for a while has the rate sent in between about
    -- the refused one; it is clearly less when the refused rate was learned too high.
    -- Only for cuts up to 10 s apart: over longer, idle time between tasks would count
    -- as a lower rate.
    local ok = tonumber(redis.call('HGET', KEYS[2], 'ok') or '0') or 0
    local between = ok / ((now - cut) / 1000000) * MARGIN
    if between >= tonumber(ARGV[4]) and between < 0.95 * seen and between < wmax then wmax = between end
  end
  rate = seen * tonumber(ARGV[2])
  -- Meta's limit is at least what it accepted in the second before the refusal (ARGV[5], as
  -- the reporting process counted it).
  local floor = tonumber(ARGV[5]) * 0.98 * MARGIN
  if floor > wmax * UNDER then floor = wmax * UNDER end
  if rate < floor then rate = floor end
  if rate > UNDER * wmax then rate = UNDER * wmax end
  if rate < tonumber(ARGV[4]) then rate = tonumber(ARGV[4]) end
  cut = now
  did = 1
  -- The slots handed out so far were spaced for the refused rate: the next slot is
  -- one new interval from now, and their holders take new ones (sendpolicy does).
  local tat = now + math.floor(1000000 * MARGIN / rate)
  if prev == 0 and now - win < 1000000 then
    -- Sending started less than a second ago and Meta already refuses: everything it
    -- accepted is in its current second, so nothing more can pass before that second
    -- is over. Wait for it instead of collecting refusals.
    tat = win + 1000000
  end
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
end
redis.call('HSET', KEYS[2], 'rate', string.format('%.4f', rate), 'wmax', string.format('%.4f', wmax),
  'stamp', string.format('%.0f', now), 'cut', string.format('%.0f', cut))
if did == 1 then redis.call('HSET', KEYS[2], 'above', 0, 'ok', 0) end
return {did, math.floor(rate * 1000)}
`)

// Wait blocks until the caller may send one message, or ctx ends. Across all
// processes, at most the current rate of callers pass in any 1-second window, spaced
// evenly. It costs one Redis round trip. A caller whose ctx ends while it waits
// forfeits its slot.
func (g *Governor) Wait(ctx context.Context) error {
	d, _, err := g.Reserve(ctx)
	if err != nil {
		return err
	}
	return sleep(ctx, d)
}

// Reserve takes the next send slot of the phone number and returns how long the
// caller must wait for it, and the current rate (0 without a limit).
func (g *Governor) Reserve(ctx context.Context) (time.Duration, float64, error) {
	if g.ceiling <= 0 {
		return 0, 0, ctx.Err()
	}
	v, err := governorReserve.Run(ctx, g.s.rdb, []string{g.key, g.rateKey}, g.ceiling, governorHold.Microseconds()).Int64Slice()
	if err != nil || len(v) != 2 {
		return 0, 0, fmt.Errorf("redis: send-rate governor: %w", err)
	}
	return time.Duration(v[0]) * time.Microsecond, float64(v[1]) / 1000, nil
}

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

// SlowDown pushes every slot of this phone number not yet handed out at least d into
// the future. Callers already waiting for a slot keep it.
func (g *Governor) SlowDown(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if err := governorPush.Run(ctx, g.s.rdb, []string{g.key}, d.Microseconds()).Err(); err != nil {
		return fmt.Errorf("redis: slow down send-rate governor: %w", err)
	}
	return nil
}

// Throttled tells the governor that Meta answered 130429 (too many messages for the
// number). The shared rate is cut to GovernorCut of itself (see governorCut for its
// floor), at most once per GovernorCutWindow however many processes report; cut says
// whether this call cut it, rate is the rate after the call. A cut restarts the slots
// at the new spacing from now: callers holding a slot reserved before it should take a
// new one.
//
// accepted is how many sends Meta accepted in the second before the 130429, as far as
// the caller knows (0: unknown): Meta's limit is at least that, so the refused rate is taken as no less and the cut does not go below 98%
// of it.
//
// sustained is how many sends Meta accepted a second over the last 5 s (or since the
// caller began sending, 2-5 s ago), as far as the caller knows (0: unknown): when it is about accepted, the refusal came after
// sustained sending and the refused rate becomes the rate just refused (see
// governorCut).
func (g *Governor) Throttled(ctx context.Context, accepted int, sustained float64) (cut bool, rate float64, err error) {
	if g.ceiling <= 0 {
		return false, 0, nil
	}
	v, err := governorCut.Run(ctx, g.s.rdb, []string{g.key, g.rateKey}, g.ceiling, GovernorCut,
		GovernorCutWindow.Microseconds(), governorFloor, max(accepted, 0), max(sustained, 0), governorHold.Microseconds()).Int64Slice()
	if err != nil || len(v) != 2 {
		return false, 0, fmt.Errorf("redis: lower send rate: %w", err)
	}
	return v[0] == 1, float64(v[1]) / 1000, nil
}

// GovernorState is the learned send rate of a phone number.
type GovernorState struct {
	Ceiling float64   // WHATSAPP_MAX_MPS
	Rate    float64   // the rate the governor admits now; Ceiling until Meta refused
	LastCut time.Time // the last 130429 that lowered the rate; zero if none
}

// State reads the learned rate (without the increase of the clean seconds since its
// last change, which the next send applies).
func (g *Governor) State(ctx context.Context) (GovernorState, error) {
	st := GovernorState{Ceiling: g.ceiling, Rate: g.ceiling}
	v, err := g.s.rdb.HMGet(ctx, g.rateKey, "rate", "cut").Result()
	if err != nil {
		return st, fmt.Errorf("redis: send rate: %w", err)
	}
	if s, ok := v[0].(string); ok {
		if r, err := strconv.ParseFloat(s, 64); err == nil {
			st.Rate = min(r, g.ceiling)
		}
	}
	if s, ok := v[1].(string); ok {
		if us, err := strconv.ParseInt(s, 10, 64); err == nil && us > 0 {
			st.LastCut = time.UnixMicro(us)
		}
	}
	return st, nil
}

// Accepted notes one send Meta accepted; the process's next admission for the number
// adds it to the count a cut reads (see governorCut).
func (g *Governor) Accepted() {
	if g.ceiling > 0 {
		g.untold.Add(1)
	}
}

// Ceiling is the governor's WHATSAPP_MAX_MPS (0: no limit).
func (g *Governor) Ceiling() float64 { return g.ceiling }
