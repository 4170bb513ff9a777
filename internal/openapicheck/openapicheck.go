// Package openapicheck validates the API's OpenAPI 3.1 document, and requests and
// responses against it, with an independent validator (pb33f's libopenapi-validator,
// whose JSON Schema 2020-12 engine is santhosh-tekuri/jsonschema). Only tests import
// it, so the production binaries do not link the validator (make deps-check).
package openapicheck

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
)

// Checker holds a parsed document and its validator.
type Checker struct {
	v   validator.Validator
	raw map[string]any
}

// New parses spec and builds its validator, with format assertions on (uuid,
// date-time). An error means the document could not even be modelled.
func New(spec []byte) (*Checker, error) {
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		return nil, fmt.Errorf("parse the document: %w", err)
	}
	if _, err := doc.BuildV3Model(); err != nil {
		return nil, fmt.Errorf("model the document: %w", err)
	}
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		return nil, fmt.Errorf("build the validator: %v", errs)
	}
	c := &Checker{v: v}
	if err := json.Unmarshal(spec, &c.raw); err != nil {
		return nil, fmt.Errorf("the document is not JSON: %w", err)
	}
	return c, nil
}

// Document validates the document against the OpenAPI 3.1 schema; nil when valid.
func (c *Checker) Document() []string {
	_, errs := c.v.ValidateDocument()
	return format(errs)
}

// Request validates req (path, parameters, security, body); nil when valid. It reads
// req's body: give it a body that can be read again (http.NewRequest with a
// *bytes.Reader sets GetBody).
func (c *Checker) Request(req *http.Request) []string {
	_, errs := c.v.ValidateHttpRequestSync(req)
	return format(errs)
}

// Response validates res, the answer to req: its status must be documented for the
// operation and its body must fit that response's schema; nil when valid.
func (c *Checker) Response(req *http.Request, res *http.Response) []string {
	_, errs := c.v.ValidateHttpResponse(req, res)
	return format(errs)
}

func format(errs []*verrors.ValidationError) []string {
	var out []string
	for _, e := range errs {
		s := e.Message
		if e.Reason != "" {
			s += ": " + e.Reason
		}
		for _, f := range e.SchemaValidationErrors {
			loc := f.FieldPath
			if loc == "" {
				loc = strings.Join(f.InstancePath, "/")
			}
			s += fmt.Sprintf("; %s at %q", f.Reason, loc)
		}
		out = append(out, s)
	}
	return out
}

// Operations lists the document's operations as "METHOD /path", sorted.
func (c *Checker) Operations() []string {
	var ops []string
	paths, _ := c.raw["paths"].(map[string]any)
	for p, item := range paths {
		for m := range item.(map[string]any) {
			if isMethod(m) {
				ops = append(ops, strings.ToUpper(m)+" "+p)
			}
		}
	}
	sort.Strings(ops)
	return ops
}

func isMethod(m string) bool {
	switch m {
	case "get", "put", "post", "delete", "options", "head", "patch", "trace":
		return true
	}
	return false
}

// Example is one example of the document, where it sits.
type Example struct {
	Method, Path string // the operation
	// Status is the response's status code ("200"), "" for a request body's example.
	Status    string
	MediaType string
	Name      string // the key in the examples map; "example" for a lone example
	Value     json.RawMessage
}

// Where names the example in test output.
func (e Example) Where() string {
	part := "request"
	if e.Status != "" {
		part = "response " + e.Status
	}
	return fmt.Sprintf("%s %s %s %s example %q", e.Method, e.Path, part, e.MediaType, e.Name)
}

// Examples lists every example of the document's request bodies and responses,
// shared responses ($ref to components.responses) included once per operation.
func (c *Checker) Examples() []Example {
	var out []Example
	paths, _ := c.raw["paths"].(map[string]any)
	for p, item := range paths {
		for m, opv := range item.(map[string]any) {
			if !isMethod(m) {
				continue
			}
			op := opv.(map[string]any)
			method := strings.ToUpper(m)
			if rb, ok := c.resolve(op["requestBody"]).(map[string]any); ok {
				out = append(out, mediaExamples(method, p, "", rb)...)
			}
			responses, _ := op["responses"].(map[string]any)
			for status, r := range responses {
				if rm, ok := c.resolve(r).(map[string]any); ok {
					out = append(out, mediaExamples(method, p, status, rm)...)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Where() < out[j].Where() })
	return out
}

// resolve follows a local $ref (#/components/...).
func (c *Checker) resolve(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	ref, ok := m["$ref"].(string)
	if !ok {
		return v
	}
	var cur any = c.raw
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		mm, _ := cur.(map[string]any)
		cur = mm[part]
	}
	return c.resolve(cur)
}

func mediaExamples(method, path, status string, holder map[string]any) []Example {
	var out []Example
	content, _ := holder["content"].(map[string]any)
	for mt, mv := range content {
		media, _ := mv.(map[string]any)
		if v, ok := media["example"]; ok {
			out = append(out, Example{method, path, status, mt, "example", mustJSON(v)})
		}
		exs, _ := media["examples"].(map[string]any)
		for name, ev := range exs {
			if val, ok := ev.(map[string]any)["value"]; ok {
				out = append(out, Example{method, path, status, mt, name, mustJSON(val)})
			}
		}
	}
	return out
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // v came from json.Unmarshal
	}
	return b
}

// ParamExample is the example of a path or query parameter, "" when none.
func (c *Checker) ParamExample(method, path, name string) string {
	paths, _ := c.raw["paths"].(map[string]any)
	item, _ := paths[path].(map[string]any)
	op, _ := item[strings.ToLower(method)].(map[string]any)
	params, _ := op["parameters"].([]any)
	for _, pv := range params {
		p, _ := c.resolve(pv).(map[string]any)
		if p["name"] == name {
			if s, ok := p["example"].(string); ok {
				return s
			}
		}
	}
	return ""
}
