package workflows

import (
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/wagate/wagate/shared"
)

// TestBulkSendReplaysRecordedHistory guards determinism: histories recorded from real
// runs (header media upload, the sends, finish; see e2e TestBulkHistoryReplays) must
// replay on the current code. bulk_v1.json is a run from before continuous dispatch
// (two SendChunk activities, no version marker); bulk_v2.json one of version 1 of
// continuous-send (two SendRange activities); bulk_v3_*.json are runs of version 1 of
// task-control (e2e TestControlHistoriesReplay): a cancel in the middle of a SendRange
// (control key, ledger count, REVOKED), a pause and a resume, and a send_at timer. A
// change that breaks any needs workflow.GetVersion.
func TestBulkSendReplaysRecordedHistory(t *testing.T) {
	for _, file := range []string{"testdata/bulk_v1.json", "testdata/bulk_v2.json", "testdata/bulk_v3_delivery.json",
		"testdata/bulk_v3_cancel.json", "testdata/bulk_v3_pause.json", "testdata/bulk_v3_send_at.json",
		"testdata/bulk_v4.json"} {
		t.Run(file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(BulkSend, workflow.RegisterOptions{Name: shared.BulkWorkflowName})
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, file); err != nil {
				t.Fatalf("replay %s: %v", file, err)
			}
		})
	}
}
