package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wagate/wagate/shared"
)

// The inbound log: the webhook acknowledges an event once Redis holds it, and a
// forwarder moves the ids, in arrival order, from the log into the relay workflow.
//
//	inbound:log               ids of accepted events not yet forwarded, oldest first
//	inbound:log:wake          a token pushed with new ids, so that an idle forwarder wakes
//	inbound:forwarder         the forwarder lease: the token of the one active forwarder
//	inbound:forwarder:step    set by the forwarder from reading a batch until it is trimmed
//	inbound:forwarder:paused  set by a clear: no forwarder starts a step meanwhile

func (s *Store) inboundLogKey() string     { return s.key("inbound", "log") }
func (s *Store) inboundWakeKey() string    { return s.key("inbound", "log", "wake") }
func (s *Store) forwarderKey() string      { return s.key("inbound", "forwarder") }
func (s *Store) forwarderStepKey() string  { return s.key("inbound", "forwarder", "step") }
func (s *Store) forwarderPauseKey() string { return s.key("inbound", "forwarder", "paused") }

// inboundAcceptScript claims, stores and logs the events of one webhook in one step:
// KEYS are the log, the wake list, then (seen, event) pairs; ARGV the two TTLs, then one
// (id, body) pair per event. A claimed event's id is appended to the log in the same
// step, so an event is either a repeat or stored and queued, never half of it.
var inboundAcceptScript = redis.NewScript(`
local out = {}
local logged = 0
for i = 1, (#KEYS - 2) / 2 do
  if redis.call('SET', KEYS[2*i+1], '1', 'NX', 'PX', ARGV[1]) then
    redis.call('SET', KEYS[2*i+2], ARGV[2*i+2], 'PX', ARGV[2])
    redis.call('RPUSH', KEYS[1], ARGV[2*i+1])
    logged = logged + 1
    out[i] = 1
  else
    out[i] = 0
  end
end
if logged > 0 and redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('RPUSH', KEYS[2], '1')
end
return out
`)

// AcceptInbounds claims every event of one webhook (SET NX for dedupeTTL), stores the
// claimed ones for eventTTL and appends their ids, in order, to the inbound log, all in
// one Redis script. It reports, per event, whether it was claimed (false: a repeated
// delivery, nothing stored or logged). Once it returns, the events are as durable as
// Redis is (AOF), whatever Temporal's state.
func (s *Store) AcceptInbounds(ctx context.Context, evs []shared.InboundEvent, dedupeTTL, eventTTL time.Duration) ([]bool, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, 2+2*len(evs))
	args := make([]any, 0, 2+2*len(evs))
	keys = append(keys, s.inboundLogKey(), s.inboundWakeKey())
	args = append(args, dedupeTTL.Milliseconds(), eventTTL.Milliseconds())
	for _, ev := range evs {
		body, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("redis: accept inbound %s: %w", ev.ID, err)
		}
		keys = append(keys, s.inboundSeenKey(ev.ID), s.inboundEventKey(ev.ID))
		args = append(args, ev.ID, body)
	}
	res, err := inboundAcceptScript.Run(ctx, s.rdb, keys, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("redis: accept %d inbound events: %w", len(evs), err)
	}
	if len(res) != len(evs) {
		return nil, fmt.Errorf("redis: accept %d inbound events: %d answers", len(evs), len(res))
	}
	out := make([]bool, len(evs))
	for i, v := range res {
		out[i] = v == 1
	}
	return out, nil
}

// InboundLogLen counts the ids in the inbound log: accepted events not yet forwarded to
// the relay workflow.
func (s *Store) InboundLogLen(ctx context.Context) (int64, error) {
	n, err := s.rdb.LLen(ctx, s.inboundLogKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("redis: inbound log length: %w", err)
	}
	return n, nil
}

// AcquireForwarder takes the forwarder lease for token when nobody holds it, for ttl.
func (s *Store) AcquireForwarder(ctx context.Context, token string, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.forwarderKey(), token, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("redis: acquire forwarder lease: %w", err)
	}
	return ok, nil
}

var releaseForwarderScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
  return 1
end
return 0
`)

// ReleaseForwarder gives the lease up when token still holds it, so that another
// forwarder takes over at once rather than after the lease expires.
func (s *Store) ReleaseForwarder(ctx context.Context, token string) error {
	err := releaseForwarderScript.Run(ctx, s.rdb, []string{s.forwarderKey(), s.forwarderStepKey()}, token).Err()
	if err != nil {
		return fmt.Errorf("redis: release forwarder lease: %w", err)
	}
	return nil
}

// ErrLeaseLost is returned to a forwarder whose lease another one holds (or expired).
var ErrLeaseLost = errors.New("redis: forwarder lease lost")

// ErrForwardPaused is returned while a clear holds the forwarder back.
var ErrForwardPaused = errors.New("redis: forwarding paused by a clear")

// forwardBatchScript renews the lease of ARGV[1] for ARGV[2] ms and, unless a clear
// paused forwarding, returns the first ARGV[3] ids of the log and marks a step in
// flight (until the trim). {-1} is a lost lease, {-2} a pause.
var forwardBatchScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[3]) == 1 then return {-2} end
local ids = redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[3]) - 1)
if #ids > 0 then redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2]) end
return ids
`)

// NextForwardBatch renews token's lease for ttl and returns up to max ids from the head
// of the inbound log, oldest first, without removing them; a non-empty batch opens a
// step that EndForwardStep closes. It returns ErrLeaseLost when token no longer holds
// the lease and ErrForwardPaused while a clear runs. The lease is renewed in the same
// step as the read, so a forwarder always signals within ttl of holding the lease.
func (s *Store) NextForwardBatch(ctx context.Context, token string, ttl time.Duration, max int) ([]string, error) {
	v, err := forwardBatchScript.Run(ctx, s.rdb,
		[]string{s.forwarderKey(), s.inboundLogKey(), s.forwarderPauseKey(), s.forwarderStepKey()},
		token, ttl.Milliseconds(), max).Slice()
	if err != nil {
		return nil, fmt.Errorf("redis: next forward batch: %w", err)
	}
	if len(v) == 1 {
		if code, ok := v[0].(int64); ok {
			if code == -1 {
				return nil, ErrLeaseLost
			}
			return nil, ErrForwardPaused
		}
	}
	ids := make([]string, len(v))
	for i, x := range v {
		id, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("redis: next forward batch: unexpected %T", x)
		}
		ids[i] = id
	}
	return ids, nil
}

// endStepScript removes the first ARGV[2] ids of the log, only when ARGV[1] still holds
// the lease and the step: a forwarder that lost either must not trim what it may not
// have forwarded.
var endStepScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[2])
if n > 0 then redis.call('LTRIM', KEYS[2], n, -1) end
redis.call('DEL', KEYS[3])
return 1
`)

// EndForwardStep closes token's step, first removing the n forwarded ids from the head
// of the log (0 after a failed signal: nothing is removed). It returns ErrLeaseLost,
// removing nothing, when token lost the lease or its step expired; the ids then stay
// in the log and are forwarded again, and the relay workflow drops them as repeats.
func (s *Store) EndForwardStep(ctx context.Context, token string, n int) error {
	ok, err := endStepScript.Run(ctx, s.rdb,
		[]string{s.forwarderKey(), s.inboundLogKey(), s.forwarderStepKey()}, token, n).Int()
	if err != nil {
		return fmt.Errorf("redis: end forward step: %w", err)
	}
	if ok != 1 {
		return ErrLeaseLost
	}
	return nil
}

// WaitInbound blocks until ids were logged since the last wait, up to timeout (at least
// a second is best: Redis blocks in whole milliseconds, the client in its own timeout).
func (s *Store) WaitInbound(ctx context.Context, timeout time.Duration) error {
	err := s.rdb.BLPop(ctx, timeout, s.inboundWakeKey()).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redis: wait inbound: %w", err)
	}
	return nil
}

// PauseForwarding stops forwarders from starting a step for ttl, or until
// ResumeForwarding(token); a step already started finishes (ForwardIdle tells when).
func (s *Store) PauseForwarding(ctx context.Context, token string, ttl time.Duration) error {
	if err := s.rdb.Set(ctx, s.forwarderPauseKey(), token, ttl).Err(); err != nil {
		return fmt.Errorf("redis: pause forwarding: %w", err)
	}
	return nil
}

var resumeForwardingScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// ResumeForwarding lifts token's pause (a later clear's pause stays).
func (s *Store) ResumeForwarding(ctx context.Context, token string) error {
	if err := resumeForwardingScript.Run(ctx, s.rdb, []string{s.forwarderPauseKey()}, token).Err(); err != nil {
		return fmt.Errorf("redis: resume forwarding: %w", err)
	}
	return nil
}

// ForwardIdle reports whether no forward step is in flight.
func (s *Store) ForwardIdle(ctx context.Context) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.forwarderStepKey()).Result()
	if err != nil {
		return false, fmt.Errorf("redis: forward step: %w", err)
	}
	return n == 0, nil
}

var dropLogScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local n = redis.call('LLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return n
`)

// DropInboundLog deletes the inbound log and returns how many ids it held, or -1
// (deleting nothing) while a forward step is in flight: its ids may already be in the
// workflow, and would be counted twice.
func (s *Store) DropInboundLog(ctx context.Context) (int64, error) {
	n, err := dropLogScript.Run(ctx, s.rdb, []string{s.inboundLogKey(), s.forwarderStepKey()}).Int64()
	if err != nil {
		return 0, fmt.Errorf("redis: drop inbound log: %w", err)
	}
	return n, nil
}
