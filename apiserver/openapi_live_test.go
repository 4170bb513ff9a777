package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

// TestOpenAPIFitsLiveAnswers holds the document to what the handlers of delivery
// tracking, task control, task listing, send_at, Idempotency-Key, /api/status and
// /metrics really answer (a real Redis; Temporal unreachable, so only the answers that
// need no workflow): each answer's status must be documented for its operation and its
// body must fit that response's schema.
func TestOpenAPIFitsLiveAnswers(t *testing.T) {
	c := checker(t)
	ctx := context.Background()
	h, store := inboundServer(t, shared.Config{WhatsAppAppSecret: testAppSecret})

	// A finished task of three recipients: read, delivered, and failed after Meta
	// accepted it.
	const id = "12345678-1234-1234-1234-123456789abc"
	phones := []string{"573123456789", "573987654321", "573555555555"}
	done := time.Date(2025, 1, 16, 10, 30, 4, 0, time.UTC)
	created := done.Add(-4 * time.Second)
	if err := store.SaveSummary(ctx, shared.TaskState{TaskID: id, Kind: "send-bulk", Status: shared.StatusSuccess,
		Result:    shared.TaskResult{Sent: 3, Total: 3, Errors: []shared.RecipientError{}},
		CreatedAt: created, CompletedAt: &done}, time.Hour); err != nil {
		t.Fatal(err)
	}
	wamids := make([]string, len(phones))
	var items []map[string]any
	status := func(i int, st string) {
		m := map[string]any{"id": wamids[i], "status": st, "timestamp": strconv.Itoa(int(created.Unix()) + len(items)),
			"recipient_id": phones[i], "biz_opaque_callback_data": id + ":" + strconv.Itoa(i)}
		if st == "failed" {
			m["errors"] = []any{map[string]any{"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message"}}
		}
		items = append(items, m)
	}
	for i, p := range phones {
		wamids[i] = redisstore.MetaLikeWAMID(p, uint64(i+1))
		if _, err := store.Record(ctx, id, i, redisstore.LedgerEntry{State: redisstore.LedgerSent, WAMID: wamids[i], Phone: p}); err != nil {
			t.Fatal(err)
		}
		status(i, "sent")
	}
	status(0, "delivered")
	status(0, "read")
	status(1, "delivered")
	status(2, "failed")
	body := statusesWebhook(items)
	if rec, out := do(t, h, http.MethodPost, "/webhook", body, map[string]string{"X-Hub-Signature-256": sign(body)}); rec.Code != http.StatusOK {
		t.Fatalf("POST /webhook = %d %v", rec.Code, out)
	}

	long := strings.Repeat("x", 300)
	cases := []struct {
		method, target string
		body           string
		header         map[string]string
		want           int
		contains       string // a piece of the answer that must be there
	}{
		{"GET", "/api/task-status/" + id, "", nil, 200, `"failed_after_send":1`},
		{"GET", "/api/task-status/" + id + "/recipients", "", nil, 200, `"status":"all"`},
		{"GET", "/api/task-status/" + id + "/recipients?status=failed&limit=1", "", nil, 200, `"error_code":131047`},
		{"GET", "/api/task-status/" + id + "/recipients?limit=1", "", nil, 200, `"next_cursor":"1"`},
		{"GET", "/api/task-status/" + id + "/recipients?format=csv", "", nil, 200, "index,phone,wamid,status,error_code,error,sent_at,delivered_at,read_at,failed_at\n"},
		{"GET", "/api/task-status/" + id + "/recipients?status=entregado", "", nil, 400, "status inválido: entregado (pending, sent, delivered, read o failed)"},
		{"GET", "/api/task-status/" + id + "/recipients?limit=5000", "", nil, 400, "limit inválido: 5000 (1 a 1000)"},
		{"GET", "/api/task-status/0b4a1c52-6a53-4f1e-9d2b-6f1d3c7e0a10/recipients", "", nil, 503, ""}, // unknown to Redis; Temporal unreachable
		{"GET", "/api/messages/" + wamids[0], "", nil, 200, `"timeline":[{"status":"sent"`},
		{"GET", "/api/messages/" + wamids[2], "", nil, 200, `"error":{"code":131047,"title":"Re-engagement message"}`},
		{"GET", "/api/messages/wamid.desconocido", "", nil, 404, "Mensaje no encontrado: wamid.desconocido"},
		{"GET", "/api/messages/" + long, "", nil, 400, "wamid inválido"},
		{"POST", "/api/task-cancel/" + id, "", nil, 409, "La tarea " + id + " ya terminó (SUCCESS)"},
		{"DELETE", "/api/task-status/" + id, "", nil, 409, "ya terminó (SUCCESS)"},
		{"POST", "/api/task-pause/" + id, "", nil, 409, "ya terminó (SUCCESS)"},
		{"POST", "/api/task-resume/" + id, "", nil, 409, "ya terminó (SUCCESS)"},
		{"POST", "/api/task-pause/no-es-un-uuid", "", nil, 404, "Tarea no encontrada"},
		{"GET", "/api/tasks?status=DONE", "", nil, 400, `status inválido (\"DONE\"): PENDING, STARTED, PAUSED, SUCCESS, FAILURE o REVOKED`},
		{"GET", "/api/tasks?created_from=ayer", "", nil, 400, `created_from inválido (\"ayer\")`},
		{"GET", "/api/tasks?limit=0", "", nil, 400, "limit inválido"},
		{"GET", "/api/tasks?page_token=%25", "", nil, 400, "page_token inválido"},
		{"POST", "/api/send-bulk", `{"recipients":[{"phone":"573123456789","message":"Buenos días"}],"send_at":"2025-03-01T08:00:00-05:00"}`, nil, 400,
			`send_at (\"2025-03-01T08:00:00-05:00\") está a más de 35 días`},
		{"POST", "/api/send-bulk", `{"recipients":[{"phone":"573123456789","message":"Hola"}],"send_at":"2025-01-17T08:00:00-05:00","use_queue":false}`, nil, 400,
			"send_at requiere use_queue: true"},
		{"POST", "/api/send-bulk", `{"recipients":[{"phone":"573123456789","message":"Hola"}],"send_at":"mañana"}`, nil, 400, "send_at inválido"},
		{"POST", "/api/send-message", `{"phone":"573123456789","message":"Hola"}`, map[string]string{"Idempotency-Key": "clave-ñ"}, 400,
			"Idempotency-Key inválida: de 1 a 255 caracteres ASCII visibles"},
		{"GET", "/api/status", "", nil, 503, `"recipients_recorded":3`},
		{"GET", "/metrics", "", nil, 200, "# TYPE "},
	}
	for _, tc := range cases {
		name := tc.method + " " + tc.target
		if len(name) > 120 {
			name = name[:120] + "…"
		}
		req := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
		if tc.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.contains) {
			t.Errorf("%s = %d %s; want %d with %q", name, rec.Code, cut(rec.Body.String()), tc.want, tc.contains)
		}
		if ct := rec.Header().Get("Content-Type"); tc.target == "/metrics" && !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
			t.Errorf("GET /metrics answers %q, want Prometheus's text format as documented", ct)
		}
		vreq := httptest.NewRequest(tc.method, tc.target, nil)
		if errs := c.Response(vreq, rec.Result()); len(errs) > 0 {
			t.Errorf("%s = %d (%s) does not fit the document:\n\t%s\n%s", name, rec.Code, rec.Header().Get("Content-Type"),
				strings.Join(errs, "\n\t"), cut(rec.Body.String()))
		}
	}
}

func cut(s string) string {
	if len(s) > 600 {
		return fmt.Sprintf("%s… (%d bytes)", s[:600], len(s))
	}
	return s
}
