// Package workflows holds wagate's Temporal workflow code: deterministic, no I/O.
package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/wagate/wagate/shared"
)

// maxChunksPerRun bounds the history of one run (about eight events per chunk) well
// below Temporal's limits; the task then continues as new with its counters. A task's
// BulkInput.ChunksPerRun can lower it.
const maxChunksPerRun = 200

// Activity options of the bulk workflow.
var (
	// uploadOptions: downloading the client's URL and uploading it to Meta, three attempts.
	uploadOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumAttempts: 3,
		},
	}
	// sendOptions: a chunk retries per recipient inside the activity (three attempts,
	// permanent errors at once, rate limits honoured); the activity itself is retried
	// only when its worker dies or Redis fails, and resumes from the send ledger.
	sendOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Hour,
		HeartbeatTimeout:    10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
		},
	}
	// rangeOptions: SendRange returns at least every minute (see activities), so a
	// StartToClose of 30 minutes only catches an attempt that is stuck; it resumes from
	// the send ledger like a chunk.
	rangeOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
		},
	}
	finishOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
		},
	}
)

// BulkSend sends every staged message of one task. Its workflow ID is the task_id. It
// uploads each distinct header media once, then sends the recipients chunk by chunk,
// each chunk with at most MaxWorkers sends in flight, and continues as new every
// maxChunksPerRun chunks carrying its counters. The status query answers a
// shared.TaskState at any time; the result is the final shared.TaskResult.
func BulkSend(ctx workflow.Context, in shared.BulkInput) (shared.TaskResult, error) {
	b := &bulk{in: in}
	if err := workflow.SetQueryHandler(ctx, shared.StatusQuery, func() (shared.TaskState, error) {
		return b.state(), nil
	}); err != nil {
		return shared.TaskResult{}, err
	}
	if err := b.validate(); err != nil {
		return shared.TaskResult{}, err
	}
	// Version 1 of task-control takes pause, resume and cancel, waits for send_at and
	// keeps the search attributes up to date; runs recorded before it replay the path
	// below, which has none of that.
	if workflow.GetVersion(ctx, taskControlChange, workflow.DefaultVersion, 1) != workflow.DefaultVersion {
		return b.controlled(ctx)
	}
	b.uploadMedia(ctx)

	perRun := b.in.ChunksPerRun
	if perRun <= 0 {
		perRun = maxChunksPerRun
	}
	// Version 1 sends continuously with SendRange; runs recorded before it send chunk by
	// chunk with SendChunk and must replay that way.
	if workflow.GetVersion(ctx, continuousSendChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		if err := b.sendChunks(ctx, perRun); err != nil {
			return shared.TaskResult{}, err
		}
	} else if err := b.sendRanges(ctx, perRun); err != nil {
		return shared.TaskResult{}, err
	}

	now := workflow.Now(ctx)
	b.completedAt = &now
	final := b.state()
	finishCtx := workflow.WithActivityOptions(ctx, finishOptions)
	if err := workflow.ExecuteActivity(finishCtx, shared.FinishTaskActivity, final).Get(ctx, nil); err != nil {
		return shared.TaskResult{}, err
	}
	return final.Result, nil
}

// continuousSendChange is the workflow.GetVersion change id of continuous dispatch.
const continuousSendChange = "continuous-send"

// sendChunks is the send loop of version DefaultVersion: one SendChunk activity per
// chunk, one after the other.
func (b *bulk) sendChunks(ctx workflow.Context, perRun int) error {
	sendCtx := workflow.WithActivityOptions(ctx, sendOptions)
	for chunks := 0; b.in.Cursor < b.in.Total; chunks++ {
		if chunks >= perRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return workflow.NewContinueAsNewError(ctx, BulkSend, b.in)
		}
		n := min(shared.ChunkSize(b.in.MaxWorkers), b.in.Total-b.in.Cursor)
		var res shared.ChunkResult
		err := workflow.ExecuteActivity(sendCtx, shared.SendChunkActivity, shared.ChunkInput{
			TaskID: b.in.TaskID, Offset: b.in.Cursor, Count: n, MaxWorkers: b.in.MaxWorkers, Media: b.in.Media,
		}).Get(ctx, &res)
		if err != nil {
			return fmt.Errorf("send recipients %d-%d: %w", b.in.Cursor, b.in.Cursor+n-1, err)
		}
		b.add(res, n)
		b.upsertMemo(ctx)
	}

	return nil
}

// sendRanges is the send loop of version 1: SendRange activities, each resuming at the
// frontier the previous one reached, with no barrier between what used to be chunks.
// Each return moves the counters and the memo; what the task waits on (the Graph API
// circuit of its number is open) goes into the memo and the status query.
func (b *bulk) sendRanges(ctx workflow.Context, perRun int) error {
	rangeCtx := workflow.WithActivityOptions(ctx, rangeOptions)
	// Version 1 of delivery-memo shows the delivery counts in the memo; runs recorded
	// before it replay without them.
	b.deliveryMemo = workflow.GetVersion(ctx, deliveryMemoChange, workflow.DefaultVersion, 1) == 1
	for calls := 0; b.in.Cursor < b.in.Total; calls++ {
		if b.controlOn {
			b.holdWhilePaused(ctx)
			if b.cancelled {
				return nil
			}
		}
		if calls >= perRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			if b.controlOn && !b.readyToContinue(ctx) {
				return nil // cancelled meanwhile
			}
			return workflow.NewContinueAsNewError(ctx, BulkSend, b.in)
		}
		b.ranging = true
		b.syncStatus(ctx)
		var res shared.RangeResult
		err := workflow.ExecuteActivity(rangeCtx, shared.SendRangeActivity, shared.RangeInput{
			TaskID: b.in.TaskID, Offset: b.in.Cursor, End: b.in.Total, MaxWorkers: b.in.MaxWorkers,
			Media: b.in.Media, Seq: b.in.Seq, Waiting: b.in.Waiting, WaitingSince: b.in.WaitingSince,
			Control: b.controlOn,
		}).Get(ctx, &res)
		b.ranging = false
		if err != nil {
			return fmt.Errorf("send recipients %d-%d: %w", b.in.Cursor, b.in.Total-1, err)
		}
		b.in.Seq++
		if res.Frontier < b.in.Cursor || res.Frontier > b.in.Total {
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("send range from %d returned frontier %d", b.in.Cursor, res.Frontier), "InvalidFrontier", nil)
		}
		b.add(shared.ChunkResult{Sent: res.Sent, Failed: res.Failed, Errors: res.Errors}, res.Frontier-b.in.Cursor)
		b.in.Waiting, b.in.WaitingSince = res.Waiting, res.WaitingSince
		b.delivered, b.read = res.Delivered, res.Read
		b.upsertMemo(ctx)
		if res.Halted && !b.in.Paused && !b.cancelled {
			// A control key this run did not write (or no longer means) stopped the
			// activity: clear it, or every next activity would stop at once.
			b.setControl(ctx, "")
		}
	}
	b.in.Waiting, b.in.WaitingSince = "", nil
	return nil
}

type bulk struct {
	in           shared.BulkInput
	completedAt  *time.Time
	shownWaiting bool // the memo's waiting field is set
	// deliveryMemo: the memo carries delivered and read, the counts the last SendRange
	// read from Redis.
	deliveryMemo    bool
	delivered, read int

	// Task control (version 1 of task-control); see bulk_control.go.
	controlOn bool   // this run takes control updates
	cancelled bool   // a cancel was asked: nothing more starts
	revoked   bool   // the task ended cancelled
	ranging   bool   // a SendRange activity is in flight
	busy      bool   // a control update is being applied
	flagged   bool   // the control key may hold a pause or a cancel
	saStatus  string // the WagateStatus search attribute as last written
}

// deliveryMemoChange is the workflow.GetVersion change id of the delivery counts in the
// memo.
const deliveryMemoChange = "delivery-memo"

// waitingText is the memo's waiting field, in the Spanish of the API's messages.
func waitingText(kind string, since *time.Time) string {
	var what string
	switch kind {
	case "":
		return ""
	case "graph_api_auth":
		what = "esperando a Meta: la API de WhatsApp rechaza las credenciales o la cuenta"
	case shared.WaitTemplatePaused:
		what = "en pausa: Meta pausó (132015) o desactivó (132016) la plantilla; sigue cuando vuelva a estar activa"
	case shared.WaitPausedByClient:
		what = "en pausa: la pausó el cliente (task-pause); sigue con task-resume"
	default:
		what = "esperando a Meta: la API de WhatsApp no está disponible"
	}
	if since != nil {
		what += " desde " + since.UTC().Format(time.RFC3339)
	}
	return what + " (" + kind + ")"
}

func (b *bulk) validate() error {
	if b.in.TaskID == "" || b.in.Total < 0 || b.in.MaxWorkers < 1 || b.in.Cursor > b.in.Total {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("invalid bulk input: task %q, total %d, max workers %d, cursor %d",
				b.in.TaskID, b.in.Total, b.in.MaxWorkers, b.in.Cursor),
			"InvalidInput", nil)
	}
	return nil
}

// uploadMedia uploads each header media that has no media id yet. A media that cannot
// be uploaded is sent by link instead, which Meta fetches itself.
func (b *bulk) uploadMedia(ctx workflow.Context) {
	uctx := workflow.WithActivityOptions(ctx, uploadOptions)
	for i, m := range b.in.Media {
		if m.MediaID != "" || m.Link == "" {
			continue
		}
		var got shared.MediaRef
		err := workflow.ExecuteActivity(uctx, shared.UploadMediaActivity,
			shared.UploadMediaInput{TaskID: b.in.TaskID, Media: m}).Get(ctx, &got)
		if err != nil {
			workflow.GetLogger(ctx).Warn("header media not uploaded; sending it by link", "link", m.Link, "error", err)
			b.in.Media[i].MediaID = ""
			continue
		}
		b.in.Media[i].MediaID = got.MediaID
	}
}

func (b *bulk) add(res shared.ChunkResult, n int) {
	b.in.Cursor += n
	b.in.Sent += res.Sent
	b.in.Failed += res.Failed
	for _, e := range res.Errors {
		if len(b.in.Errors) >= shared.MaxTaskErrors {
			break
		}
		b.in.Errors = append(b.in.Errors, e)
	}
}

func (b *bulk) upsertMemo(ctx workflow.Context) {
	done := b.in.Sent + b.in.Failed
	pct := 100
	if b.in.Total > 0 {
		pct = done * 100 / b.in.Total
	}
	// The memo is what the Web UI shows for the task; an upsert failure only costs display.
	memo := map[string]any{
		shared.MemoSent:     b.in.Sent,
		shared.MemoFailed:   b.in.Failed,
		shared.MemoProgress: fmt.Sprintf("%d/%d (%d%%)", done, b.in.Total, pct),
	}
	kind, since := b.in.Waiting, b.in.WaitingSince
	if b.in.Paused {
		kind, since = shared.WaitPausedByClient, b.in.PausedSince
	}
	if kind != "" || b.shownWaiting {
		// Only runs that ever waited write the field, so histories of runs that never
		// did stay as they were.
		memo[shared.MemoWaiting] = waitingText(kind, since)
		b.shownWaiting = kind != ""
	}
	if b.deliveryMemo {
		memo[shared.MemoDelivered] = b.delivered
		memo[shared.MemoRead] = b.read
	}
	_ = workflow.UpsertMemo(ctx, memo)
	b.syncStatus(ctx)
}

// state is the status query's answer.
func (b *bulk) state() shared.TaskState {
	st := shared.TaskState{
		TaskID: b.in.TaskID,
		Kind:   b.in.Kind,
		Status: shared.StatusStarted,
		Result: shared.TaskResult{
			Sent: b.in.Sent, Failed: b.in.Failed, Total: b.in.Total,
			Errors: append([]shared.RecipientError{}, b.in.Errors...),
		},
		CreatedAt:    b.in.CreatedAt,
		CompletedAt:  b.completedAt,
		Waiting:      b.in.Waiting,
		WaitingSince: b.in.WaitingSince,
		SendAt:       b.in.SendAt,
	}
	switch {
	case b.revoked:
		st.Status = shared.StatusRevoked
		st.Waiting, st.WaitingSince = "", nil
	case b.completedAt != nil:
		st.Status = shared.StatusSuccess
	case b.in.Paused:
		st.Status = shared.StatusPaused
		st.Waiting, st.WaitingSince = shared.WaitPausedByClient, b.in.PausedSince
	case b.in.Waiting == shared.WaitTemplatePaused:
		st.Status = shared.StatusPaused
	case b.in.Sent+b.in.Failed == 0:
		// Nothing has finished yet; the API promotes the task to STARTED as soon as the
		// ledger counts a first recipient.
		st.Status = shared.StatusPending
	}
	return st
}
