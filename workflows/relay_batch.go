package workflows

import (
	"errors"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/wagate/wagate/shared"
)

// The batched relay: one RelayInboundBatch activity delivers the head run of the queue
// instead of one RelayInbound activity per event. Runs recorded before it keep the
// one-event path (relay.go) to their end.
const (
	// relayBatchChange is the workflow.GetVersion change id of the batched relay.
	relayBatchChange = "relay-batch"
	// relayBatchVersion is the version that relays batches.
	relayBatchVersion workflow.Version = 1
	// relayHistorySizeHardLimit is, for the batched relay, the history size at which a
	// batch still being retried is carried into the next run, as relayHistoryHardLimit
	// is for the event count: a signal carries up to 1,000 refs, so a long outage under
	// heavy load could otherwise approach Temporal's 50 MB history limit first.
	relayHistorySizeHardLimit = 16 << 20
	// relayRetryInterval is how long the relay waits before it retries the first event
	// a batch could not deliver, the same 5 s as the server-side retry policy.
	relayRetryInterval = 5 * time.Second
)

// relayBatchOptions: an attempt that delivered nothing is retried by the server every
// 5 s for as long as it takes (no history). An attempt that delivered part of its batch
// completes with how far it got, so the workflow always knows exactly which events were
// confirmed. The activity keeps itself well inside StartToClose (it stops at a time
// budget), heartbeats its progress, and stops early when cancelled by a clear;
// WaitForCancellation makes the workflow wait for that, so that it knows what the
// cancelled attempt delivered.
var relayBatchOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 15 * time.Second,
	HeartbeatTimeout:    10 * time.Second,
	WaitForCancellation: true,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    relayRetryInterval,
		BackoffCoefficient: 1,
		MaximumInterval:    relayRetryInterval,
		MaximumAttempts:    0,
	},
}

// runBatched is the main loop of the batched relay.
func (r *relay) runBatched(ctx workflow.Context) error {
	for {
		if err := workflow.Await(ctx, func() bool { return r.pending() > 0 || r.shouldContinue(ctx) }); err != nil {
			return err
		}
		if r.shouldContinue(ctx) {
			return r.continueAsNew(ctx)
		}
		if len(r.st.Queue) == 0 {
			if err := r.refill(ctx); err != nil {
				return err
			}
			continue
		}
		preempted, failed, err := r.relayBatch(ctx)
		if err != nil {
			return err
		}
		if preempted {
			return r.continueAsNew(ctx)
		}
		if failed {
			if err := r.pause(ctx); err != nil {
				return err
			}
		}
	}
}

// relayBatch hands the head run of Queue (at most shared.MaxRelayBatch refs) to one
// RelayInboundBatch activity, then pops exactly the refs it finished and puts the rest
// back in front. failed reports that the activity stopped at a failure before the end
// of its batch: the rest is retried after relayRetryInterval. preempted reports that
// the history grew past relayHistoryHardLimit (or relayHistorySizeHardLimit) while the
// batch was still being retried:
// its attempt was cancelled and the rest stays first, for the next run.
func (r *relay) relayBatch(ctx workflow.Context) (preempted, failed bool, err error) {
	n := min(len(r.st.Queue), shared.MaxRelayBatch)
	batch := slices.Clone(r.st.Queue[:n])
	r.st.Queue = r.st.Queue[n:]
	if len(r.st.Queue) == 0 {
		r.st.Queue = nil
	}
	gen := r.gen
	hctx, cancel := workflow.WithCancel(ctx)
	r.flight, r.head, r.cancelHead = batch, batch[0].ID, cancel

	fut := workflow.ExecuteActivity(workflow.WithActivityOptions(hctx, relayBatchOptions),
		shared.RelayInboundBatchActivity, shared.RelayBatchInput{Refs: batch})
	overLimit := func() bool {
		return r.overHardLimit(ctx) || workflow.GetInfo(ctx).GetCurrentHistorySize() >= relayHistorySizeHardLimit
	}
	if err := workflow.Await(ctx, func() bool { return fut.IsReady() || overLimit() }); err != nil {
		return false, false, err
	}
	if !fut.IsReady() {
		preempted = true
		cancel()
	}
	var res shared.RelayBatchResult
	err = fut.Get(ctx, &res)
	cancel()
	r.flight, r.head, r.cancelHead = nil, "", nil
	r.flightSeq++
	if ctx.Err() != nil {
		return false, false, ctx.Err()
	}
	if err != nil {
		// Cancelled before an attempt ran (a clear or the hard limit during the retry
		// backoff), or a failure the activity does not produce: nothing of the batch was
		// delivered by this activity, since an attempt that delivered some completes.
		if !temporal.IsCanceledError(err) {
			workflow.GetLogger(ctx).Warn("inbound batch failed", "head", batch[0].ID, "error", err)
			failed = true
		}
		res = shared.RelayBatchResult{}
	}
	res.Done = max(0, min(res.Done, n))
	r.st.Relayed += int64(res.Relayed)
	r.st.Dropped += int64(res.Dropped)
	rest := batch[res.Done:]
	if r.gen != gen {
		// Cleared during the batch: the rest is dropped, and the clear counts it.
		r.undelivered += len(rest)
		return preempted, false, nil
	}
	if len(rest) > 0 {
		r.st.Queue = append(slices.Clone(rest), r.st.Queue...)
	}
	if res.Failure != "" && len(rest) > 0 {
		failed = true
	}
	return preempted, failed, nil
}

// pause waits relayRetryInterval before the batch that failed part-way is retried from
// its first unconfirmed event; a clear ends the wait.
func (r *relay) pause(ctx workflow.Context) error {
	pctx, cancel := workflow.WithCancel(ctx)
	r.cancelHead = cancel
	err := workflow.Sleep(pctx, relayRetryInterval)
	r.cancelHead = nil
	cancel()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil && !errors.Is(err, workflow.ErrCanceled) && !temporal.IsCanceledError(err) {
		return err
	}
	return nil
}

// clearBatched drops every queued event and the batch in flight. It cancels the
// batch's attempt and waits until it has stopped, so that it counts exactly the events
// that were not relayed: those the attempt confirmed before it stopped are not dropped.
func (r *relay) clearBatched(ctx workflow.Context) (int, error) {
	n := len(r.st.Queue) + len(r.st.Tail)
	for _, s := range r.st.Spilled {
		n += s.Count
	}
	r.st.Queue, r.st.Spilled, r.st.Tail = nil, nil, nil
	r.gen++
	if r.cancelHead != nil {
		r.cancelHead()
	}
	if r.flight != nil {
		seq := r.flightSeq
		if err := workflow.Await(ctx, func() bool { return r.flightSeq != seq }); err != nil {
			return 0, err
		}
	}
	// Several clears may wait on one batch: the first to resume counts its rest.
	n += r.undelivered
	r.undelivered = 0
	return n, nil
}
