package workflows

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/wagate/wagate/shared"
)

// rangeScript answers SendRange calls: each reaches step recipients further (a
// frontier that moves unevenly, as a recipient in backoff holds it), failing the
// indexes in fail; waiting[i] is what the i-th call reports the task waits on.
type rangeScript struct {
	step    []int
	fail    map[int]bool
	waiting map[int]string
	calls   []shared.RangeInput
}

func (r *rangeScript) sendRange(_ context.Context, in shared.RangeInput) (shared.RangeResult, error) {
	i := len(r.calls)
	r.calls = append(r.calls, in)
	step := r.step[i%len(r.step)]
	res := shared.RangeResult{Frontier: min(in.Offset+step, in.End)}
	for j := in.Offset; j < res.Frontier; j++ {
		if r.fail[j] {
			res.Failed++
			res.Errors = append(res.Errors, shared.RecipientError{Index: j, Phone: "573000000000", Error: "(#131026) undeliverable", Code: 131026})
		} else {
			res.Sent++
		}
	}
	if w := r.waiting[i]; w != "" {
		since := time.Date(2025, 1, 16, 10, 31, 0, 0, time.UTC)
		res.Waiting, res.WaitingSince = w, &since
	}
	return res, nil
}

func TestBulkSendRangesResumeAtTheFrontierAndCountOnce(t *testing.T) {
	env := newEnv(t)
	const total, workers = 2345, 10
	// A frontier held back (0 progress), then big and small moves.
	script := &rangeScript{step: []int{0, 700, 13, 500}, fail: map[int]bool{3: true, 2000: true}}
	env.OnActivity(shared.SendRangeActivity, mock.Anything, mock.Anything).Return(script.sendRange)
	var finished shared.TaskState
	env.OnActivity(shared.FinishTaskActivity, mock.Anything, mock.Anything).Return(
		func(_ context.Context, st shared.TaskState) error { finished = st; return nil }).Once()

	env.ExecuteWorkflow(shared.BulkWorkflowName, input(total, workers))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	next := 0
	for i, c := range script.calls {
		if c.Offset != next || c.End != total || c.MaxWorkers != workers || c.Seq != i {
			t.Fatalf("call %d = %+v, want offset %d, end %d, %d workers, seq %d", i, c, next, total, workers, i)
		}
		next = min(c.Offset+script.step[i%len(script.step)], total)
	}
	var res shared.TaskResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Sent != total-2 || res.Failed != 2 || res.Total != total || len(res.Errors) != 2 {
		t.Errorf("result = %+v, want sent %d, failed 2 of %d", res, total-2, total)
	}
	if finished.Status != shared.StatusSuccess || finished.Waiting != "" {
		t.Errorf("finished = %+v, want SUCCESS and not waiting", finished)
	}
}

func TestBulkSendRangesShowWhatTheTaskWaitsOn(t *testing.T) {
	env := newEnv(t)
	const workers = 10
	total := 4 * shared.ChunkSize(workers)
	script := &rangeScript{step: []int{shared.ChunkSize(workers), 0, 0, shared.ChunkSize(workers)},
		waiting: map[int]string{1: "graph_api_unavailable", 2: "graph_api_unavailable"}}
	env.OnActivity(shared.SendRangeActivity, mock.Anything, mock.Anything).Return(script.sendRange).After(time.Minute)
	env.OnActivity(shared.FinishTaskActivity, mock.Anything, mock.Anything).Return(nil)

	var seen []shared.TaskState
	for _, at := range []time.Duration{150 * time.Second, 270 * time.Second} {
		env.RegisterDelayedCallback(func() {
			v, err := env.QueryWorkflow(shared.StatusQuery)
			if err != nil {
				t.Errorf("query: %v", err)
				return
			}
			var st shared.TaskState
			_ = v.Get(&st)
			seen = append(seen, st)
		}, at)
	}
	env.ExecuteWorkflow(shared.BulkWorkflowName, input(total, workers))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 {
		t.Fatalf("%d query answers, want 2", len(seen))
	}
	if st := seen[0]; st.Waiting != "graph_api_unavailable" || st.WaitingSince == nil || st.Status != shared.StatusStarted {
		t.Errorf("while the circuit is open: %+v, want STARTED waiting on graph_api_unavailable with since", st)
	}
	if st := seen[1]; st.Waiting != "" || st.WaitingSince != nil {
		t.Errorf("after recovery: %+v, want not waiting", st)
	}
	// Each call told the activity what the memo said, so it returns when that changes.
	if got := script.calls[2].Waiting; got != "graph_api_unavailable" {
		t.Errorf("third call's Waiting = %q, want the memo's graph_api_unavailable", got)
	}
	if got := script.calls[4].Waiting; got != "" {
		t.Errorf("fifth call's Waiting = %q, want cleared", got)
	}
	if text := waitingText("graph_api_unavailable", seen[0].WaitingSince); text == "" {
		t.Error("no memo text for a waiting task")
	}
}

func TestBulkSendRangesContinueAsNewCarryingSeqAndCounters(t *testing.T) {
	env := newEnv(t)
	const workers = 10
	in := input(100_000, workers)
	in.ChunksPerRun = 3
	script := &rangeScript{step: []int{500}, fail: map[int]bool{1: true}}
	env.OnActivity(shared.SendRangeActivity, mock.Anything, mock.Anything).Return(script.sendRange)
	env.OnActivity(shared.FinishTaskActivity, mock.Anything, mock.Anything).Return(nil)
	env.ExecuteWorkflow(shared.BulkWorkflowName, in)
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow error = %v, want continue-as-new", err)
	}
	var next shared.BulkInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.Cursor != 1500 || next.Seq != 3 || next.Sent != 1499 || next.Failed != 1 {
		t.Errorf("carried %+v, want cursor 1500, seq 3, 1499 sent, 1 failed", next)
	}

	// The next run's first activity continues the owner sequence.
	env2 := newEnv(t)
	script2 := &rangeScript{step: []int{100_000}}
	env2.OnActivity(shared.SendRangeActivity, mock.Anything, mock.Anything).Return(script2.sendRange)
	env2.OnActivity(shared.FinishTaskActivity, mock.Anything, mock.Anything).Return(nil)
	env2.ExecuteWorkflow(shared.BulkWorkflowName, next)
	if err := env2.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(script2.calls) != 1 || script2.calls[0].Seq != 3 || script2.calls[0].Offset != 1500 {
		t.Errorf("second run calls %+v, want one from 1500 with seq 3", script2.calls)
	}
}

func TestBulkSendRangeRejectsAFrontierOutsideTheTask(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(shared.SendRangeActivity, mock.Anything, mock.Anything).Return(
		shared.RangeResult{Frontier: 99}, nil)
	env.ExecuteWorkflow(shared.BulkWorkflowName, input(10, 1))
	var appErr *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != "InvalidFrontier" {
		t.Fatalf("workflow error = %v, want InvalidFrontier", err)
	}
}

// A template Meta paused mid-campaign shows as PAUSED with its reason and since when,
// the next range is told so (it probes first), and the task goes on to SUCCESS.
func TestBulkSendRangesShowAPausedTemplate(t *testing.T) {
	env := newEnv(t)
	const workers = 10
	total := 3 * shared.ChunkSize(workers)
	script := &rangeScript{step: []int{shared.ChunkSize(workers), 0, 2 * shared.ChunkSize(workers)},
		waiting: map[int]string{1: shared.WaitTemplatePaused}}
	env.OnActivity(shared.SendRangeActivity, mock.Anything, mock.Anything).Return(script.sendRange).After(time.Minute)
	var finished shared.TaskState
	env.OnActivity(shared.FinishTaskActivity, mock.Anything, mock.Anything).Return(
		func(_ context.Context, st shared.TaskState) error { finished = st; return nil })

	var paused shared.TaskState
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(shared.StatusQuery)
		if err != nil {
			t.Errorf("query: %v", err)
			return
		}
		_ = v.Get(&paused)
	}, 150*time.Second)
	env.ExecuteWorkflow(shared.BulkWorkflowName, input(total, workers))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if paused.Status != shared.StatusPaused || paused.Waiting != shared.WaitTemplatePaused || paused.WaitingSince == nil {
		t.Errorf("while the template is paused: %+v, want PAUSED waiting on %s with since", paused, shared.WaitTemplatePaused)
	}
	if c := script.calls[2]; c.Waiting != shared.WaitTemplatePaused || c.WaitingSince == nil {
		t.Errorf("the range after the pause got %+v, want it told the template is paused and since when", c)
	}
	if finished.Status != shared.StatusSuccess || finished.Result.Sent+finished.Result.Failed != total {
		t.Errorf("finished = %+v, want SUCCESS with every recipient", finished)
	}
	if text := waitingText(shared.WaitTemplatePaused, paused.WaitingSince); !strings.Contains(text, "plantilla") {
		t.Errorf("memo text %q does not name the template", text)
	}
}
