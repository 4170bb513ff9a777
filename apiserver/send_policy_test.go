package apiserver

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/internal/testredis"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

// Direct sends go through the number's circuit breaker: a run of Meta failures opens
// it, then the client gets a 503 at once without a call to Meta, /api/status shows the
// circuit, and the first send after the probe spacing is the probe that closes it.
func TestDirectSendsShareTheCircuitBreaker(t *testing.T) {
	sb := sandbox.New(sandbox.Options{PhoneNumberID: "100000000000001", Token: "tok"})
	meta := httptest.NewServer(sb.Handler())
	t.Cleanup(meta.Close)
	api := New(Deps{
		Config: shared.Config{BulkMaxWorkers: 10, WhatsAppMaxMPS: 80},
		Graph:  graphapi.New(graphapi.Config{BaseURL: meta.URL, Token: "tok", PhoneNumberID: "100000000000001"}),
		Store:  redisstore.New(testredis.New(t), ""), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	hdr := map[string]string{"Content-Type": "application/json"}
	body := []byte(`{"phone":"573123456789","message":"hola"}`)

	sb.SetFaults(sandbox.Faults{ServerError: 1})
	for i := range redisstore.DefaultBreakerOptions.Threshold {
		rec, out := do(t, api, http.MethodPost, "/api/send-message", body, hdr)
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("send %d during the incident = %d %v, want 503", i, rec.Code, out)
		}
	}
	calls := sb.Stats().Rejected
	rec, out := do(t, api, http.MethodPost, "/api/send-message", body, hdr)
	if msg, _ := out["error"].(string); rec.Code != http.StatusServiceUnavailable || !strings.Contains(msg, "envíos en pausa") {
		t.Fatalf("send with the circuit open = %d %v, want 503 saying sends are paused", rec.Code, out)
	}
	if got := sb.Stats().Rejected; got != calls {
		t.Errorf("Meta got %d more calls with the circuit open, want none", got-calls)
	}
	_, st := do(t, api, http.MethodGet, "/api/status", nil, nil)
	send, _ := st["whatsapp_send"].(map[string]any)
	if send["circuit"] != "open" || send["waiting"] != "graph_api_unavailable" || send["since"] == nil {
		t.Errorf("/api/status whatsapp_send = %v, want the open circuit", send)
	}

	// Meta recovers; after the probe spacing the next send is the probe and succeeds.
	sb.SetFaults(sandbox.Faults{})
	time.Sleep(redisstore.DefaultBreakerOptions.ProbeSpacing + 100*time.Millisecond)
	rec, out = do(t, api, http.MethodPost, "/api/send-message", body, hdr)
	if rec.Code != http.StatusOK {
		t.Fatalf("send after recovery = %d %v, want 200", rec.Code, out)
	}
	_, st = do(t, api, http.MethodGet, "/api/status", nil, nil)
	send, _ = st["whatsapp_send"].(map[string]any)
	if send["circuit"] != "closed" || send["max_mps"] != float64(80) || send["rate_mps"] != float64(80) {
		t.Errorf("/api/status whatsapp_send = %v, want closed at 80 of 80 mps", send)
	}
}
