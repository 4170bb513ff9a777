package workflows

import (
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/wagate/wagate/shared"
)

// TestBulkSendReplaysRecordedHistory guards determinism: a history recorded from a real
// run (header media upload, two chunks, finish; see e2e TestBulkHistoryReplays) must
// replay on the current code. A change that breaks it needs workflow.GetVersion.
func TestBulkSendReplaysRecordedHistory(t *testing.T) {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(BulkSend, workflow.RegisterOptions{Name: shared.BulkWorkflowName})
	if err := r.ReplayWorkflowHistoryFromJSONFile(nil, "testdata/bulk_v1.json"); err != nil {
		t.Fatalf("replay testdata/bulk_v1.json: %v", err)
	}
}
