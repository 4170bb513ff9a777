package e2e

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/internal/wstest"
	"github.com/wagate/wagate/shared"
)

// Delivery tracking end to end, as a new user would see it: a bulk task against the
// sandbox posting signed status webhooks (some messages delivered, some read, some failed
// after they were accepted), then task-status, the recipient listing, its CSV and the
// message timelines compared with what the sandbox posted; a direct send and a queued
// single send likewise; and the statuses relayed to the WebSocket with RELAY_STATUSES.
func TestDeliveryTrackingEndToEnd(t *testing.T) {
	sink := wstest.New(t)
	read := 0.5
	plan := sandbox.StatusPlan{SentDelay: 20 * time.Millisecond, DeliveredDelay: 60 * time.Millisecond,
		ReadDelay: 80 * time.Millisecond, Failed: 0.15, Read: &read, Seed: 11}
	s := NewStack(t, StackOptions{SandboxWebhooks: true, AppSecret: "e2e-app-secret", Statuses: plan,
		RelayStatuses: true, WebSocketURL: sink.URL()})

	const n = 120
	phones := make([]string, n)
	recipients := make([]map[string]any, n)
	fates := map[string]string{}
	codes := map[string]int{}
	var wantDelivered, wantRead, wantFailed int
	p := s.Sandbox.StatusPlan()
	for i := range phones {
		phones[i] = fmt.Sprintf("5732%08d", i)
		recipients[i] = map[string]any{"phone": phones[i], "message": fmt.Sprintf("Hola %d", i)}
		fate, code := p.Fate(phones[i])
		fates[phones[i]], codes[phones[i]] = fate, code
		switch fate {
		case "failed":
			wantFailed++
		case "read":
			wantRead++
			wantDelivered++
		default:
			wantDelivered++
		}
	}
	if wantFailed == 0 || wantRead == 0 || wantDelivered == wantRead {
		t.Fatalf("the plan draws failed %d, read %d, delivered %d: want each fate present", wantFailed, wantRead, wantDelivered)
	}
	_, resp := s.PostJSON(t, "/api/send-bulk", map[string]any{"recipients": recipients})
	id, _ := resp["task_id"].(string)
	if task := s.WaitTask(t, id, time.Minute); task["status"] != shared.StatusSuccess {
		t.Fatalf("task = %v", task)
	}
	// The Web UI memo carries the delivery counts (as of the last send activity).
	desc, err := s.Temporal.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{shared.MemoDelivered, shared.MemoRead} {
		if _, ok := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()[f]; !ok {
			t.Errorf("memo has no %q field: %v", f, desc.GetWorkflowExecutionInfo().GetMemo().GetFields())
		}
	}

	// task-status: the counts move with the webhooks, after SUCCESS too.
	var task map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, task = s.Get(t, "/api/task-status/"+id)
		res, _ := task["result"].(map[string]any)
		if res["delivered"] == float64(wantDelivered) && res["read"] == float64(wantRead) && res["failed_after_send"] == float64(wantFailed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task-status = %v; want delivered %d read %d failed_after_send %d", task, wantDelivered, wantRead, wantFailed)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The contract's shape, with the same types, for clients that read only its fields.
	res := task["result"].(map[string]any)
	for _, f := range []string{"task_id", "status", "created_at", "completed_at"} {
		if _, ok := task[f].(string); !ok {
			t.Errorf("task-status %s = %v (%T), want a string", f, task[f], task[f])
		}
	}
	for _, f := range []string{"sent", "failed", "total"} {
		if _, ok := res[f].(float64); !ok {
			t.Errorf("result.%s = %v (%T), want a number", f, res[f], res[f])
		}
	}
	if res["sent"] != float64(n-wantFailed) || res["failed"] != float64(wantFailed) || res["total"] != float64(n) {
		t.Errorf("result = %v; want sent %d failed %d total %d (a failure after send is a failure)", res, n-wantFailed, wantFailed, n)
	}
	errs, _ := res["errors"].([]any)
	if len(errs) != wantFailed {
		t.Errorf("result.errors has %d entries, want %d (the failures after send)", len(errs), wantFailed)
	}
	for _, e := range errs {
		m := e.(map[string]any)
		ph, _ := m["phone"].(string)
		if fates[ph] != "failed" || m["code"] != float64(codes[ph]) || m["error"] == "" {
			t.Errorf("error %v: want a failed recipient with the sandbox's code %d and Meta's title", m, codes[ph])
		}
	}

	// The listing, page by page, against what the sandbox posted.
	var rows []map[string]any
	cursor := ""
	for pages := 0; ; pages++ {
		path := "/api/task-status/" + id + "/recipients?limit=25"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		status, page := s.Get(t, path)
		if status != http.StatusOK || page["success"] != true {
			t.Fatalf("GET %s = %d %v", path, status, page)
		}
		for _, r := range page["recipients"].([]any) {
			rows = append(rows, r.(map[string]any))
		}
		next, ok := page["next_cursor"].(string)
		if !ok || pages > n {
			break
		}
		cursor = next
	}
	if len(rows) != n {
		t.Fatalf("listing has %d rows, want %d", len(rows), n)
	}
	for i, r := range rows {
		ph := phones[i]
		wamid, _ := r["wamid"].(string)
		if r["index"] != float64(i) || r["phone"] != ph || r["status"] != fates[ph] || wamid == "" || r["sent_at"] == nil {
			t.Errorf("row %d = %v; want phone %s, status %s, a wamid and sent_at", i, r, ph, fates[ph])
			continue
		}
		posted, _ := s.Sandbox.Posted(wamid)
		if last := posted[len(posted)-1]; last != fates[ph] {
			t.Errorf("row %d: the sandbox posted %v for %s", i, posted, wamid)
		}
		switch fates[ph] {
		case "failed":
			if r["error_code"] != float64(codes[ph]) || r["error"] == "" || r["failed_at"] == nil {
				t.Errorf("row %d = %v; want error %d with its title and failed_at", i, r, codes[ph])
			}
		case "read":
			if r["read_at"] == nil || r["delivered_at"] == nil {
				t.Errorf("row %d = %v; want delivered_at and read_at", i, r)
			}
		}
	}
	_, failed := s.Get(t, "/api/task-status/"+id+"/recipients?status=failed&limit=1000")
	if got := len(failed["recipients"].([]any)); got != wantFailed || failed["next_cursor"] != nil {
		t.Errorf("status=failed lists %d rows (next %v), want %d and the end", got, failed["next_cursor"], wantFailed)
	}

	// The CSV export: the same rows.
	body := s.getRaw(t, "/api/task-status/"+id+"/recipients?format=csv", "text/csv")
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(recs) != n+1 || recs[0][0] != "index" || recs[0][3] != "status" {
		t.Fatalf("CSV: %d records, %v; header %v", len(recs), err, recs[0])
	}
	for i, rec := range recs[1:] {
		if rec[0] != strconv.Itoa(i) || rec[1] != phones[i] || rec[2] != rows[i]["wamid"] || rec[3] != fates[phones[i]] {
			t.Errorf("CSV row %d = %v; want the listing's %v", i, rec, rows[i])
		}
	}

	// A recipient's message timeline.
	w0 := rows[0]["wamid"].(string)
	_, msg := s.Get(t, "/api/messages/"+w0)
	m, _ := msg["message"].(map[string]any)
	if m["source"] != "task" || m["task_id"] != id || m["index"] != float64(0) || m["status"] != fates[phones[0]] {
		t.Errorf("GET /api/messages/%s = %v", w0, msg)
	}

	// A direct send and a queued single send.
	direct := "573299999991"
	_, sent := s.PostJSON(t, "/api/send-message", map[string]any{"phone": direct, "message": "hola", "use_queue": false})
	data, _ := sent["data"].(map[string]any)
	dmsgs, _ := data["messages"].([]any)
	if len(dmsgs) != 1 {
		t.Fatalf("direct send = %v", sent)
	}
	dwamid := dmsgs[0].(map[string]any)["id"].(string)
	dfate, _ := p.Fate(direct)
	s.waitMessage(t, dwamid, "direct", dfate)

	queued := "573299999992"
	_, q := s.PostJSON(t, "/api/send-message", map[string]any{"phone": queued, "message": "hola", "use_queue": true})
	qid, _ := q["task_id"].(string)
	s.WaitTask(t, qid, 30*time.Second)
	_, qrows := s.Get(t, "/api/task-status/"+qid+"/recipients")
	qr := qrows["recipients"].([]any)
	if len(qr) != 1 {
		t.Fatalf("queued send's listing = %v", qrows)
	}
	qfate, _ := p.Fate(queued)
	s.waitMessage(t, qr[0].(map[string]any)["wamid"].(string), "task", qfate)

	// RELAY_STATUSES: the direct send's statuses reached the WebSocket, in order, in the
	// envelope of a relayed message.
	want := []string{"sent", "delivered", "read"}[:map[string]int{"read": 3, "delivered": 2, "failed": 2}[dfate]]
	if dfate == "failed" {
		want[1] = "failed"
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		got := relayedStatuses(t, sink.Frames(), dwamid)
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relayed statuses of %s = %v, want %v", dwamid, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Bad input answers 4xx in the contract's shape.
	for _, path := range []string{
		"/api/task-status/" + id + "/recipients?status=bogus",
		"/api/task-status/" + id + "/recipients?limit=0",
		"/api/task-status/" + id + "/recipients?cursor=-1",
		"/api/task-status/" + id + "/recipients?format=xml",
	} {
		if status, out := s.Get(t, path); status != http.StatusBadRequest || out["success"] != false {
			t.Errorf("GET %s = %d %v, want 400", path, status, out)
		}
	}
	if status, out := s.Get(t, "/api/task-status/12345678-1234-1234-1234-123456789abc/recipients"); status != http.StatusNotFound || out["success"] != false {
		t.Errorf("recipients of an unknown task = %d %v, want 404", status, out)
	}
	if status, out := s.Get(t, "/api/messages/wamid.never-sent"); status != http.StatusNotFound || out["success"] != false {
		t.Errorf("unknown wamid = %d %v, want 404", status, out)
	}
}

// waitMessage polls GET /api/messages/{wamid} until its status is want.
func (s *Stack) waitMessage(t *testing.T, wamid, source, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, out := s.Get(t, "/api/messages/"+wamid)
		m, _ := out["message"].(map[string]any)
		if status == http.StatusOK && m["source"] == source && m["status"] == want {
			tl, _ := m["timeline"].([]any)
			if len(tl) < 2 {
				t.Errorf("timeline of %s = %v, want its statuses", wamid, m["timeline"])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /api/messages/%s = %d %v; want source %s status %s", wamid, status, out, source, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// getRaw GETs path and returns its body, checking the status and content type.
func (s *Stack) getRaw(t *testing.T, path, contentType string) string {
	t.Helper()
	res, err := http.Get(s.API + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), contentType) {
		t.Fatalf("GET %s = %d %s: %s", path, res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	return string(b)
}

// relayedStatuses returns the statuses of wamid among relayed frames, in frame order,
// checking each has the envelope of a relayed message.
func relayedStatuses(t *testing.T, frames []string, wamid string) []string {
	var out []string
	for _, f := range frames {
		var fr struct {
			Object string `json:"object"`
			Entry  []struct {
				Changes []struct {
					Value struct {
						Metadata map[string]any          `json:"metadata"`
						Statuses []shared.DeliveryStatus `json:"statuses"`
						Messages []any                   `json:"messages"`
					} `json:"value"`
				} `json:"changes"`
			} `json:"entry"`
			SaveNumber *bool `json:"save_number"`
		}
		if json.Unmarshal([]byte(f), &fr) != nil || len(fr.Entry) != 1 || len(fr.Entry[0].Changes) != 1 {
			continue
		}
		v := fr.Entry[0].Changes[0].Value
		if len(v.Statuses) != 1 || v.Statuses[0].ID != wamid {
			continue
		}
		if fr.Object != "whatsapp_business_account" || v.Metadata == nil || v.Messages != nil || fr.SaveNumber == nil {
			t.Errorf("status frame %s: want the relayed message envelope", f)
		}
		out = append(out, v.Statuses[0].Status)
	}
	return out
}
