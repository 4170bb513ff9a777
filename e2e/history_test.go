package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/wagate/wagate/shared"
	"github.com/wagate/wagate/workflows"
)

// A real BulkSend history (media upload, two chunks, finish) replays on the current
// workflow code. With WAGATE_RECORD_BULK_HISTORY=<file> it is also written out, which
// is how workflows/testdata/bulk_v1.json, bulk_v2.json and bulk_v4.json were made.
func TestBulkHistoryReplays(t *testing.T) {
	s := NewStack(t, StackOptions{MaxWorkers: 1, ChunkReturns: true})
	// A SendRange that returns lets the sends it already admitted finish (one per slot),
	// so the second chunk must hold more than one recipient to need a second activity.
	n := shared.ChunkSize(1) + 5
	phones := make([]string, n)
	for i := range phones {
		phones[i] = fmt.Sprintf("5733%08d", i)
	}
	_, resp := s.PostJSON(t, "/api/send-broadcast-interactive", map[string]any{
		"phones": phones, "header_type": "image", "header_content": s.SandboxURL + "/_sandbox/assets/sample.jpg",
		"body_text": "Historia", "button_text": "Ver", "button_url": "https://mi-app.com/h",
	})
	id, _ := resp["task_id"].(string)
	if task := s.WaitTask(t, id, 2*time.Minute); task["status"] != shared.StatusSuccess {
		t.Fatalf("task = %v", task)
	}

	h := s.History(t, id, "")
	scheduled := 0
	var types []string
	for _, ev := range h.Events {
		if ev.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED {
			scheduled++
			types = append(types, ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName())
		}
	}
	// Upload, two chunks, finish.
	if scheduled != 4 {
		t.Errorf("history schedules %d activities %v, want 4 (upload, 2 chunks, finish)", scheduled, types)
	}

	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(workflows.BulkSend, workflow.RegisterOptions{Name: shared.BulkWorkflowName})
	if err := r.ReplayWorkflowHistory(nil, h); err != nil {
		t.Fatalf("replay: %v", err)
	}

	if path := os.Getenv("WAGATE_RECORD_BULK_HISTORY"); path != "" {
		b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("bulk history (%d events) written to %s", len(h.Events), path)
	}
}

// A task that continues as new on a real server: task-status follows the chain to its
// latest run, and the counts carried across runs add up.
func TestBulkContinuesAsNewOnARealServer(t *testing.T) {
	s := NewStack(t, StackOptions{MaxWorkers: 1, ChunkReturns: true})
	ctx := context.Background()
	chunk := shared.ChunkSize(1)
	n := 3*chunk + 7 // four chunks, two per run: two runs
	msgs := make([]shared.Message, n)
	for i := range msgs {
		msgs[i] = shared.Message{To: fmt.Sprintf("5734%08d", i), Kind: shared.KindText, Body: fmt.Sprint("cadena ", i)}
	}
	const id = "0f6c7a52-3f0e-4a43-9d5b-6a1e2f9c0b11"
	if err := s.Store.StageMessages(ctx, id, msgs, time.Hour); err != nil {
		t.Fatal(err)
	}
	_, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: shared.TaskQueue}, shared.BulkWorkflowName,
		shared.BulkInput{TaskID: id, Kind: "send-bulk", Total: n, MaxWorkers: 1, ChunksPerRun: 2, CreatedAt: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	task := s.WaitTask(t, id, 2*time.Minute)
	res, _ := task["result"].(map[string]any)
	if task["status"] != shared.StatusSuccess || res["sent"] != float64(n) || res["total"] != float64(n) {
		t.Fatalf("task = %v, want SUCCESS with %d sent", task, n)
	}
	if got := s.Sandbox.Stats().Accepted; got != int64(n) {
		t.Errorf("sandbox accepted %d, want %d", got, n)
	}
	// task-status says SUCCESS as soon as the last run has its result, before that run
	// has stored its summary and closed; and visibility records a close a moment later.
	if err := s.Temporal.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		t.Fatalf("the task's last run: %v", err)
	}
	var resp *workflowservice.ListWorkflowExecutionsResponse
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err = s.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: s.Config.TemporalNamespace, Query: "WorkflowId = '" + id + "'",
		})
		if err != nil {
			t.Fatal(err)
		}
		closed := true
		for _, e := range resp.Executions {
			closed = closed && e.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
		}
		if closed || time.Now().After(deadline) {
			break
		}
	}
	runs := 0
	for _, e := range resp.Executions {
		runs++
		if e.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW && e.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			t.Errorf("run %s ended %v", e.GetExecution().GetRunId(), e.GetStatus())
		}
	}
	if runs != 2 {
		t.Errorf("the task ran as %d workflow runs, want 2 (four chunks, two per run)", runs)
	}
}
