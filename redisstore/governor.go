package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// governorMargin stretches the spacing of send slots a little beyond 1s/mps. Callers
// sleep until their slot and wake a little late by varying amounts, so with exact
// spacing a late wake-up and an on-time one mps slots later would both fall in the
// same 1-second window; the margin absorbs up to 50 ms of such jitter per window, at
// the cost of 5% of the rate.
const governorMargin = 1.05

// Governor limits the sends of one business phone number to a rate shared by every
// task, worker and replica, because Meta counts them together. Its state is one Redis
// key; Governor values are cheap and any number of them may share a phone number.
type Governor struct {
	s        *Store
	key      string
	interval time.Duration // between two slots; 0 = unlimited
}

// Governor returns the limiter of one phone number at mps sends per second
// (WHATSAPP_MAX_MPS); mps <= 0 means no limit.
func (s *Store) Governor(phoneNumberID string, mps int) *Governor {
	g := &Governor{s: s, key: s.key("governor", phoneNumberID)}
	if mps > 0 {
		g.interval = time.Duration(float64(time.Second) * governorMargin / float64(mps))
	}
	return g
}

// governorReserve is GCRA as a reservation: KEYS[1] holds the theoretical arrival
// time (tat, µs of Redis TIME) of the next free slot; ARGV[1] is the slot interval in
// µs. It takes the next slot (never in the past), moves tat one interval on and
// returns how long the caller must wait for its slot, in µs. Redis's own clock makes
// every process agree on time; the key expires once its slots are all in the past.
var governorReserve = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.floor((next - now) / 1000) + 1000)
return tat - now
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

// Wait blocks until the caller may send one message, or ctx ends. Across all
// processes, at most mps callers pass in any 1-second window, spaced evenly. It costs
// one Redis round trip. A caller whose ctx ends while it waits forfeits its slot.
func (g *Governor) Wait(ctx context.Context) error {
	if g.interval <= 0 {
		return ctx.Err()
	}
	us, err := governorReserve.Run(ctx, g.s.rdb, []string{g.key}, g.interval.Microseconds()).Int64()
	if err != nil {
		return fmt.Errorf("redis: send-rate governor: %w", err)
	}
	if us <= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(us) * time.Microsecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SlowDown pushes every slot of this phone number not yet handed out at least d into
// the future (after Meta answers 130429, too many messages). Callers already waiting
// for a slot keep it.
func (g *Governor) SlowDown(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if err := governorPush.Run(ctx, g.s.rdb, []string{g.key}, d.Microseconds()).Err(); err != nil {
		return fmt.Errorf("redis: slow down send-rate governor: %w", err)
	}
	return nil
}
