package sandbox

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

const (
	testToken = "test-token"
	testPNID  = "106540352242922"
)

// start runs a sandbox on a loopback httptest server; both stop with the test.
func start(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	s := New(opts)
	ts := httptest.NewServer(s.Handler())
	s.SetPublicURL(ts.URL)
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return s, ts
}

// strict is the usual configuration: a fixed token and phone number id.
func strict(t *testing.T) (*Server, *httptest.Server) {
	return start(t, Options{Token: testToken, PhoneNumberID: testPNID})
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, url, token string, body io.Reader, contentType string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// send posts a /messages payload: a string is sent as is, anything else as JSON.
func send(t *testing.T, ts *httptest.Server, payload any) response {
	t.Helper()
	return do(t, http.MethodPost, ts.URL+"/v23.0/"+testPNID+"/messages", testToken, bytes.NewReader(encode(t, payload)), "application/json")
}

func encode(t *testing.T, payload any) []byte {
	t.Helper()
	if s, ok := payload.(string); ok {
		return []byte(s)
	}
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// metaError is Meta's error body as clients decode it.
type metaError struct {
	Error struct {
		Message      string `json:"message"`
		Type         string `json:"type"`
		Code         int    `json:"code"`
		ErrorSubcode int    `json:"error_subcode"`
		ErrorData    struct {
			MessagingProduct string `json:"messaging_product"`
			Details          string `json:"details"`
		} `json:"error_data"`
		FBTraceID string `json:"fbtrace_id"`
	} `json:"error"`
}

func decodeError(t *testing.T, r response) metaError {
	t.Helper()
	var e metaError
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body is not Meta JSON: %v: %s", err, r.body)
	}
	if e.Error.FBTraceID == "" || e.Error.ErrorData.MessagingProduct != "whatsapp" {
		t.Errorf("error body lacks fbtrace_id or error_data.messaging_product: %s", r.body)
	}
	if e.Error.Type == "" {
		t.Errorf("error body lacks type: %s", r.body)
	}
	return e
}

// wantError checks the HTTP status, Meta code, "(#code) title" message and a details
// substring of an error answer.
func wantError(t *testing.T, r response, status, code int, details string) metaError {
	t.Helper()
	if r.status != status {
		t.Errorf("HTTP status: got %d, want %d (body %s)", r.status, status, r.body)
	}
	e := decodeError(t, r)
	if e.Error.Code != code {
		t.Errorf("code: got %d, want %d (body %s)", e.Error.Code, code, r.body)
	}
	if want := "(#" + strconv.Itoa(code) + ") "; code != CodeAccessToken && code != CodeUnknownPath && !strings.HasPrefix(e.Error.Message, want) &&
		e.Error.Type == "OAuthException" {
		t.Errorf("message: got %q, want prefix %q", e.Error.Message, want)
	}
	if !strings.Contains(e.Error.ErrorData.Details, details) {
		t.Errorf("details: got %q, want it to contain %q", e.Error.ErrorData.Details, details)
	}
	return e
}

// success is Meta's answer to an accepted send.
type success struct {
	MessagingProduct string `json:"messaging_product"`
	Contacts         []struct {
		Input string `json:"input"`
		WaID  string `json:"wa_id"`
	} `json:"contacts"`
	Messages []struct {
		ID            string `json:"id"`
		MessageStatus string `json:"message_status"`
	} `json:"messages"`
}

func wantSuccess(t *testing.T, r response) success {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("HTTP status: got %d, want 200 (body %s)", r.status, r.body)
	}
	var s success
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatalf("success body: %v: %s", err, r.body)
	}
	if s.MessagingProduct != "whatsapp" || len(s.Contacts) != 1 || len(s.Messages) != 1 ||
		!strings.HasPrefix(s.Messages[0].ID, "wamid.") {
		t.Fatalf("success body: got %s, want Meta's shape with one contact and one wamid", r.body)
	}
	return s
}

func textMsg(to, body string) map[string]any {
	return map[string]any{
		"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
		"type": "text", "text": map[string]any{"body": body},
	}
}

// clone deep-copies a JSON-shaped value so that each test case can mutate its own.
func clone(v any) any {
	b, _ := json.Marshal(v)
	var out any
	json.Unmarshal(b, &out)
	return out
}

// set changes the value at a dotted path ("interactive.action.sections.0.title") in a
// copy of base; a nil value deletes the key.
func set(base map[string]any, path string, value any) map[string]any {
	m := clone(base).(map[string]any)
	keys := strings.Split(path, ".")
	var cur any = m
	for i, k := range keys {
		last := i == len(keys)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				if value == nil {
					delete(c, k)
				} else {
					c[k] = value
				}
				return m
			}
			cur = c[k]
		case []any:
			n, _ := strconv.Atoi(k)
			if last {
				c[n] = value
				return m
			}
			cur = c[n]
		}
	}
	return m
}
