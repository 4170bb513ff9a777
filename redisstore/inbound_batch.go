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

// The relay's batch reads: one round trip for a run of events, one for their senders.
//
//	inbound:progress:<run id>  how far the relay run's current batch activity got

func (s *Store) relayProgressKey(runID string) string { return s.key("inbound", "progress", runID) }

// StoredInbound is one result of GetInboundEvents.
type StoredInbound struct {
	Event shared.InboundEvent
	// Found is false when the event is no longer stored (it expired).
	Found bool
	// Invalid is set when the stored value cannot be decoded: retrying cannot help.
	Invalid error
}

// GetInboundEvents returns the stored events ids, in order, with one MGET.
func (s *Store) GetInboundEvents(ctx context.Context, ids []string) ([]StoredInbound, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.inboundEventKey(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: get %d inbound events: %w", len(ids), err)
	}
	out := make([]StoredInbound, len(ids))
	for i, v := range vals {
		body, ok := v.(string)
		if !ok {
			continue
		}
		out[i].Found = true
		if err := json.Unmarshal([]byte(body), &out[i].Event); err != nil {
			out[i].Invalid = fmt.Errorf("redis: inbound %s: %w", ids[i], err)
		}
	}
	return out, nil
}

// GetNumbers returns the cache entries of phones that are cached, with one pipeline.
func (s *Store) GetNumbers(ctx context.Context, phones []string) (map[string]shared.Number, error) {
	out := make(map[string]shared.Number, len(phones))
	if len(phones) == 0 {
		return out, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(phones))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, phone := range phones {
			cmds[i] = p.HGetAll(ctx, s.numberKey(phone))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis: get %d numbers: %w", len(phones), err)
	}
	for i, cmd := range cmds {
		m := cmd.Val()
		if len(m) == 0 {
			continue
		}
		n, err := numberFromHash(m)
		if err != nil {
			return nil, err
		}
		out[phones[i]] = n
	}
	return out, nil
}

// PutRelayProgress records p as the progress of the relay run runID for ttl. One key
// per run: a run has one batch activity at a time, named by p.ActivityID.
func (s *Store) PutRelayProgress(ctx context.Context, runID string, p shared.RelayProgress, ttl time.Duration) error {
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("redis: relay progress: %w", err)
	}
	if err := s.rdb.Set(ctx, s.relayProgressKey(runID), body, ttl).Err(); err != nil {
		return fmt.Errorf("redis: relay progress: %w", err)
	}
	return nil
}

// GetRelayProgress returns the progress recorded for the relay run runID, or
// shared.ErrNotFound.
func (s *Store) GetRelayProgress(ctx context.Context, runID string) (shared.RelayProgress, error) {
	body, err := s.rdb.Get(ctx, s.relayProgressKey(runID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return shared.RelayProgress{}, shared.ErrNotFound
	}
	if err != nil {
		return shared.RelayProgress{}, fmt.Errorf("redis: relay progress: %w", err)
	}
	var p shared.RelayProgress
	if err := json.Unmarshal(body, &p); err != nil {
		return shared.RelayProgress{}, fmt.Errorf("redis: relay progress: %w", err)
	}
	return p, nil
}
