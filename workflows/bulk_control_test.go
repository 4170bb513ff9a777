package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/wagate/wagate/shared"
)

// controlEnv is a test environment with the control activities recorded: every write
// of the control key, in order, and a channel that sees each one.
type controlEnv struct {
	*testsuite.TestWorkflowEnvironment
	mu      sync.Mutex
	events  []string
	written chan string
	counted []shared.CountLedgerInput
}

func newControlEnv(t *testing.T) *controlEnv {
	e := &controlEnv{TestWorkflowEnvironment: newEnv(t), written: make(chan string, 16)}
	e.RegisterActivityWithOptions(func(_ context.Context, in shared.TaskControlInput) error {
		e.note("control:" + in.Action)
		e.written <- in.Action
		return nil
	}, activity.RegisterOptions{Name: shared.SetTaskControlActivity})
	e.RegisterActivityWithOptions(func(_ context.Context, in shared.CountLedgerInput) (shared.ChunkResult, error) {
		e.mu.Lock()
		e.counted = append(e.counted, in)
		e.mu.Unlock()
		return shared.ChunkResult{Sent: 7, Failed: 1, Errors: []shared.RecipientError{{Index: in.From + 3, Phone: "573000000003", Error: "(#131026) undeliverable", Code: 131026}}}, nil
	}, activity.RegisterOptions{Name: shared.CountLedgerActivity})
	return e
}

func (e *controlEnv) note(ev string) {
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
}

func (e *controlEnv) log() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.events...)
}

// update sends a control update and returns a function that waits for its outcome.
func (e *controlEnv) update(action string) func(t *testing.T) (shared.TaskState, error) {
	type outcome struct {
		st  shared.TaskState
		err error
	}
	ch := make(chan outcome, 1)
	e.UpdateWorkflow(shared.ControlUpdate, "", &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { ch <- outcome{err: err} },
		OnComplete: func(v any, err error) {
			var st shared.TaskState
			if err == nil {
				st = v.(shared.TaskState)
			}
			ch <- outcome{st: st, err: err}
		},
	}, shared.ControlRequest{Action: action})
	return func(t *testing.T) (shared.TaskState, error) {
		t.Helper()
		select {
		case o := <-ch:
			return o.st, o.err
		case <-time.After(10 * time.Second):
			t.Fatalf("control %q: no outcome", action)
			return shared.TaskState{}, nil
		}
	}
}

// waitWritten waits for the workflow to write action to the control key, as the
// running SendRange would see it.
func (e *controlEnv) waitWritten(t *testing.T, action string) bool {
	select {
	case got := <-e.written:
		if got != action {
			t.Errorf("control key written %q, want %q", got, action)
		}
		return true
	case <-time.After(10 * time.Second):
		t.Errorf("control key never written %q", action)
		return false
	}
}

// A pause during a SendRange writes the control key (the activity stops claiming and
// returns halted); the task stays PAUSED with nothing sent until the resume, which
// clears the key before the next activity; the counts end exact.
func TestBulkSendPauseStopsTheRangeAndResumeGoesOnFromItsFrontier(t *testing.T) {
	env := newControlEnv(t)
	const total = 1000
	var waitPause func(*testing.T) (shared.TaskState, error)
	var calls []shared.RangeInput
	env.OnActivity(shared.SendRangeActivity, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in shared.RangeInput) (shared.RangeResult, error) {
			calls = append(calls, in)
			env.note("range")
			switch len(calls) {
			case 1:
				return shared.RangeResult{Frontier: 300, Sent: 300}, nil
			case 2:
				// The pause arrives while this activity runs.
				waitPause = env.update(shared.ActionPause)
				env.waitWritten(t, shared.ActionPause)
				return shared.RangeResult{Frontier: 450, Sent: 150, Halted: true}, nil
			}
			return shared.RangeResult{Frontier: in.End, Sent: in.End - in.Offset}, nil
		})
	var finished shared.TaskState
	env.OnActivity(shared.FinishTaskActivity, mock.Anything, mock.Anything).Return(
		func(_ context.Context, st shared.TaskState) error { finished = st; return nil }).Once()

	var paused shared.TaskState
	var pausedErr error
	env.RegisterDelayedCallback(func() {
		paused, pausedErr = waitPause(t)
		v, err := env.QueryWorkflow(shared.StatusQuery)
		if err != nil {
			t.Fatal(err)
		}
		var st shared.TaskState
		if err := v.Get(&st); err != nil {
			t.Fatal(err)
		}
		if st.Status != shared.StatusPaused || st.Waiting != shared.WaitPausedByClient || st.WaitingSince == nil || st.Result.Sent != 450 {
			t.Errorf("status while paused = %+v, want PAUSED (paused_by_client) with 450 sent", st)
		}
		env.note("resume")
		env.update(shared.ActionResume)
	}, time.Hour)

	env.ExecuteWorkflow(shared.BulkWorkflowName, input(total, 10))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	if pausedErr != nil || paused.Status != shared.StatusPaused {
		t.Errorf("pause answered %+v, %v; want PAUSED", paused, pausedErr)
	}
	want := []string{"range", "range", "control:pause", "resume", "control:", "range"}
	if got := env.log(); len(got) != len(want) {
		t.Fatalf("events = %v, want %v", got, want)
	} else {
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("events = %v, want %v", got, want)
			}
		}
	}
	if len(calls) != 3 || calls[2].Offset != 450 || !calls[2].Control || calls[2].Seq != 2 {
		t.Errorf("calls = %+v, want a third from 450 polling the control key", calls)
	}
	if finished.Status != shared.StatusSuccess || finished.Result.Sent != total {
		t.Errorf("finished = %+v, want SUCCESS with %d sent", finished, total)
	}
}

// A cancel during a SendRange stops it; the recipients that finished above its
// frontier are counted from the ledger; the task ends REVOKED with those counts and
// starts no further activity.
func TestBulkSendCancelStopsTheRangeAndEndsRevokedWithTheCounts(t *testing.T) {
	env := newControlEnv(t)
	const total = 1000
	var waitCancel func(*testing.T) (shared.TaskState, error)
	ranges := 0
	env.OnActivity(shared.SendRangeActivity, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in shared.RangeInput) (shared.RangeResult, error) {
			ranges++
			if ranges == 1 {
				return shared.RangeResult{Frontier: 300, Sent: 300}, nil
			}
			waitCancel = env.update(shared.ActionCancel)
			env.waitWritten(t, shared.ActionCancel)
			return shared.RangeResult{Frontier: 400, Sent: 100, Halted: true}, nil
		})
	var finished shared.TaskState
	env.OnActivity(shared.FinishTaskActivity, mock.Anything, mock.Anything).Return(
		func(_ context.Context, st shared.TaskState) error { finished = st; return nil }).Once()

	env.ExecuteWorkflow(shared.BulkWorkflowName, input(total, 10))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	st, err := waitCancel(t)
	if err != nil || st.Status != shared.StatusRevoked || st.Result.Sent != 407 || st.Result.Failed != 1 || st.CompletedAt == nil {
		t.Errorf("cancel answered %+v, %v; want REVOKED with 407 sent and 1 failed", st, err)
	}
	if ranges != 2 {
		t.Errorf("%d SendRange activities, want none after the cancel", ranges)
	}
	if len(env.counted) != 1 || env.counted[0] != (shared.CountLedgerInput{TaskID: "task-1", From: 400, To: total}) {
		t.Errorf("ledger counted %+v, want [400, %d)", env.counted, total)
	}
	if finished.Status != shared.StatusRevoked || finished.Result.Sent != 407 || finished.Result.Failed != 1 || len(finished.Result.Errors) != 1 {
		t.Errorf("finished = %+v, want REVOKED with 407 sent, 1 failed", finished)
	}
	var res shared.TaskResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Sent != 407 || res.Total != total {
		t.Errorf("result = %+v, %v", res, err)
	}
}

// A scheduled task waits on a durable timer: PENDING and nothing sent before send_at,
// then it sends; the memo names its send_at.
func TestBulkSendWaitsForSendAt(t *testing.T) {
	env := newControlEnv(t)
	in := input(600, 10)
	start := in.CreatedAt
	env.SetStartTime(start)
	sendAt := start.Add(2 * time.Hour)
	in.SendAt = &sendAt
	first := sendsAllAtOnce(env.TestWorkflowEnvironment)
	env.OnActivity(shared.FinishTaskActivity, mock.Anything, mock.Anything).Return(nil).Once()
	var memoSendAt any
	env.OnUpsertMemo(mock.Anything).Run(func(args mock.Arguments) {
		if v, ok := args.Get(0).(map[string]any)[shared.MemoSendAt]; ok {
			memoSendAt = v
		}
	}).Return(nil)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(shared.StatusQuery)
		if err != nil {
			t.Fatal(err)
		}
		var st shared.TaskState
		_ = v.Get(&st)
		if st.Status != shared.StatusPending || st.SendAt == nil || !st.SendAt.Equal(sendAt) || !first.IsZero() {
			t.Errorf("before send_at: %+v (first send at %v), want PENDING with send_at and nothing sent", st, *first)
		}
	}, time.Hour)

	env.ExecuteWorkflow(shared.BulkWorkflowName, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	if first.Before(sendAt) {
		t.Errorf("first send at %v, before send_at %v", *first, sendAt)
	}
	if memoSendAt != sendAt.Format(time.RFC3339) {
		t.Errorf("memo send_at = %v, want %s", memoSendAt, sendAt.Format(time.RFC3339))
	}
}

// A scheduled task cancelled before its send_at ends REVOKED at once, having sent and
// counted nothing.
func TestBulkSendCancelWhileScheduled(t *testing.T) {
	env := newControlEnv(t)
	in := input(600, 10)
	env.SetStartTime(in.CreatedAt)
	sendAt := in.CreatedAt.Add(48 * time.Hour)
	in.SendAt = &sendAt
	env.OnActivity(shared.SendRangeActivity, mock.Anything, mock.Anything).Return(
		func(context.Context, shared.RangeInput) (shared.RangeResult, error) {
			t.Error("a cancelled scheduled task sent")
			return shared.RangeResult{}, errors.New("unexpected")
		})
	var finished shared.TaskState
	env.OnActivity(shared.FinishTaskActivity, mock.Anything, mock.Anything).Return(
		func(_ context.Context, st shared.TaskState) error { finished = st; return nil }).Once()
	var answer func(*testing.T) (shared.TaskState, error)
	env.RegisterDelayedCallback(func() { answer = env.update(shared.ActionCancel) }, time.Hour)

	env.ExecuteWorkflow(shared.BulkWorkflowName, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	if st, err := answer(t); err != nil || st.Status != shared.StatusRevoked || st.Result.Sent != 0 {
		t.Errorf("cancel answered %+v, %v", st, err)
	}
	if finished.Status != shared.StatusRevoked || len(env.counted) != 0 {
		t.Errorf("finished = %+v, counted %v; want REVOKED, no ledger read", finished, env.counted)
	}
	if env.Now().After(in.CreatedAt.Add(2 * time.Hour)) {
		t.Errorf("the workflow ended at %v, long after the cancel", env.Now())
	}
}

// A run continued while paused (Paused carried in its input) sends nothing until the
// resume; a pause of a paused task and an unknown action change nothing.
func TestBulkSendContinuedPausedWaitsForResume(t *testing.T) {
	env := newControlEnv(t)
	in := input(600, 10)
	env.SetStartTime(in.CreatedAt)
	since := in.CreatedAt
	in.Paused, in.PausedSince, in.Seq, in.Cursor, in.Sent = true, &since, 3, 100, 100
	first := sendsAllAtOnce(env.TestWorkflowEnvironment)
	env.OnActivity(shared.FinishTaskActivity, mock.Anything, mock.Anything).Return(nil).Once()
	var again, bad func(*testing.T) (shared.TaskState, error)
	env.RegisterDelayedCallback(func() {
		again = env.update(shared.ActionPause)
		bad = env.update("explode")
	}, time.Hour)
	env.RegisterDelayedCallback(func() { env.update(shared.ActionResume) }, 3*time.Hour)

	env.ExecuteWorkflow(shared.BulkWorkflowName, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	if first.Before(in.CreatedAt.Add(3 * time.Hour)) {
		t.Errorf("sent at %v, before the resume", *first)
	}
	if st, err := again(t); err != nil || st.Status != shared.StatusPaused || st.WaitingSince == nil || !st.WaitingSince.Equal(since) {
		t.Errorf("second pause = %+v, %v; want PAUSED since the first", st, err)
	}
	var appErr *temporal.ApplicationError
	if _, err := bad(t); !errors.As(err, &appErr) || appErr.Type() != shared.ErrTypeBadAction {
		t.Errorf("unknown action = %v, want %s", err, shared.ErrTypeBadAction)
	}
	var res shared.TaskResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Sent != 600 {
		t.Errorf("result = %+v, %v", res, err)
	}
}

// A finished task refuses every control.
func TestControlOfFinishedTaskIsRefused(t *testing.T) {
	now := time.Now()
	for _, b := range []*bulk{{completedAt: &now}, {cancelled: true}} {
		for _, a := range []string{shared.ActionCancel, shared.ActionPause, shared.ActionResume} {
			var appErr *temporal.ApplicationError
			if err := b.validateControl(shared.ControlRequest{Action: a}); !errors.As(err, &appErr) || appErr.Type() != shared.ErrTypeTaskFinished {
				t.Errorf("%s of %+v = %v, want %s", a, b, err, shared.ErrTypeTaskFinished)
			}
		}
	}
}

// Tasks started with the search attributes keep WagateStatus current: STARTED while
// sending, PAUSED while paused, SUCCESS at the end.
func TestBulkSendKeepsWagateStatus(t *testing.T) {
	env := newControlEnv(t)
	in := input(600, 10)
	in.Indexed = true
	if err := env.SetTypedSearchAttributesOnStart(temporal.NewSearchAttributes(shared.SearchStatus.ValueSet(shared.StatusPending))); err != nil {
		t.Fatal(err)
	}
	calls := 0
	env.OnActivity(shared.SendRangeActivity, mock.Anything, mock.Anything).Return(
		func(_ context.Context, r shared.RangeInput) (shared.RangeResult, error) {
			calls++
			if calls == 1 {
				env.update(shared.ActionPause)
				env.waitWritten(t, shared.ActionPause)
				return shared.RangeResult{Frontier: 100, Sent: 100, Halted: true}, nil
			}
			return shared.RangeResult{Frontier: r.End, Sent: r.End - r.Offset}, nil
		})
	env.OnActivity(shared.FinishTaskActivity, mock.Anything, mock.Anything).Return(nil).Once()
	var statuses []string
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if v, ok := args.Get(0).(temporal.SearchAttributes).GetKeyword(shared.SearchStatus); ok {
			statuses = append(statuses, v)
		}
	}).Return(nil)
	env.RegisterDelayedCallback(func() { env.update(shared.ActionResume) }, time.Hour)

	env.ExecuteWorkflow(shared.BulkWorkflowName, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	want := []string{shared.StatusStarted, shared.StatusPaused, shared.StatusStarted, shared.StatusSuccess}
	if len(statuses) != len(want) {
		t.Fatalf("WagateStatus went %v, want %v", statuses, want)
	}
	for i := range want {
		if statuses[i] != want[i] {
			t.Fatalf("WagateStatus went %v, want %v", statuses, want)
		}
	}
}

// sendsAllAtOnce makes every SendRange send its whole range and returns where the
// workflow time of the first one is noted.
func sendsAllAtOnce(env *testsuite.TestWorkflowEnvironment) *time.Time {
	first := new(time.Time)
	env.OnActivity(shared.SendRangeActivity, mock.Anything, mock.Anything).Return(
		func(_ context.Context, r shared.RangeInput) (shared.RangeResult, error) {
			if first.IsZero() {
				*first = env.Now()
			}
			return shared.RangeResult{Frontier: r.End, Sent: r.End - r.Offset}, nil
		})
	return first
}
