package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wagate/wagate/shared"
)

// Inbound keys:
//
//	inbound:seen:<id>    webhook dedupe claim of a message id (wamid)
//	inbound:event:<id>   the stored event (claim check) the relay workflow refers to
//	inbound:spill:<key>  a run of queued refs moved out of the relay workflow's state
//	status:<wamid>       the latest delivery status of an outbound message

func (s *Store) inboundSeenKey(id string) string  { return s.key("inbound", "seen", id) }
func (s *Store) inboundEventKey(id string) string { return s.key("inbound", "event", id) }
func (s *Store) spillKey(key string) string       { return s.key("inbound", "spill", key) }
func (s *Store) statusKey(wamid string) string    { return s.key("status", wamid) }

// inboundClaimScript stores the event only when its id was not seen before, in one step, so
// that a concurrent duplicate delivery can never enqueue it twice.
var inboundClaimScript = redis.NewScript(`
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`)

// ClaimInbound records ev.ID as seen for dedupeTTL and stores ev for eventTTL. It
// reports false, storing nothing, when the id was already claimed: the event is a
// duplicate delivery.
func (s *Store) ClaimInbound(ctx context.Context, ev shared.InboundEvent, dedupeTTL, eventTTL time.Duration) (bool, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return false, fmt.Errorf("redis: claim inbound %s: %w", ev.ID, err)
	}
	n, err := inboundClaimScript.Run(ctx, s.rdb,
		[]string{s.inboundSeenKey(ev.ID), s.inboundEventKey(ev.ID)},
		dedupeTTL.Milliseconds(), body, eventTTL.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("redis: claim inbound %s: %w", ev.ID, err)
	}
	return n == 1, nil
}

// ReleaseInbound forgets that id was seen, so that a redelivery of an event that could
// not be queued is accepted again. The stored body is left for that redelivery to
// overwrite.
func (s *Store) ReleaseInbound(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, s.inboundSeenKey(id)).Err(); err != nil {
		return fmt.Errorf("redis: release inbound %s: %w", id, err)
	}
	return nil
}

// GetInboundEvent returns the stored event id, or shared.ErrNotFound once it expired.
func (s *Store) GetInboundEvent(ctx context.Context, id string) (shared.InboundEvent, error) {
	body, err := s.rdb.Get(ctx, s.inboundEventKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return shared.InboundEvent{}, shared.ErrNotFound
	}
	if err != nil {
		return shared.InboundEvent{}, fmt.Errorf("redis: get inbound %s: %w", id, err)
	}
	var ev shared.InboundEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return shared.InboundEvent{}, fmt.Errorf("redis: inbound %s: %w", id, err)
	}
	return ev, nil
}

// PutRelaySpill stores a run of queued refs under key for ttl, replacing any earlier
// value, so that a retried spill is harmless.
func (s *Store) PutRelaySpill(ctx context.Context, key string, refs []shared.InboundRef, ttl time.Duration) error {
	body, err := json.Marshal(refs)
	if err != nil {
		return fmt.Errorf("redis: spill %s: %w", key, err)
	}
	if err := s.rdb.Set(ctx, s.spillKey(key), body, ttl).Err(); err != nil {
		return fmt.Errorf("redis: spill %s: %w", key, err)
	}
	return nil
}

// GetRelaySpill returns the refs stored under key, or shared.ErrNotFound. It does not
// delete them: a retried load must see the same refs.
func (s *Store) GetRelaySpill(ctx context.Context, key string) ([]shared.InboundRef, error) {
	body, err := s.rdb.Get(ctx, s.spillKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, shared.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis: load spill %s: %w", key, err)
	}
	var refs []shared.InboundRef
	if err := json.Unmarshal(body, &refs); err != nil {
		return nil, fmt.Errorf("redis: spill %s: %w", key, err)
	}
	return refs, nil
}

// DeleteRelaySpill deletes the refs stored under key; deleting a missing key is no error.
func (s *Store) DeleteRelaySpill(ctx context.Context, key string) error {
	if err := s.rdb.Del(ctx, s.spillKey(key)).Err(); err != nil {
		return fmt.Errorf("redis: drop spill %s: %w", key, err)
	}
	return nil
}

// StatusTTL is how long the delivery status of an outbound message is kept: Meta keeps
// trying to deliver for 30 days.
const StatusTTL = 30 * 24 * time.Hour

// GetStatus returns the delivery status of the outbound message wamid, or
// shared.ErrNotFound when no status arrived for it.
func (s *Store) GetStatus(ctx context.Context, wamid string) (shared.DeliveryStatus, error) {
	m, err := s.rdb.HGetAll(ctx, s.statusKey(wamid)).Result()
	if err != nil {
		return shared.DeliveryStatus{}, fmt.Errorf("redis: get status %s: %w", wamid, err)
	}
	if len(m) == 0 {
		return shared.DeliveryStatus{}, shared.ErrNotFound
	}
	st := shared.DeliveryStatus{
		ID:                    wamid,
		Status:                m["status"],
		Timestamp:             m["timestamp"],
		RecipientID:           m["recipient_id"],
		BizOpaqueCallbackData: m["biz_opaque_callback_data"],
		Seen:                  map[string]string{},
	}
	if e := m["errors"]; e != "" {
		st.Errors = json.RawMessage(e)
	}
	for k, v := range m {
		if status, ok := strings.CutPrefix(k, "seen:"); ok {
			st.Seen[status] = v
		}
	}
	return st, nil
}
