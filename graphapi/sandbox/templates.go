package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Template is one message template of the sandbox's registry, as Meta's template
// management API describes it. Sends of type template are checked against it as Meta
// checks them: unknown or unapproved 132001, paused 132015, disabled 132016, a wrong
// number of parameters 132000, a wrong kind of parameter 132012.
type Template struct {
	Name     string `json:"name"`
	Language string `json:"language"`
	// Status is APPROVED, PAUSED, DISABLED, PENDING or REJECTED.
	Status   string `json:"status"`
	Category string `json:"category"`
	// ParameterFormat is POSITIONAL ({{1}}) or NAMED ({{nombre}}).
	ParameterFormat string `json:"parameter_format"`
	// HeaderFormat is "", TEXT, IMAGE, VIDEO or DOCUMENT; HeaderText is a TEXT
	// header's text, with at most one variable.
	HeaderFormat string `json:"header_format,omitempty"`
	HeaderText   string `json:"header_text,omitempty"`
	Body         string `json:"body"`
	Footer       string `json:"footer,omitempty"`
	// Buttons are the template's buttons in order; a URL button whose URL ends in
	// {{1}} takes a suffix per send.
	Buttons []TemplateButton `json:"buttons,omitempty"`
}

// TemplateButton is one button of a template: QUICK_REPLY, URL or PHONE_NUMBER.
type TemplateButton struct {
	Type string `json:"type"`
	Text string `json:"text"`
	URL  string `json:"url,omitempty"`
}

// DefaultTemplates is the registry the sandbox starts with: the contract's example
// (hello_world in es with two parameters) and Meta's own sample, positional and named
// templates, text and media headers, a URL button, and one template paused by Meta.
func DefaultTemplates() []Template {
	return []Template{
		{Name: "hello_world", Language: "en_US", Status: "APPROVED", Category: "UTILITY", ParameterFormat: "POSITIONAL",
			HeaderFormat: "TEXT", HeaderText: "Hello World",
			Body: "Welcome and congratulations!! This message demonstrates your ability to send a WhatsApp message notification from the Cloud API, hosted by Meta."},
		{Name: "hello_world", Language: "es", Status: "APPROVED", Category: "UTILITY", ParameterFormat: "POSITIONAL",
			Body: "Hola {{1}}, gracias por confiar en {{2}}."},
		{Name: "order_update", Language: "es", Status: "APPROVED", Category: "UTILITY", ParameterFormat: "POSITIONAL",
			HeaderFormat: "IMAGE", Body: "Hola {{1}}, tu pedido {{2}} va en camino.",
			Buttons: []TemplateButton{{Type: "URL", Text: "Ver pedido", URL: "https://mi-tienda.com/pedido/{{1}}"}}},
		{Name: "promo_imagen", Language: "es", Status: "APPROVED", Category: "MARKETING", ParameterFormat: "POSITIONAL",
			HeaderFormat: "IMAGE", Body: "Hola {{1}}, hoy tienes {{2}} de descuento en toda la tienda.", Footer: "Responde STOP para no recibir ofertas"},
		{Name: "promo_descuento", Language: "es", Status: "APPROVED", Category: "MARKETING", ParameterFormat: "POSITIONAL",
			Body: "Hola {{1}}, hoy tienes {{2}} de descuento. Entra en tu cuenta para usarlo.",
			Buttons: []TemplateButton{
				{Type: "QUICK_REPLY", Text: "No me interesa"},
				{Type: "URL", Text: "Ver oferta", URL: "https://mi-tienda.com/ofertas/{{1}}"},
			}},
		{Name: "pedido_listo", Language: "es", Status: "APPROVED", Category: "UTILITY", ParameterFormat: "NAMED",
			Body: "Hola {{nombre}}, tu pedido {{pedido}} está listo para recoger."},
		{Name: "saludo_encabezado", Language: "es", Status: "APPROVED", Category: "MARKETING", ParameterFormat: "POSITIONAL",
			HeaderFormat: "TEXT", HeaderText: "¡Hola {{1}}!", Body: "Tu descuento de hoy es {{1}}."},
		{Name: "factura", Language: "es", Status: "APPROVED", Category: "UTILITY", ParameterFormat: "NAMED",
			HeaderFormat: "DOCUMENT", Body: "Hola {{nombre}}, adjuntamos tu factura del mes."},
		{Name: "video_bienvenida", Language: "es", Status: "APPROVED", Category: "MARKETING", ParameterFormat: "NAMED",
			HeaderFormat: "VIDEO", Body: "{{nombre}}, mira lo nuevo de {{empresa}}."},
		{Name: "oferta_pausada", Language: "es", Status: "PAUSED", Category: "MARKETING", ParameterFormat: "POSITIONAL",
			Body: "Oferta para {{1}}: {{2}}."},
	}
}

// registry is the sandbox's template registry, safe for concurrent use.
type registry struct {
	mu        sync.RWMutex
	templates []Template // in creation order
}

func newRegistry(ts []Template) *registry {
	if ts == nil {
		ts = DefaultTemplates()
	}
	return &registry{templates: slices.Clone(ts)}
}

func (g *registry) find(name, language string) (Template, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, t := range g.templates {
		if t.Name == name && t.Language == language {
			return t, true
		}
	}
	return Template{}, false
}

func (g *registry) list() []Template {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return slices.Clone(g.templates)
}

// setStatus changes the status of the template name in language ("" = every language)
// and reports whether one matched.
func (g *registry) setStatus(name, language, status string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	found := false
	for i, t := range g.templates {
		if t.Name == name && (language == "" || t.Language == language) {
			g.templates[i].Status = status
			found = true
		}
	}
	return found
}

// SetTemplateStatus changes a template's status at run time, as Meta pausing a
// template for low quality (PAUSED) or re-activating it (APPROVED) does; language ""
// means every language of that name. It reports whether the template exists.
func (s *Server) SetTemplateStatus(name, language, status string) bool {
	return s.templates.setStatus(name, language, strings.ToUpper(status))
}

// Templates returns the registry.
func (s *Server) Templates() []Template { return s.templates.list() }

// templateVar finds {{1}} and {{name}} in a template text.
var templateVar = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)

func variables(text string) []string {
	var out []string
	for _, m := range templateVar.FindAllStringSubmatch(text, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

// checkTemplateSend matches a validated template object against the registry.
func (g *registry) checkTemplateSend(content any) *apiError {
	t, _ := content.(object)
	name, _ := t["name"].(string)
	lang := ""
	if l, ok := t["language"].(object); ok {
		lang, _ = l["code"].(string)
	}
	tpl, ok := g.find(name, lang)
	if !ok {
		return metaErr(CodeTemplateMissing, fmt.Sprintf("template name (%s) does not exist in %s", name, lang))
	}
	switch tpl.Status {
	case "APPROVED":
	case "PAUSED":
		return metaErr(CodeTemplatePaused, fmt.Sprintf("Template %s (%s) is paused because of low quality", name, lang))
	case "DISABLED":
		return metaErr(CodeTemplateDisabled, fmt.Sprintf("Template %s (%s) has been disabled", name, lang))
	default:
		return metaErr(CodeTemplateMissing, fmt.Sprintf("template name (%s) is not approved in %s (status %s)", name, lang, tpl.Status))
	}

	var header, body []object
	buttons := map[int]object{}
	comps, _ := t["components"].([]any)
	for _, c := range comps {
		comp, _ := c.(object)
		params := objects(comp["parameters"])
		switch comp["type"] {
		case "header":
			header = append(header, params...)
		case "body":
			body = append(body, params...)
		case "button":
			idx, _ := strconv.Atoi(fmt.Sprint(comp["index"]))
			buttons[idx] = comp
		}
	}

	// Header.
	switch tpl.HeaderFormat {
	case "", "TEXT":
		want := 0
		if tpl.HeaderFormat == "TEXT" {
			want = len(variables(tpl.HeaderText))
		}
		if len(header) != want {
			return paramCount("header", len(header), want)
		}
		for _, p := range header {
			if p["type"] != "text" {
				return metaErr(CodeTemplateFormat, fmt.Sprintf("header: Format mismatch, expected TEXT, received %s", strings.ToUpper(fmt.Sprint(p["type"]))))
			}
		}
	default:
		got := "UNKNOWN"
		if len(header) == 1 {
			got = strings.ToUpper(fmt.Sprint(header[0]["type"]))
		}
		if len(header) > 1 {
			return paramCount("header", len(header), 1)
		}
		if got != tpl.HeaderFormat {
			return metaErr(CodeTemplateFormat, fmt.Sprintf("header: Format mismatch, expected %s, received %s", tpl.HeaderFormat, got))
		}
	}

	// Body.
	vars := variables(tpl.Body)
	named := tpl.ParameterFormat == "NAMED"
	for _, p := range body {
		pn, _ := p["parameter_name"].(string)
		switch {
		case named && pn == "":
			return fieldErr(CodeInvalidParameter, "template.components.body", "Parameter name is missing or empty")
		case !named && pn != "":
			return metaErr(CodeTemplateFormat, "body: Parameter format does not match format in the created template (POSITIONAL)")
		case named && !slices.Contains(vars, pn):
			return metaErr(CodeTemplateParamCount, fmt.Sprintf("body: parameter '%s' is not a parameter of the template (%s)", pn, strings.Join(vars, ", ")))
		}
	}
	if len(body) != len(vars) {
		return paramCount("body", len(body), len(vars))
	}

	// Buttons: a URL button with a variable takes exactly one text parameter.
	for i, b := range tpl.Buttons {
		takesSuffix := strings.EqualFold(b.Type, "URL") && len(variables(b.URL)) > 0
		comp, given := buttons[i]
		delete(buttons, i)
		switch {
		case takesSuffix && !given:
			return paramCount(fmt.Sprintf("button %d", i), 0, 1)
		case takesSuffix:
			if comp["sub_type"] != "url" {
				return metaErr(CodeTemplateFormat, fmt.Sprintf("button %d: Format mismatch, expected url, received %v", i, comp["sub_type"]))
			}
			if n := len(objects(comp["parameters"])); n != 1 {
				return paramCount(fmt.Sprintf("button %d", i), n, 1)
			}
		case given && len(objects(comp["parameters"])) > 0 && !strings.EqualFold(b.Type, "QUICK_REPLY"):
			return paramCount(fmt.Sprintf("button %d", i), len(objects(comp["parameters"])), 0)
		}
	}
	for i := range buttons {
		return metaErr(CodeTemplateParamCount, fmt.Sprintf("button %d: the template has no button at this index", i))
	}
	return nil
}

func objects(v any) []object {
	list, _ := v.([]any)
	out := make([]object, 0, len(list))
	for _, x := range list {
		if o, ok := x.(object); ok {
			out = append(out, o)
		}
	}
	return out
}

func paramCount(where string, got, want int) *apiError {
	return metaErr(CodeTemplateParamCount, fmt.Sprintf("%s: number of localizable_params (%d) does not match the expected number of params (%d)", where, got, want))
}

// templateRecord is a template as GET /{waba-id}/message_templates answers it.
type templateRecord struct {
	Name            string              `json:"name"`
	Language        string              `json:"language"`
	Status          string              `json:"status"`
	Category        string              `json:"category"`
	ParameterFormat string              `json:"parameter_format"`
	Components      []templateComponent `json:"components"`
	ID              string              `json:"id"`
}

type templateComponent struct {
	Type    string           `json:"type"`
	Format  string           `json:"format,omitempty"`
	Text    string           `json:"text,omitempty"`
	Buttons []TemplateButton `json:"buttons,omitempty"`
}

func (t Template) record(id int) templateRecord {
	r := templateRecord{Name: t.Name, Language: t.Language, Status: t.Status, Category: t.Category,
		ParameterFormat: t.ParameterFormat, ID: strconv.Itoa(900000000000000 + id)}
	if t.HeaderFormat != "" {
		r.Components = append(r.Components, templateComponent{Type: "HEADER", Format: t.HeaderFormat, Text: t.HeaderText})
	}
	r.Components = append(r.Components, templateComponent{Type: "BODY", Text: t.Body})
	if t.Footer != "" {
		r.Components = append(r.Components, templateComponent{Type: "FOOTER", Text: t.Footer})
	}
	if len(t.Buttons) > 0 {
		r.Components = append(r.Components, templateComponent{Type: "BUTTONS", Buttons: t.Buttons})
	}
	return r
}

// handleTemplates answers GET /{waba-id}/message_templates with Meta's paging: name
// (a prefix filter, as Meta's), status, language, limit (25 by default) and after.
func (s *Server) handleTemplates(w http.ResponseWriter, r *http.Request, waba string) *apiError {
	if e := s.checkAuth(r); e != nil {
		return e
	}
	if r.Method != http.MethodGet {
		return unsupported(strings.ToLower(r.Method), waba+"/message_templates")
	}
	if !allDigits(waba) || (s.opts.BusinessAccountID != "" && waba != s.opts.BusinessAccountID) {
		return unsupported("get", waba+"/message_templates")
	}
	q := r.URL.Query()
	limit := 25
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return fieldErr(CodeInvalidParameter, "limit", "must be a positive number")
		}
		limit = min(n, 1000)
	}
	start := 0
	if a := q.Get("after"); a != "" {
		n, err := strconv.Atoi(a)
		if err != nil || n < 0 {
			return fieldErr(CodeInvalidParameter, "after", "invalid cursor")
		}
		start = n
	}
	var matched []templateRecord
	for i, t := range s.templates.list() {
		if (q.Get("name") == "" || strings.HasPrefix(t.Name, q.Get("name"))) &&
			(q.Get("status") == "" || strings.EqualFold(q.Get("status"), t.Status)) &&
			(q.Get("language") == "" || q.Get("language") == t.Language) {
			matched = append(matched, t.record(i))
		}
	}
	end := min(start+limit, len(matched))
	page := []templateRecord{}
	if start < len(matched) {
		page = matched[start:end]
	}
	ans := map[string]any{"data": page}
	paging := map[string]any{"cursors": map[string]string{"before": strconv.Itoa(start), "after": strconv.Itoa(end)}}
	if end < len(matched) {
		next := *r.URL
		nq := next.Query()
		nq.Set("after", strconv.Itoa(end))
		next.RawQuery = nq.Encode()
		paging["next"] = "https://graph.facebook.com" + next.RequestURI()
	}
	ans["paging"] = paging
	writeJSON(w, http.StatusOK, ans)
	return nil
}

// serveTemplateControl answers GET /_sandbox/templates and PUT
// /_sandbox/templates/{name} {"status": "PAUSED", "language": "es"}.
func (s *Server) serveTemplateControl(w http.ResponseWriter, r *http.Request, parts []string) bool {
	switch {
	case len(parts) == 1 && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Templates())
	case len(parts) == 2 && r.Method == http.MethodPut:
		var body struct{ Status, Language string }
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&body); err != nil || body.Status == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"status": "PAUSED" | "APPROVED" | "DISABLED", "language": "es"}`})
			return true
		}
		if !s.SetTemplateStatus(parts[1], body.Language, body.Status) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no template " + parts[1]})
			return true
		}
		writeJSON(w, http.StatusOK, map[string]string{"name": parts[1], "status": strings.ToUpper(body.Status)})
	default:
		return false
	}
	return true
}
