package apiserver

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.temporal.io/sdk/client"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/internal/testredis"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestSendsAnswer503WhenMetaOrTemporalIsDown(t *testing.T) {
	cfg := shared.Config{BulkMaxWorkers: 10, WhatsAppMaxMPS: 80}
	tc, err := client.NewLazyClient(client.Options{HostPort: deadAddr(t), Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	api := New(Deps{
		Config:   cfg,
		Temporal: tc,
		Graph:    graphapi.New(graphapi.Config{BaseURL: "http://" + deadAddr(t), Token: "t", PhoneNumberID: "100000000000001"}),
		Store:    redisstore.New(testredis.New(t), ""),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})

	cases := []struct{ path, body, want string }{
		// Meta cannot be reached: the direct send fails with a clear 503.
		{"/api/send-message", `{"phone":"573123456789","message":"hola"}`, "Error enviando mensaje: la API de WhatsApp no está disponible"},
		{"/api/send-list", `{"phone":"573123456789","header_text":"h","body_text":"b","footer_text":"f","button_text":"v",
			"sections":[{"title":"s","rows":[{"id":"1","title":"t"}]}]}`, "Error enviando mensaje de lista"},
		// Temporal cannot be reached: nothing can be queued.
		{"/api/send-message", `{"phone":"573123456789","message":"hola","use_queue":true}`, "Temporal no está disponible"},
		{"/api/send-bulk", `{"recipients":[{"phone":"573123456789","message":"hola"}]}`, "Temporal no está disponible"},
	}
	for _, c := range cases {
		rec, out := do(t, api, http.MethodPost, c.path, []byte(c.body), map[string]string{"Content-Type": "application/json"})
		msg, _ := out["error"].(string)
		if rec.Code != http.StatusServiceUnavailable || out["success"] != false || !strings.Contains(msg, c.want) {
			t.Errorf("POST %s = %d %v, want 503 mentioning %q", c.path, rec.Code, out, c.want)
		}
	}
}

func TestSendAnswersMetasErrors(t *testing.T) {
	sb := sandbox.New(sandbox.Options{PhoneNumberID: "100000000000001", Token: "right-token"})
	meta := httptest.NewServer(sb.Handler())
	t.Cleanup(meta.Close)
	sb.SetFaults(sandbox.Faults{PermanentTo: map[string]int{"573555666777": 131026}})
	store := redisstore.New(testredis.New(t), "")
	newAPI := func(token string) http.Handler {
		return New(Deps{
			Config: shared.Config{BulkMaxWorkers: 10, WhatsAppMaxMPS: 80},
			Graph:  graphapi.New(graphapi.Config{BaseURL: meta.URL, Token: token, PhoneNumberID: "100000000000001"}),
			Store:  store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
	}
	cases := []struct {
		name, token, phone string
		status             int
		want               string
	}{
		// Meta refuses the message: the client's request is at fault.
		{"undeliverable", "right-token", "573555666777", http.StatusBadRequest, "Error enviando mensaje: (#131026)"},
		// Meta refuses wagate's token: the gateway is at fault, not the request.
		{"bad token", "wrong-token", "573123456789", http.StatusServiceUnavailable, "Error enviando mensaje: Invalid OAuth access token"},
	}
	for _, c := range cases {
		body := `{"phone":"` + c.phone + `","message":"hola"}`
		rec, out := do(t, newAPI(c.token), http.MethodPost, "/api/send-message", []byte(body), nil)
		msg, _ := out["error"].(string)
		if rec.Code != c.status || out["success"] != false || !strings.HasPrefix(msg, c.want) {
			t.Errorf("%s: %d %v, want %d with an error starting %q", c.name, rec.Code, out, c.status, c.want)
		}
	}
}
