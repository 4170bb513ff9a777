package apiserver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.temporal.io/sdk/client"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/internal/metrics"
	"github.com/wagate/wagate/internal/testredis"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

// The API counts its requests by route pattern, its direct sends by outcome and code,
// the breaker they open, and its webhooks, and serves all of it at /metrics without the
// API key.
func TestMetricsCountRequestsSendsAndWebhooks(t *testing.T) {
	const pnid = "100000000000042"
	sb := sandbox.New(sandbox.Options{PhoneNumberID: pnid, Token: "tok"})
	meta := httptest.NewServer(sb.Handler())
	t.Cleanup(meta.Close)
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	store := redisstore.New(testredis.New(t), "")
	api := httptest.NewServer(New(Deps{
		Config:   shared.Config{BulkMaxWorkers: 10, WhatsAppMaxMPS: 80, APIKey: "clave", WhatsAppAppSecret: testAppSecret},
		Graph:    graphapi.New(graphapi.Config{BaseURL: meta.URL, Token: "tok", PhoneNumberID: pnid}),
		Temporal: tc, Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	t.Cleanup(api.Close)
	ctx := context.Background()
	scrape := func() metrics.Scraped {
		t.Helper()
		s, err := metrics.Scrape(ctx, api.URL+"/metrics") // no key: Prometheus sends none
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	call := func(method, path, body string, hdr map[string]string) int {
		t.Helper()
		req, _ := http.NewRequest(method, api.URL+path, strings.NewReader(body))
		req.Header.Set("X-API-Key", "clave")
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	before := scrape()

	call(http.MethodGet, "/api/health", "", nil)
	call(http.MethodGet, "/api/media/9876543210", "", nil)
	call(http.MethodGet, "/no/such/path", "", nil)
	if st := call(http.MethodPost, "/api/send-message", `{"phone":"573123456789","message":"hola"}`, nil); st != http.StatusOK {
		t.Fatalf("send-message = %d, want 200", st)
	}
	// Meta fails: the run of failures opens the number's breaker, and the send after it
	// is refused without a call to Meta (no send counted).
	sb.SetFaults(sandbox.Faults{ServerError: 1})
	for range redisstore.DefaultBreakerOptions.Threshold + 1 {
		if st := call(http.MethodPost, "/api/send-message", `{"phone":"573123456789","message":"hola"}`, nil); st != http.StatusServiceUnavailable {
			t.Fatalf("send-message during Meta's failure = %d, want 503", st)
		}
	}
	sb.SetFaults(sandbox.Faults{})
	body := contractWebhook
	for range 2 { // the second delivery is Meta's retry: a repeat
		if st := call(http.MethodPost, "/webhook", body, map[string]string{"X-Hub-Signature-256": sign([]byte(body))}); st != http.StatusOK {
			t.Fatalf("webhook = %d, want 200", st)
		}
	}
	after := scrape()

	threshold := float64(redisstore.DefaultBreakerOptions.Threshold)
	grew := func(name string, labels map[string]string) float64 {
		return after.Value(name, labels) - before.Value(name, labels)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"wagate_http_requests_total", map[string]string{"method": "GET", "route": "/api/health", "status": "200"}, 1},
		{"wagate_http_requests_total", map[string]string{"method": "GET", "route": "/api/media/{media_id}"}, 1},
		{"wagate_http_requests_total", map[string]string{"method": "GET", "route": "unmatched", "status": "404"}, 1},
		{"wagate_http_requests_total", map[string]string{"method": "POST", "route": "/api/send-message", "status": "200"}, 1},
		{"wagate_http_requests_total", map[string]string{"method": "POST", "route": "/api/send-message", "status": "503"}, threshold + 1},
		{"wagate_http_requests_total", map[string]string{"method": "POST", "route": "/webhook", "status": "200"}, 2},
		{"wagate_http_request_duration_seconds_count", map[string]string{"method": "POST", "route": "/api/send-message"}, threshold + 2},
		{"wagate_sends_total", map[string]string{"phone_number_id": pnid, "outcome": "sent"}, 1},
		{"wagate_sends_total", map[string]string{"phone_number_id": pnid, "outcome": "retryable", "code": "1"}, threshold},
		{"wagate_governor_wait_seconds_count", map[string]string{"phone_number_id": pnid}, threshold + 1},
		// Every send asked Redis once, the one refused by the open circuit too.
		{"wagate_send_redis_round_trip_seconds_count", map[string]string{"phone_number_id": pnid}, threshold + 2},
		{"wagate_breaker_transitions_total", map[string]string{"phone_number_id": pnid, "to": "open"}, 1},
		{"wagate_webhook_ack_seconds_count", nil, 2},
		{"wagate_inbound_events_total", map[string]string{"result": "accepted"}, 1},
		{"wagate_inbound_events_total", map[string]string{"result": "repeat"}, 1},
	} {
		if d := grew(c.name, c.labels); d != c.want {
			t.Errorf("%s%v grew by %v, want %v", c.name, c.labels, d, c.want)
		}
	}
	if got := after.Value("wagate_breaker_open", map[string]string{"phone_number_id": pnid}); got != 1 {
		t.Errorf("wagate_breaker_open = %v with the circuit open, want 1", got)
	}
	if got := after.Value("wagate_governor_rate_mps", map[string]string{"phone_number_id": pnid}); got != 80 {
		t.Errorf("wagate_governor_rate_mps = %v, want the ceiling 80", got)
	}
	// Read from Redis at scrape time: the webhook's one event waits for the forwarder.
	if got := after.Value("wagate_inbound_log_length", nil); got != 1 {
		t.Errorf("wagate_inbound_log_length = %v, want 1", got)
	}
	// Route patterns, never raw paths: the media id is no label value.
	for _, r := range after.LabelValues("wagate_http_requests_total", "route") {
		if strings.Contains(r, "9876543210") || strings.Contains(r, "/no/such") {
			t.Errorf("route label %q carries a raw path", r)
		}
	}
	// The API key still guards /api/*.
	req, _ := http.NewRequest(http.MethodGet, api.URL+"/api/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/api/status without the key = %d, want 401", resp.StatusCode)
	}
}
