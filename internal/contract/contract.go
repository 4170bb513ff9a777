// Package contract reads the examples out of the HTTP contract, api-spec.md: a copy of
// the seed contract (../seed/api-spec.md in the steering repository), embedded so that
// tests can check the OpenAPI document and the running API against the contract's own
// examples. Only tests import it.
package contract

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Spec is the contract's text.
//
//go:embed api-spec.md
var Spec []byte

// Kind says what an example is.
type Kind int

const (
	// Request is a request the contract shows: a curl (Target, with Body when it has
	// -d) or an Input or webhook body (Body).
	Request Kind = iota
	// Response is an Output block: what the endpoint answers.
	Response
	// Fragment is a piece of a request described on its own ("Estructura de sections").
	Fragment
)

func (k Kind) String() string {
	return [...]string{"request", "response", "fragment"}[k]
}

// Example is one code block of the contract.
type Example struct {
	Section string // the "### " heading, e.g. "1. Enviar Mensaje Individual"
	Label   string // the bold label above the block: "Curl", "Input", "Output (Éxito)"...
	Kind    Kind
	// Method and Path are the operation the block belongs to, Path as the contract's
	// Endpoint line templates it (/api/task-status/{task_id}).
	Method, Path string
	// Target is a curl's path and query as sent (/api/task-status/1234...); "" for
	// other blocks.
	Target string
	// Body is the block's JSON (a request or response body), or its text when JSON is
	// false (GET /webhook's challenge); a curl without -d has none.
	Body []byte
	JSON bool
}

// Name identifies the example in test output.
func (e Example) Name() string {
	return fmt.Sprintf("§%s %s %s [%s]", e.Section, e.Method, e.Path, e.Label)
}

// StatusOK reports whether an answer with status code fits an Output's label: Éxito
// and Sin Cola are 2xx, Error 400, No encontrado 404, Degradado 503.
func (e Example) StatusOK(code int) bool {
	switch e.Label {
	case "Output (Error)":
		return code == 400
	case "Output (No encontrado)":
		return code == 404
	case "Output (Degradado)":
		return code == 503
	default:
		return code >= 200 && code < 300
	}
}

var (
	endpointRe = regexp.MustCompile("^\\*\\*Endpoint\\*\\*: `(\\w+) (\\S+)`")
	labelRe    = regexp.MustCompile(`^\*\*(.+?)(?::\*\*|\*\*)`)
	curlRe     = regexp.MustCompile(`curl -X (\w+) "?(?:http://localhost:\d+)?([^\s"]+)"?`)
	dataRe     = regexp.MustCompile(`(?s)-d '(.*)'`)
	// quotedParamRe is a {param} of a path after regexp.QuoteMeta.
	quotedParamRe = regexp.MustCompile(`\\\{[^/}]+\\\}`)
)

// Examples parses every code block of Spec.
func Examples() ([]Example, error) { return Parse(Spec) }

// Parse parses every code block of a contract in api-spec.md's layout: "### " sections
// with an "**Endpoint**: `METHOD /path`" line, and blocks labelled "**Curl:**",
// "**Input:**", "**Output (...):**" and so on. An Output belongs to the request of the
// curl above it (GET /webhook's challenge follows its curl in the POST /webhook
// section).
func Parse(spec []byte) ([]Example, error) {
	lines := strings.Split(string(spec), "\n")
	var out []Example
	var section, label, epMethod, epPath, method, path string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "### "):
			section, label, epMethod, epPath, method, path = strings.TrimSpace(l[4:]), "", "", "", "", ""
			continue
		case endpointRe.MatchString(l):
			m := endpointRe.FindStringSubmatch(l)
			epMethod, epPath = m[1], m[2]
			method, path = epMethod, epPath
			continue
		case labelRe.MatchString(l):
			label = strings.TrimSuffix(labelRe.FindStringSubmatch(l)[1], ":")
			continue
		case !strings.HasPrefix(l, "```"):
			continue
		}
		lang := strings.TrimSpace(l[3:])
		j := i + 1
		for j < len(lines) && !strings.HasPrefix(lines[j], "```") {
			j++
		}
		if j == len(lines) {
			return nil, fmt.Errorf("§%s: code block not closed", section)
		}
		block := strings.Join(lines[i+1:j], "\n")
		i = j
		if section == "" || epPath == "" {
			continue // the introduction has no examples
		}
		ex := Example{Section: section, Label: label, Method: method, Path: path}
		switch {
		case lang == "bash":
			m := curlRe.FindStringSubmatch(block)
			if m == nil {
				return nil, fmt.Errorf("§%s: a shell block without a curl", section)
			}
			target := m[2]
			p, _, _ := strings.Cut(target, "?")
			method, path = m[1], p
			if method == epMethod && matches(epPath, p) {
				path = epPath
			}
			ex.Kind, ex.Method, ex.Path, ex.Target = Request, method, path, target
			if d := dataRe.FindStringSubmatch(block); d != nil {
				ex.Body, ex.JSON = []byte(d[1]), true
			}
		case strings.HasPrefix(label, "Estructura"):
			ex.Kind, ex.Body, ex.JSON = Fragment, []byte(block), true
		case label == "Input":
			ex.Kind, ex.Body, ex.JSON = Request, []byte(block), true
		case label == "Webhook POST":
			// Meta's delivery to POST /webhook, shown after the GET verification.
			ex.Kind, ex.Method, ex.Path, ex.Body, ex.JSON = Request, epMethod, epPath, []byte(block), true
		case strings.HasPrefix(label, "Output"):
			ex.Kind, ex.Body, ex.JSON = Response, []byte(block), lang == "json"
		default:
			return nil, fmt.Errorf("§%s: a block labelled %q", section, label)
		}
		if ex.JSON && !json.Valid(ex.Body) {
			return nil, fmt.Errorf("%s: the block is not valid JSON", ex.Name())
		}
		out = append(out, ex)
	}
	return out, nil
}

// matches reports whether the concrete path p fits the templated path tmpl.
func matches(tmpl, p string) bool {
	re := quotedParamRe.ReplaceAllString(regexp.QuoteMeta(tmpl), "[^/]+")
	return regexp.MustCompile("^" + re + "$").MatchString(p)
}

// Equal reports whether two JSON texts hold the same value.
func Equal(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(bytes.TrimSpace(a), bytes.TrimSpace(b))
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
