package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"

	"github.com/wagate/wagate/shared"
)

// Two broadcasts running at once share the phone number's WHATSAPP_MAX_MPS: together
// they never go over Meta's throughput limit, which the sandbox enforces at the same
// rate.
func TestConcurrentBroadcastsShareTheSendRate(t *testing.T) {
	const mps, each = 40, 60
	s := NewStack(t, StackOptions{MaxWorkers: 10, MPS: mps})
	start := time.Now()
	var ids []string
	for b := range 2 {
		phones := make([]string, each)
		for i := range phones {
			phones[i] = fmt.Sprintf("57320%d%06d", b, i)
		}
		status, resp := s.PostJSON(t, "/api/send-broadcast-interactive", map[string]any{
			"phones": phones, "body_text": fmt.Sprint("campaña ", b), "button_text": "Ver", "button_url": "https://mi-app.com/c",
		})
		id, _ := resp["task_id"].(string)
		if status != http.StatusOK || id == "" {
			t.Fatalf("broadcast %d: %d %v", b, status, resp)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		task := s.WaitTask(t, id, 2*time.Minute)
		if res, _ := task["result"].(map[string]any); task["status"] != shared.StatusSuccess || res["sent"] != float64(each) {
			t.Errorf("task %s = %v, want SUCCESS with %d sent", id, task, each)
		}
	}
	elapsed := time.Since(start)
	st := s.Sandbox.Stats()
	if st.ByCode[130429] != 0 {
		t.Errorf("Meta answered 130429 %d times: the two broadcasts went over %d messages/s together", st.ByCode[130429], mps)
	}
	if min := time.Duration(2*each/mps) * time.Second; elapsed < min {
		t.Errorf("%d sends took %v, faster than %d/s allows (%v)", 2*each, elapsed, mps, min)
	}
	if st.Accepted != 2*each {
		t.Errorf("sandbox accepted %d, want %d", st.Accepted, 2*each)
	}
}

// The Web UI lists each task with its kind, total and progress, from the memo.
func TestTaskMemoShowsKindTotalAndProgress(t *testing.T) {
	s := NewStack(t, StackOptions{})
	id := queueBulk(t, s, 25)
	s.WaitTask(t, id, time.Minute)
	desc, err := s.Temporal.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	fields := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()
	dc := converter.GetDefaultDataConverter()
	var kind, progress string
	var total, sent int
	for name, dst := range map[string]any{shared.MemoKind: &kind, shared.MemoTotal: &total, shared.MemoSent: &sent, shared.MemoProgress: &progress} {
		p, ok := fields[name]
		if !ok {
			t.Fatalf("memo has no %q field: %v", name, fields)
		}
		if err := dc.FromPayload(p, dst); err != nil {
			t.Fatalf("memo %s: %v", name, err)
		}
	}
	if kind != "send-bulk" || total != 25 || sent != 25 || progress != "25/25 (100%)" {
		t.Errorf("memo = kind %q total %d sent %d progress %q, want send-bulk, 25, 25, 25/25 (100%%)", kind, total, sent, progress)
	}
}
