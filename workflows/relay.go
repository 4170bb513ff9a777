package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/wagate/wagate/shared"
)

// Relay tuning.
const (
	// relayMaxSignalsPerRun continues the relay as new after this many signals even when
	// the server has not suggested it yet, far below the 10,000 signals a run accepts.
	relayMaxSignalsPerRun = 2000
	// relayHistoryHardLimit is the history length at which a head that is still being
	// retried is cancelled and carried, first in the queue, into the next run: a consumer
	// outage under a steady inbound flow must never reach Temporal's 51,200-event limit.
	relayHistoryHardLimit = 10_000
	// relaySpillChunk bounds the refs of one spilled segment (about 70 KB).
	relaySpillChunk = 1000
)

// Activity options of the relay workflow.
var (
	// relayOptions: the head is retried every 5 s for as long as it takes, by the server,
	// so that an outage of any length costs no history. WaitForCancellation with a
	// heartbeat makes sure an attempt cancelled by a clear has stopped before the next
	// event is written.
	relayOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Second,
		HeartbeatTimeout:    10 * time.Second,
		WaitForCancellation: true,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			BackoffCoefficient:     1,
			MaximumInterval:        5 * time.Second,
			MaximumAttempts:        0,
			NonRetryableErrorTypes: []string{shared.ErrTypeInboundMissing},
		},
	}
	// spillOptions: moving refs to and from Redis waits out a Redis outage the same way.
	spillOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			BackoffCoefficient:     1,
			MaximumInterval:        5 * time.Second,
			NonRetryableErrorTypes: []string{shared.ErrTypeInboundMissing},
		},
	}
	// dropSpillOptions: deleting a loaded segment is housekeeping (it also expires).
	dropSpillOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	}
)

// InboundRelay is the one long-running workflow (ID shared.RelayWorkflowID) that relays
// inbound WhatsApp events to WEBSOCKET_URL strictly in arrival order. Each
// shared.InboundBatchSignal carries the refs of a group of webhooks (shared.InboundSignal,
// one ref, is what API servers before batching send); repeated ids are dropped. One batch
// at a time, the head run of the queue, is relayed by the RelayInboundBatch activity
// (relay_batch.go), which reports exactly how far it got; the first unconfirmed event is
// retried every 5 s until it succeeds, and nothing behind it moves meanwhile. Runs
// started before batching (workflow.GetVersion) relay one event per RelayInbound
// activity. shared.PendingQuery answers a
// shared.QueueInfo; the shared.ClearUpdate update drops every queued event, cancels the
// head and returns how many were dropped. The run continues as new between events when
// the server suggests it (or after relayMaxSignalsPerRun signals), carrying the queue
// and the dedupe set; refs beyond shared.MaxRelayCarriedRefs are spilled to Redis so
// that the carried state stays small however long the queue grows. It never returns
// unless cancelled.
func InboundRelay(ctx workflow.Context, state shared.RelayState) error {
	r := newRelay(state)
	if err := workflow.SetQueryHandler(ctx, shared.PendingQuery, r.info); err != nil {
		return err
	}
	// Runs started before batching keep relaying one event per activity to their end;
	// the next run (after continue-as-new) takes the batched path.
	r.batched = workflow.GetVersion(ctx, relayBatchChange, workflow.DefaultVersion, relayBatchVersion) >= relayBatchVersion
	if err := workflow.SetUpdateHandler(ctx, shared.ClearUpdate, func(ctx workflow.Context) (int, error) {
		if r.batched {
			return r.clearBatched(ctx)
		}
		return r.clear(), nil
	}); err != nil {
		return err
	}
	r.ch = workflow.GetSignalChannel(ctx, shared.InboundSignal)
	r.bch = workflow.GetSignalChannel(ctx, shared.InboundBatchSignal)
	// The pump waits for buffered signals and takes them with ReceiveAsync, never with a
	// blocking Receive: a blocked Receive is handed the value when the signal is applied,
	// before the pump runs, so a run that continued as new in that same workflow task
	// would carry a state without it. Signals left in the channel are drained instead.
	workflow.Go(ctx, func(ctx workflow.Context) {
		for workflow.Await(ctx, func() bool { return r.ch.Len() > 0 || r.bch.Len() > 0 }) == nil {
			r.drain()
		}
	})
	if r.batched {
		return r.runBatched(ctx)
	}
	return r.run(ctx)
}

// relay is the state of one run. Only one coroutine runs at a time, so its fields need
// no locking.
type relay struct {
	st         shared.RelayState
	seen       map[string]bool // the ids of st.Recent
	signals    int             // signals received in this run
	gen        int             // incremented by every clear
	head       string          // id of the event in flight
	cancelHead workflow.CancelFunc

	ch, bch workflow.ReceiveChannel // InboundSignal and InboundBatchSignal

	// The batched path (relay_batch.go).
	batched     bool
	flight      []shared.InboundRef // the batch in flight, taken out of Queue
	flightSeq   int                 // incremented when a batch ends
	undelivered int                 // refs of cleared batches not relayed, for clear to count
}

func newRelay(st shared.RelayState) *relay {
	r := &relay{st: st, seen: make(map[string]bool, len(st.Recent))}
	for _, id := range st.Recent {
		r.seen[id] = true
	}
	return r
}

func (r *relay) pending() int {
	n := len(r.flight) + len(r.st.Queue) + len(r.st.Tail)
	for _, s := range r.st.Spilled {
		n += s.Count
	}
	return n
}

func (r *relay) info() (shared.QueueInfo, error) {
	return shared.QueueInfo{Pending: r.pending(), HeadID: r.head, Relayed: r.st.Relayed, Dropped: r.st.Dropped}, nil
}

// enqueue appends ref to the logical queue unless its id was seen recently.
func (r *relay) enqueue(ref shared.InboundRef) {
	r.signals++
	r.add(ref)
}

// add appends ref to the logical queue unless its id was seen recently.
func (r *relay) add(ref shared.InboundRef) {
	if ref.ID == "" || r.seen[ref.ID] {
		return
	}
	r.seen[ref.ID] = true
	r.st.Recent = append(r.st.Recent, ref.ID)
	if len(r.st.Recent) > shared.MaxRelayRecentIDs {
		delete(r.seen, r.st.Recent[0])
		r.st.Recent = r.st.Recent[1:]
	}
	if len(r.st.Spilled) > 0 {
		r.st.Tail = append(r.st.Tail, ref)
	} else {
		r.st.Queue = append(r.st.Queue, ref)
	}
}

// clear drops every queued event, the head included, and cancels the head's attempt.
func (r *relay) clear() int {
	n := r.pending()
	r.st.Queue, r.st.Spilled, r.st.Tail = nil, nil, nil
	r.gen++
	if r.cancelHead != nil {
		r.cancelHead()
	}
	return n
}

// drain takes every buffered signal. Signals of both kinds are applied in the order
// they are read; the two kinds come from API servers before and after an upgrade,
// that is from concurrent webhooks, which have no order between them.
func (r *relay) drain() {
	var ref shared.InboundRef
	for r.ch.ReceiveAsync(&ref) {
		r.enqueue(ref)
		ref = shared.InboundRef{}
	}
	var b shared.InboundBatch
	for r.bch.ReceiveAsync(&b) {
		r.signals++
		for _, ref := range b.Refs {
			r.add(ref)
		}
		b = shared.InboundBatch{}
	}
}

func (r *relay) shouldContinue(ctx workflow.Context) bool {
	return r.signals >= relayMaxSignalsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
}

func (r *relay) run(ctx workflow.Context) error {
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
		preempted, err := r.relayHead(ctx)
		if err != nil {
			return err
		}
		if preempted {
			return r.continueAsNew(ctx)
		}
	}
}

// relayHead relays Queue[0] and pops it once relayed. It reports preempted when the
// history grew past relayHistoryHardLimit while the head was still being retried: the
// attempt was cancelled and the head stays first, for the next run.
func (r *relay) relayHead(ctx workflow.Context) (preempted bool, err error) {
	head, gen := r.st.Queue[0], r.gen
	hctx, cancel := workflow.WithCancel(ctx)
	r.head, r.cancelHead = head.ID, cancel
	defer func() { r.head, r.cancelHead = "", nil }()

	fut := workflow.ExecuteActivity(workflow.WithActivityOptions(hctx, relayOptions), shared.RelayInboundActivity, head)
	if err := workflow.Await(ctx, func() bool { return fut.IsReady() || r.overHardLimit(ctx) }); err != nil {
		return false, err
	}
	if !fut.IsReady() {
		preempted = true
		cancel()
	}
	err = fut.Get(ctx, nil)
	cancel()
	switch {
	case ctx.Err() != nil:
		return false, ctx.Err()
	case r.gen != gen:
		// Cleared during the attempt: the queue no longer holds this head.
	case err == nil:
		r.popHead()
		r.st.Relayed++
	case preempted && temporal.IsCanceledError(err):
		// Carried: the next run starts with it.
	default:
		// Only a non-retryable error ends the retries: the stored event is gone.
		workflow.GetLogger(ctx).Warn("inbound event dropped", "id", head.ID, "error", err)
		r.popHead()
		r.st.Dropped++
	}
	return preempted, nil
}

func (r *relay) overHardLimit(ctx workflow.Context) bool {
	return workflow.GetInfo(ctx).GetCurrentHistoryLength() >= relayHistoryHardLimit
}

func (r *relay) popHead() {
	r.st.Queue = r.st.Queue[1:]
	if len(r.st.Queue) == 0 {
		r.st.Queue = nil
	}
}

// refill loads the first spilled segment into the empty Queue; once no segment is left,
// the Tail joins the Queue.
func (r *relay) refill(ctx workflow.Context) error {
	seg, gen := r.st.Spilled[0], r.gen
	var refs []shared.InboundRef
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, spillOptions),
		shared.LoadInboundSpillActivity, seg.Key).Get(ctx, &refs)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if r.gen != gen {
		return nil
	}
	if err != nil {
		workflow.GetLogger(ctx).Warn("spilled inbound events dropped", "key", seg.Key, "count", seg.Count, "error", err)
		r.st.Dropped += int64(seg.Count)
	} else {
		r.st.Queue = append(r.st.Queue, refs...)
	}
	r.st.Spilled = r.st.Spilled[1:]
	if len(r.st.Spilled) == 0 {
		r.st.Spilled = nil
		r.st.Queue = append(r.st.Queue, r.st.Tail...)
		r.st.Tail = nil
	}
	if err == nil {
		// Best effort: the segment also expires on its own.
		_ = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, dropSpillOptions),
			shared.DropInboundSpillActivity, seg.Key).Get(ctx, nil)
	}
	return nil
}

// continueAsNew hands the queue to a new run, only between events: buffered signals are
// drained, handlers finish, overflowing refs are spilled, and nothing blocks between
// the last drain and the continue-as-new.
func (r *relay) continueAsNew(ctx workflow.Context) error {
	for {
		r.drain()
		if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
			return err
		}
		spilled, err := r.spill(ctx)
		if err != nil {
			return err
		}
		if !spilled {
			break
		}
	}
	r.drain()
	return workflow.NewContinueAsNewError(ctx, InboundRelay, r.st)
}

// spill moves the refs beyond shared.MaxRelayCarriedRefs, in Queue or in Tail, to Redis
// segments without changing the logical order. It reports whether it moved anything.
func (r *relay) spill(ctx workflow.Context) (bool, error) {
	const limit = shared.MaxRelayCarriedRefs
	gen := r.gen
	switch {
	case len(r.st.Queue) > limit:
		n := len(r.st.Queue)
		segs, err := r.store(ctx, r.st.Queue[limit:n])
		if err != nil || r.gen != gen {
			return true, err
		}
		// Events that arrived while storing came after the spilled ones (they can only
		// have landed in Queue when nothing was spilled before, so Tail was empty).
		arrivals := slices.Clone(r.st.Queue[n:])
		r.st.Queue = slices.Clone(r.st.Queue[:limit])
		r.st.Spilled = append(segs, r.st.Spilled...)
		r.st.Tail = append(arrivals, r.st.Tail...)
		return true, nil
	case len(r.st.Tail) > limit:
		n := len(r.st.Tail)
		segs, err := r.store(ctx, r.st.Tail[:n])
		if err != nil || r.gen != gen {
			return true, err
		}
		r.st.Spilled = append(r.st.Spilled, segs...)
		r.st.Tail = slices.Clone(r.st.Tail[n:])
		return true, nil
	}
	return false, nil
}

// store writes refs to Redis in segments of at most relaySpillChunk refs, in order.
func (r *relay) store(ctx workflow.Context, refs []shared.InboundRef) ([]shared.SpillSegment, error) {
	actx := workflow.WithActivityOptions(ctx, spillOptions)
	var segs []shared.SpillSegment
	for chunk := range slices.Chunk(refs, relaySpillChunk) {
		key := fmt.Sprintf("%s-%d", chainID(ctx), r.st.SpillSeq)
		r.st.SpillSeq++
		in := shared.SpillInput{Key: key, Refs: slices.Clone(chunk)}
		if err := workflow.ExecuteActivity(actx, shared.SpillInboundActivity, in).Get(ctx, nil); err != nil {
			return nil, fmt.Errorf("spill %d inbound refs: %w", len(chunk), err)
		}
		segs = append(segs, shared.SpillSegment{Key: key, Count: len(chunk)})
	}
	return segs, nil
}

// chainID names the continue-as-new chain, so that spill keys of a relay workflow that
// was terminated and started again never collide with its predecessor's.
func chainID(ctx workflow.Context) string {
	info := workflow.GetInfo(ctx)
	if info.FirstRunID != "" {
		return info.FirstRunID
	}
	return info.WorkflowExecution.RunID
}
