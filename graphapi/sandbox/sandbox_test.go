package sandbox

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAuth(t *testing.T) {
	_, ts := strict(t)
	body := encode(t, textMsg(to, "hola"))
	tests := []struct {
		name   string
		header string
		query  string
		status int
	}{
		{"no header", "", "", http.StatusUnauthorized},
		{"wrong token", "Bearer nope", "", http.StatusUnauthorized},
		{"empty bearer", "Bearer ", "", http.StatusUnauthorized},
		{"basic scheme", "Basic " + testToken, "", http.StatusUnauthorized},
		{"right token", "Bearer " + testToken, "", http.StatusOK},
		{"lowercase scheme", "bearer " + testToken, "", http.StatusOK},
		{"access_token parameter", "", "?access_token=" + testToken, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v23.0/"+testPNID+"/messages"+tt.query, bytes.NewReader(body))
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got := response{status: resp.StatusCode, header: resp.Header, body: b}
			if tt.status == http.StatusOK {
				wantSuccess(t, got)
				return
			}
			e := wantError(t, got, http.StatusUnauthorized, CodeAccessToken, "")
			if want := "Invalid OAuth access token - Cannot parse access token"; e.Error.Message != want || e.Error.Type != "OAuthException" {
				t.Errorf("error: got %q (%s), want %q (OAuthException)", e.Error.Message, e.Error.Type, want)
			}
			if got.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}

	t.Run("any token when none configured", func(t *testing.T) {
		_, open := start(t, Options{})
		r := do(t, http.MethodPost, open.URL+"/v23.0/123456/messages", "whatever", bytes.NewReader(body), "")
		wantSuccess(t, r)
		r = do(t, http.MethodPost, open.URL+"/v23.0/123456/messages", "", bytes.NewReader(body), "")
		wantError(t, r, http.StatusUnauthorized, CodeAccessToken, "")
	})
}

func TestRoutes(t *testing.T) {
	_, ts := strict(t)
	body := func() io.Reader { return bytes.NewReader(encode(t, textMsg(to, "hola"))) }
	tests := []struct {
		name, method, path string
		status, code       int
		message            string // substring of error.message
	}{
		{"v23.0", http.MethodPost, "/v23.0/" + testPNID + "/messages", 200, 0, ""},
		{"v25.0", http.MethodPost, "/v25.0/" + testPNID + "/messages", 200, 0, ""},
		{"no version", http.MethodPost, "/" + testPNID + "/messages", 200, 0, ""},
		{"unknown phone number id", http.MethodPost, "/v23.0/999999/messages", 400, CodeInvalidParameter,
			"Unsupported post request. Object with ID '999999' does not exist"},
		{"GET on messages", http.MethodGet, "/v23.0/" + testPNID + "/messages", 400, CodeInvalidParameter, "Unsupported get request"},
		{"bad version", http.MethodPost, "/vX/" + testPNID + "/messages", 400, CodeUnknownPath, "Unknown path components"},
		{"unknown edge", http.MethodPost, "/v23.0/" + testPNID + "/other", 400, CodeUnknownPath, "Unknown path components"},
		{"unknown media id", http.MethodGet, "/v23.0/1234567890123456", 400, CodeInvalidParameter, "Unsupported get request. Object with ID '1234567890123456'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, tt.method, ts.URL+tt.path, testToken, body(), "application/json")
			if tt.status == 200 {
				wantSuccess(t, r)
				return
			}
			e := wantError(t, r, tt.status, tt.code, "")
			if !strings.Contains(e.Error.Message, tt.message) {
				t.Errorf("message: got %q, want it to contain %q", e.Error.Message, tt.message)
			}
		})
	}
	t.Run("unknown phone number id shape", func(t *testing.T) {
		r := do(t, http.MethodPost, ts.URL+"/v23.0/999999/messages", testToken, body(), "")
		e := decodeError(t, r)
		if e.Error.Type != "GraphMethodException" || e.Error.ErrorSubcode != 33 {
			t.Errorf("got type %q subcode %d, want GraphMethodException 33", e.Error.Type, e.Error.ErrorSubcode)
		}
	})
}

func TestPhoneNumber(t *testing.T) {
	_, ts := strict(t)
	tests := []struct {
		name   string
		query  string
		status int
		want   map[string]any // expected fields (subset)
		absent []string
	}{
		{"default fields", "", 200, map[string]any{"id": testPNID, "display_phone_number": DisplayPhoneNumber, "verified_name": "wagate sandbox"}, nil},
		{"throughput", "?fields=throughput", 200, map[string]any{"id": testPNID, "throughput": map[string]any{"level": "STANDARD"}}, []string{"verified_name"}},
		{"two fields", "?fields=verified_name,quality_rating", 200, map[string]any{"verified_name": "wagate sandbox", "quality_rating": "GREEN"}, nil},
		{"nonexisting field", "?fields=nope", 400, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, http.MethodGet, ts.URL+"/v23.0/"+testPNID+tt.query, testToken, nil, "")
			if tt.status != 200 {
				wantError(t, r, tt.status, CodeInvalidParameter, "nonexisting field (nope)")
				return
			}
			var got map[string]any
			if err := json.Unmarshal(r.body, &got); err != nil || r.status != 200 {
				t.Fatalf("got %d %s", r.status, r.body)
			}
			for k, v := range tt.want {
				gb, _ := json.Marshal(got[k])
				wb, _ := json.Marshal(v)
				if !bytes.Equal(gb, wb) {
					t.Errorf("%s: got %s, want %s", k, gb, wb)
				}
			}
			for _, k := range tt.absent {
				if _, ok := got[k]; ok {
					t.Errorf("%s: present, want only the requested fields", k)
				}
			}
		})
	}
	r := do(t, http.MethodGet, ts.URL+"/v23.0/"+testPNID, "", nil, "")
	wantError(t, r, http.StatusUnauthorized, CodeAccessToken, "")
}

func TestMaxInFlight(t *testing.T) {
	s, ts := start(t, Options{Latency: 200 * time.Millisecond})
	const n = 12
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := do(t, http.MethodPost, ts.URL+"/v23.0/1/messages", "x", bytes.NewReader(encode(t, textMsg("+5491100000"+string(rune('a'+i)), "x"))), "")
			_ = r
		})
	}
	wg.Wait()
	if got := s.Stats().MaxInFlight; got != n {
		t.Errorf("MaxInFlight after %d concurrent sends: got %d, want %d", n, got, n)
	}
	s.Reset()
	for range 3 {
		send(t, ts, textMsg(to, "x"))
	}
	if got := s.Stats().MaxInFlight; got != 1 {
		t.Errorf("MaxInFlight after sequential sends: got %d, want 1", got)
	}
}

func TestLatency(t *testing.T) {
	s, ts := start(t, Options{Latency: 80 * time.Millisecond, Jitter: 20 * time.Millisecond})
	begin := time.Now()
	wantSuccess(t, send(t, ts, textMsg(to, "x")))
	if el := time.Since(begin); el < 60*time.Millisecond {
		t.Errorf("answered after %v, want at least Latency-Jitter = 60ms", el)
	}

	// A client that gives up during the latency sent nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v23.0/1/messages", bytes.NewReader(encode(t, textMsg("+4915112345678", "x"))))
	req.Header.Set("Authorization", "Bearer x")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("request finished before its deadline, want a client timeout")
	}
	time.Sleep(150 * time.Millisecond)
	if got := s.Deliveries("+4915112345678"); got != 0 {
		t.Errorf("deliveries after a cancelled request: got %d, want 0", got)
	}
}

func TestMPS(t *testing.T) {
	s, ts := start(t, Options{MPS: 5})
	for i := range 5 {
		wantSuccess(t, send(t, ts, textMsg("+3460000000"+string(rune('0'+i)), "x")))
	}
	r := send(t, ts, textMsg("+34600000009", "x"))
	e := wantError(t, r, http.StatusBadRequest, CodeRateLimit, "throughput")
	if e.Error.Message != "(#130429) Rate limit hit" {
		t.Errorf("message: got %q, want %q", e.Error.Message, "(#130429) Rate limit hit")
	}
	if got := s.Deliveries("+34600000009"); got != 0 {
		t.Errorf("a throttled send was delivered %d times, want 0", got)
	}
	time.Sleep(mpsWindow + 50*time.Millisecond)
	wantSuccess(t, send(t, ts, textMsg("+34600000009", "x")))
}

func TestPairRate(t *testing.T) {
	_, ts := start(t, Options{PairBurst: 3})
	for i := range 3 {
		wantSuccess(t, send(t, ts, textMsg(to, "msg "+string(rune('a'+i)))))
	}
	wantError(t, send(t, ts, textMsg(to, "one too many")), http.StatusBadRequest, CodePairRateLimit, "same phone number")
	// Other recipients are unaffected, and the format of "to" does not matter.
	wantSuccess(t, send(t, ts, textMsg("+16505559999", "x")))
	wantError(t, send(t, ts, textMsg("16505551234", "same person")), http.StatusBadRequest, CodePairRateLimit, "")
}

func TestFaults(t *testing.T) {
	const perm, flaky = "5215512345678", "5215587654321"
	s, ts := strict(t)
	s.SetFaults(Faults{
		PermanentTo: map[string]int{perm: CodeUndeliverable, "5215500000000": CodeMarketingOptOut},
		FailFirst:   map[string]int{flaky: 2},
	})
	t.Run("permanent every time", func(t *testing.T) {
		for range 2 {
			wantError(t, send(t, ts, textMsg("+"+perm, "x")), http.StatusBadRequest, CodeUndeliverable, "")
		}
		wantError(t, send(t, ts, textMsg("+52 155 0000 0000", "x")), http.StatusBadRequest, CodeMarketingOptOut, "")
		if got := s.Deliveries(perm); got != 0 {
			t.Errorf("deliveries: got %d, want 0", got)
		}
	})
	t.Run("fail first", func(t *testing.T) {
		for range 2 {
			wantError(t, send(t, ts, textMsg(flaky, "x")), http.StatusInternalServerError, CodeGeneric, "unknown error")
		}
		wantSuccess(t, send(t, ts, textMsg(flaky, "x")))
		wantSuccess(t, send(t, ts, textMsg(flaky, "y")))
		if got := s.Deliveries(flaky); got != 2 {
			t.Errorf("deliveries: got %d, want 2", got)
		}
	})
	t.Run("validation comes first", func(t *testing.T) {
		wantError(t, send(t, ts, textMsg("+"+perm, "")), http.StatusBadRequest, CodeMissingParameter, "text.body")
	})
	t.Run("server error", func(t *testing.T) {
		s.SetFaults(Faults{ServerError: 1})
		wantError(t, send(t, ts, textMsg(to, "x")), http.StatusInternalServerError, CodeUnknown, "")
	})
	t.Run("rate limit", func(t *testing.T) {
		s.SetFaults(Faults{RateLimit: 1})
		wantError(t, send(t, ts, textMsg(to, "x")), http.StatusBadRequest, CodeRateLimit, "throughput")
	})
	t.Run("bad gateway is HTML", func(t *testing.T) {
		s.SetFaults(Faults{BadGateway: 1})
		r := send(t, ts, textMsg(to, "x"))
		if r.status != http.StatusBadGateway || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Errorf("got %d %s, want 502 text/html", r.status, r.header.Get("Content-Type"))
		}
		if json.Valid(r.body) || !bytes.Contains(r.body, []byte("502 Bad Gateway")) {
			t.Errorf("body: got %q, want an HTML page", r.body)
		}
	})
	t.Run("timeout delivers anyway", func(t *testing.T) {
		s.SetFaults(Faults{Timeout: 1, TimeoutDelay: 2 * time.Second})
		const who = "+447700900123"
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v23.0/"+testPNID+"/messages", bytes.NewReader(encode(t, textMsg(who, "ambiguous"))))
		req.Header.Set("Authorization", "Bearer "+testToken)
		_, err := http.DefaultClient.Do(req)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got err %v, want the client deadline", err)
		}
		if got := s.Deliveries(who); got != 1 {
			t.Errorf("deliveries: got %d, want 1 (the message is sent although the answer never came)", got)
		}
		if got := s.Messages(who); len(got) != 1 || !bytes.Contains(got[0], []byte("ambiguous")) {
			t.Errorf("messages: got %s, want the payload", got)
		}
	})
	t.Run("timeout answers after the delay", func(t *testing.T) {
		s.SetFaults(Faults{Timeout: 1, TimeoutDelay: 100 * time.Millisecond})
		begin := time.Now()
		wantSuccess(t, send(t, ts, textMsg(to, "late")))
		if el := time.Since(begin); el < 100*time.Millisecond {
			t.Errorf("answered after %v, want at least 100ms", el)
		}
	})
	st := s.Stats()
	for code, want := range map[int]int64{CodeUndeliverable: 2, CodeMarketingOptOut: 1, CodeGeneric: 2, CodeUnknown: 1, CodeRateLimit: 1, http.StatusBadGateway: 1, CodeMissingParameter: 1} {
		if st.ByCode[code] != want {
			t.Errorf("ByCode[%d]: got %d, want %d", code, st.ByCode[code], want)
		}
	}
}

func TestFaultsControlEndpoint(t *testing.T) {
	s, ts := strict(t)
	r := do(t, http.MethodPut, ts.URL+"/_sandbox/faults", "", strings.NewReader(
		`{"rate_limit":0.5,"timeout":0.1,"timeout_delay":"3s","permanent_to":{"5215512345678":131047},"fail_first":{"5215587654321":1}}`), "application/json")
	if r.status != http.StatusOK {
		t.Fatalf("PUT faults: got %d %s", r.status, r.body)
	}
	got := *s.faults.Load()
	if got.RateLimit != 0.5 || got.Timeout != 0.1 || got.TimeoutDelay != 3*time.Second ||
		got.PermanentTo["5215512345678"] != 131047 || got.FailFirst["5215587654321"] != 1 {
		t.Errorf("faults: got %+v", got)
	}
	r = do(t, http.MethodGet, ts.URL+"/_sandbox/faults", "", nil, "")
	var back Faults
	if err := json.Unmarshal(r.body, &back); err != nil || back.TimeoutDelay != 3*time.Second {
		t.Errorf("GET faults: got %s (%v), want timeout_delay 3s", r.body, err)
	}
	r = do(t, http.MethodPut, ts.URL+"/_sandbox/faults", "", strings.NewReader(`{"timeout_delay":"soon"}`), "")
	if r.status != http.StatusBadRequest {
		t.Errorf("bad faults: got %d, want 400", r.status)
	}
}

func TestDuplicates(t *testing.T) {
	s, ts := strict(t)
	sends := []string{
		`{"messaging_product":"whatsapp","to":"+1 650 555 1234","type":"text","text":{"body":"hola","preview_url":false}}`,
		// the same message: other key order, spacing and formatting of "to"
		`{"type":"text", "text":{"preview_url":false, "body":"hola"}, "to":"16505551234", "messaging_product":"whatsapp"}`,
		// different callback data: not a duplicate
		`{"messaging_product":"whatsapp","to":"16505551234","type":"text","text":{"body":"hola","preview_url":false},"biz_opaque_callback_data":"req-1"}`,
		`{"messaging_product":"whatsapp","to":"16505551234","type":"text","text":{"body":"hola","preview_url":false},"biz_opaque_callback_data":"req-1"}`,
		// different body, other recipient
		`{"messaging_product":"whatsapp","to":"16505551234","type":"text","text":{"body":"adiós"}}`,
		`{"messaging_product":"whatsapp","to":"16505550000","type":"text","text":{"body":"hola","preview_url":false}}`,
	}
	for _, p := range sends {
		wantSuccess(t, send(t, ts, p))
	}
	st := s.Stats()
	if st.Accepted != 6 || st.Duplicates != 2 {
		t.Errorf("got accepted %d duplicates %d, want 6 and 2", st.Accepted, st.Duplicates)
	}
	if got := s.Deliveries("+1 (650) 555-1234"); got != 5 {
		t.Errorf("deliveries: got %d, want 5", got)
	}
	msgs := s.Messages("16505551234")
	if len(msgs) != 5 || !bytes.Contains(msgs[4], []byte("adiós")) {
		t.Errorf("messages: got %d payloads (last %s), want 5 in order", len(msgs), msgs[len(msgs)-1])
	}

	r := do(t, http.MethodGet, ts.URL+"/_sandbox/messages?to=%2B16505551234", "", nil, "")
	var got struct {
		To         string            `json:"to"`
		Deliveries int               `json:"deliveries"`
		Messages   []json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil || got.To != "16505551234" || got.Deliveries != 5 || len(got.Messages) != 5 {
		t.Errorf("GET /_sandbox/messages: got %s (%v)", r.body, err)
	}
	r = do(t, http.MethodGet, ts.URL+"/_sandbox/stats", "", nil, "")
	var stats Stats
	if err := json.Unmarshal(r.body, &stats); err != nil || stats.Duplicates != 2 || stats.ByType["text"] != 6 {
		t.Errorf("GET /_sandbox/stats: got %s (%v)", r.body, err)
	}

	do(t, http.MethodPost, ts.URL+"/_sandbox/reset", "", nil, "")
	if st := s.Stats(); st.Accepted != 0 || st.Duplicates != 0 || len(st.ByType) != 0 || s.Deliveries("16505551234") != 0 || len(s.Messages("16505551234")) != 0 {
		t.Errorf("after reset: got %+v", st)
	}
	wantSuccess(t, send(t, ts, sends[0]))
	if st := s.Stats(); st.Duplicates != 0 {
		t.Errorf("duplicates after reset: got %d, want 0", st.Duplicates)
	}
}

func TestMessageLogBounded(t *testing.T) {
	s := New(Options{})
	for i := range messageLogSize + 5 {
		req := &sendRequest{digits: "123456789", typ: "text", kind: "text", content: map[string]any{"body": i}}
		if e := s.accept(req, "1", []byte(`{"n":`+strings.Repeat("1", 1)+`}`), &Faults{}); e != nil {
			t.Fatal(e.details)
		}
	}
	if got := len(s.Messages("123456789")); got != messageLogSize {
		t.Errorf("kept %d payloads, want %d", got, messageLogSize)
	}
	if got := s.Deliveries("123456789"); got != messageLogSize+5 {
		t.Errorf("deliveries: got %d, want %d", got, messageLogSize+5)
	}
}

func TestMarkRead(t *testing.T) {
	_, ts := strict(t)
	r := send(t, ts, `{"messaging_product":"whatsapp","status":"read","message_id":"wamid.X"}`)
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"success":true`)) {
		t.Errorf("got %d %s, want 200 success", r.status, r.body)
	}
	wantError(t, send(t, ts, `{"messaging_product":"whatsapp","status":"read"}`), http.StatusBadRequest, CodeMissingParameter, "message_id")
}

// hookRecorder is a webhook endpoint that checks Meta's signature and records statuses.
type hookRecorder struct {
	secret string
	mu     sync.Mutex
	byID   map[string][]string
	seen   []map[string]any
	bad    int
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	mac := hmac.New(sha256.New, []byte(h.secret))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	h.mu.Lock()
	defer h.mu.Unlock()
	if !hmac.Equal([]byte(r.Header.Get("X-Hub-Signature-256")), []byte(want)) {
		h.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var env struct {
		Object string `json:"object"`
		Entry  []struct {
			ID      string `json:"id"`
			Changes []struct {
				Field string `json:"field"`
				Value struct {
					MessagingProduct string `json:"messaging_product"`
					Metadata         struct {
						PhoneNumberID string `json:"phone_number_id"`
					} `json:"metadata"`
					Statuses []map[string]any `json:"statuses"`
				} `json:"value"`
			} `json:"changes"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Object != "whatsapp_business_account" {
		h.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	for _, e := range env.Entry {
		for _, c := range e.Changes {
			if c.Field != "messages" || c.Value.Metadata.PhoneNumberID != testPNID || e.ID != WABAID {
				h.bad++
			}
			for _, st := range c.Value.Statuses {
				id, _ := st["id"].(string)
				status, _ := st["status"].(string)
				h.byID[id] = append(h.byID[id], status)
				h.seen = append(h.seen, st)
			}
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (h *hookRecorder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

func TestStatusWebhooks(t *testing.T) {
	const secret = "app-secret"
	rec := &hookRecorder{secret: secret, byID: make(map[string][]string)}
	hook := httptest.NewServer(rec)
	defer hook.Close()
	s, ts := start(t, Options{Token: testToken, PhoneNumberID: testPNID, WebhookURL: hook.URL, AppSecret: secret, StatusDelay: 30 * time.Millisecond})

	wamids := map[string]string{} // wamid -> opaque
	for i, p := range []map[string]any{
		set(textMsg("+5491100000001", "a"), "biz_opaque_callback_data", "req-1"),
		textMsg("+5491100000002", "b"),
		templateMsg,
	} {
		got := wantSuccess(t, send(t, ts, p))
		opaque, _ := p["biz_opaque_callback_data"].(string)
		wamids[got.Messages[0].ID] = opaque
		_ = i
	}
	deadline := time.Now().Add(5 * time.Second)
	for rec.count() < 9 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // nothing more should come
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.bad != 0 {
		t.Errorf("%d webhooks had a bad signature or envelope", rec.bad)
	}
	if len(rec.seen) != 9 {
		t.Fatalf("got %d statuses, want 9 (3 messages x sent, delivered, read)", len(rec.seen))
	}
	for id := range wamids {
		if got, want := strings.Join(rec.byID[id], ","), "sent,delivered,read"; got != want {
			t.Errorf("statuses of %s: got %s, want %s", id, got, want)
		}
	}
	for _, st := range rec.seen {
		id := st["id"].(string)
		if got, want := st["biz_opaque_callback_data"], wamids[id]; want != "" && got != want {
			t.Errorf("biz_opaque_callback_data: got %v, want %q", got, want)
		}
		_, hasPricing := st["pricing"]
		if wantPricing := st["status"] == "sent"; hasPricing != wantPricing {
			t.Errorf("%s status: pricing present %v, want %v", st["status"], hasPricing, wantPricing)
		}
		if rid, _ := st["recipient_id"].(string); rid == "" || strings.Trim(rid, "0123456789") != "" {
			t.Errorf("recipient_id: got %q, want digits", rid)
		}
		if ts, _ := st["timestamp"].(string); ts == "" {
			t.Error("timestamp missing")
		}
	}
	if st := s.Stats(); st.WebhooksSent != 9 || st.WebhooksFailed != 0 {
		t.Errorf("stats: got sent %d failed %d, want 9 and 0", st.WebhooksSent, st.WebhooksFailed)
	}
}

func TestStatusWebhooksFailing(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer hook.Close()
	s, ts := start(t, Options{WebhookURL: hook.URL, StatusDelay: 10 * time.Millisecond})
	do(t, http.MethodPost, ts.URL+"/v23.0/1/messages", "x", bytes.NewReader(encode(t, textMsg(to, "x"))), "")
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().WebhooksFailed < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := s.Stats(); st.WebhooksFailed != 3 || st.WebhooksSent != 0 {
		t.Errorf("got sent %d failed %d, want 0 and 3", st.WebhooksSent, st.WebhooksFailed)
	}
}

func TestSign(t *testing.T) {
	// The reference value is Meta's algorithm computed independently.
	mac := hmac.New(sha256.New, []byte("k"))
	mac.Write([]byte(`{"a":"é"}`))
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if got := Sign([]byte("k"), []byte(`{"a":"é"}`)); got != want {
		t.Errorf("Sign: got %s, want %s", got, want)
	}
}
