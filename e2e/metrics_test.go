package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/internal/metrics"
	"github.com/wagate/wagate/internal/wstest"
)

// The production binaries serve /metrics: the apiserver on its API port, the worker
// on METRICS_ADDR. Scraped during and after a bulk task against the sandbox (with
// permanent and retried failures), they count the sends by outcome and Meta code, the
// HTTP requests with their latency, the governor, the webhook and the relay, and the
// Temporal SDK's own metrics.
func TestMetricsOfTheBinariesDuringABulkTask(t *testing.T) {
	const mps = 200
	sink := wstest.New(t)
	s := NewStack(t, StackOptions{NoWorker: true, MPS: mps, SandboxLatency: 20 * time.Millisecond,
		WebSocketURL: sink.URL(), AppSecret: inboundSecret})
	metricsAddr := freeAddr(t)
	workerMetrics := "http://" + metricsAddr + "/metrics"
	s.StartBinary(t, "worker", "METRICS_ADDR="+metricsAddr)
	apiAddr := freeAddr(t)
	apiProc := s.StartBinary(t, "apiserver", "HTTP_ADDR="+apiAddr)
	base := "http://" + apiAddr
	waitHealthy(t, apiProc, base)
	api := &Stack{API: base}
	ctx := context.Background()
	scrape := func(url string) metrics.Scraped {
		t.Helper()
		m, err := metrics.Scrape(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	// 600 recipients at 200/s: three permanent failures (131026), two that fail once
	// with 131000 and then go out.
	const n = 600
	phone := func(i int) string { return fmt.Sprintf("5731%08d", i) }
	s.Sandbox.SetFaults(sandbox.Faults{
		PermanentTo: map[string]int{phone(10): 131026, phone(20): 131026, phone(30): 131026},
		FailFirst:   map[string]int{phone(40): 1, phone(50): 1},
	})
	id := queueBulk(t, api, n)

	// During the task: the worker has counted sends already.
	deadline := time.Now().Add(time.Minute)
	for s.Sandbox.Stats().Accepted < n/4 {
		if time.Now().After(deadline) {
			t.Fatalf("the sandbox accepted %d sends in a minute", s.Sandbox.Stats().Accepted)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mid := scrape(workerMetrics)
	if sent := mid.Value("wagate_sends_total", map[string]string{"outcome": "sent"}); sent <= 0 || sent >= n-3 {
		t.Errorf("mid-task the worker counted %v sent, want some and not all", sent)
	}

	// An inbound message through the binary's webhook, relayed by the worker.
	body := textWebhook("wamid.METRICS1", "573001112233", "hola")
	if code, out := postRaw(t, base+"/webhook", string(body), map[string]string{"X-Hub-Signature-256": signWebhook(body)}); code != http.StatusOK {
		t.Fatalf("POST /webhook = %d %v, want 200", code, out)
	}
	sink.WaitFrames(t, 1, 30*time.Second)

	task := api.WaitTask(t, id, 2*time.Minute)
	if res, _ := task["result"].(map[string]any); res["sent"] != float64(n-3) || res["failed"] != float64(3) {
		t.Fatalf("task = %v, want %d sent and 3 failed", task, n-3)
	}
	w := scrape(workerMetrics)
	a := scrape(base + "/metrics")

	// Sends, by outcome and Meta's code: exactly what the sandbox answered.
	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"phone_number_id": SandboxPhoneNumberID, "outcome": "sent", "code": "none"}, n - 3},
		{map[string]string{"phone_number_id": SandboxPhoneNumberID, "outcome": "permanent", "code": "131026"}, 3},
		{map[string]string{"phone_number_id": SandboxPhoneNumberID, "outcome": "retryable", "code": "131000"}, 2},
	} {
		if got := w.Value("wagate_sends_total", c.labels); got != c.want {
			t.Errorf("worker wagate_sends_total%v = %v, want %v", c.labels, got, c.want)
		}
	}
	// The governor: every send waited for a slot at the configured rate.
	num := map[string]string{"phone_number_id": SandboxPhoneNumberID}
	if got := w.Value("wagate_governor_wait_seconds_count", num); got < n+2 {
		t.Errorf("worker governor waits = %v, want at least one per send (%d)", got, n+2)
	}
	if got := w.Value("wagate_governor_wait_seconds_sum", num); got <= 0 {
		t.Errorf("worker governor wait sum = %v, want the pacing's waits", got)
	}
	if got := w.Value("wagate_governor_ceiling_mps", num); got != mps {
		t.Errorf("worker wagate_governor_ceiling_mps = %v, want %d", got, mps)
	}
	if got := w.Value("wagate_governor_rate_mps", num); got <= 0 || got > mps {
		t.Errorf("worker wagate_governor_rate_mps = %v, want in (0, %d]", got, mps)
	}
	if got := w.Value("wagate_breaker_open", num); got != 0 {
		t.Errorf("worker wagate_breaker_open = %v, want 0", got)
	}
	// The relay: the one event relayed, with its lag since the webhook accepted it.
	if got := w.Value("wagate_relay_frames_total", map[string]string{"result": "relayed"}); got != 1 {
		t.Errorf("worker relayed frames = %v, want 1", got)
	}
	if got := w.Value("wagate_relay_delivery_lag_seconds_count", nil); got != 1 {
		t.Errorf("worker relay lag observations = %v, want 1", got)
	}
	// The SDK's metrics, every one the dashboard uses.
	for _, name := range metrics.SDKNames {
		if _, ok := w[name]; !ok {
			t.Errorf("the worker does not serve the SDK metric %s", name)
		}
	}
	if got := w.Value("temporal_activity_execution_latency_seconds_count", nil); got <= 0 {
		t.Errorf("worker activity executions = %v, want the task's", got)
	}

	// The API: its requests by route and status with their latency, the webhook, and
	// its own Temporal client's requests. It made no send of its own.
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"wagate_http_requests_total", map[string]string{"method": "POST", "route": "/api/send-bulk", "status": "200"}},
		{"wagate_http_requests_total", map[string]string{"method": "GET", "route": "/api/task-status/{task_id}", "status": "200"}},
		{"wagate_http_request_duration_seconds_count", map[string]string{"method": "POST", "route": "/api/send-bulk"}},
		{"wagate_http_request_duration_seconds_sum", map[string]string{"method": "POST", "route": "/api/send-bulk"}},
		{"wagate_webhook_ack_seconds_count", nil},
		{"wagate_inbound_events_total", map[string]string{"result": "accepted"}},
		{"temporal_request_total", map[string]string{"operation": "StartWorkflowExecution"}},
		{"temporal_request_latency_seconds_count", nil},
	} {
		if got := a.Value(c.name, c.labels); got <= 0 {
			t.Errorf("apiserver %s%v = %v, want > 0", c.name, c.labels, got)
		}
	}
	if got := a.Value("wagate_sends_total", nil); got != 0 {
		t.Errorf("apiserver counted %v sends, want 0: the worker made them", got)
	}
	if _, ok := a["wagate_inbound_log_length"]; !ok {
		t.Error("apiserver does not serve wagate_inbound_log_length")
	}
}
