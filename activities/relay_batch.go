package activities

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
	"go.temporal.io/sdk/activity"

	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

// Batch relay tuning.
const (
	// relayBatchBudget is how long one RelayInboundBatch attempt writes before it reports
	// back: well inside its 15 s StartToClose (a late completion would be discarded),
	// and short enough that a clear or a graceful stop never waits long.
	relayBatchBudget = 3 * time.Second
	// relayChunk is how many events are read from Redis in one round trip (and their
	// senders in another) before they are written.
	relayChunk = 100
	// relayQuietHeartbeat is how long an attempt runs before it heartbeats.
	relayQuietHeartbeat = time.Second
	// relayProgressTTL keeps a batch's progress long enough for any retry of it.
	relayProgressTTL = shared.InboundDedupeTTL
)

// RelayInboundBatch writes the events in.Refs, in order, to WEBSOCKET_URL, one JSON
// text frame each (the frame RelayInbound writes), over the worker's one connection.
// Frames go out in windows of shared.RelayWindow, each frame followed by a ping; a frame
// is confirmed when the consumer answers the ping after it. As frames are confirmed the
// progress is recorded in Redis and heartbeated, so that an attempt retried after its
// worker died resumes after the last recorded one.
//
// It returns how far it got: an attempt that confirmed at least one frame completes,
// with the reason it stopped in Failure, so the workflow pops exactly the confirmed
// events and retries from the first unconfirmed one; an attempt that confirmed nothing
// fails and is retried by the server. Events whose body is gone (or is not a JSON
// object) are dropped and counted. It also stops, without failure, at its time and byte
// budgets, when cancelled and when the worker stops.
func (a *Activities) RelayInboundBatch(ctx context.Context, in shared.RelayBatchInput) (shared.RelayBatchResult, error) {
	var res shared.RelayBatchResult
	if a.Config.WebSocketURL == "" || a.relay == nil {
		return res, errNoWebSocketURL
	}
	info := activity.GetInfo(ctx)
	runID := info.WorkflowExecution.RunID
	// A previous attempt may have confirmed frames without completing (its worker
	// died): resume after them. Redis has the latest progress; the heartbeat what
	// reached the server.
	if info.Attempt > 1 {
		p, err := a.Store.GetRelayProgress(ctx, runID)
		switch {
		case err == nil && p.ActivityID == info.ActivityID:
			res = p.RelayBatchResult
		case err != nil && !errors.Is(err, shared.ErrNotFound):
			return res, err
		}
	}
	var hb shared.RelayBatchResult
	if activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &hb) == nil && hb.Done > res.Done {
		res = hb
	}
	res.Failure = ""
	res.Done = max(0, min(res.Done, len(in.Refs)))
	start := res.Done
	end := time.Now().Add(relayBatchBudget)
	if d := info.Deadline; !d.IsZero() && time.Until(d)/2 < relayBatchBudget {
		end = time.Now().Add(time.Until(d) / 2)
	}
	stopped := activity.GetWorkerStopChannel(ctx)
	// stop ends the attempt at err: a completion with what was confirmed, or a failure
	// to retry when nothing was.
	stop := func(err error) (shared.RelayBatchResult, error) {
		if res.Done > start {
			res.Failure = err.Error()
			return res, nil
		}
		return res, err
	}
	began := time.Now()
	record := func() error {
		// A heartbeat is a Temporal write: a batch done within relayQuietHeartbeat
		// needs none (its completion reports the progress), a longer one heartbeats
		// so that the server sees it alive and a clear's cancellation reaches it.
		if time.Since(began) > relayQuietHeartbeat {
			activity.RecordHeartbeat(ctx, res)
		}
		return a.Store.PutRelayProgress(ctx, runID, shared.RelayProgress{ActivityID: info.ActivityID, RelayBatchResult: res}, relayProgressTTL)
	}
	written := 0
	for res.Done < len(in.Refs) {
		if time.Now().After(end) || written >= shared.MaxRelayBatchBytes || ctx.Err() != nil {
			break
		}
		select {
		case <-stopped:
			return res, nil
		default:
		}
		chunk := in.Refs[res.Done:min(res.Done+relayChunk, len(in.Refs))]
		items, err := a.relayItems(ctx, chunk)
		if err != nil {
			return stop(err)
		}
		var frames [][]byte
		var at []int // at[k] is the item of frames[k]
		for i, it := range items {
			if it.frame != nil {
				frames = append(frames, it.frame)
				at = append(at, i)
				written += len(it.frame)
			}
		}
		base := res
		// done moves res to the first len(frames[:confirmed]) frames of the chunk and
		// every drop before the first unconfirmed frame.
		done := func(confirmed int) {
			n := len(items)
			if confirmed < len(frames) {
				n = at[confirmed]
			}
			res.Done = base.Done + n
			res.Relayed = base.Relayed + confirmed
			res.Dropped = base.Dropped + n - confirmed
		}
		if len(frames) == 0 {
			done(0)
			countRelay(items, nil, res.Dropped-base.Dropped)
			continue
		}
		confirmed, err := a.relay.sendFrames(ctx, frames, func(confirmed int) error {
			done(confirmed)
			return record()
		})
		done(confirmed)
		countRelay(items, at[:confirmed], res.Dropped-base.Dropped)
		if err != nil {
			if ctx.Err() != nil && res.Done > start {
				return res, nil // cancelled: report what was confirmed
			}
			return stop(err)
		}
	}
	if res.Done == start && ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, nil
}

// relayItem is one event of a batch: its frame, or nil when it is dropped.
type relayItem struct {
	frame    []byte
	accepted int64 // the event's AcceptedAt
}

// relayItems reads the events refs and their senders' cache entries (two round trips)
// and builds their frames.
func (a *Activities) relayItems(ctx context.Context, refs []shared.InboundRef) ([]relayItem, error) {
	ids := make([]string, len(refs))
	for i, r := range refs {
		ids[i] = r.ID
	}
	stored, err := a.Store.GetInboundEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	var phones []string
	seen := map[string]bool{}
	for _, s := range stored {
		if s.Found && s.Invalid == nil && s.Event.From != "" && !seen[s.Event.From] {
			seen[s.Event.From] = true
			phones = append(phones, s.Event.From)
		}
	}
	numbers, err := a.Store.GetNumbers(ctx, phones)
	if err != nil {
		return nil, err
	}
	items := make([]relayItem, len(refs))
	for i, s := range stored {
		if reason := dropReason(s); reason != "" {
			a.Logger.Warn("inbound event dropped", "id", ids[i], "reason", reason)
			continue
		}
		var cached *shared.Number
		if n, ok := numbers[s.Event.From]; ok {
			cached = &n
		}
		frame, err := relayFrame(s.Event.Event, cached)
		if err != nil {
			a.Logger.Warn("inbound event dropped", "id", ids[i], "reason", "not a JSON object")
			continue
		}
		items[i].frame = frame
		items[i].accepted = s.Event.AcceptedAt
	}
	return items, nil
}

func dropReason(s redisstore.StoredInbound) string {
	switch {
	case !s.Found:
		return "no longer stored"
	case s.Invalid != nil:
		return s.Invalid.Error()
	}
	return ""
}

// sendFrames writes frames in order over the one connection, in windows of
// shared.RelayWindow frames, each frame followed by a ping, and waits for the window's
// pongs before it writes the next. After each window it calls confirmed with how many
// frames the consumer has confirmed so far (an error from it stops the send). It
// returns that count and the error that stopped it; only frames written and not yet
// confirmed when the connection fails can have reached the consumer without being
// counted.
func (s *relaySocket) sendFrames(ctx context.Context, frames [][]byte, confirmed func(int) error) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.connect(ctx)
	if err != nil {
		return 0, err
	}
	done := 0
	for done < len(frames) {
		window := frames[done:min(done+shared.RelayWindow, len(frames))]
		n, err := s.deliverWindow(ctx, c, window)
		done += n
		if n > 0 {
			if cerr := confirmed(done); cerr != nil {
				return done, cerr
			}
		}
		if err != nil {
			s.drop()
			return done, err
		}
	}
	return done, nil
}

// deliverWindow writes each frame followed by a ping and returns how many frames were
// confirmed: the pong of a frame's ping means the consumer read that frame and every
// one before it.
func (s *relaySocket) deliverWindow(ctx context.Context, c *relayConn, window [][]byte) (int, error) {
	tokens := make(map[string]int, len(window))
	var last string
	var werr error
	for i, frame := range window {
		_ = c.ws.SetWriteDeadline(time.Now().Add(relayWriteTimeout))
		if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
			werr = fmt.Errorf("websocket %s: write: %w", s.url, err)
			break
		}
		s.seq++
		token := strconv.FormatUint(s.seq, 10)
		if err := c.ws.WriteControl(websocket.PingMessage, []byte(token), time.Now().Add(relayWriteTimeout)); err != nil {
			werr = fmt.Errorf("websocket %s: ping: %w", s.url, err)
			break
		}
		tokens[token] = i + 1
		last = token
	}
	confirmed := 0
	take := func(got string) bool {
		if n, ok := tokens[got]; ok && n > confirmed {
			confirmed = n
		}
		return got == last
	}
	// takeQueued counts the pongs that arrived before the connection failed.
	takeQueued := func() {
		for {
			select {
			case got := <-c.pongs:
				take(got)
			default:
				return
			}
		}
	}
	if werr != nil {
		takeQueued()
		return confirmed, werr
	}
	timer := time.NewTimer(relayAckTimeout)
	defer timer.Stop()
	for {
		select {
		case got := <-c.pongs:
			if take(got) {
				return confirmed, nil
			}
			// A pong to an earlier ping of the window, or to a timed-out one: keep waiting.
		case <-c.closed:
			takeQueued()
			return confirmed, fmt.Errorf("websocket %s: connection closed before the consumer read %d of %d frames", s.url, len(window)-confirmed, len(window))
		case <-timer.C:
			return confirmed, fmt.Errorf("websocket %s: the consumer did not confirm %d frames within %v", s.url, len(window)-confirmed, relayAckTimeout)
		case <-ctx.Done():
			takeQueued()
			return confirmed, ctx.Err()
		}
	}
}
