package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/wagate/wagate/graphapi"
)

// scrape serves the registry over HTTP, as the binaries do, and parses one scrape.
func scrape(t *testing.T) Scraped {
	t.Helper()
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)
	s, err := Scrape(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHTTPRequestsAreCountedByRouteAndStatus(t *testing.T) {
	labels := map[string]string{"method": "GET", "route": "/api/task-status/{task_id}", "status": "404"}
	before := scrape(t)
	HTTPRequest(http.MethodGet, "/api/task-status/{task_id}", 404, 30*time.Millisecond)
	HTTPRequest(http.MethodGet, "/api/task-status/{task_id}", 404, 10*time.Millisecond)
	HTTPRequest("BREW", "", 405, time.Millisecond)
	after := scrape(t)

	if d := after.Value("wagate_http_requests_total", labels) - before.Value("wagate_http_requests_total", labels); d != 2 {
		t.Errorf("wagate_http_requests_total%v grew by %v, want 2", labels, d)
	}
	route := map[string]string{"method": "GET", "route": "/api/task-status/{task_id}"}
	if d := after.Value("wagate_http_request_duration_seconds_count", route) - before.Value("wagate_http_request_duration_seconds_count", route); d != 2 {
		t.Errorf("latency histogram count grew by %v, want 2", d)
	}
	if d := after.Value("wagate_http_request_duration_seconds_sum", route) - before.Value("wagate_http_request_duration_seconds_sum", route); d < 0.039 || d > 0.041 {
		t.Errorf("latency histogram sum grew by %v, want 0.04", d)
	}
	// An unknown method and an unmatched route do not become label values of their own.
	other := map[string]string{"method": "other", "route": "unmatched", "status": "405"}
	if d := after.Value("wagate_http_requests_total", other) - before.Value("wagate_http_requests_total", other); d != 1 {
		t.Errorf("wagate_http_requests_total%v grew by %v, want 1", other, d)
	}
	if slices.Contains(after.LabelValues("wagate_http_requests_total", "method"), "BREW") {
		t.Error("a client's method token became a label value")
	}
}

func TestSendsAreCountedByOutcomeAndCode(t *testing.T) {
	n := ForNumber("100000000000099", 80)
	before := scrape(t)
	n.Send(0, nil)
	n.Send(0, nil)
	meta := &graphapi.Error{HTTPStatus: 400, Code: 131026, Type: "OAuthException", Message: "Message undeliverable"}
	n.Send(graphapi.Classify(meta), meta)
	n.Send(graphapi.ClassRetryable, errors.New("dial tcp: connection refused"))
	n.Send(graphapi.ClassRetryable, &graphapi.Error{HTTPStatus: 502, Message: "<html>Bad Gateway</html>"})
	n.Abandoned()
	n.Admitted(250 * time.Millisecond)
	n.RedisTrip(1500 * time.Microsecond)
	n.RedisTrip(500 * time.Microsecond)
	n.Rate(56)
	n.Cut()
	n.BreakerOpened()
	after := scrape(t)

	id := "100000000000099"
	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"phone_number_id": id, "outcome": "sent", "code": "none"}, 2},
		{map[string]string{"phone_number_id": id, "outcome": "permanent", "code": "131026"}, 1},
		{map[string]string{"phone_number_id": id, "outcome": "retryable", "code": "none"}, 1},
		{map[string]string{"phone_number_id": id, "outcome": "retryable", "code": "http_502"}, 1},
		{map[string]string{"phone_number_id": id, "outcome": "abandoned"}, 1},
	} {
		if d := after.Value("wagate_sends_total", c.labels) - before.Value("wagate_sends_total", c.labels); d != c.want {
			t.Errorf("wagate_sends_total%v grew by %v, want %v", c.labels, d, c.want)
		}
	}
	num := map[string]string{"phone_number_id": id}
	if got := after.Value("wagate_governor_rate_mps", num); got != 56 {
		t.Errorf("wagate_governor_rate_mps = %v, want 56", got)
	}
	if got := after.Value("wagate_governor_ceiling_mps", num); got != 80 {
		t.Errorf("wagate_governor_ceiling_mps = %v, want 80", got)
	}
	if d := after.Value("wagate_governor_wait_seconds_sum", num) - before.Value("wagate_governor_wait_seconds_sum", num); d != 0.25 {
		t.Errorf("governor wait sum grew by %v, want 0.25", d)
	}
	if d := after.Value("wagate_send_redis_round_trip_seconds_count", num) - before.Value("wagate_send_redis_round_trip_seconds_count", num); d != 2 {
		t.Errorf("Redis round trips counted %v, want 2", d)
	}
	if d := after.Value("wagate_send_redis_round_trip_seconds_sum", num) - before.Value("wagate_send_redis_round_trip_seconds_sum", num); d < 0.00199 || d > 0.00201 {
		t.Errorf("Redis round trip sum grew by %v, want 0.002", d)
	}
	if d := after.Value("wagate_governor_cuts_total", num) - before.Value("wagate_governor_cuts_total", num); d != 1 {
		t.Errorf("wagate_governor_cuts_total grew by %v, want 1", d)
	}
	if got := after.Value("wagate_breaker_open", num); got != 1 {
		t.Errorf("wagate_breaker_open = %v after an opening, want 1", got)
	}
	n.BreakerClosed()
	if got := scrape(t).Value("wagate_breaker_open", num); got != 0 {
		t.Errorf("wagate_breaker_open = %v after a closing, want 0", got)
	}
	if ForNumber(id, 80) != n {
		t.Error("ForNumber bound a second set of series for the same number")
	}
}

// The send path counts with label values bound once: no allocation per send.
func TestCountingASendDoesNotAllocate(t *testing.T) {
	n := ForNumber("100000000000098", 80)
	meta := &graphapi.Error{HTTPStatus: 400, Code: 130429, Type: "OAuthException", Message: "Rate limit hit"}
	n.Send(graphapi.ClassRateLimited, meta) // binds the failure's series
	if a := testing.AllocsPerRun(1000, func() {
		n.Send(0, nil)
		n.Admitted(time.Millisecond)
		n.RedisTrip(time.Millisecond)
		n.Rate(80)
		n.Breaker(false)
	}); a != 0 {
		t.Errorf("a sent message costs %v allocations, want 0", a)
	}
	// A failure costs errors.As's one allocation, no label binding.
	if a := testing.AllocsPerRun(1000, func() { n.Send(graphapi.ClassRateLimited, meta) }); a > 1 {
		t.Errorf("a failure of a known code costs %v allocations, want at most 1", a)
	}
	if a := testing.AllocsPerRun(1000, func() {
		HTTPRequest(http.MethodPost, "/api/send-message", 200, time.Millisecond)
	}); a != 0 {
		t.Errorf("an HTTP request costs %v allocations in its metrics, want 0", a)
	}
}

func TestFailureCodesAreBounded(t *testing.T) {
	n := ForNumber("100000000000097", 80)
	for code := range maxCodes + 20 {
		err := &graphapi.Error{HTTPStatus: 400, Code: 900000 + code, Type: "OAuthException"}
		n.Send(graphapi.ClassPermanent, err)
	}
	codes := map[string]bool{}
	s := scrape(t)
	for _, m := range s["wagate_sends_total"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "code" && hasLabels(m, map[string]string{"phone_number_id": "100000000000097"}) {
				codes[lp.GetValue()] = true
			}
		}
	}
	// maxCodes codes, "other", and "none" (sent, abandoned).
	if len(codes) > maxCodes+2 || !codes["other"] {
		t.Errorf("%d code label values (other: %v), want at most %d and the rest as other", len(codes), codes["other"], maxCodes+2)
	}
	n.mu.RLock()
	bound := len(n.failures)
	n.mu.RUnlock()
	if bound > maxCodes+1 {
		t.Errorf("%d failure series bound, want at most %d", bound, maxCodes+1)
	}
}

func TestInboundLogLengthIsReadAtScrapeTime(t *testing.T) {
	var n int64 = 7
	ServeInboundLogLength(func() (int64, error) { return n, nil })
	if got := scrape(t).Value("wagate_inbound_log_length", nil); got != 7 {
		t.Errorf("wagate_inbound_log_length = %v, want 7", got)
	}
	n = 3
	if got := scrape(t).Value("wagate_inbound_log_length", nil); got != 3 {
		t.Errorf("wagate_inbound_log_length = %v, want 3", got)
	}
	// Redis down: the scrape still answers, without that metric.
	ServeInboundLogLength(func() (int64, error) { return 0, errors.New("redis: connection refused") })
	s := scrape(t)
	if _, ok := s["wagate_inbound_log_length"]; ok {
		t.Error("wagate_inbound_log_length served while its read fails")
	}
	if _, ok := s["go_goroutines"]; !ok {
		t.Error("the scrape lost the other metrics when one read failed")
	}
}

func TestRelayLagIsObservedFromAcceptance(t *testing.T) {
	before := scrape(t)
	now := time.Now()
	Relayed(now.Add(-1500*time.Millisecond).UnixMilli(), now)
	Relayed(0, now) // stored before AcceptedAt existed: counted, no lag
	RelayDropped(2)
	after := scrape(t)
	if d := after.Value("wagate_relay_frames_total", map[string]string{"result": "relayed"}) - before.Value("wagate_relay_frames_total", map[string]string{"result": "relayed"}); d != 2 {
		t.Errorf("relayed grew by %v, want 2", d)
	}
	if d := after.Value("wagate_relay_frames_total", map[string]string{"result": "dropped"}) - before.Value("wagate_relay_frames_total", map[string]string{"result": "dropped"}); d != 2 {
		t.Errorf("dropped grew by %v, want 2", d)
	}
	if d := after.Value("wagate_relay_delivery_lag_seconds_count", nil) - before.Value("wagate_relay_delivery_lag_seconds_count", nil); d != 1 {
		t.Errorf("lag observations grew by %v, want 1", d)
	}
	if d := after.Value("wagate_relay_delivery_lag_seconds_sum", nil) - before.Value("wagate_relay_delivery_lag_seconds_sum", nil); d < 1.49 || d > 1.51 {
		t.Errorf("lag sum grew by %v, want 1.5", d)
	}
}

// The SDK tags one metric with different tag sets; every set is its own series of the
// same family, and the scrape stays valid.
func TestTemporalHandlerServesTheSDKsTaggedSeries(t *testing.T) {
	h := TemporalHandler().WithTags(map[string]string{"namespace": "default", "client_name": "temporal_go"})
	a := h.WithTags(map[string]string{"operation": "StartWorkflowExecution"})
	b := h.WithTags(map[string]string{"operation": "PollActivityTaskQueue", "task_queue": "wagate"})
	a.Counter("temporal_test_request").Inc(2)
	b.Counter("temporal_test_request").Inc(1)
	a.Counter("temporal_test_request").Inc(1) // the same series again
	b.Timer("temporal_test_latency").Record(300 * time.Millisecond)
	h.WithTags(map[string]string{"worker_type": "ActivityWorker"}).Gauge("temporal_test_slots").Update(12)
	h.WithTags(map[string]string{"bad-tag": "x"}).Counter("temporal.test.dots").Inc(1)

	s := scrape(t)
	if got := s.Value("temporal_test_request_total", map[string]string{"operation": "StartWorkflowExecution", "namespace": "default"}); got != 3 {
		t.Errorf("StartWorkflowExecution requests = %v, want 3", got)
	}
	if got := s.Value("temporal_test_request_total", map[string]string{"operation": "PollActivityTaskQueue", "task_queue": "wagate"}); got != 1 {
		t.Errorf("PollActivityTaskQueue requests = %v, want 1", got)
	}
	if got := s.Value("temporal_test_latency_seconds_sum", map[string]string{"task_queue": "wagate"}); got != 0.3 {
		t.Errorf("latency sum = %v, want 0.3", got)
	}
	if got := s.Value("temporal_test_slots", map[string]string{"worker_type": "ActivityWorker"}); got != 12 {
		t.Errorf("slots gauge = %v, want 12", got)
	}
	if got := s.Value("temporal_test_dots_total", map[string]string{"bad_tag": "x"}); got != 1 {
		t.Errorf("sanitized series = %v, want 1", got)
	}
}

// BenchmarkSendPathMetrics is what the send path adds per sent message: the governor
// wait, the rate, the breaker state and the count.
func BenchmarkSendPathMetrics(b *testing.B) {
	n := ForNumber("100000000000096", 80)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.RedisTrip(2 * time.Millisecond)
			n.Admitted(3 * time.Millisecond)
			n.Rate(80)
			n.Breaker(false)
			n.Send(0, nil)
		}
	})
}
