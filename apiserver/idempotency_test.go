package apiserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/testredis"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

// idemServer serves handler behind sendRequest on a real Redis.
func idemServer(t *testing.T, bulkEndpoint bool, handler http.HandlerFunc) (*Server, http.Handler) {
	s := newServer(Deps{Store: redisstore.New(testredis.New(t), ""),
		Now: func() time.Time { return time.Date(2025, 1, 16, 10, 30, 0, 0, time.UTC) }})
	return s, s.sendRequest(maxBulkBody, bulkEndpoint)(handler)
}

func post(h http.Handler, body, key string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/api/send-bulk", strings.NewReader(body))
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// The same key and body answers the stored answer without running the handler again,
// with the task id the key derives; another body is a 422; a failure is not kept.
func TestIdempotencyKeyReplaysRefusesAndReleases(t *testing.T) {
	var runs atomic.Int32
	var ids []string
	fail := false
	_, h := idemServer(t, true, func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		id := taskOptsOf(r.Context()).id
		ids = append(ids, id)
		if fail {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"success": false, "error": "caído"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "task_id": id})
	})
	first := post(h, `{"recipients":[]}`, "k1")
	again := post(h, `{"recipients":[]}`, "k1")
	if first.Code != 200 || again.Code != 200 || again.Body.String() != first.Body.String() || runs.Load() != 1 {
		t.Fatalf("first %d %s, again %d %s after %d runs", first.Code, first.Body, again.Code, again.Body, runs.Load())
	}
	if again.Header().Get("Idempotent-Replayed") != "true" || ids[0] == "" {
		t.Errorf("replayed header %q, derived id %q", again.Header().Get("Idempotent-Replayed"), ids[0])
	}
	if w := post(h, `{"recipients":[1]}`, "k1"); w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), `"success":false`) {
		t.Errorf("another body = %d %s, want 422", w.Code, w.Body)
	}
	fail = true
	if w := post(h, `{"x":1}`, "k2"); w.Code != 503 {
		t.Fatalf("failing handler = %d", w.Code)
	}
	fail = false
	if w := post(h, `{"x":1}`, "k2"); w.Code != 200 || runs.Load() != 3 {
		t.Errorf("retry after a failure = %d after %d runs, want the handler run again", w.Code, runs.Load())
	}
	if ids[1] != ids[2] || ids[1] == ids[0] {
		t.Errorf("derived ids %v: one per key", ids)
	}
	if w := post(h, `{}`, ""); w.Code != 200 || ids[3] != "" {
		t.Errorf("no key: %d, id %q; want a new task id", w.Code, ids[3])
	}
	for _, bad := range []string{strings.Repeat("a", 256), "clave\x01"} {
		if w := post(h, `{}`, bad); w.Code != 400 {
			t.Errorf("key %q = %d, want 400", bad, w.Code)
		}
	}
}

// A repeat while the first request is still being handled is a 409.
func TestIdempotencyKeyConflictsWhileAccepting(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	_, h := idemServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		writeJSON(w, 200, map[string]any{"success": true})
	})
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- post(h, `{"phone":"1"}`, "k") }()
	<-entered
	w := post(h, `{"phone":"1"}`, "k")
	close(release)
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), `"success":false`) {
		t.Errorf("repeat while accepting = %d %s, want 409", w.Code, w.Body)
	}
	if first := <-done; first.Code != 200 {
		t.Errorf("first = %d", first.Code)
	}
}

// send_at: RFC 3339 with an offset, at most 35 days ahead, queued; the past means now.
func TestParseSendAt(t *testing.T) {
	s, _ := idemServer(t, true, nil)
	for body, want := range map[string]string{
		`{"send_at":"2025-01-17T08:00:00-05:00"}`: "2025-01-17T13:00:00Z",
		`{"send_at":"2025-01-16T10:00:00Z"}`:      "",
		`{"send_at":null}`:                        "",
		`{}`:                                      "",
		`{"send_at":"2025-02-19T10:30:00Z"}`:      "2025-02-19T10:30:00Z",
		`{"send_at":"2025-01-17T08:00:00-05:00","use_queue":true}`: "2025-01-17T13:00:00Z",
	} {
		at, err := s.parseSendAt([]byte(body))
		got := ""
		if at != nil {
			got = at.Format(time.RFC3339)
		}
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", body, got, err, want)
		}
	}
	for _, body := range []string{
		`{"send_at":"2025-02-21T10:30:00Z"}`, `{"send_at":"mañana"}`, `{"send_at":"2025-01-17T08:00:00"}`,
		`{"send_at":12}`, `{"send_at":"2025-01-17T08:00:00Z","use_queue":false}`,
	} {
		if _, err := s.parseSendAt([]byte(body)); shared.KindOf(err) != shared.KindInvalid {
			t.Errorf("%s = %v, want a 400", body, err)
		}
	}
}

// The control body carries task-status's fields.
func TestControlBody(t *testing.T) {
	since := time.Date(2025, 1, 16, 10, 31, 0, 0, time.UTC)
	b, _ := json.Marshal(controlBody(shared.TaskState{TaskID: "t", Kind: "send-bulk", Status: shared.StatusPaused,
		Waiting: shared.WaitPausedByClient, WaitingSince: &since, Result: shared.TaskResult{Sent: 3, Total: 9}}, "Tarea en pausa"))
	for _, want := range []string{`"success":true`, `"status":"PAUSED"`, `"waiting":"paused_by_client"`, `"waiting_since":"2025-01-16T10:31:00Z"`, `"errors":[]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
}

// A start refused for unknown search attributes is recognised, and the next starts go
// without them until the namespace is asked again.
func TestSearchAttrsRefused(t *testing.T) {
	s, _ := idemServer(t, true, nil)
	s.attrs.ok = true
	if s.searchAttrsRefused(errors.New("Temporal is down")) || !s.attrs.ok {
		t.Error("an unrelated error counted as refused search attributes")
	}
	if !s.searchAttrsRefused(errors.New("Namespace default has no mapping defined for search attribute WagateCreatedAt")) {
		t.Error("the frontend's refusal was not recognised")
	}
	if s.attrs.ok || s.attrs.checked.IsZero() {
		t.Errorf("after a refusal: ok %v, checked %v; want not indexed until the next check", s.attrs.ok, s.attrs.checked)
	}
}
