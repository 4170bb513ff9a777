package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/wagate/wagate/shared"
)

// A task's keys, all under "task:<id>:":
//
//	msgs          list of the recipients' messages as JSON, index = position (claim check)
//	ledger:<n>    hash of recipients n*100 .. n*100+99, field = index%100 (see ledger.go)
//	progress      hash: sent, failed (live counters), top (highest ledger bucket written)
//	media         hash: header link -> uploaded media id
//	summary       the final TaskState as JSON
const (
	stageBatch      = 1000 // messages per RPUSH
	stagePipeline   = 8    // RPUSHes per round trip: ~8k messages, a few MB at most
	ledgerBucket    = 100  // recipients per ledger hash: below Redis's 128-entry listpack limit
	defaultTaskTTL  = 7 * 24 * time.Hour
	fieldSent       = "sent"
	fieldFailed     = "failed"
	fieldTopBucket  = "top"
	stagingTmpInfix = "staging"
)

func (s *Store) taskKey(taskID string, parts ...string) string {
	return s.key(append([]string{"task", taskID}, parts...)...)
}

func (s *Store) msgsKey(taskID string) string     { return s.taskKey(taskID, "msgs") }
func (s *Store) progressKey(taskID string) string { return s.taskKey(taskID, "progress") }
func (s *Store) mediaKey(taskID string) string    { return s.taskKey(taskID, "media") }
func (s *Store) summaryKey(taskID string) string  { return s.taskKey(taskID, "summary") }
func (s *Store) ledgerKey(taskID string, bucket int) string {
	return s.taskKey(taskID, "ledger", strconv.Itoa(bucket))
}

// StageMessages stores the messages of a task in order (index = position), in RPUSH
// batches of 1,000 pipelined a few at a time, with a TTL. It replaces anything staged
// before under that task id, atomically: the list is built under a temporary key and
// renamed over the old one, so a reader never sees a mix of old and new messages and a
// failure half way leaves the previous list untouched. Staging no messages deletes the
// list.
func (s *Store) StageMessages(ctx context.Context, taskID string, msgs []shared.Message, ttl time.Duration) error {
	dst := s.msgsKey(taskID)
	if len(msgs) == 0 {
		if err := s.rdb.Del(ctx, dst).Err(); err != nil {
			return fmt.Errorf("redis: stage messages of task %s: %w", taskID, err)
		}
		return nil
	}
	if ttl <= 0 {
		return fmt.Errorf("redis: stage messages of task %s: ttl %v is not positive", taskID, ttl)
	}
	encoded, err := encodeMessages(msgs)
	if err != nil {
		return fmt.Errorf("redis: stage messages of task %s: %w", taskID, err)
	}
	tmp := s.taskKey(taskID, "msgs", stagingTmpInfix, uuid.NewString())
	pipe := s.rdb.Pipeline()
	queued := 0
	for start := 0; start < len(msgs); start += stageBatch {
		end := min(start+stageBatch, len(msgs))
		pipe.RPush(ctx, tmp, encoded[start:end]...)
		if start == 0 {
			// Set at once so that a crash half way leaves nothing behind for long.
			pipe.PExpire(ctx, tmp, ttl)
		}
		last := end == len(msgs)
		if last {
			pipe.Rename(ctx, tmp, dst)
		}
		if queued++; queued == stagePipeline || last {
			if _, err := pipe.Exec(ctx); err != nil {
				s.rdb.Del(context.WithoutCancel(ctx), tmp)
				return fmt.Errorf("redis: stage messages of task %s: %w", taskID, err)
			}
			queued = 0
		}
	}
	return nil
}

// encodeShare is the fewest messages worth a goroutine of their own in encodeMessages.
const encodeShare = 2000

// encodeMessages is the JSON of each message, for RPUSH. Encoding is much of the time
// a large task takes to stage, the time its request waits before its task starts, so
// it is spread over the CPUs.
func encodeMessages(msgs []shared.Message) ([]any, error) {
	out := make([]any, len(msgs))
	parts := min(runtime.GOMAXPROCS(0), max(len(msgs)/encodeShare, 1))
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		from, to := p*len(msgs)/parts, (p+1)*len(msgs)/parts
		wg.Go(func() {
			for i := from; i < to; i++ {
				b, err := json.Marshal(msgs[i])
				if err != nil {
					errs[p] = fmt.Errorf("message %d: %w", i, err)
					return
				}
				out[i] = b
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// LoadMessages returns the staged messages [offset, offset+count) of a task, fewer when
// the range runs past the end. It returns an error wrapping shared.ErrNotFound when
// nothing is staged under taskID (never staged, or expired), so that a lost list is
// never mistaken for a task without recipients.
func (s *Store) LoadMessages(ctx context.Context, taskID string, offset, count int) ([]shared.Message, error) {
	if offset < 0 || count < 0 {
		return nil, fmt.Errorf("redis: load messages of task %s: bad range offset=%d count=%d", taskID, offset, count)
	}
	if count == 0 {
		return []shared.Message{}, nil
	}
	key := s.msgsKey(taskID)
	pipe := s.rdb.Pipeline()
	rng := pipe.LRange(ctx, key, int64(offset), int64(offset+count-1))
	exists := pipe.Exists(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redis: load messages of task %s: %w", taskID, err)
	}
	raw := rng.Val()
	if len(raw) == 0 && exists.Val() == 0 {
		return nil, fmt.Errorf("redis: messages of task %s: %w", taskID, shared.ErrNotFound)
	}
	msgs := make([]shared.Message, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal([]byte(r), &msgs[i]); err != nil {
			return nil, fmt.Errorf("redis: decode message %d of task %s: %w", offset+i, taskID, err)
		}
	}
	return msgs, nil
}

// TaskMedia returns the media id a header link of a task was uploaded as, "" when it
// has not been uploaded yet.
func (s *Store) TaskMedia(ctx context.Context, taskID, link string) (string, error) {
	id, err := s.rdb.HGet(ctx, s.mediaKey(taskID), link).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("redis: media of task %s: %w", taskID, err)
	}
	return id, nil
}

// SetTaskMedia remembers the media id a header link of a task was uploaded as, for
// ttl, so that an upload retried after a crash is not repeated.
func (s *Store) SetTaskMedia(ctx context.Context, taskID, link, mediaID string, ttl time.Duration) error {
	key := s.mediaKey(taskID)
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, key, link, mediaID)
	pipe.PExpire(ctx, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis: set media of task %s: %w", taskID, err)
	}
	return nil
}

// SaveSummary stores the final state of a task for ttl (0 = no expiry), so that task-status can answer
// after Temporal's retention has dropped the workflow. It replaces an earlier summary.
func (s *Store) SaveSummary(ctx context.Context, st shared.TaskState, ttl time.Duration) error {
	if st.TaskID == "" {
		return errors.New("redis: save summary: no task id")
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("redis: encode summary of task %s: %w", st.TaskID, err)
	}
	if err := s.rdb.Set(ctx, s.summaryKey(st.TaskID), b, ttl).Err(); err != nil {
		return fmt.Errorf("redis: save summary of task %s: %w", st.TaskID, err)
	}
	return nil
}

// Summary returns the stored final state of a task, or an error wrapping
// shared.ErrNotFound when there is none.
func (s *Store) Summary(ctx context.Context, taskID string) (shared.TaskState, error) {
	var st shared.TaskState
	b, err := s.rdb.Get(ctx, s.summaryKey(taskID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return st, fmt.Errorf("redis: summary of task %s: %w", taskID, shared.ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("redis: summary of task %s: %w", taskID, err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("redis: decode summary of task %s: %w", taskID, err)
	}
	return st, nil
}

// FinishTask sets ttl on a task's working keys (staged messages, ledger, counters and
// media ids), which are no longer needed once its summary is saved; the summary keeps
// its own TTL. A ttl of zero or less deletes them at once.
func (s *Store) FinishTask(ctx context.Context, taskID string, ttl time.Duration) error {
	top, err := s.rdb.HGet(ctx, s.progressKey(taskID), fieldTopBucket).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redis: finish task %s: %w", taskID, err)
	}
	if errors.Is(err, redis.Nil) {
		top = -1
	}
	keys := []string{s.msgsKey(taskID), s.mediaKey(taskID)}
	for b := 0; b <= top; b++ {
		keys = append(keys, s.ledgerKey(taskID, b))
	}
	// The counters go last: they name the ledger buckets, so a retry after a partial
	// failure still finds them.
	keys = append(keys, s.progressKey(taskID))
	pipe := s.rdb.Pipeline()
	for _, k := range keys {
		if ttl > 0 {
			pipe.PExpire(ctx, k, ttl)
		} else {
			pipe.Del(ctx, k)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis: finish task %s: %w", taskID, err)
	}
	return nil
}
