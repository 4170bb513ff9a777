package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/wagate/wagate/shared"
	"github.com/wagate/wagate/workflows"
)

// Real histories of task control (a cancel mid-send, a pause and a resume, a send_at
// wait) replay on the current workflow code. With WAGATE_RECORD_CONTROL_HISTORY=<dir>
// they are also written there, which is how workflows/testdata/bulk_v3_*.json were made.
func TestControlHistoriesReplay(t *testing.T) {
	s := NewStack(t, StackOptions{MaxWorkers: 1, SandboxLatency: 20 * time.Millisecond})
	ctx := context.Background()
	dir := os.Getenv("WAGATE_RECORD_CONTROL_HISTORY")

	record := func(name, id string, want ...enumspb.EventType) {
		t.Helper()
		if err := s.Temporal.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		h := s.History(t, id, "")
		seen := map[enumspb.EventType]bool{}
		for _, ev := range h.Events {
			seen[ev.GetEventType()] = true
		}
		for _, w := range want {
			if !seen[w] {
				t.Errorf("%s: the history has no %v", name, w)
			}
		}
		r := worker.NewWorkflowReplayer()
		r.RegisterWorkflowWithOptions(workflows.BulkSend, workflow.RegisterOptions{Name: shared.BulkWorkflowName})
		if err := r.ReplayWorkflowHistory(nil, h); err != nil {
			t.Fatalf("%s: replay: %v", name, err)
		}
		if dir != "" {
			b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "bulk_v3_"+name+".json")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s history (%d events) written to %s", name, len(h.Events), path)
		}
	}

	// A cancel in the middle of the sends.
	id := queueBulk(t, s, 200)
	waitAccepted(t, s, 20, time.Minute)
	if status, resp := s.PostJSON(t, "/api/task-cancel/"+id, nil); status != http.StatusOK || resp["status"] != shared.StatusRevoked {
		t.Fatalf("cancel = %d %v", status, resp)
	}
	record("cancel", id, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED, enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES)

	// A pause and a resume.
	base := s.Sandbox.Stats().Accepted
	id = queueBulk(t, s, 100)
	waitAccepted(t, s, base+10, time.Minute)
	if status, resp := s.PostJSON(t, "/api/task-pause/"+id, nil); status != http.StatusOK || resp["status"] != shared.StatusPaused {
		t.Fatalf("pause = %d %v", status, resp)
	}
	if status, _ := s.PostJSON(t, "/api/task-resume/"+id, nil); status != http.StatusOK {
		t.Fatalf("resume = %d", status)
	}
	if task := s.WaitTask(t, id, time.Minute); task["status"] != shared.StatusSuccess {
		t.Fatalf("paused task = %v", task)
	}
	record("pause", id, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED)

	// A send_at a few seconds ahead.
	body := bulkBody(2, "5737")
	body["send_at"] = time.Now().Add(3 * time.Second).Format(time.RFC3339)
	_, resp := s.PostJSON(t, "/api/send-bulk", body)
	id, _ = resp["task_id"].(string)
	if task := s.WaitTask(t, id, time.Minute); task["status"] != shared.StatusSuccess {
		t.Fatalf("scheduled task = %v", task)
	}
	record("send_at", id, enumspb.EVENT_TYPE_TIMER_FIRED)
}
