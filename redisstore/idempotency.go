package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Idempotency record states.
const (
	IdemAccepting = "accepting" // the first request with the key is being handled
	IdemDone      = "done"      // its answer is stored
)

// IdemRecord is what Redis keeps for one Idempotency-Key: the hash of the request it
// was first used with and, once answered, that answer.
type IdemRecord struct {
	BodyHash string `json:"h"`
	State    string `json:"s"`
	Status   int    `json:"c,omitempty"`
	Body     []byte `json:"b,omitempty"`
	TaskID   string `json:"t,omitempty"`
}

func (s *Store) idemKey(id string) string { return s.key("idem", id) }

// beginIdem sets the record when there is none and answers nil, else answers the
// record there is, in one step so that two racing requests cannot both begin.
var beginIdem = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then return cur end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
`)

// BeginIdempotent claims key id for a request whose hash is bodyHash, as accepting for
// ttl. It answers nil when this request claimed it, else the record another request
// left (accepting, or done with its answer).
func (s *Store) BeginIdempotent(ctx context.Context, id, bodyHash string, ttl time.Duration) (*IdemRecord, error) {
	b, _ := json.Marshal(IdemRecord{BodyHash: bodyHash, State: IdemAccepting})
	v, err := beginIdem.Run(ctx, s.rdb, []string{s.idemKey(id)}, b, ttl.Milliseconds()).Text()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis: idempotency key: %w", err)
	}
	var rec IdemRecord
	if err := json.Unmarshal([]byte(v), &rec); err != nil {
		return nil, fmt.Errorf("redis: decode idempotency record: %w", err)
	}
	return &rec, nil
}

// ExtendIdempotent keeps an accepting record for ttl more while its request runs.
func (s *Store) ExtendIdempotent(ctx context.Context, id string, ttl time.Duration) error {
	return s.rdb.PExpire(ctx, s.idemKey(id), ttl).Err()
}

// FinishIdempotent stores the answer of the request that claimed id, for ttl.
func (s *Store) FinishIdempotent(ctx context.Context, id string, rec IdemRecord, ttl time.Duration) error {
	rec.State = IdemDone
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, s.idemKey(id), b, ttl).Err(); err != nil {
		return fmt.Errorf("redis: store idempotent answer: %w", err)
	}
	return nil
}

// DropIdempotent forgets id, so that a retry with it is handled anew.
func (s *Store) DropIdempotent(ctx context.Context, id string) error {
	return s.rdb.Del(ctx, s.idemKey(id)).Err()
}
