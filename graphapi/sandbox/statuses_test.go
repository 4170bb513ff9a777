package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The status plan: a share of messages fail after sent with Meta's failed-status shape
// and one of the plan's codes, a share of the rest is read, every fate as Fate predicts,
// and the plan changes at run time through PUT /_sandbox/statuses.
func TestStatusPlanFatesAndShape(t *testing.T) {
	const secret = "app-secret"
	rec := &hookRecorder{secret: secret, byID: make(map[string][]string)}
	hook := httptest.NewServer(rec)
	defer hook.Close()
	read := 0.5
	plan := StatusPlan{SentDelay: 5 * time.Millisecond, DeliveredDelay: 20 * time.Millisecond, ReadDelay: 40 * time.Millisecond,
		Failed: 0.3, FailedCodes: []int{CodeEcosystem, CodeExperiment}, Read: &read, Seed: 7}
	s, ts := start(t, Options{Token: testToken, PhoneNumberID: testPNID, WebhookURL: hook.URL, AppSecret: secret, Statuses: plan})

	const n = 60
	want := map[string]string{} // wamid -> expected statuses
	wantCount := 0
	for i := range n {
		to := fmt.Sprintf("57310%07d", i)
		got := wantSuccess(t, send(t, ts, textMsg(to, "x")))
		p := s.StatusPlan()
		fate, _ := p.Fate(to)
		seq := map[string]string{"read": "sent,delivered,read", "delivered": "sent,delivered", "failed": "sent,failed"}[fate]
		want[got.Messages[0].ID] = seq
		wantCount += strings.Count(seq, ",") + 1
	}
	deadline := time.Now().Add(10 * time.Second)
	for rec.count() < wantCount && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	rec.mu.Lock()
	fates := map[string]int{}
	for id, seq := range want {
		if got := strings.Join(rec.byID[id], ","); got != seq {
			t.Errorf("statuses of %s: got %s, want %s", id, got, seq)
		}
		fates[seq]++
	}
	for _, st := range rec.seen {
		if st["status"] != "failed" {
			if _, ok := st["errors"]; ok {
				t.Errorf("%s status carries errors", st["status"])
			}
			continue
		}
		errs, _ := st["errors"].([]any)
		e, _ := errs[0].(map[string]any)
		code, _ := e["code"].(float64)
		data, _ := e["error_data"].(map[string]any)
		if len(errs) != 1 || (code != CodeEcosystem && code != CodeExperiment) || e["title"] == "" || e["message"] == "" || data["details"] == "" {
			t.Errorf("failed status errors = %v, want Meta's shape with 131049 or 130472", st["errors"])
		}
	}
	rec.mu.Unlock()
	if fates["sent,failed"] == 0 || fates["sent,delivered"] == 0 || fates["sent,delivered,read"] == 0 {
		t.Errorf("fates = %v, want all three with failed 0.3 and read 0.5 over %d", fates, n)
	}
	_, posted := s.Posted("")
	if posted.ByStatus["failed"] != int64(fates["sent,failed"]) || posted.ByStatus["sent"] != n {
		t.Errorf("posted = %+v, want sent %d failed %d", posted, n, fates["sent,failed"])
	}

	// At run time: nobody fails, nobody reads.
	resp, err := http.DefaultClient.Do(mustReq(t, http.MethodPut, ts.URL+"/_sandbox/statuses", `{"failed": 0, "read": 0, "delivered_delay": "1ms"}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /_sandbox/statuses: %v %v", resp, err)
	}
	var out struct {
		Plan map[string]any `json:"plan"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if out.Plan["failed"] != 0.0 || out.Plan["read"] != 0.0 || out.Plan["delivered_delay"] != "1ms" || out.Plan["sent_delay"] != "5ms" {
		t.Errorf("plan after PUT = %v", out.Plan)
	}
	got := wantSuccess(t, send(t, ts, textMsg("573999999999", "y")))
	deadline = time.Now().Add(5 * time.Second)
	for len(rec.statuses(got.Messages[0].ID)) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if st := strings.Join(rec.statuses(got.Messages[0].ID), ","); st != "sent,delivered" {
		t.Errorf("statuses after the PUT = %s, want sent,delivered", st)
	}
	if resp, err := http.DefaultClient.Do(mustReq(t, http.MethodPut, ts.URL+"/_sandbox/statuses", `{"failed": 2}`)); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("PUT of a share of 2 = %v %v, want 400", resp, err)
	}
}

func (h *hookRecorder) statuses(id string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.byID[id]...)
}

func mustReq(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}
