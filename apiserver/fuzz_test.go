package apiserver

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"go.temporal.io/sdk/client"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/internal/testredis"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

// seedWebhook is the seed document's webhook example on one line.
const seedWebhook = `{"object":"whatsapp_business_account","entry":[{"id":"ENTRY_ID","changes":[{"value":{` +
	`"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550559999","phone_number_id":"PHONE_NUMBER_ID"},` +
	`"contacts":[{"profile":{"name":"Juan Pérez"},"wa_id":"573123456789"}],` +
	`"messages":[{"from":"573123456789","id":"wamid.ID","timestamp":"1705491000","text":{"body":"Hola mundo"},"type":"text"}]},"field":"messages"}]}]}`

const statusWebhook = `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp",` +
	`"metadata":{"phone_number_id":"1"},"statuses":[{"id":"wamid.X","status":"delivered","timestamp":"1705491001","recipient_id":"573123456789"}]},"field":"messages"}]}]}`

// The webhook splitter never panics, and what it keeps is valid JSON that names a
// message id.
func FuzzSplitWebhook(f *testing.F) {
	for _, seed := range []string{seedWebhook, statusWebhook, `{}`, `{"entry":[{"changes":[{"value":{"messages":[{}]}}]}]}`, `[]`, `null`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		events, statuses, err := splitWebhook(body)
		if err != nil {
			if shared.HTTPStatus(err) != http.StatusBadRequest {
				t.Fatalf("splitWebhook error %v is %d, want a 400", err, shared.HTTPStatus(err))
			}
			return
		}
		for _, ev := range events {
			if !json.Valid(ev.Event) {
				t.Fatalf("event is not JSON: %s", ev.Event)
			}
			if ev.ID == "" {
				t.Fatalf("event without a message id from %s", body)
			}
		}
		for _, st := range statuses {
			if st.ID == "" {
				t.Fatalf("status without a wamid from %s", body)
			}
		}
	})
}

// The signature check accepts exactly Meta's signature of the body and nothing else.
func FuzzValidSignature(f *testing.F) {
	f.Add("s3cret", []byte(seedWebhook), "")
	f.Add("s3cret", []byte(seedWebhook), "sha256=00")
	f.Add("", []byte("{}"), "sha256=")
	f.Fuzz(func(t *testing.T, secret string, body []byte, header string) {
		right := sandbox.Sign([]byte(secret), body)
		if !validSignature(secret, body, right) {
			t.Fatalf("Meta's own signature %q of %q refused", right, body)
		}
		if validSignature(secret, body, header) && !strings.EqualFold(header, right) {
			t.Fatalf("signature %q accepted for %q, want only %q", header, body, right)
		}
	})
}

// endpoints are the POST routes whose bodies the fuzzer tries, with a contract example
// each as seed.
var endpoints = []struct{ path, seed string }{
	{"/api/send-message", `{"phone":"573123456789","message":"Hola, este es un mensaje de prueba","use_queue":false}`},
	{"/api/send-template", `{"phone":"573123456789","template_name":"hello_world","language":"es","parameters":["Juan","Empresa XYZ"],"use_queue":false}`},
	{"/api/send-interactive", `{"phone":"573123456789","header_type":"text","header_content":"¡Oferta Especial!","body_text":"Aprovecha nuestra oferta del 50% en todos los productos","button_text":"Ver Oferta","button_url":"https://mi-tienda.com/ofertas","footer_text":"Válido hasta el 31 de diciembre","use_queue":false}`},
	{"/api/send-list", `{"phone":"573123456789","header_text":"Servicios disponibles","body_text":"Selecciona el servicio que necesitas:","footer_text":"ECOES - Atención al cliente","button_text":"Ver servicios","sections":[{"title":"Servicios técnicos","rows":[{"id":"soporte_tecnico","title":"Soporte técnico","description":"Ayuda con problemas técnicos"},{"id":"mantenimiento","title":"Mantenimiento","description":"Solicitar mantenimiento preventivo"}]}]}`},
	{"/api/send-bulk", `{"recipients":[{"phone":"573123456789","message":"Hola Juan, este es tu mensaje personalizado"},{"phone":"573987654321","message":"Hola María"}],"use_queue":true}`},
	{"/api/send-bulk-list", `{"header_text":"Selecciona una opción","footer_text":"Powered by WhatsApp","button_text":"Ver opciones","sections":[{"title":"Servicios","rows":[{"id":"1","title":"Consulta","description":"Información general"}]}],"recipients":[{"phone":"573123456789","body_text":"¿Qué te interesa, Juan?"}],"use_queue":true}`},
	{"/api/send-bulk-interactive", `{"recipients":[{"phone":"573123456789","header_type":"text","header_content":"Hola Juan","body_text":"Tu pedido está listo para recoger","button_text":"Ver Pedido","button_url":"https://mi-tienda.com/pedido/123"}],"use_queue":true}`},
	{"/api/send-broadcast-interactive", `{"phones":["573123456789","573987654321"],"header_type":"text","header_content":"Notificación Important","body_text":"Nueva actualización disponible","button_text":"Actualizar Ahora","button_url":"https://mi-app.com/update","footer_text":"Equipo de Desarrollo","use_queue":true}`},
	{"/api/send-personalized-broadcast", `{"recipients":[{"phone":"573103391854","body_text":"Hola Juan, tu pedido #12345 está listo para recoger."}],"header_type":"image","header_content":"https://example.com/imagen.jpg","button_text":"Ver Pedido","button_url":"https://mi-tienda.com/mis-pedidos","footer_text":"Gracias por tu compra","use_queue":true}`},
	{"/api/send-bulk-template", `{"template_name":"hello_world","parameters":["Juan","Empresa XYZ"],"recipients":[{"phone":"573123456789"}]}`},
	{"/api/numbers", `{"phone":"573123456789","name":"Juan Pérez","data":{"email":"juan@example.com","company":"Empresa XYZ","department":"Ventas"}}`},
	{"/webhook", seedWebhook},
}

// registryCodes are Meta's refusals that depend on the account's template registry,
// which no payload check can know without reading it.
var registryCodes = []string{"(#132000)", "(#132001)", "(#132012)", "(#132015)", "(#132016)"}

// Every endpoint answers any body with a JSON answer in the contract's shape and never
// a 500; a direct send that passes wagate's checks is never refused by the Graph API
// sandbox (Meta's rules) for its payload.
func FuzzEndpoints(f *testing.F) {
	for i, e := range endpoints {
		f.Add(uint8(i), []byte(e.seed))
		f.Add(uint8(i), []byte(strings.Replace(e.seed, "573123456789", "+57 312", 1)))
		f.Add(uint8(i), []byte(strings.Replace(e.seed, `"use_queue":false`, `"use_queue":"no"`, 1)))
	}
	sb := sandbox.New(sandbox.Options{PhoneNumberID: "100000000000001", Token: "tok", BusinessAccountID: testWABA})
	meta := httptest.NewServer(sb.Handler())
	f.Cleanup(meta.Close)
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: quietLogger{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(tc.Close)
	api := New(Deps{
		Config:   shared.Config{BulkMaxWorkers: 10, WhatsAppMaxMPS: 100000, WhatsAppBusinessAccountID: testWABA},
		Temporal: tc,
		Graph:    graphapi.New(graphapi.Config{BaseURL: meta.URL, Token: "tok", PhoneNumberID: "100000000000001"}),
		Store:    redisstore.New(testredis.New(f), ""),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		e := endpoints[int(which)%len(endpoints)]
		req := httptest.NewRequest(http.MethodPost, e.path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("POST %s %q = %d %s", e.path, body, rec.Code, rec.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("POST %s %q answered non-JSON %q", e.path, body, rec.Body)
		}
		if rec.Code >= 400 {
			msg, _ := out["error"].(string)
			if out["success"] != false || msg == "" {
				t.Fatalf("POST %s %q = %d %v, want the contract's error shape", e.path, body, rec.Code, out)
			}
			if rec.Code == http.StatusBadRequest && strings.Contains(msg, ": (#") && !registryRefusal(msg) {
				t.Fatalf("POST %s %q passed wagate's checks but Meta refused it: %s", e.path, body, msg)
			}
		}
	})
}

func registryRefusal(msg string) bool {
	for _, c := range registryCodes {
		if strings.Contains(msg, c) {
			return true
		}
	}
	return false
}

// queryEndpoints are the endpoints whose input is the path and the query (task listing,
// the recipient listing and its CSV, a message's timeline, task control) and the
// Idempotency-Key header of the sending endpoints.
var queryEndpoints = []struct{ method, path, seed string }{
	{http.MethodGet, "/api/tasks", "status=SUCCESS&kind=send-bulk&created_from=2026-01-01T00:00:00Z&limit=20"},
	{http.MethodGet, "/api/task-status/4f1c2a3b-1d2e-4f5a-8b9c-0d1e2f3a4b5c/recipients", "status=read&limit=10&cursor=100"},
	{http.MethodGet, "/api/task-status/4f1c2a3b-1d2e-4f5a-8b9c-0d1e2f3a4b5c/recipients", "format=csv"},
	{http.MethodGet, "/api/messages/wamid.HBgLNTczMTIzNDU2Nzg5FQIAERgSQUJDREVGMTIzNDU2Nzg5MDEyAA==", ""},
	{http.MethodPost, "/api/task-cancel/4f1c2a3b-1d2e-4f5a-8b9c-0d1e2f3a4b5c", ""},
	{http.MethodPost, "/api/task-pause/4f1c2a3b-1d2e-4f5a-8b9c-0d1e2f3a4b5c", ""},
	{http.MethodPost, "/api/task-resume/4f1c2a3b-1d2e-4f5a-8b9c-0d1e2f3a4b5c", ""},
	{http.MethodDelete, "/api/task-status/4f1c2a3b-1d2e-4f5a-8b9c-0d1e2f3a4b5c", ""},
	{http.MethodPost, "/api/send-bulk", "idempotency-key"},
}

// Every query, path segment and Idempotency-Key answers JSON (or a CSV export) in the
// contract's shape, never a 500 and never a crash, with an error of bounded size.
func FuzzQueries(f *testing.F) {
	for i, e := range queryEndpoints {
		f.Add(uint8(i), e.seed, "campaña-2026-12-01")
		f.Add(uint8(i), strings.Repeat("status=x&", 50), strings.Repeat("ñ", 300))
		f.Add(uint8(i), "limit=-1&cursor=%ff&created_to=mañana", "\x00")
	}
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: quietLogger{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(tc.Close)
	sb := sandbox.New(sandbox.Options{PhoneNumberID: "100000000000001", Token: "tok"})
	meta := httptest.NewServer(sb.Handler())
	f.Cleanup(meta.Close)
	api := New(Deps{
		Config:   shared.Config{BulkMaxWorkers: 10, WhatsAppMaxMPS: 100000},
		Temporal: tc,
		Graph:    graphapi.New(graphapi.Config{BaseURL: meta.URL, Token: "tok", PhoneNumberID: "100000000000001"}),
		Store:    redisstore.New(testredis.New(f), ""),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	f.Fuzz(func(t *testing.T, which uint8, query, key string) {
		e := queryEndpoints[int(which)%len(queryEndpoints)]
		u := &url.URL{Path: e.path, RawQuery: query}
		var body io.Reader
		if e.method == http.MethodPost && e.path == "/api/send-bulk" {
			u.RawQuery = ""
			body = strings.NewReader(`{"recipients":[{"phone":"573123456789","message":"Hola"}],"use_queue":true}`)
		}
		req := httptest.NewRequest(e.method, "/", body)
		req.URL = u
		req.RequestURI = u.RequestURI()
		if key != "" && utf8.ValidString(key) && !strings.ContainsAny(key, "\r\n\x00") {
			req.Header.Set("Idempotency-Key", key)
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s = %d %s", e.method, u, rec.Code, rec.Body)
		}
		if strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv") && rec.Code == http.StatusOK {
			return
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %s answered non-JSON %q", e.method, u, rec.Body)
		}
		if rec.Code >= 400 {
			msg, _ := out["error"].(string)
			if out["success"] != false || msg == "" {
				t.Fatalf("%s %s = %d %v, want the contract's error shape", e.method, u, rec.Code, out)
			}
			if n := utf8.RuneCountInString(msg); n > 300 {
				t.Fatalf("%s %s: error of %d characters quotes unbounded input: %q", e.method, u, n, msg)
			}
		}
	})
}
