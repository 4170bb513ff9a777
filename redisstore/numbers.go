package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wagate/wagate/shared"
)

// The numbers cache: one hash per phone under "number:<phone>" and an index set
// "numbers" of every cached phone, so that listing never needs KEYS or a SCAN.

func (s *Store) numberKey(phone string) string { return s.key("number", phone) }
func (s *Store) numbersIndex() string          { return s.key("numbers") }

// numberBatch bounds the commands of one pipeline when listing or clearing.
const numberBatch = 1000

// PutNumber creates or replaces the cache entry of n.Phone with n.Name and n.Data
// (an absent Data is stored as {}). now, truncated to the second in UTC, becomes
// updated_at, and created_at when the entry is new; an update keeps the original
// created_at. It reports whether the entry was created.
func (s *Store) PutNumber(ctx context.Context, n shared.Number, now time.Time) (created bool, err error) {
	data := n.Data
	if len(data) == 0 || string(data) == "null" {
		data = json.RawMessage("{}")
	}
	ts := now.UTC().Truncate(time.Second).Format(time.RFC3339)
	key := s.numberKey(n.Phone)
	var isNew *redis.BoolCmd
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		isNew = p.HSetNX(ctx, key, "created_at", ts)
		p.HSet(ctx, key, "phone", n.Phone, "name", n.Name, "data", string(data), "updated_at", ts)
		p.SAdd(ctx, s.numbersIndex(), n.Phone)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("redis: put number %s: %w", n.Phone, err)
	}
	return isNew.Val(), nil
}

// GetNumber returns the cache entry of phone, or shared.ErrNotFound.
func (s *Store) GetNumber(ctx context.Context, phone string) (shared.Number, error) {
	m, err := s.rdb.HGetAll(ctx, s.numberKey(phone)).Result()
	if err != nil {
		return shared.Number{}, fmt.Errorf("redis: get number %s: %w", phone, err)
	}
	if len(m) == 0 {
		return shared.Number{}, shared.ErrNotFound
	}
	return numberFromHash(m)
}

// ListNumbers returns every cached number, ordered by phone.
func (s *Store) ListNumbers(ctx context.Context) ([]shared.Number, error) {
	phones, err := s.rdb.SMembers(ctx, s.numbersIndex()).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: list numbers: %w", err)
	}
	slices.Sort(phones)
	out := make([]shared.Number, 0, len(phones))
	for batch := range slices.Chunk(phones, numberBatch) {
		cmds := make([]*redis.MapStringStringCmd, len(batch))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, phone := range batch {
				cmds[i] = p.HGetAll(ctx, s.numberKey(phone))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("redis: list numbers: %w", err)
		}
		for _, c := range cmds {
			// An entry deleted between SMEMBERS and HGETALL is simply gone.
			if len(c.Val()) == 0 {
				continue
			}
			n, err := numberFromHash(c.Val())
			if err != nil {
				return nil, err
			}
			out = append(out, n)
		}
	}
	return out, nil
}

// DeleteNumber removes the cache entry of phone, or returns shared.ErrNotFound.
func (s *Store) DeleteNumber(ctx context.Context, phone string) error {
	var del *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		del = p.Del(ctx, s.numberKey(phone))
		p.SRem(ctx, s.numbersIndex(), phone)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: delete number %s: %w", phone, err)
	}
	if del.Val() == 0 {
		return shared.ErrNotFound
	}
	return nil
}

// ClearNumbers removes every cached number and returns how many there were.
func (s *Store) ClearNumbers(ctx context.Context) (int, error) {
	index := s.numbersIndex()
	// Renaming the index first detaches it atomically: numbers added meanwhile land in a
	// fresh index and survive the clear.
	detached := s.key("numbers", "clearing", fmt.Sprint(time.Now().UnixNano()))
	if err := s.rdb.Rename(ctx, index, detached).Err(); err != nil {
		if errors.Is(err, redis.Nil) || isNoSuchKey(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("redis: clear numbers: %w", err)
	}
	phones, err := s.rdb.SMembers(ctx, detached).Result()
	if err != nil {
		return 0, fmt.Errorf("redis: clear numbers: %w", err)
	}
	deleted := 0
	for batch := range slices.Chunk(phones, numberBatch) {
		keys := make([]string, len(batch))
		for i, phone := range batch {
			keys[i] = s.numberKey(phone)
		}
		n, err := s.rdb.Del(ctx, keys...).Result()
		if err != nil {
			return deleted, fmt.Errorf("redis: clear numbers: %w", err)
		}
		deleted += int(n)
	}
	if err := s.rdb.Del(ctx, detached).Err(); err != nil {
		return deleted, fmt.Errorf("redis: clear numbers: %w", err)
	}
	return deleted, nil
}

func isNoSuchKey(err error) bool {
	return err != nil && err.Error() == "ERR no such key"
}

func numberFromHash(m map[string]string) (shared.Number, error) {
	n := shared.Number{Phone: m["phone"], Name: m["name"], Data: json.RawMessage(m["data"])}
	if len(n.Data) == 0 {
		n.Data = json.RawMessage("{}")
	}
	var err error
	if n.CreatedAt, err = time.Parse(time.RFC3339, m["created_at"]); err != nil {
		return shared.Number{}, fmt.Errorf("redis: number %s: created_at: %w", n.Phone, err)
	}
	if n.UpdatedAt, err = time.Parse(time.RFC3339, m["updated_at"]); err != nil {
		return shared.Number{}, fmt.Errorf("redis: number %s: updated_at: %w", n.Phone, err)
	}
	return n, nil
}
