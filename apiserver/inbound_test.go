package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/internal/testredis"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

const testAppSecret = "app-secret"

// inboundServer is the API over a real Redis and a Temporal client pointed at a port
// where nothing listens: everything that needs no Temporal works, the rest fails as
// it does when Temporal is down.
func inboundServer(t *testing.T, cfg shared.Config) (http.Handler, *redisstore.Store) {
	t.Helper()
	store := redisstore.New(testredis.New(t), "")
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	h := New(Deps{Config: cfg, Temporal: tc, Store: store,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    func() time.Time { return time.Date(2025, 1, 16, 10, 0, 0, 0, time.UTC) }})
	return h, store
}

type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}

// sign signs body as Meta (and the sandbox) does with the test app secret.
func sign(body []byte) string { return sandbox.Sign([]byte(testAppSecret), body) }

func do(t *testing.T, h http.Handler, method, target string, body []byte, header map[string]string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", method, target, rec.Body.String(), err)
		}
	}
	return rec, out
}

func TestWebhookVerify(t *testing.T) {
	tests := []struct {
		name     string
		token    string // WEBHOOK_VERIFY_TOKEN
		query    string
		wantCode int
		wantBody string
	}{
		{"contract curl", "hola", "hub.mode=subscribe&hub.verify_token=hola&hub.challenge=123456", 200, "123456"},
		{"wrong token", "hola", "hub.mode=subscribe&hub.verify_token=adios&hub.challenge=123456", 403, "Forbidden"},
		{"wrong mode", "hola", "hub.mode=unsubscribe&hub.verify_token=hola&hub.challenge=123456", 403, "Forbidden"},
		{"unset token never matches", "", "hub.mode=subscribe&hub.verify_token=&hub.challenge=123456", 403, "Forbidden"},
		{"missing token", "hola", "hub.mode=subscribe&hub.challenge=1", 403, "Forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New(Deps{Config: shared.Config{WebhookVerifyToken: tt.token}})
			rec, _ := do(t, h, http.MethodGet, "/webhook?"+tt.query, nil, nil)
			if rec.Code != tt.wantCode || rec.Body.String() != tt.wantBody {
				t.Errorf("GET /webhook?%s = %d %q; want %d %q", tt.query, rec.Code, rec.Body.String(), tt.wantCode, tt.wantBody)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type = %q; want text/plain", ct)
			}
		})
	}
}

const contractWebhook = `{
  "object": "whatsapp_business_account",
  "entry": [{"id": "ENTRY_ID", "changes": [{"value": {
    "messaging_product": "whatsapp",
    "metadata": {"display_phone_number": "15550559999", "phone_number_id": "PHONE_NUMBER_ID"},
    "contacts": [{"profile": {"name": "Juan P\u00e9rez"}, "wa_id": "573123456789"}],
    "messages": [{"from": "573123456789", "id": "wamid.ID", "timestamp": "1705491000", "text": {"body": "Hola mundo"}, "type": "text"}]
  }, "field": "messages"}]}]
}`

// countKeys counts the Redis keys matching pattern (tests only).
func countKeys(t *testing.T, store *redisstore.Store, pattern string) int {
	t.Helper()
	keys, err := store.Client().Keys(context.Background(), pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

func TestWebhookRejectsBeforeQueueing(t *testing.T) {
	body := []byte(contractWebhook)
	huge := append([]byte(`{"object":"whatsapp_business_account","pad":"`), bytes.Repeat([]byte("x"), maxWebhookBody)...)
	huge = append(huge, `"}`...)
	tests := []struct {
		name     string
		body     []byte
		sig      string
		wantCode int
	}{
		{"missing signature", body, "", 401},
		{"bad signature", body, sign([]byte(`{"other":1}`)), 401},
		{"signature without prefix", body, strings.TrimPrefix(sign(body), "sha256="), 401},
		{"signature not hex", body, "sha256=zz", 401},
		{"signature of the re-serialised body", body, sign(reserialise(t, body)), 401},
		{"malformed JSON", []byte(`{"object":`), sign([]byte(`{"object":`)), 400},
		{"not an object", []byte(`[1,2]`), sign([]byte(`[1,2]`)), 400},
		{"over 3 MB", huge, sign(huge), 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, store := inboundServer(t, shared.Config{WhatsAppAppSecret: testAppSecret})
			rec, out := do(t, h, http.MethodPost, "/webhook", tt.body, map[string]string{"X-Hub-Signature-256": tt.sig})
			if rec.Code != tt.wantCode {
				t.Errorf("status %d; want %d (body %s)", rec.Code, tt.wantCode, rec.Body.String())
			}
			if out["success"] != false || out["error"] == "" || out["error"] == nil {
				t.Errorf("body %v; want the error shape {success:false, error}", out)
			}
			if n := countKeys(t, store, "*"); n != 0 {
				t.Errorf("%d Redis keys written; want nothing stored or queued", n)
			}
		})
	}
}

func reserialise(t *testing.T, body []byte) []byte {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return b
}

func TestWebhookTemporalDownAnswers200AndLogsTheEventOnce(t *testing.T) {
	h, store := inboundServer(t, shared.Config{WhatsAppAppSecret: testAppSecret})
	body := []byte(contractWebhook)
	for i := range 2 { // Meta's retry of an acknowledged delivery is a repeat
		rec, out := do(t, h, http.MethodPost, "/webhook", body, map[string]string{"X-Hub-Signature-256": sign(body)})
		if rec.Code != http.StatusOK || out["success"] != true {
			t.Fatalf("delivery %d: %d %v; want 200: Redis holds the event, Temporal is not needed", i, rec.Code, out)
		}
	}
	ctx := context.Background()
	if n, err := store.InboundLogLen(ctx); err != nil || n != 1 {
		t.Fatalf("inbound log holds %d ids (%v); want the event once", n, err)
	}
	ids, err := store.NextForwardBatch(ctx, "t", time.Second, 10)
	if !errors.Is(err, redisstore.ErrLeaseLost) {
		t.Fatalf("NextForwardBatch without the lease = %v, %v; want ErrLeaseLost", ids, err)
	}
	if ok, err := store.AcquireForwarder(ctx, "t", time.Second); !ok || err != nil {
		t.Fatalf("AcquireForwarder = %v, %v", ok, err)
	}
	ids, err = store.NextForwardBatch(ctx, "t", time.Second, 10)
	if err != nil || len(ids) != 1 || ids[0] != "wamid.ID" {
		t.Fatalf("logged ids = %v, %v; want [wamid.ID]", ids, err)
	}
	if ev, err := store.GetInboundEvent(ctx, "wamid.ID"); err != nil || ev.From != "573123456789" {
		t.Errorf("stored event = %+v, %v; want the contract's message", ev, err)
	}
}

func TestWebhookStoresStatusesMonotonically(t *testing.T) {
	h, store := inboundServer(t, shared.Config{}) // no app secret: signatures not required
	deliver := func(status, ts string) {
		body := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{
			"messaging_product":"whatsapp","metadata":{"phone_number_id":"P"},
			"statuses":[{"id":"wamid.OUT","status":"` + status + `","timestamp":"` + ts + `","recipient_id":"573123456789",
			"biz_opaque_callback_data":"task-1:0"` + map[bool]string{true: `,"errors":[{"code":131047}]`}[status == "failed"] + `}]}}]}]}`)
		rec, out := do(t, h, http.MethodPost, "/webhook", body, nil)
		if rec.Code != 200 || out["success"] != true {
			t.Fatalf("status %s: %d %v; want 200 {success:true}", status, rec.Code, out)
		}
	}
	deliver("read", "3")
	deliver("sent", "1") // late
	deliver("delivered", "2")
	got, err := store.GetStatus(context.Background(), "wamid.OUT")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != "read" || got.Timestamp != "3" || got.RecipientID != "573123456789" || got.BizOpaqueCallbackData != "task-1:0" || len(got.Seen) != 3 {
		t.Errorf("stored status %+v; want read at 3, with every status seen", got)
	}
	if n := countKeys(t, store, "*inbound:*"); n != 0 {
		t.Errorf("%d inbound keys; statuses must not be relayed", n)
	}
}

func TestSplitWebhook(t *testing.T) {
	body := `{"object":"whatsapp_business_account","entry":[
	 {"id":"E1","changes":[
	  {"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"P"},
	   "contacts":[{"profile":{"name":"Ana"},"wa_id":"111"},{"profile":{"name":"Beto"},"wa_id":"222"}],
	   "messages":[
	    {"from":"111","id":"wamid.1","timestamp":"1","type":"text","text":{"body":"hola"}},
	    {"from":"222","id":"wamid.2","timestamp":"2","type":"image","image":{"id":"m1","mime_type":"image/jpeg"}},
	    {"from":"111","id":"wamid.3","timestamp":"3","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"b","title":"B"}}}],
	   "statuses":[{"id":"wamid.S","status":"sent","timestamp":1700000000,"recipient_id":"333"}]}}]},
	 {"id":"E2","changes":[
	  {"field":"messages","value":{"metadata":{"phone_number_id":"P"},
	   "contacts":[{"profile":{"name":"Caro"},"wa_id":"5511999999999"}],
	   "messages":[{"from":"551199999999","id":"wamid.4","type":"reaction","reaction":{"message_id":"wamid.1","emoji":"👍"}},
	               {"from":"444","type":"location","location":{"latitude":1,"longitude":2}}]}},
	  {"field":"account_update","value":{"event":"VERIFIED"}},
	  {"field":"messages","value":null}]}]}`
	events, statuses, err := splitWebhook([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(statuses) != 1 || statuses[0].ID != "wamid.S" || statuses[0].Timestamp != "1700000000" || statuses[0].RecipientID != "333" {
		t.Errorf("statuses = %+v; want the one sent status, numeric timestamp as text", statuses)
	}
	tests := []struct {
		id, from, entry, typ, contact string
	}{
		{"wamid.1", "111", "E1", "text", "Ana"},
		{"wamid.2", "222", "E1", "image", "Beto"},
		{"wamid.3", "111", "E1", "interactive", "Ana"},
		{"wamid.4", "551199999999", "E2", "reaction", "Caro"}, // wa_id differs: the only contact is kept
		{"", "444", "E2", "location", "Caro"},
	}
	if len(events) != len(tests) {
		t.Fatalf("%d events; want %d (one per message, unknown types included)", len(events), len(tests))
	}
	for i, tt := range tests {
		ev := events[i]
		var got struct {
			Object string `json:"object"`
			Entry  []struct {
				ID      string `json:"id"`
				Changes []struct {
					Field string `json:"field"`
					Value struct {
						Metadata map[string]string `json:"metadata"`
						Contacts []struct {
							Profile struct{ Name string } `json:"profile"`
						} `json:"contacts"`
						Messages []struct {
							ID, From, Type string
						} `json:"messages"`
						Statuses []any `json:"statuses"`
					} `json:"value"`
				} `json:"changes"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(ev.Event, &got); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if len(got.Entry) != 1 || len(got.Entry[0].Changes) != 1 || len(got.Entry[0].Changes[0].Value.Messages) != 1 {
			t.Fatalf("event %d not narrowed to one entry, change and message: %s", i, ev.Event)
		}
		v := got.Entry[0].Changes[0].Value
		m := v.Messages[0]
		if got.Object != "whatsapp_business_account" || got.Entry[0].ID != tt.entry || got.Entry[0].Changes[0].Field != "messages" ||
			v.Metadata["phone_number_id"] != "P" || m.From != tt.from || m.Type != tt.typ || ev.From != tt.from {
			t.Errorf("event %d = %s; want entry %s, from %s, type %s, envelope and metadata kept", i, ev.Event, tt.entry, tt.from, tt.typ)
		}
		if len(v.Contacts) != 1 || v.Contacts[0].Profile.Name != tt.contact {
			t.Errorf("event %d contacts = %+v; want only %s", i, v.Contacts, tt.contact)
		}
		if v.Statuses != nil {
			t.Errorf("event %d carries statuses", i)
		}
		switch {
		case tt.id != "" && (ev.ID != tt.id || m.ID != tt.id):
			t.Errorf("event %d id = %q; want %q", i, ev.ID, tt.id)
		case tt.id == "" && !strings.HasPrefix(ev.ID, "noid-"):
			t.Errorf("event %d without a wamid got id %q; want a content hash", i, ev.ID)
		}
	}
}

func TestStatusAndQueueWhenDependenciesAreDown(t *testing.T) {
	h, _ := inboundServer(t, shared.Config{WebSocketURL: "ws://127.0.0.1:1/ws"})
	rec, out := do(t, h, http.MethodGet, "/api/status", nil, nil)
	// The contract's shape, plus the operator's warnings (no secret, no key here) and
	// delivery tracking's totals (Redis answers).
	want := `{"status":"degraded","services":{"webhook":true,"whatsapp_service":false,"queue_service":false,"websocket_service":false},` +
		`"delivery_tracking":{"recipients_recorded":0,"relay_statuses":false,"statuses_counted":0,"statuses_kept":0,"statuses_repeated":0},` +
		`"warnings":["POST /webhook accepts unsigned bodies: WHATSAPP_APP_SECRET is not set (WEBHOOK_ALLOW_UNSIGNED=true)","/api/* needs no key: neither API_KEY nor API_KEYS is set"]}`
	if rec.Code != http.StatusServiceUnavailable || !sameJSON(t, rec.Body.Bytes(), []byte(want)) {
		t.Errorf("GET /api/status = %d %s; want 503 %s", rec.Code, rec.Body.String(), want)
	}

	rec, out = do(t, h, http.MethodGet, "/api/queue/status", nil, nil)
	want = `{"success":true,"status":{"websocket_available":false,"processor_running":false,"processor_thread_alive":false,"queue_healthy":false},"queue_lengths":{"pending":0}}`
	if rec.Code != http.StatusOK || !sameJSON(t, rec.Body.Bytes(), []byte(want)) {
		t.Errorf("GET /api/queue/status = %d %s; want 200 %s", rec.Code, rec.Body.String(), want)
	}

	for _, tt := range []struct{ method, path string }{
		{http.MethodGet, "/api/queue/lengths"},
		{http.MethodDelete, "/api/queue/clear"},
	} {
		rec, out = do(t, h, tt.method, tt.path, nil, nil)
		if rec.Code != http.StatusServiceUnavailable || out["success"] != false || out["error"] == nil {
			t.Errorf("%s %s with Temporal down = %d %v; want 503 with the error shape", tt.method, tt.path, rec.Code, out)
		}
	}
	// The test message is queued like a webhook's: into Redis, forwarded later.
	if rec, out = do(t, h, http.MethodPost, "/api/queue/test", nil, nil); rec.Code != http.StatusOK || out["success"] != true {
		t.Errorf("POST /api/queue/test with Temporal down = %d %v; want 200, queued in Redis", rec.Code, out)
	}
}
