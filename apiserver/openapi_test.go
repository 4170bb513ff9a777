package apiserver

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/wagate/wagate/internal/contract"
	"github.com/wagate/wagate/internal/openapicheck"
	"github.com/wagate/wagate/shared"
)

func checker(t *testing.T) *openapicheck.Checker {
	t.Helper()
	c, err := openapicheck.New(OpenAPI)
	if err != nil {
		t.Fatalf("apiserver/openapi.json: %v", err)
	}
	return c
}

// routes lists the router's routes as "METHOD /pattern", sorted.
func routes(t *testing.T) []string {
	t.Helper()
	var out []string
	err := chi.Walk(New(Deps{}).(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIDocumentsEveryRoute keeps the document and the router in step: a route
// added to New must be added to apiserver/openapi.json, and the other way round.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	routed, documented := routes(t), checker(t).Operations()
	var missing, extra []string
	for _, r := range routed {
		if !slices.Contains(documented, r) {
			missing = append(missing, r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routed, d) {
			extra = append(extra, d)
		}
	}
	if len(missing) > 0 {
		t.Errorf("routed but not in apiserver/openapi.json's paths (document each one: its parameters, request body, responses):\n\t%s",
			strings.Join(missing, "\n\t"))
	}
	if len(extra) > 0 {
		t.Errorf("in apiserver/openapi.json but not routed by apiserver.New:\n\t%s", strings.Join(extra, "\n\t"))
	}
	t.Logf("%d routes, %d documented operations", len(routed), len(documented))
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	var head struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal(OpenAPI, &head); err != nil || !strings.HasPrefix(head.OpenAPI, "3.1.") {
		t.Fatalf("openapi = %q (%v), want 3.1.x", head.OpenAPI, err)
	}
	if errs := checker(t).Document(); len(errs) > 0 {
		t.Fatalf("apiserver/openapi.json is not a valid OpenAPI 3.1 document:\n\t%s", strings.Join(errs, "\n\t"))
	}
}

var paramRe = regexp.MustCompile(`\{([^/}]+)\}`)

// concrete fills path's parameters with the document's examples.
func concrete(t *testing.T, c *openapicheck.Checker, method, path string) string {
	return paramRe.ReplaceAllStringFunc(path, func(p string) string {
		name := p[1 : len(p)-1]
		v := c.ParamExample(method, path, name)
		if v == "" {
			t.Errorf("%s %s: parameter %s has no example", method, path, name)
		}
		return v
	})
}

// exampleRequest is a request as a client of the contract sends it, with an API key
// (the document asks for one on /api/*).
func exampleRequest(t *testing.T, method, target, mediaType string, body []byte) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, "http://localhost:5000"+target, rd)
	if body != nil {
		req.Header.Set("Content-Type", mediaType)
	}
	req.Header.Set("X-API-Key", "clave-de-ejemplo")
	return req
}

// exampleResponse is a response with the given status, media type and example value
// (a JSON string is sent as its text for media types other than JSON).
func exampleResponse(req *http.Request, status int, mediaType string, value []byte) *http.Response {
	body := value
	if !strings.Contains(mediaType, "json") {
		var s string
		if json.Unmarshal(value, &s) == nil {
			body = []byte(s)
		}
	}
	return &http.Response{
		StatusCode: status, Header: http.Header{"Content-Type": {mediaType}}, Request: req,
		Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
	}
}

func statusCode(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := jsonNumber(s, &n); err != nil {
		t.Fatalf("status %q: %v", s, err)
	}
	return n
}

func jsonNumber(s string, n *int) (int, error) { return *n, json.Unmarshal([]byte(s), n) }

// TestOpenAPIExamplesValidate validates every example of the document, the contract's
// and wagate's own, against the schemas of the request or response it illustrates.
func TestOpenAPIExamplesValidate(t *testing.T) {
	c := checker(t)
	exs := c.Examples()
	if len(exs) == 0 {
		t.Fatal("the document has no examples")
	}
	for _, e := range exs {
		req := exampleRequest(t, e.Method, concrete(t, c, e.Method, e.Path), e.MediaType, nil)
		if e.Status == "" {
			req = exampleRequest(t, e.Method, concrete(t, c, e.Method, e.Path), e.MediaType, e.Value)
			if errs := c.Request(req); len(errs) > 0 {
				t.Errorf("%s does not validate:\n\t%s", e.Where(), strings.Join(errs, "\n\t"))
			}
			continue
		}
		res := exampleResponse(req, statusCode(t, e.Status), e.MediaType, e.Value)
		if errs := c.Response(req, res); len(errs) > 0 {
			t.Errorf("%s does not validate:\n\t%s", e.Where(), strings.Join(errs, "\n\t"))
		}
	}
	t.Logf("%d examples validated", len(exs))
}

// TestOpenAPIHoldsTheContractExamples finds every example request and response of the
// contract (api-spec.md) among the document's examples, under the operation and status
// it belongs to, and validates it there.
func TestOpenAPIHoldsTheContractExamples(t *testing.T) {
	c := checker(t)
	exs, err := contract.Examples()
	if err != nil {
		t.Fatal(err)
	}
	doc := c.Examples()
	find := func(e contract.Example, response bool) (openapicheck.Example, bool) {
		for _, d := range doc {
			if d.Method == e.Method && d.Path == e.Path && (d.Status != "") == response && sameValue(d, e) {
				return d, true
			}
		}
		return openapicheck.Example{}, false
	}
	var sendList []byte // the contract's send-list Input, for the sections fragment
	for _, e := range exs {
		if e.Method == http.MethodPost && e.Path == "/api/send-list" && e.Label == "Input" {
			sendList = e.Body
		}
	}
	for _, e := range exs {
		switch {
		case e.Kind == contract.Fragment:
			// "Estructura de sections" is one section of a send-list request.
			var req map[string]any
			if err := json.Unmarshal(sendList, &req); err != nil {
				t.Fatalf("send-list Input: %v", err)
			}
			req["sections"] = []json.RawMessage{e.Body}
			body, _ := json.Marshal(req)
			if errs := c.Request(exampleRequest(t, http.MethodPost, "/api/send-list", "application/json", body)); len(errs) > 0 {
				t.Errorf("%s as the send-list's section does not validate:\n\t%s", e.Name(), strings.Join(errs, "\n\t"))
			}
			if !schemaHasExample(t, "ListSection", e.Body) {
				t.Errorf("%s is not among components.schemas.ListSection's examples", e.Name())
			}
		case e.Kind == contract.Request && e.Body == nil:
			// A curl without a body: its path and query must fit the operation.
			if errs := c.Request(exampleRequest(t, e.Method, e.Target, "", nil)); len(errs) > 0 {
				t.Errorf("%s (%s) does not validate:\n\t%s", e.Name(), e.Target, strings.Join(errs, "\n\t"))
			}
		case e.Kind == contract.Request:
			if _, ok := find(e, false); !ok {
				t.Errorf("%s is not among the request examples of %s %s in apiserver/openapi.json", e.Name(), e.Method, e.Path)
			}
			target := e.Target
			if target == "" {
				target = e.Path
			}
			if errs := c.Request(exampleRequest(t, e.Method, target, "application/json", e.Body)); len(errs) > 0 {
				t.Errorf("%s does not validate:\n\t%s", e.Name(), strings.Join(errs, "\n\t"))
			}
		case e.Kind == contract.Response:
			d, ok := find(e, true)
			if !ok {
				t.Errorf("%s is not among the response examples of %s %s in apiserver/openapi.json", e.Name(), e.Method, e.Path)
				continue
			}
			status := statusCode(t, d.Status)
			if !e.StatusOK(status) {
				t.Errorf("%s is documented as a %d answer", e.Name(), status)
			}
			req := exampleRequest(t, e.Method, concrete(t, c, e.Method, e.Path), "", nil)
			if errs := c.Response(req, exampleResponse(req, status, d.MediaType, d.Value)); len(errs) > 0 {
				t.Errorf("%s does not validate as a %d answer:\n\t%s", e.Name(), status, strings.Join(errs, "\n\t"))
			}
		}
	}
	t.Logf("%d contract examples checked", len(exs))
}

// sameValue compares a document example with a contract block: JSON by value, text as
// the JSON string that holds it.
func sameValue(d openapicheck.Example, e contract.Example) bool {
	if e.JSON {
		return contract.Equal(d.Value, e.Body)
	}
	var s string
	return json.Unmarshal(d.Value, &s) == nil && s == strings.TrimSpace(string(e.Body))
}

func schemaHasExample(t *testing.T, schema string, value []byte) bool {
	t.Helper()
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Examples []json.RawMessage `json:"examples"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	for _, ex := range doc.Components.Schemas[schema].Examples {
		if contract.Equal(ex, value) {
			return true
		}
	}
	return false
}

// TestDocsServedWithoutKey serves the document and the docs page, with their assets,
// without an API key even when one is configured, and checks each answer against the
// document.
func TestDocsServedWithoutKey(t *testing.T) {
	c := checker(t)
	api := New(Deps{Config: shared.Config{APIKey: "secreta"}})
	get := func(target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, target, nil)
		api.ServeHTTP(rec, req)
		if errs := c.Response(req, rec.Result()); len(errs) > 0 {
			t.Errorf("GET %s = %d does not fit the document:\n\t%s", target, rec.Code, strings.Join(errs, "\n\t"))
		}
		return rec
	}

	if rec := get("/api/openapi.json"); rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), OpenAPI) ||
		rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("GET /api/openapi.json = %d %q (%d bytes), want 200 with the document", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
	}
	page := get("/docs")
	if page.Code != http.StatusOK || !strings.HasPrefix(page.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs = %d %q, want 200 HTML", page.Code, page.Header().Get("Content-Type"))
	}
	if csp := page.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("GET /docs: Content-Security-Policy %q does not keep scripts to the apiserver", csp)
	}
	// Every file the page loads is served, and from the apiserver only.
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page.Body.String(), -1)
	assets := 0
	for _, m := range refs {
		ref := m[1]
		if strings.Contains(ref, "//") {
			t.Errorf("the docs page loads %s from elsewhere", ref)
			continue
		}
		if strings.HasPrefix(ref, "docs/assets/") {
			assets++
			if rec := get("/" + ref); rec.Code != http.StatusOK || rec.Body.Len() == 0 {
				t.Errorf("GET /%s = %d (%d bytes), want 200", ref, rec.Code, rec.Body.Len())
			}
		}
	}
	if assets < 3 {
		t.Errorf("the docs page loads %d assets, want Swagger UI's script, its CSS and init.js", assets)
	}
	init := get("/docs/assets/init.js")
	if !strings.Contains(init.Body.String(), `url: "api/openapi.json"`) || !strings.Contains(init.Body.String(), "validatorUrl: null") {
		t.Errorf("init.js does not load api/openapi.json without the outside validator:\n%s", init.Body)
	}
	// Large assets go gzipped to browsers that take it.
	zreq := httptest.NewRequest(http.MethodGet, "/docs/assets/swagger-ui-bundle.js", nil)
	zreq.Header.Set("Accept-Encoding", "gzip, deflate, br")
	zrec := httptest.NewRecorder()
	api.ServeHTTP(zrec, zreq)
	plain := get("/docs/assets/swagger-ui-bundle.js")
	zlen := zrec.Body.Len()
	zr, err := gzip.NewReader(zrec.Body)
	if err != nil || zrec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("GET swagger-ui-bundle.js with Accept-Encoding gzip: %q, %v", zrec.Header().Get("Content-Encoding"), err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(unzipped, plain.Body.Bytes()) || plain.Header().Get("Content-Encoding") != "" {
		t.Errorf("the gzipped script (%d bytes) does not unzip to the plain one (%d bytes): %v", zlen, plain.Body.Len(), err)
	}
	t.Logf("swagger-ui-bundle.js: %d bytes, %d gzipped", plain.Body.Len(), zlen)
	if rec := get("/docs/assets/LICENSE"); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Apache License") {
		t.Errorf("GET /docs/assets/LICENSE = %d, want Swagger UI's Apache license", rec.Code)
	}
	for _, bad := range []string{"/docs/assets/nada.js", "/docs/assets/..%2Fopenapi.json", "/docs/assets/%2E%2E"} {
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, bad, nil))
		var out map[string]any
		if rec.Code != http.StatusNotFound || json.Unmarshal(rec.Body.Bytes(), &out) != nil || out["success"] != false {
			t.Errorf("GET %s = %d %s, want the contract's 404", bad, rec.Code, rec.Body)
		}
	}
	// The rest of /api/* still needs the key.
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/numbers", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("GET /api/numbers without the key = %d, want 401", rec.Code)
	}
}

// TestOpenAPIOperationsAreComplete holds every operation to what a client needs: an
// operationId, a summary and a tag; a 401 wherever the API key applies; examples of
// every request body; and a 2xx answer with a schema.
func TestOpenAPIOperationsAreComplete(t *testing.T) {
	var doc struct {
		Security []map[string]any `json:"security"`
		Paths    map[string]map[string]struct {
			OperationID string           `json:"operationId"`
			Summary     string           `json:"summary"`
			Tags        []string         `json:"tags"`
			Security    []map[string]any `json:"security"`
			RequestBody *struct {
				Content map[string]struct {
					Examples map[string]any `json:"examples"`
				} `json:"content"`
			} `json:"requestBody"`
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Security) == 0 {
		t.Error("the document has no global security: /api/* takes an API key")
	}
	ids := map[string]string{}
	for path, item := range doc.Paths {
		for method, op := range item {
			name := strings.ToUpper(method) + " " + path
			if op.OperationID == "" || op.Summary == "" || len(op.Tags) == 0 {
				t.Errorf("%s: operationId %q, summary %q, tags %v; want all three", name, op.OperationID, op.Summary, op.Tags)
			}
			if prev, ok := ids[op.OperationID]; ok {
				t.Errorf("%s: operationId %q already used by %s", name, op.OperationID, prev)
			}
			ids[op.OperationID] = name
			secured := op.Security == nil // nil inherits the global key; [] is public
			if _, ok := op.Responses["401"]; secured && !ok {
				t.Errorf("%s takes the API key but documents no 401", name)
			}
			if !secured && strings.HasPrefix(path, "/api/") && path != "/api/health" && path != "/api/openapi.json" {
				t.Errorf("%s is public, but every /api/* route but /api/health and /api/openapi.json takes the key", name)
			}
			if op.RequestBody != nil {
				for mt, media := range op.RequestBody.Content {
					if len(media.Examples) == 0 {
						t.Errorf("%s: the %s request body has no examples", name, mt)
					}
				}
			}
			ok2xx := false
			for status := range op.Responses {
				ok2xx = ok2xx || strings.HasPrefix(status, "2")
			}
			if !ok2xx {
				t.Errorf("%s documents no 2xx answer", name)
			}
		}
	}
}
