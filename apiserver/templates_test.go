package apiserver

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/internal/testredis"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

const testWABA = "100000000000002"

// templateAPI is an API server over a sandbox with its template registry and a real
// Redis; its Temporal is unreachable, so a request that passes every check answers
// 503 at the start of its task, and a refusal before that proves the check ran first.
func templateAPI(t *testing.T, waba string) (http.Handler, *redisstore.Store, *atomic.Int64) {
	t.Helper()
	sb := sandbox.New(sandbox.Options{PhoneNumberID: "100000000000001", Token: "tok", BusinessAccountID: testWABA})
	var registryReads atomic.Int64
	meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/message_templates") {
			registryReads.Add(1)
		}
		sb.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(meta.Close)
	tc, err := client.NewLazyClient(client.Options{HostPort: deadAddr(t), Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	store := redisstore.New(testredis.New(t), "")
	api := New(Deps{
		Config:   shared.Config{BulkMaxWorkers: 10, WhatsAppMaxMPS: 80, WhatsAppBusinessAccountID: waba},
		Temporal: tc,
		Graph:    graphapi.New(graphapi.Config{BaseURL: meta.URL, Token: "tok", PhoneNumberID: "100000000000001"}),
		Store:    store,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	return api, store, &registryReads
}

func postTemplate(t *testing.T, api http.Handler, body string) (int, string) {
	t.Helper()
	rec, out := do(t, api, http.MethodPost, "/api/send-bulk-template", []byte(body), map[string]string{"Content-Type": "application/json"})
	if out["success"] != false {
		t.Fatalf("POST %s = %d %v, want the contract's error shape", body, rec.Code, out)
	}
	msg, _ := out["error"].(string)
	return rec.Code, msg
}

// A campaign that cannot succeed is refused before it starts, naming the template and
// the first offending recipient.
func TestBulkTemplatePreflight(t *testing.T) {
	api, _, reads := templateAPI(t, testWABA)
	tests := []struct {
		name, body string
		status     int
		want       []string
	}{
		{"unknown template", `{"template_name":"no_existe","recipients":[{"phone":"573123456789"}]}`,
			400, []string{"'no_existe'", "no existe"}},
		{"unknown language", `{"template_name":"pedido_listo","language":"en_US","recipients":[{"phone":"573123456789","parameters":{"nombre":"Ana","pedido":"1"}}]}`,
			400, []string{"'pedido_listo'", "'en_US'", "es"}},
		{"paused", `{"template_name":"oferta_pausada","parameters":["Ana","50%"],"recipients":[{"phone":"573123456789"}]}`,
			400, []string{"'oferta_pausada'", "PAUSED"}},
		{"count mismatch names the first offender", `{"template_name":"hello_world","parameters":["Juan","XYZ"],
			"recipients":[{"phone":"573123456789"},{"phone":"573987654321","parameters":["solo uno"]},{"phone":"573555666777","parameters":["x"]}]}`,
			400, []string{"'hello_world'", "recipients[1] (573987654321)", "espera 2", "da 1"}},
		{"named template given positional", `{"template_name":"pedido_listo","parameters":["Ana","1"],"recipients":[{"phone":"573123456789"}]}`,
			400, []string{"'pedido_listo'", "con nombre", "recipients[0]"}},
		{"named template, wrong name", `{"template_name":"pedido_listo","parameters":{"nombre":"Ana","orden":"1"},"recipients":[{"phone":"573123456789"}]}`,
			400, []string{"'orden'", "nombre, pedido"}},
		{"media header missing", `{"template_name":"promo_imagen","parameters":["Ana","50%"],"recipients":[{"phone":"573123456789"}]}`,
			400, []string{"'promo_imagen'", "encabezado image"}},
		{"URL suffix missing", `{"template_name":"promo_descuento","parameters":["Ana","50%"],"recipients":[{"phone":"573123456789"}]}`,
			400, []string{"'promo_descuento'", "button_url_suffix"}},
		{"bad phone before the registry", `{"template_name":"hello_world","parameters":["a","b"],"recipients":[{"phone":"12"}]}`,
			400, []string{"recipients[0].phone"}},
		{"parameters of the wrong shape", `{"template_name":"hello_world","parameters":"Juan","recipients":[{"phone":"573123456789"}]}`,
			400, []string{"'parameters' debe ser una lista"}},
		{"no recipients", `{"template_name":"hello_world","parameters":["a","b"]}`, 400, []string{"'recipients'"}},
		{"both lists", `{"template_name":"hello_world","parameters":["a","b"],"recipients":[{"phone":"573123456789"}],"from_cache":{"filter":{}}}`,
			400, []string{"no ambos"}},
		{"no template", `{"recipients":[{"phone":"573123456789"}]}`, 400, []string{"template_name"}},
		// Every check passes: the task cannot start because Temporal is down.
		{"valid campaign", `{"template_name":"promo_descuento","parameters":["Ana","50%"],"button_url_suffix":"ana",
			"recipients":[{"phone":"573123456789"},{"phone":"573987654321","parameters":["María","30%"],"button_url_suffix":"maria"}]}`,
			503, []string{"Temporal no está disponible"}},
		{"valid named campaign with a document header", `{"template_name":"factura","header_type":"document","header_content":"https://cdn.example.com/f.pdf",
			"recipients":[{"phone":"573123456789","parameters":{"nombre":"Ana"}}]}`, 503, []string{"Temporal no está disponible"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, msg := postTemplate(t, api, tt.body)
			if status != tt.status {
				t.Errorf("status = %d (%s), want %d", status, msg, tt.status)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
		})
	}

	// The registry is read once per template for minutes, not once per request.
	before := reads.Load()
	for range 3 {
		postTemplate(t, api, `{"template_name":"hello_world","parameters":["a"],"recipients":[{"phone":"573123456789"}]}`)
	}
	if got := reads.Load() - before; got != 0 {
		t.Errorf("three campaigns of a template already read made %d registry reads, want 0 (cached)", got)
	}
}

// Recipients from the numbers cache: filtered by data fields, parameters filled from
// each record; no match, or a record that leaves a parameter empty, is a 400.
func TestBulkTemplateFromCache(t *testing.T) {
	api, store, _ := templateAPI(t, testWABA)
	ctx := context.Background()
	now := time.Now()
	for _, n := range []shared.Number{
		{Phone: "573123456789", Name: "Juan Pérez", Data: json.RawMessage(`{"company":"Empresa XYZ"}`)},
		{Phone: "573987654321", Name: "María", Data: json.RawMessage(`{"company":"Empresa XYZ","department":"Ventas"}`)},
		{Phone: "573555666777", Name: "Otro", Data: json.RawMessage(`{"company":"ABC"}`)},
	} {
		if _, err := store.PutNumber(ctx, n, now); err != nil {
			t.Fatal(err)
		}
	}
	status, msg := postTemplate(t, api, `{"template_name":"hello_world","parameters":["{{name}}","{{data.company}}"],"from_cache":{"filter":{"company":"Nadie"}}}`)
	if status != 400 || !strings.Contains(msg, "Ningún número del caché") {
		t.Errorf("no match = %d %q, want 400", status, msg)
	}
	status, msg = postTemplate(t, api, `{"template_name":"hello_world","parameters":["{{name}}","{{data.department}}"],"from_cache":{"filter":{"company":"Empresa XYZ"}}}`)
	if status != 400 || !strings.Contains(msg, "from_cache[573123456789].parameters[1]") {
		t.Errorf("a record without the field = %d %q, want 400 naming from_cache[573123456789].parameters[1]", status, msg)
	}
	status, msg = postTemplate(t, api, `{"template_name":"hello_world","parameters":["{{name}}"],"from_cache":{"filter":{}}}`)
	if status != 400 || !strings.Contains(msg, "el número 573123456789 del caché") {
		t.Errorf("count mismatch from the cache = %d %q, want 400 naming the cached number", status, msg)
	}
	status, msg = postTemplate(t, api, `{"template_name":"hello_world","parameters":["{{name}}","{{data.company}}"],"from_cache":{"filter":{"company":"Empresa XYZ"}}}`)
	if status != 503 {
		t.Errorf("valid cache campaign = %d %q, want it to reach the task start (503 with Temporal down)", status, msg)
	}
}

// Without WHATSAPP_BUSINESS_ACCOUNT_ID nothing is read from Meta's registry: a
// mismatch reaches the task (and Meta refuses each send then).
func TestBulkTemplateWithoutRegistry(t *testing.T) {
	api, _, _ := templateAPI(t, "")
	status, msg := postTemplate(t, api, `{"template_name":"no_existe","parameters":["a"],"recipients":[{"phone":"573123456789"}]}`)
	if status != 503 || !strings.Contains(msg, "Temporal") {
		t.Errorf("without a WABA = %d %q, want the task start to be reached", status, msg)
	}
}

// The registry being unreachable is Meta's fault, not the client's: 503.
func TestBulkTemplateRegistryDown(t *testing.T) {
	tc, err := client.NewLazyClient(client.Options{HostPort: deadAddr(t), Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	api := New(Deps{
		Config:   shared.Config{BulkMaxWorkers: 10, WhatsAppMaxMPS: 80, WhatsAppBusinessAccountID: testWABA},
		Temporal: tc,
		Graph:    graphapi.New(graphapi.Config{BaseURL: "http://" + deadAddr(t), Token: "tok", PhoneNumberID: "100000000000001"}),
		Store:    redisstore.New(testredis.New(t), ""),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	status, msg := postTemplate(t, api, `{"template_name":"hello_world","parameters":["a","b"],"recipients":[{"phone":"573123456789"}]}`)
	if status != 503 || !strings.Contains(msg, "registro de plantillas") {
		t.Errorf("registry down = %d %q, want 503", status, msg)
	}
}
