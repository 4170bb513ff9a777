package openapicheck

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const doc = `{
  "openapi": "3.1.0",
  "info": {"title": "t", "version": "1"},
  "paths": {
    "/api/send-message": {"post": {
      "requestBody": {"required": true, "content": {"application/json": {
        "schema": {"type": "object", "required": ["phone"], "properties": {"phone": {"type": "string", "pattern": "^[0-9]{8,15}$"}}},
        "examples": {"ok": {"value": {"phone": "573123456789"}}}}}},
      "responses": {"200": {"description": "ok", "content": {"application/json": {
        "schema": {"type": "object", "required": ["task_id"], "properties": {"task_id": {"type": "string", "format": "uuid"}}}}}}}
    }}
  }
}`

func post(body string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "http://localhost/api/send-message", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

func answer(req *http.Request, status int, body string) *http.Response {
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader([]byte(body))), Request: req}
}

// TestCheckerRejects proves that the checks the API's tests rely on fail when they
// should: a valid request and response pass, and each kind of mismatch is reported.
func TestCheckerRejects(t *testing.T) {
	c, err := New([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if errs := c.Document(); len(errs) > 0 {
		t.Fatalf("valid document rejected: %v", errs)
	}
	if errs := c.Request(post(`{"phone":"573123456789"}`)); len(errs) > 0 {
		t.Errorf("valid request rejected: %v", errs)
	}
	if errs := c.Response(post(`{}`), answer(post(`{}`), 200, `{"task_id":"12345678-1234-1234-1234-123456789abc"}`)); len(errs) > 0 {
		t.Errorf("valid response rejected: %v", errs)
	}
	for name, errs := range map[string][]string{
		"a phone with letters":      c.Request(post(`{"phone":"57312abc"}`)),
		"a missing field":           c.Request(post(`{}`)),
		"an undocumented path":      c.Request(httptest.NewRequest(http.MethodGet, "http://localhost/api/nada", nil)),
		"an undocumented status":    c.Response(post(`{}`), answer(post(`{}`), 503, `{}`)),
		"a task_id that is no uuid": c.Response(post(`{}`), answer(post(`{}`), 200, `{"task_id":"x"}`)),
	} {
		if len(errs) == 0 {
			t.Errorf("%s passed validation", name)
		}
	}
	if ops := c.Operations(); len(ops) != 1 || ops[0] != "POST /api/send-message" {
		t.Errorf("Operations() = %v", ops)
	}
	if exs := c.Examples(); len(exs) != 1 || exs[0].Name != "ok" || string(exs[0].Value) != `{"phone":"573123456789"}` {
		t.Errorf("Examples() = %+v", exs)
	}

	bad, err := New([]byte(`{"openapi": "3.1.0", "paths": {"/x": {"get": {"responses": {"200": {}}}}}}`))
	if err == nil && len(bad.Document()) == 0 {
		t.Error("a document without info and with a response without description passed validation")
	}
}
