// Package redisstore keeps wagate's state that lives outside Temporal in Redis: the
// numbers cache, the recipients staged for each task (claim check), the per-recipient
// send ledger, live task counters, finished-task summaries, the per-number send-rate
// governor and the inbound webhook dedupe set. Every key starts with one prefix.
package redisstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// DefaultPrefix starts every key wagate writes.
const DefaultPrefix = "wagate:"

// Store is wagate's Redis adapter. It is safe for concurrent use.
type Store struct {
	rdb    *redis.Client
	prefix string
	// tokenPrefix and tokens make lease tokens unique across processes without a
	// random read per send: a random prefix per Store, then a counter.
	tokenPrefix string
	tokens      atomic.Uint64
	// trackTTL is how long delivery tracking is kept (SetDeliveryTTL).
	trackTTL time.Duration
	// batch is the group commit of the send path's scripts (batch.go).
	batch batcher
}

// New returns a Store on rdb whose keys start with prefix (DefaultPrefix when empty).
func New(rdb *redis.Client, prefix string) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Store{rdb: rdb, prefix: prefix, tokenPrefix: uuid.NewString() + ":", batch: batcher{rdb: rdb}}
}

// Open connects to the Redis server at a redis:// URL.
func Open(ctx context.Context, url, prefix string) (*Store, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis: parse REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opts)
	return New(rdb, prefix), nil
}

// Client returns the underlying Redis client.
func (s *Store) Client() *redis.Client { return s.rdb }

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// Close closes the connection pool.
func (s *Store) Close() error { return s.rdb.Close() }

func (s *Store) key(parts ...string) string {
	k := s.prefix
	for i, p := range parts {
		if i > 0 {
			k += ":"
		}
		k += p
	}
	return k
}
