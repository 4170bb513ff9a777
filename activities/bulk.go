package activities

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

// Per-recipient retry policy inside a chunk.
const (
	// sendAttempts is how many times a recipient is tried on retryable errors.
	sendAttempts = 3
	// maxThrottled bounds the 130429 answers one recipient may get before it fails.
	maxThrottled = 10
	// throttlePause is how long the whole phone number slows down after a 130429.
	throttlePause = time.Second
	// mediaTTL keeps a task's media id as long as Meta keeps the upload (30 days).
	mediaTTL = 30 * 24 * time.Hour
	// maxErrorText bounds a recipient's stored error text.
	maxErrorText = 300
)

// retryBackoff is the pause before retry n (1-based) of a retryable error.
var retryBackoff = func(n int) time.Duration { return time.Duration(1<<(n-1)) * time.Second }

// pairBackoff is Meta's advice for 131056 (pair rate): 4^X seconds, X = 0, 1, 2.
var pairBackoff = []time.Duration{time.Second, 4 * time.Second, 16 * time.Second}

// UploadMedia downloads one header media from the link the client gave and uploads it
// to Meta once per task: a retry after a crash finds the media id in Redis.
func (a *Activities) UploadMedia(ctx context.Context, in shared.UploadMediaInput) (shared.MediaRef, error) {
	out := in.Media
	id, err := a.Store.TaskMedia(ctx, in.TaskID, in.Media.Link)
	if err != nil {
		return out, err
	}
	if id != "" {
		out.MediaID = id
		return out, nil
	}
	data, mime, err := a.Graph.FetchURL(ctx, in.Media.Link)
	if err != nil {
		err = fmt.Errorf("download header media: %w", err)
		if graphapi.Classify(err) == graphapi.ClassPermanent {
			return out, temporal.NewNonRetryableApplicationError(err.Error(), "MediaUnavailable", err)
		}
		return out, err
	}
	id, err = a.Graph.UploadMedia(ctx, data, mime, fileName(in.Media.Link))
	if err != nil {
		if graphapi.Classify(err) != graphapi.ClassRetryable {
			return out, temporal.NewNonRetryableApplicationError(err.Error(), "MediaRejected", err)
		}
		return out, fmt.Errorf("upload header media: %w", err)
	}
	if err := a.Store.SetTaskMedia(ctx, in.TaskID, in.Media.Link, id, mediaTTL); err != nil {
		return out, err
	}
	out.MediaID = id
	return out, nil
}

func fileName(link string) string {
	if u, err := url.Parse(link); err == nil {
		if b := path.Base(u.Path); b != "." && b != "/" {
			return b
		}
	}
	return "media"
}

// SendChunk sends recipients [Offset, Offset+Count) of a task with at most MaxWorkers
// sends in flight. Each recipient's outcome is written to the send ledger: an index
// is claimed before Meta is called and recorded after, so a retry of this activity
// (after a worker crash) skips every finished recipient and re-sends only those that
// were in flight. Recipients are tried up to three times on retryable errors;
// permanent Meta errors fail at once; 130429 slows the phone number down for every
// task; 131056 backs that recipient off 1, 4 and 16 s.
func (a *Activities) SendChunk(ctx context.Context, in shared.ChunkInput) (shared.ChunkResult, error) {
	msgs, err := a.Store.LoadMessages(ctx, in.TaskID, in.Offset, in.Count)
	if err != nil {
		return shared.ChunkResult{}, fmt.Errorf("load recipients: %w", err)
	}
	ledger, err := a.Store.Ledger(ctx, in.TaskID, in.Offset, len(msgs))
	if err != nil {
		return shared.ChunkResult{}, fmt.Errorf("read send ledger: %w", err)
	}
	media := make(map[string]string, len(in.Media))
	for _, m := range in.Media {
		if m.MediaID != "" {
			media[m.Link] = m.MediaID
		}
	}

	sendCtx, stop := context.WithCancel(ctx)
	defer stop()
	c := &chunk{
		a: a, in: in, attempt: int(activity.GetInfo(ctx).Attempt), abort: stop,
		gov: a.Store.Governor(a.Graph.PhoneNumberID(), a.Config.WhatsAppMaxMPS),
	}
	todo := make(chan int)
	var wg sync.WaitGroup
	for range max(in.MaxWorkers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range todo {
				c.send(sendCtx, i, prepare(msgs[i], media))
			}
		}()
	}

	heartbeat := time.NewTicker(time.Second)
	defer heartbeat.Stop()
	workerStop := activity.GetWorkerStopChannel(ctx)
	var stopped error
dispatch:
	for i := range msgs {
		if ledger[i].State.Final() {
			c.count()
			continue
		}
		for {
			select {
			case todo <- i:
				continue dispatch
			case <-heartbeat.C:
				activity.RecordHeartbeat(ctx, c.done())
			case <-workerStop:
				stopped = errors.New("worker stopping; the chunk resumes from the send ledger on the next attempt")
				break dispatch
			case <-sendCtx.Done():
				stopped = context.Cause(sendCtx)
				break dispatch
			}
		}
	}
	close(todo)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	for waiting := true; waiting; {
		select {
		case <-finished:
			waiting = false
		case <-heartbeat.C:
			activity.RecordHeartbeat(ctx, c.done())
		}
	}
	if c.err != nil {
		return shared.ChunkResult{}, c.err
	}
	if stopped != nil {
		return shared.ChunkResult{}, stopped
	}
	// The ledger is the record of the chunk, including outcomes written by earlier
	// attempts.
	final, err := a.Store.Ledger(ctx, in.TaskID, in.Offset, len(msgs))
	if err != nil {
		return shared.ChunkResult{}, fmt.Errorf("read send ledger: %w", err)
	}
	return result(in.Offset, msgs, final)
}

// prepare points a media header at its uploaded id.
func prepare(m shared.Message, media map[string]string) shared.Message {
	if m.Header.IsMedia() && m.Header.MediaID == "" {
		if id, ok := media[m.Header.Link]; ok {
			h := *m.Header
			h.MediaID = id
			m.Header = &h
		}
	}
	return m
}

// chunk is the state of one SendChunk attempt.
type chunk struct {
	a       *Activities
	in      shared.ChunkInput
	attempt int
	gov     *redisstore.Governor
	abort   context.CancelFunc

	mu       sync.Mutex
	finished int
	err      error // the first ledger failure: the attempt fails and is retried
}

// errSuperseded stops an attempt that Temporal has already replaced by a newer one.
var errSuperseded = errors.New("a newer attempt of this chunk holds its recipients; this attempt stops")

func (c *chunk) done() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.finished
}

func (c *chunk) count() {
	c.mu.Lock()
	c.finished++
	c.mu.Unlock()
}

func (c *chunk) send(ctx context.Context, i int, m shared.Message) {
	index := c.in.Offset + i
	claim, err := c.a.Store.Claim(ctx, c.in.TaskID, index, c.attempt)
	switch {
	case err != nil:
		c.fail(fmt.Errorf("claim recipient %d: %w", index, err))
		return
	case claim == redisstore.ClaimDone:
		c.count()
		return
	case claim == redisstore.ClaimLost:
		c.fail(errSuperseded)
		return
	}
	entry, ok := c.sendWithRetries(ctx, m, fmt.Sprintf("%s:%d", c.in.TaskID, index))
	if !ok {
		return // cancelled: the recipient stays claimed and is sent again on retry
	}
	// The ledger write must land even when the activity is being cancelled: the send
	// already happened.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := c.a.Store.Record(wctx, c.in.TaskID, index, entry); err != nil {
		c.fail(fmt.Errorf("record recipient %d: %w", index, err))
		return
	}
	c.count()
}

// fail keeps the first error and stops the attempt.
func (c *chunk) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.abort()
}

// sendWithRetries sends one message with the per-recipient retry policy. ok is false when
// ctx ended before an outcome was known.
func (c *chunk) sendWithRetries(ctx context.Context, m shared.Message, opaque string) (e redisstore.LedgerEntry, ok bool) {
	retries, throttled, paired := 0, 0, 0
	for {
		if err := c.gov.Wait(ctx); err != nil {
			return e, false
		}
		res, err := c.a.Graph.Send(ctx, m, opaque)
		if err == nil {
			return redisstore.LedgerEntry{State: redisstore.LedgerSent, WAMID: res.WAMID}, true
		}
		if ctx.Err() != nil {
			return e, false
		}
		var wait time.Duration
		switch graphapi.Classify(err) {
		case graphapi.ClassRateLimited:
			if throttled++; throttled > maxThrottled {
				return failed(err), true
			}
			_ = c.gov.SlowDown(ctx, throttlePause)
			continue
		case graphapi.ClassPairRateLimited:
			if paired >= len(pairBackoff) {
				return failed(err), true
			}
			wait = pairBackoff[paired]
			paired++
		case graphapi.ClassRetryable:
			if retries++; retries >= sendAttempts {
				return failed(err), true
			}
			wait = retryBackoff(retries)
		default:
			return failed(err), true
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return e, false
		case <-t.C:
		}
	}
}

func failed(err error) redisstore.LedgerEntry {
	msg := err.Error()
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText] + "…"
	}
	return redisstore.LedgerEntry{State: redisstore.LedgerFailed, Code: graphapi.Code(err), Error: msg}
}

// result counts a chunk's outcomes from its ledger entries.
func result(offset int, msgs []shared.Message, entries []redisstore.LedgerEntry) (shared.ChunkResult, error) {
	var r shared.ChunkResult
	for i, e := range entries {
		switch e.State {
		case redisstore.LedgerSent:
			r.Sent++
		case redisstore.LedgerFailed:
			r.Failed++
			if len(r.Errors) < shared.MaxTaskErrors {
				r.Errors = append(r.Errors, shared.RecipientError{Index: offset + i, Phone: msgs[i].To, Error: e.Error, Code: e.Code})
			}
		default:
			return r, fmt.Errorf("recipient %d has no outcome after its chunk finished", offset+i)
		}
	}
	return r, nil
}

// FinishTask stores the final state of a task, so task-status answers after Temporal's
// retention has dropped the workflow, and lets the task's working keys expire.
func (a *Activities) FinishTask(ctx context.Context, st shared.TaskState) error {
	if err := a.Store.SaveSummary(ctx, st, a.Config.SummaryTTL); err != nil {
		return err
	}
	return a.Store.FinishTask(ctx, st.TaskID, time.Hour)
}
