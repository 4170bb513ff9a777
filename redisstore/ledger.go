package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// LedgerState is the state of one recipient in a task's send ledger.
type LedgerState byte

// Ledger states. Sent and Failed are final: once written they never change.
const (
	LedgerNone    LedgerState = 0   // never claimed
	LedgerClaimed LedgerState = 'c' // a send may have reached Meta; no outcome recorded
	LedgerSent    LedgerState = 's' // Meta accepted the message
	LedgerFailed  LedgerState = 'f' // the recipient failed for good
	// LedgerRetry: no send in flight; the recipient waits out a backoff until RetryAt
	// and is sent again then, by whichever activity attempt holds the task by then.
	LedgerRetry LedgerState = 'r'
)

// Final reports whether the state is an outcome that never changes.
func (st LedgerState) Final() bool { return st == LedgerSent || st == LedgerFailed }

// LedgerEntry is one recipient's line in a task's send ledger.
type LedgerEntry struct {
	State LedgerState
	// Attempt is the owner of a Claimed or Retry entry: the activity attempt that holds
	// it. A larger owner takes an entry over from a smaller one, never the reverse.
	Attempt int
	WAMID   string // the message id Meta returned, when Sent
	Code    int    // Meta's error code, when Failed and Meta answered
	Error   string // why it failed, when Failed

	// The recipient's retry state, when Claimed or Retry, so that the next activity (or
	// the next attempt after a crash) resumes it exactly.
	Charged, Paired, Throttled int
	RetryAt                    time.Time // when Retry: not before

	// Phone is the recipient's, for delivery tracking when a final outcome is recorded
	// (not stored in the ledger itself); when empty it is read from the staged message.
	Phone string
}

// The ledger stores one short string per recipient ("c<owner>" or
// "c<owner>|<charged>|<paired>|<throttled>", "r<owner>|<charged>|<paired>|<throttled>|<retry
// at, Unix ms>", "s|<wamid>", "f|<code>|<text>") in hashes of 100 recipients each. Hashes that small stay in Redis's
// compact listpack encoding, which costs about the bytes of the values: a 100k
// recipient task takes ~7 MB where one big hash would take ~12 MB.
//
// The scripts take KEYS = {ledger bucket, progress, staged messages} and ARGV =
// {field, bucket number, fallback TTL in ms, ...}. A bucket created by a script gets
// the remaining TTL of the staged messages (or the fallback when none are staged), so
// ledgers of tasks that never finish do not outlive their messages, and its number is
// noted in progress.top so that FinishTask can find every bucket.
const ledgerNewBucket = `
local function touch()
  if redis.call('PTTL', KEYS[1]) ~= -1 and redis.call('PTTL', KEYS[2]) ~= -1 then return end
  local ttl = redis.call('PTTL', KEYS[3])
  if ttl <= 0 then ttl = tonumber(ARGV[3]) end
  if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ttl) end
  local top = tonumber(redis.call('HGET', KEYS[2], 'top') or '-1')
  if tonumber(ARGV[2]) > top then redis.call('HSET', KEYS[2], 'top', ARGV[2]) end
  if redis.call('PTTL', KEYS[2]) == -1 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
local function final(v)
  if not v then return false end
  local c = string.sub(v, 1, 1)
  return c == 's' or c == 'f'
end
`

// ledgerClaimScript writes the claimed or retry entry ARGV[5] for owner ARGV[4]. It
// returns 1 when the owner now holds the entry, 0 when the outcome is already final,
// and 2 when a newer owner holds it.
var ledgerClaimScript = redis.NewScript(ledgerNewBucket + `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if final(v) then return 0 end
if v and (tonumber(string.match(v, '^[cr](%d+)') or '0') or 0) > tonumber(ARGV[4]) then return 2 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
if not v then touch() end
return 1
`)

// ledgerRecordScript writes a final outcome (ARGV[4]) once and counts it in the progress
// counter named ARGV[5], and records it for delivery tracking (delivery.go) in the same
// step, so that a status webhook that raced ahead of it is applied now. It returns 1 when
// it wrote, 0 when the entry was already final.
//
// A recipient's claim made its bucket's TTL (touch), so the common write, over a claim,
// touches only when the task's counter was just created.
var ledgerRecordScript = redis.NewScript(ledgerNewBucket + trackRecordLua + `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if final(v) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
if redis.call('HINCRBY', KEYS[2], ARGV[5], 1) == 1 or not v then touch() end
trackRecord()
return 1
`)

func (s *Store) ledgerScript(ctx context.Context, script *redis.Script, taskID string, index int, extra ...any) (int, error) {
	keys, args, err := s.ledgerScriptArgs(taskID, index, extra...)
	if err != nil {
		return 0, err
	}
	return script.Run(ctx, s.rdb, keys, args...).Int()
}

func (s *Store) ledgerScriptArgs(taskID string, index int, extra ...any) ([]string, []any, error) {
	if index < 0 {
		return nil, nil, fmt.Errorf("negative recipient index %d", index)
	}
	b := index / ledgerBucket
	keys := []string{s.ledgerKey(taskID, b), s.progressKey(taskID), s.msgsKey(taskID)}
	return keys, append([]any{index % ledgerBucket, b, defaultTaskTTL.Milliseconds()}, extra...), nil
}

// ClaimResult says whether an activity attempt may send to a recipient.
type ClaimResult int

// Claim results.
const (
	ClaimGo   ClaimResult = iota + 1 // the attempt holds the claim: send
	ClaimDone                        // the outcome is already final: skip
	ClaimLost                        // a newer attempt holds the claim: this attempt is stale
)

// Claim marks recipient index of a task as claimed by an activity attempt, before its
// message is handed to Meta. A final outcome is never touched (ClaimDone). A claim by
// an older attempt (one whose worker died with the send in flight) is taken over, so
// at most the sends in flight at a crash are repeated; a claim by a newer attempt is
// not (ClaimLost), so an attempt that Temporal already replaced stops instead of
// racing its successor. The check and the write are one atomic step.
func (s *Store) Claim(ctx context.Context, taskID string, index, attempt int) (ClaimResult, error) {
	return s.Hold(ctx, taskID, index, LedgerEntry{State: LedgerClaimed, Attempt: attempt})
}

// Hold writes a Claimed entry (before a send, as Claim) or a Retry entry (a recipient
// waiting out a backoff) carrying the recipient's retry state, for owner e.Attempt,
// with Claim's rules: a final outcome is never touched and an entry of a newer owner
// is not taken over.
func (s *Store) Hold(ctx context.Context, taskID string, index int, e LedgerEntry) (ClaimResult, error) {
	if e.State != LedgerClaimed && e.State != LedgerRetry {
		return 0, fmt.Errorf("redis: hold recipient %d of task %s: state %q is not claimed or retry", index, taskID, e.State)
	}
	n, err := s.ledgerScript(ctx, ledgerClaimScript, taskID, index, e.Attempt, encodeEntry(e))
	if err != nil {
		return 0, fmt.Errorf("redis: claim recipient %d of task %s: %w", index, taskID, err)
	}
	return claimResult(n), nil
}

// HoldRequest is a Hold to make in the same round trip as a send admission (see
// Breaker.AdmitHolding).
type HoldRequest struct {
	TaskID string
	Index  int
	Entry  LedgerEntry
	// Record, when set, is the final outcome of another recipient of the task, written
	// first in the same round trip with Record's rules: a dispatcher slot records its
	// last send and claims its next one at once.
	Record *RecordRequest
}

// RecordRequest is a Record made in a HoldRequest's round trip; Done and Err say
// whether it was made. Done false means it was not (the round trip never began, or was
// taken back when its context ended): record it on its own.
type RecordRequest struct {
	Index int
	Entry LedgerEntry
	Done  bool
	Wrote bool // Done: Record's answer (false: the entry was final already)
	Err   error
}

func claimResult(n int) ClaimResult {
	switch n {
	case 0:
		return ClaimDone
	case 2:
		return ClaimLost
	}
	return ClaimGo
}

// Record stores the final outcome of recipient index once. If the entry is already
// final it changes nothing and returns false; otherwise it writes e and increments the
// task's sent or failed counter in the same atomic step, and returns true. So however
// often a send is retried or recorded concurrently, it is counted once.
func (s *Store) Record(ctx context.Context, taskID string, index int, e LedgerEntry) (bool, error) {
	call, err := s.recordCall(taskID, index, e)
	if err != nil {
		return false, err
	}
	if err := s.roundTrip(ctx, call); err != nil {
		return false, fmt.Errorf("redis: record recipient %d of task %s: %w", index, taskID, err)
	}
	return recorded(call, taskID, index)
}

// recordCall is Record's script call.
func (s *Store) recordCall(taskID string, index int, e LedgerEntry) (*scriptCall, error) {
	var counter string
	switch e.State {
	case LedgerSent:
		counter = fieldSent
	case LedgerFailed:
		counter = fieldFailed
	default:
		return nil, fmt.Errorf("redis: record recipient %d of task %s: state %q is not final", index, taskID, e.State)
	}
	if index < 0 {
		return nil, fmt.Errorf("redis: record recipient %d of task %s: negative index", index, taskID)
	}
	b := index / ledgerBucket
	tkeys, targs := s.trackArgs(taskID, index, e)
	keys := append([]string{s.ledgerKey(taskID, b), s.progressKey(taskID), s.msgsKey(taskID)}, tkeys...)
	args := append([]any{index % ledgerBucket, b, defaultTaskTTL.Milliseconds(), encodeEntry(e), counter}, targs...)
	return &scriptCall{script: ledgerRecordScript, keys: keys, args: args}, nil
}

// recorded is Record's answer from its call's reply.
func recorded(call *scriptCall, taskID string, index int) (bool, error) {
	n, err := call.cmd.Int()
	if err != nil {
		return false, fmt.Errorf("redis: record recipient %d of task %s: %w", index, taskID, err)
	}
	return n == 1, nil
}

// Ledger returns the entries of recipients [offset, offset+count) of a task, in one
// round trip; recipients with no entry have State LedgerNone.
func (s *Store) Ledger(ctx context.Context, taskID string, offset, count int) ([]LedgerEntry, error) {
	if offset < 0 || count < 0 {
		return nil, fmt.Errorf("redis: ledger of task %s: bad range offset=%d count=%d", taskID, offset, count)
	}
	out := make([]LedgerEntry, count)
	if count == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	var cmds []*redis.SliceCmd
	for i := offset; i < offset+count; {
		b := i / ledgerBucket
		end := min((b+1)*ledgerBucket, offset+count)
		fields := make([]string, 0, end-i)
		for j := i; j < end; j++ {
			fields = append(fields, strconv.Itoa(j%ledgerBucket))
		}
		cmds = append(cmds, pipe.HMGet(ctx, s.ledgerKey(taskID, b), fields...))
		i = end
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redis: ledger of task %s: %w", taskID, err)
	}
	i := 0
	for _, c := range cmds {
		for _, v := range c.Val() {
			if str, ok := v.(string); ok {
				e, err := decodeEntry(str)
				if err != nil {
					return nil, fmt.Errorf("redis: ledger of task %s, recipient %d: %w", taskID, offset+i, err)
				}
				out[i] = e
			}
			i++
		}
	}
	return out, nil
}

// Progress returns the live counters of a task that Record maintains.
func (s *Store) Progress(ctx context.Context, taskID string) (sent, failed int, err error) {
	vals, err := s.rdb.HMGet(ctx, s.progressKey(taskID), fieldSent, fieldFailed).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("redis: progress of task %s: %w", taskID, err)
	}
	n := make([]int, 2)
	for i, v := range vals {
		if str, ok := v.(string); ok {
			if n[i], err = strconv.Atoi(str); err != nil {
				return 0, 0, fmt.Errorf("redis: progress of task %s: %w", taskID, err)
			}
		}
	}
	return n[0], n[1], nil
}

func encodeEntry(e LedgerEntry) string {
	switch e.State {
	case LedgerSent:
		return "s|" + e.WAMID
	case LedgerFailed:
		return "f|" + strconv.Itoa(e.Code) + "|" + e.Error
	case LedgerClaimed:
		if e.Charged == 0 && e.Paired == 0 && e.Throttled == 0 {
			return "c" + strconv.Itoa(e.Attempt)
		}
		return fmt.Sprintf("c%d|%d|%d|%d", e.Attempt, e.Charged, e.Paired, e.Throttled)
	case LedgerRetry:
		return fmt.Sprintf("r%d|%d|%d|%d|%d", e.Attempt, e.Charged, e.Paired, e.Throttled, e.RetryAt.UnixMilli())
	}
	return ""
}

// decodeHeld reads "<owner>[|charged|paired|throttled[|retry at ms]]".
func decodeHeld(st LedgerState, v string) (LedgerEntry, bool) {
	parts := strings.Split(v, "|")
	n := make([]int64, len(parts))
	for i, p := range parts {
		if p == "" && i == 0 && len(parts) == 1 {
			continue // "c": claimed by attempt 0
		}
		x, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return LedgerEntry{}, false
		}
		n[i] = x
	}
	e := LedgerEntry{State: st, Attempt: int(n[0])}
	switch {
	case st == LedgerClaimed && len(n) == 1:
	case st == LedgerClaimed && len(n) == 4:
		e.Charged, e.Paired, e.Throttled = int(n[1]), int(n[2]), int(n[3])
	case st == LedgerRetry && len(n) == 5:
		e.Charged, e.Paired, e.Throttled = int(n[1]), int(n[2]), int(n[3])
		e.RetryAt = time.UnixMilli(n[4])
	default:
		return LedgerEntry{}, false
	}
	return e, true
}

func decodeEntry(v string) (LedgerEntry, error) {
	switch {
	case strings.HasPrefix(v, "c"), strings.HasPrefix(v, "r"):
		if e, ok := decodeHeld(LedgerState(v[0]), v[1:]); ok {
			return e, nil
		}
	case strings.HasPrefix(v, "s|"):
		return LedgerEntry{State: LedgerSent, WAMID: v[2:]}, nil
	case strings.HasPrefix(v, "f|"):
		code, text, ok := strings.Cut(v[2:], "|")
		n, err := strconv.Atoi(code)
		if !ok || err != nil {
			break
		}
		return LedgerEntry{State: LedgerFailed, Code: n, Error: text}, nil
	}
	return LedgerEntry{}, errors.New("malformed ledger entry " + strconv.Quote(v))
}
