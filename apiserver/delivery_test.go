package apiserver

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

// flushCounter is a ResponseWriter that counts flushes and the largest write between two.
type flushCounter struct {
	*httptest.ResponseRecorder
	flushes  int
	pending  int
	maxChunk int
}

func (f *flushCounter) Write(b []byte) (int, error) {
	f.pending += len(b)
	return f.ResponseRecorder.Write(b)
}

func (f *flushCounter) Flush() {
	f.flushes++
	f.maxChunk = max(f.maxChunk, f.pending)
	f.pending = 0
}

// statusesWebhook is a signed-shape status webhook of items {wamid, status, opaque, code}.
func statusesWebhook(items []map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"object": "whatsapp_business_account", "entry": []any{map[string]any{
		"id": "WABA", "changes": []any{map[string]any{"field": "messages", "value": map[string]any{
			"messaging_product": "whatsapp", "metadata": map[string]any{"phone_number_id": "P"}, "statuses": items}}}}}})
	return b
}

// A finished 10k task's recipients: task-status counts the status webhooks posted to
// /webhook (repeats once), and ?format=csv streams every recipient in chunks.
func TestRecipientsCSVOf10kTask(t *testing.T) {
	ctx := context.Background()
	h, store := inboundServer(t, shared.Config{WhatsAppAppSecret: testAppSecret})
	const id, n = "0b4a1c52-6a53-4f1e-9d2b-6f1d3c7e0a10", 10_000
	done := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := store.SaveSummary(ctx, shared.TaskState{TaskID: id, Kind: "send-bulk", Status: shared.StatusSuccess,
		Result: shared.TaskResult{Sent: n, Total: n, Errors: []shared.RecipientError{}}, CreatedAt: done, CompletedAt: &done}, time.Hour); err != nil {
		t.Fatal(err)
	}
	wamid := func(i int) string { return redisstore.MetaLikeWAMID(fmt.Sprintf("57320%07d", i), uint64(i)) }
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < n; i += 8 {
				if _, err := store.Record(ctx, id, i, redisstore.LedgerEntry{State: redisstore.LedgerSent, WAMID: wamid(i), Phone: fmt.Sprintf("57320%07d", i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// i%10 == 9 fails after it was sent; of the others, even ones are delivered and
	// multiples of 4 read too.
	want := map[int]string{}
	var items []map[string]any
	post := func() {
		body := statusesWebhook(items)
		for range 2 { // Meta's retry of the same delivery changes nothing
			if rec, out := do(t, h, http.MethodPost, "/webhook", body, map[string]string{"X-Hub-Signature-256": sign(body)}); rec.Code != http.StatusOK {
				t.Fatalf("POST /webhook = %d %v", rec.Code, out)
			}
		}
		items = items[:0]
	}
	var wantDelivered, wantRead, wantFailed int
	for i := range n {
		st := func(status string) map[string]any {
			m := map[string]any{"id": wamid(i), "status": status, "timestamp": strconv.Itoa(1_760_000_000 + i), "recipient_id": fmt.Sprintf("57320%07d", i),
				"biz_opaque_callback_data": id + ":" + strconv.Itoa(i)}
			if status == "failed" {
				m["errors"] = []any{map[string]any{"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message"}}
			}
			return m
		}
		items = append(items, st("sent"))
		want[i] = "sent"
		switch {
		case i%10 == 9:
			items = append(items, st("failed"))
			want[i] = "failed"
			wantFailed++
		case i%4 == 0:
			items = append(items, st("read"), st("delivered")) // read before delivered
			want[i] = "read"
			wantRead++
			wantDelivered++
		case i%2 == 0:
			items = append(items, st("delivered"))
			want[i] = "delivered"
			wantDelivered++
		}
		if len(items) >= 500 {
			post()
		}
	}
	post()

	rec, out := do(t, h, http.MethodGet, "/api/task-status/"+id, nil, nil)
	res, _ := out["result"].(map[string]any)
	if rec.Code != http.StatusOK || res["delivered"] != float64(wantDelivered) || res["read"] != float64(wantRead) ||
		res["failed_after_send"] != float64(wantFailed) || res["sent"] != float64(n-wantFailed) || res["failed"] != float64(wantFailed) || res["total"] != float64(n) {
		t.Errorf("task-status = %d %v; want delivered %d read %d failed_after_send %d", rec.Code, res, wantDelivered, wantRead, wantFailed)
	}
	if errs, _ := res["errors"].([]any); len(errs) != 100 {
		t.Errorf("errors lists %d failures after send, want the first 100", len(errs))
	}
	if out["task_id"] != id || out["status"] != "SUCCESS" || out["created_at"] != "2026-01-02T03:04:05Z" || out["completed_at"] != "2026-01-02T03:04:05Z" {
		t.Errorf("task-status lost the contract's fields: %v", out)
	}

	fc := &flushCounter{ResponseRecorder: httptest.NewRecorder()}
	h.ServeHTTP(fc, httptest.NewRequest(http.MethodGet, "/api/task-status/"+id+"/recipients?format=csv", nil))
	if fc.Code != http.StatusOK || !strings.HasPrefix(fc.Header().Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV answer %d %s", fc.Code, fc.Header().Get("Content-Type"))
	}
	recs, err := csv.NewReader(fc.Body).ReadAll()
	if err != nil || len(recs) != n+1 {
		t.Fatalf("CSV has %d records (%v), want %d and a header", len(recs), err, n+1)
	}
	for i, r := range recs[1:] {
		if r[0] != strconv.Itoa(i) || r[1] != fmt.Sprintf("57320%07d", i) || r[2] != wamid(i) || r[3] != want[i] {
			t.Fatalf("CSV row %d = %v; want status %s", i, r, want[i])
		}
		if want[i] == "failed" && (r[4] != "131047" || r[5] != "Re-engagement message" || r[9] == "") {
			t.Fatalf("CSV row %d = %v; want 131047 Re-engagement message with failed_at", i, r)
		}
	}
	// Streamed: a flush per chunk of 1,000 recipients, none holding much.
	if fc.flushes < n/csvChunk || fc.maxChunk > 200_000 {
		t.Errorf("CSV flushed %d times, largest chunk %d bytes; want >= %d flushes of bounded chunks", fc.flushes, fc.maxChunk, n/csvChunk)
	}

	// A filtered page reads past the rows it skips, and says where to go on.
	_, page := do(t, h, http.MethodGet, "/api/task-status/"+id+"/recipients?status=read&limit=10&cursor=100", nil, nil)
	rows, _ := page["recipients"].([]any)
	if len(rows) != 10 || rows[0].(map[string]any)["index"] != 100.0 || page["next_cursor"] != "137" {
		t.Errorf("status=read page from 100 = %v rows, next %v; want 10 rows from 100, next 137", len(rows), page["next_cursor"])
	}
}

// RELAY_STATUSES: each status becomes an event after its change's messages, narrowed
// like a message (the envelope and metadata kept, value.statuses holding it alone, no
// messages or contacts), with Meta's (wamid, status) dedupe key; off, none.
func TestSplitWebhookRelaysStatuses(t *testing.T) {
	body := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{
		"messaging_product":"whatsapp","metadata":{"phone_number_id":"P"},
		"contacts":[{"wa_id":"573000000001"}],
		"messages":[{"from":"573000000001","id":"wamid.IN","type":"text","text":{"body":"hola"}}],
		"statuses":[{"id":"wamid.A","status":"delivered","timestamp":"1","recipient_id":"573000000002"},
		            {"id":"wamid.A","status":"read","timestamp":"2","recipient_id":"573000000002"}]}}]}]}`)
	events, statuses, err := splitWebhookRelay(body, true)
	if err != nil || len(statuses) != 2 {
		t.Fatalf("split = %v statuses, %v", len(statuses), err)
	}
	if len(events) != 3 || events[0].ID != "wamid.IN" || events[1].ID != "status:wamid.A:delivered" || events[2].ID != "status:wamid.A:read" {
		t.Fatalf("events = %+v; want the message, then each status in order", events)
	}
	var ev struct {
		Object string `json:"object"`
		Entry  []struct {
			ID      string `json:"id"`
			Changes []struct {
				Value map[string]json.RawMessage `json:"value"`
			} `json:"changes"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(events[2].Event, &ev); err != nil || ev.Object != "whatsapp_business_account" || ev.Entry[0].ID != "W" {
		t.Fatalf("status event %s: %v", events[2].Event, err)
	}
	v := ev.Entry[0].Changes[0].Value
	var sts []map[string]any
	_ = json.Unmarshal(v["statuses"], &sts)
	if len(sts) != 1 || sts[0]["status"] != "read" || v["messages"] != nil || v["contacts"] != nil || v["metadata"] == nil {
		t.Errorf("status event value = %s; want this status alone, metadata kept, no messages or contacts", events[2].Event)
	}
	if events[2].From != "573000000002" {
		t.Errorf("status event from = %q, want the recipient", events[2].From)
	}
	if events, _, _ := splitWebhookRelay(body, false); len(events) != 1 {
		t.Errorf("without RELAY_STATUSES: %d events, want the message only", len(events))
	}
}
