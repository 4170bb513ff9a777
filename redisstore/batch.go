package redisstore

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The send path's scripts (admission, claim, outcome) are made by up to
// BULK_MAX_WORKERS goroutines at once, one round trip each. Sent one by one over the
// connection pool, every call costs its own network wake-up in the worker and its own
// read and write in Redis; on a busy machine that wait, not Redis, is most of a round
// trip. So they go through a group commit: the calls of every goroutine that asks
// while a round trip is under way go together in the next pipeline, at most
// batchRunners pipelines in flight at a time. Each call still answers on its own, and
// Redis runs each script atomically as before; only the transport is shared.

// scriptCall is one script invocation in a shared round trip; cmd holds its answer
// once the round trip is over.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
}

const (
	// batchRunners bounds the pipelines in flight; more waiters share a pipeline.
	batchRunners = 8
	// batchMax bounds the calls in one pipeline.
	batchMax = 256
	// batchTimeout bounds one pipeline's round trip.
	batchTimeout = 10 * time.Second
)

type batchReq struct {
	calls []*scriptCall
	done  chan struct{}
}

// batcher is the group commit of one Store's send-path scripts.
type batcher struct {
	rdb *redis.Client

	mu      sync.Mutex
	queue   []*batchReq
	running int

	trips, calls atomic.Int64 // pipelines sent and the calls they carried
}

// SendPathTrips says how many round trips the send path's scripts took and how many
// calls they carried, since the Store was made.
func (s *Store) SendPathTrips() (trips, calls int64) {
	return s.batch.trips.Load(), s.batch.calls.Load()
}

// roundTrip makes calls, in order, in one round trip shared with the other callers
// waiting at the same moment, and fills each call's cmd; a call's own failure is in
// its cmd. When ctx ends before the calls were sent, they are taken back and never
// made, and roundTrip returns the context's error; once sent, they are waited for
// (one round trip), so the caller always knows whether they were made.
func (s *Store) roundTrip(ctx context.Context, calls ...*scriptCall) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	r := &batchReq{calls: calls, done: make(chan struct{})}
	b := &s.batch
	b.mu.Lock()
	b.queue = append(b.queue, r)
	if b.running < batchRunners {
		b.running++
		go b.run()
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	for i, q := range b.queue {
		if q == r {
			b.queue = append(b.queue[:i], b.queue[i+1:]...)
			b.mu.Unlock()
			return context.Cause(ctx)
		}
	}
	b.mu.Unlock()
	<-r.done
	return nil
}

// run sends the queued calls, a pipeline at a time, until the queue is empty.
func (b *batcher) run() {
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		n, calls := 0, 0
		for n < len(b.queue) && (n == 0 || calls+len(b.queue[n].calls) <= batchMax) {
			calls += len(b.queue[n].calls)
			n++
		}
		reqs := make([]*batchReq, n)
		copy(reqs, b.queue)
		b.queue = append(b.queue[:0], b.queue[n:]...)
		b.mu.Unlock()
		b.exec(reqs)
	}
}

func (b *batcher) exec(reqs []*batchReq) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	pipe := b.rdb.Pipeline()
	for _, r := range reqs {
		for _, c := range r.calls {
			c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
		}
	}
	b.trips.Add(1)
	b.calls.Add(int64(pipe.Len()))
	_, _ = pipe.Exec(ctx) // each call's error is in its cmd
	// A restarted or flushed Redis forgot the scripts: the calls it refused go again
	// with the scripts' text, which loads them.
	var again []*scriptCall
	for _, r := range reqs {
		for _, c := range r.calls {
			if err := c.cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				again = append(again, c)
			}
		}
	}
	if len(again) > 0 {
		pipe := b.rdb.Pipeline()
		for _, c := range again {
			c.cmd = c.script.Eval(ctx, pipe, c.keys, c.args...)
		}
		_, _ = pipe.Exec(ctx)
	}
	for _, r := range reqs {
		close(r.done)
	}
}
