package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/wagate/wagate/shared"
)

// taskControlChange is the workflow.GetVersion change id of task control: the control
// update (cancel, pause, resume), send_at and the WagateStatus search attribute.
const taskControlChange = "task-control"

// controlOptions: writing the control key and counting the ledger are short Redis
// calls; they retry until Redis answers, since a pause must reach the activity.
var controlOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 5 * time.Second,
	},
}

// controlled is BulkSend from version 1 of task-control on: it waits for send_at and
// while paused, stops at a cancel, and otherwise sends like version 1 of
// continuous-send.
func (b *bulk) controlled(ctx workflow.Context) (shared.TaskResult, error) {
	b.controlOn = true
	if b.in.Indexed {
		b.saStatus, _ = workflow.GetTypedSearchAttributes(ctx).GetKeyword(shared.SearchStatus)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, shared.ControlUpdate, b.control,
		workflow.UpdateHandlerOptions{Validator: b.validateControl}); err != nil {
		return shared.TaskResult{}, err
	}
	b.waitSendAt(ctx)
	if !b.cancelled {
		b.holdWhilePaused(ctx)
	}
	if !b.cancelled {
		b.uploadMedia(ctx)
	}
	perRun := b.in.ChunksPerRun
	if perRun <= 0 {
		perRun = maxChunksPerRun
	}
	if !b.cancelled {
		if err := b.sendRanges(ctx, perRun); err != nil {
			return shared.TaskResult{}, err
		}
	}
	if b.cancelled {
		return b.revoke(ctx)
	}

	now := workflow.Now(ctx)
	b.completedAt = &now
	b.syncStatus(ctx)
	final := b.state()
	finishCtx := workflow.WithActivityOptions(ctx, finishOptions)
	if err := workflow.ExecuteActivity(finishCtx, shared.FinishTaskActivity, final).Get(ctx, nil); err != nil {
		return shared.TaskResult{}, err
	}
	return final.Result, nil
}

// waitSendAt holds a scheduled task on a durable timer until its send_at, or until it
// is cancelled. A send_at in the past (or a run continued after it) does not wait.
func (b *bulk) waitSendAt(ctx workflow.Context) {
	if b.in.SendAt == nil {
		return
	}
	d := b.in.SendAt.Sub(workflow.Now(ctx))
	if d <= 0 {
		return
	}
	_ = workflow.UpsertMemo(ctx, map[string]any{shared.MemoSendAt: b.in.SendAt.UTC().Format(time.RFC3339)})
	// The timer is in the history, so the wait survives a restart of every process.
	_, _ = workflow.AwaitWithTimeout(ctx, d, func() bool { return b.cancelled })
}

// holdWhilePaused waits while a client has the task paused, unless it is cancelled.
func (b *bulk) holdWhilePaused(ctx workflow.Context) {
	if !b.in.Paused || b.cancelled {
		return
	}
	b.upsertMemo(ctx)
	_ = workflow.Await(ctx, func() bool { return !b.in.Paused || b.cancelled })
	if !b.cancelled {
		b.upsertMemo(ctx)
	}
}

// readyToContinue waits, before the run continues as new, until no control update is
// being applied, so that none is cut off half way; false when the task was cancelled
// meanwhile.
func (b *bulk) readyToContinue(ctx workflow.Context) bool {
	_ = workflow.Await(ctx, func() bool {
		return b.cancelled || (!b.busy && workflow.AllHandlersFinished(ctx))
	})
	return !b.cancelled
}

// validateControl refuses, before anything enters the history, an unknown action and
// any control of a task that has finished or was cancelled.
func (b *bulk) validateControl(req shared.ControlRequest) error {
	switch req.Action {
	case shared.ActionCancel, shared.ActionPause, shared.ActionResume:
	default:
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("unknown control action %q", req.Action), shared.ErrTypeBadAction, nil)
	}
	if b.cancelled || b.completedAt != nil {
		return b.finishedError()
	}
	return nil
}

func (b *bulk) finishedError() error {
	st := shared.StatusSuccess
	if b.cancelled {
		st = shared.StatusRevoked
	}
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("task %s has finished (%s)", b.in.TaskID, st), shared.ErrTypeTaskFinished, nil, st)
}

// control applies one control update and answers the task's state once it took
// effect: a pause once no send is in flight, a cancel once the task has ended with its
// counts, a resume at once. Updates apply one at a time.
func (b *bulk) control(ctx workflow.Context, req shared.ControlRequest) (shared.TaskState, error) {
	_ = workflow.Await(ctx, func() bool { return !b.busy })
	b.busy = true
	defer func() { b.busy = false }()
	if b.cancelled || b.completedAt != nil {
		return shared.TaskState{}, b.finishedError()
	}
	switch req.Action {
	case shared.ActionCancel:
		b.cancelled = true
		if b.ranging {
			b.setControl(ctx, shared.ActionCancel)
		}
		_ = workflow.Await(ctx, func() bool { return b.completedAt != nil })
	case shared.ActionPause:
		if !b.in.Paused {
			now := workflow.Now(ctx).UTC().Truncate(time.Second)
			b.in.Paused, b.in.PausedSince = true, &now
			if b.ranging {
				b.setControl(ctx, shared.ActionPause)
			}
		}
		_ = workflow.Await(ctx, func() bool { return !b.ranging || b.cancelled })
	case shared.ActionResume:
		if b.in.Paused {
			// The key is cleared before the loop may start a new activity, which would
			// otherwise stop at once.
			if b.flagged {
				b.setControl(ctx, "")
			}
			b.in.Paused, b.in.PausedSince = false, nil
		}
	}
	return b.state(), nil
}

// setControl writes the control key that the running SendRange polls ("" clears it).
func (b *bulk) setControl(ctx workflow.Context, action string) {
	actx := workflow.WithActivityOptions(ctx, controlOptions)
	err := workflow.ExecuteActivity(actx, shared.SetTaskControlActivity,
		shared.TaskControlInput{TaskID: b.in.TaskID, Action: action}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("control key not written", "action", action, "error", err)
		return
	}
	b.flagged = action != ""
}

// revoke ends a cancelled task: the recipients above the frontier that finished before
// the stop are counted from the ledger, and the summary says REVOKED.
func (b *bulk) revoke(ctx workflow.Context) (shared.TaskResult, error) {
	if b.in.Seq > 0 && b.in.Cursor < b.in.Total {
		var res shared.ChunkResult
		actx := workflow.WithActivityOptions(ctx, controlOptions)
		err := workflow.ExecuteActivity(actx, shared.CountLedgerActivity, shared.CountLedgerInput{
			TaskID: b.in.TaskID, From: b.in.Cursor, To: b.in.Total,
		}).Get(ctx, &res)
		if err != nil {
			return shared.TaskResult{}, fmt.Errorf("count the cancelled task's sends: %w", err)
		}
		cursor := b.in.Cursor
		b.add(res, 0)
		b.in.Cursor = cursor
	}
	now := workflow.Now(ctx)
	b.completedAt, b.revoked = &now, true
	b.in.Paused, b.in.PausedSince = false, nil
	b.upsertMemo(ctx)
	final := b.state()
	finishCtx := workflow.WithActivityOptions(ctx, finishOptions)
	if err := workflow.ExecuteActivity(finishCtx, shared.FinishTaskActivity, final).Get(ctx, nil); err != nil {
		return shared.TaskResult{}, err
	}
	return final.Result, nil
}

// searchStatus is what the WagateStatus search attribute says of the task now.
func (b *bulk) searchStatus() string {
	switch {
	case b.revoked:
		return shared.StatusRevoked
	case b.completedAt != nil:
		return shared.StatusSuccess
	case b.in.Paused || b.in.Waiting == shared.WaitTemplatePaused:
		return shared.StatusPaused
	case b.ranging || b.in.Seq > 0:
		return shared.StatusStarted
	}
	return shared.StatusPending
}

// syncStatus writes WagateStatus when it changed, for tasks started with wagate's
// search attributes (a namespace without them would fail the workflow task).
func (b *bulk) syncStatus(ctx workflow.Context) {
	if !b.controlOn || !b.in.Indexed {
		return
	}
	st := b.searchStatus()
	if st == b.saStatus {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, shared.SearchStatus.ValueSet(st)); err != nil {
		workflow.GetLogger(ctx).Warn("search attribute not written", "error", err)
		return
	}
	b.saStatus = st
}
