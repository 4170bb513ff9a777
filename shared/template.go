package shared

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// TemplateParams are a template's parameters as a client gives them: positional
// ({{1}}, {{2}}, ...) as a JSON array of strings, or named ({{nombre}}) as a JSON
// object of strings.
type TemplateParams struct {
	Positional []string
	Named      map[string]string // nil for positional parameters
}

// UnmarshalJSON accepts an array of strings (positional), an object of strings
// (named) or null.
func (p *TemplateParams) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*p = TemplateParams{}
		return nil
	case len(b) > 0 && b[0] == '[':
		var list []string
		if err := json.Unmarshal(b, &list); err != nil {
			return errParamsShape
		}
		*p = TemplateParams{Positional: list}
		return nil
	case len(b) > 0 && b[0] == '{':
		var named map[string]string
		if err := json.Unmarshal(b, &named); err != nil {
			return errParamsShape
		}
		*p = TemplateParams{Named: named}
		if named == nil {
			p.Named = map[string]string{}
		}
		return nil
	}
	return errParamsShape
}

// errParamsShape is the decoding error of parameters that are neither form.
var errParamsShape = errors.New("'parameters' debe ser una lista de textos ([\"Ana\", \"50%\"]) o un objeto de textos con nombre ({\"nombre\": \"Ana\"})")

// MarshalJSON writes the form it was given.
func (p TemplateParams) MarshalJSON() ([]byte, error) {
	if p.Named != nil {
		return json.Marshal(p.Named)
	}
	if p.Positional == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(p.Positional)
}

// IsNamed reports whether the parameters are named.
func (p TemplateParams) IsNamed() bool { return p.Named != nil }

// Count is the number of parameters.
func (p TemplateParams) Count() int {
	if p.Named != nil {
		return len(p.Named)
	}
	return len(p.Positional)
}

// Empty reports whether no parameter is given.
func (p *TemplateParams) Empty() bool { return p == nil || p.Count() == 0 }

// TemplateRecipient is one recipient of POST /api/send-bulk-template.
type TemplateRecipient struct {
	Phone string `json:"phone"`
	// Parameters are this recipient's body parameters; the request's top-level
	// parameters apply when absent.
	Parameters *TemplateParams `json:"parameters"`
	// HeaderContent is this recipient's header: the text of a TEXT header's variable,
	// or the link of a media header. The request's header_content applies when empty.
	HeaderContent string `json:"header_content"`
	// ButtonURLSuffix completes the URL button's {{1}} for this recipient; the request's
	// button_url_suffix applies when empty.
	ButtonURLSuffix string `json:"button_url_suffix"`
}

// FromCache takes a campaign's recipients from the numbers cache.
type FromCache struct {
	// Filter keeps the cached numbers whose data has every one of these fields with
	// exactly this value; an empty filter keeps every cached number.
	Filter map[string]json.RawMessage `json:"filter"`
}

// SendBulkTemplateRequest is the body of POST /api/send-bulk-template.
type SendBulkTemplateRequest struct {
	TemplateName string `json:"template_name"`
	Language     string `json:"language"`
	// Parameters apply to every recipient without parameters of its own. With
	// from_cache, "{{name}}", "{{phone}}" and "{{data.<field>}}" in them are filled from
	// each cached record.
	Parameters *TemplateParams `json:"parameters"`
	// HeaderType is text, image, video or document; HeaderContent is the text of a TEXT
	// header's variable or the media link (uploaded once per task).
	HeaderType    string `json:"header_type"`
	HeaderContent string `json:"header_content"`
	// ButtonURLSuffix completes the template's URL button ({{1}} at the end of its URL).
	ButtonURLSuffix string `json:"button_url_suffix"`
	// ButtonIndex is the position of that URL button among the template's buttons
	// (0 when unset; the registry's when WHATSAPP_BUSINESS_ACCOUNT_ID is set).
	ButtonIndex *int                `json:"button_index"`
	Recipients  []TemplateRecipient `json:"recipients"`
	FromCache   *FromCache          `json:"from_cache"`
	UseQueue    *bool               `json:"use_queue"`
}

// NamedParam is one named template parameter.
type NamedParam struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

// namedParamRe is Meta's rule for parameter names: lowercase letters, digits and
// underscores, starting with a letter.
var namedParamRe = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// TemplateParts are what a template message carries besides its name and language.
type TemplateParts struct {
	Params          TemplateParams
	HeaderType      string
	HeaderContent   string
	ButtonURLSuffix string
	ButtonIndex     int
}

// BulkTemplateMessage builds and checks one recipient's template message. prefix names
// the recipient in errors ("recipients[3]").
func BulkTemplateMessage(prefix, phone, name, language string, parts TemplateParts) (Message, error) {
	if err := ValidatePhone(field(prefix, "phone"), phone); err != nil {
		return Message{}, err
	}
	if err := requiredMax("template_name", name, MaxTemplateName); err != nil {
		return Message{}, err
	}
	if language == "" {
		language = DefaultLanguage
	}
	if err := maxLen("language", language, 15); err != nil {
		return Message{}, err
	}
	t := &Template{Name: name, Language: language}
	paramsPath := field(prefix, "parameters")
	if parts.Params.IsNamed() {
		for _, k := range sortedKeys(parts.Params.Named) {
			path := paramsPath + "." + Cut(k)
			if !namedParamRe.MatchString(k) {
				return Message{}, Invalidf("El nombre de parámetro '%s' no es válido (minúsculas, dígitos y '_', empezando por una letra)", path)
			}
			v := parts.Params.Named[k]
			if err := templateText(path, v); err != nil {
				return Message{}, err
			}
			t.Named = append(t.Named, NamedParam{Name: k, Text: v})
		}
	} else {
		for i, v := range parts.Params.Positional {
			if err := templateText(fmt.Sprintf("%s[%d]", paramsPath, i), v); err != nil {
				return Message{}, err
			}
		}
		t.Parameters = parts.Params.Positional
	}
	m := Message{To: phone, Kind: KindTemplate, Template: t}
	if parts.HeaderType != "" || parts.HeaderContent != "" {
		h, err := header(prefix, parts.HeaderType, parts.HeaderContent)
		if err != nil {
			return Message{}, err
		}
		if h.Type == HeaderText {
			if err := templateText(field(prefix, "header_content"), h.Text); err != nil {
				return Message{}, err
			}
		}
		m.Header = h
	}
	if parts.ButtonURLSuffix != "" {
		if err := requiredMax(field(prefix, "button_url_suffix"), parts.ButtonURLSuffix, MaxURL); err != nil {
			return Message{}, err
		}
		if parts.ButtonIndex < 0 || parts.ButtonIndex > 9 {
			return Message{}, Invalidf("El campo 'button_index' debe estar entre 0 y 9")
		}
		t.ButtonURLSuffix = parts.ButtonURLSuffix
		t.ButtonIndex = parts.ButtonIndex
	}
	return m, nil
}

// templateText checks one text parameter the way Meta does (132018 otherwise).
func templateText(path, v string) error {
	if err := requiredMax(path, v, MaxTemplateParam); err != nil {
		return err
	}
	if strings.ContainsAny(v, "\n\t") || strings.Contains(v, "     ") {
		return Invalidf("El campo '%s' no puede tener saltos de línea, tabulaciones ni más de 4 espacios seguidos", path)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// placeholderRe finds "{{name}}", "{{phone}}" and "{{data.field}}" in a parameter.
var placeholderRe = regexp.MustCompile(`\{\{\s*(name|phone|data\.[A-Za-z0-9_.-]+)\s*\}\}`)

// FillFromNumber replaces "{{name}}", "{{phone}}" and "{{data.<field>}}" in s with the
// cached record's values; a field the record lacks becomes "". Nested fields are
// reached with dots ("{{data.address.city}}"); a value that is not a string is written
// as its JSON.
func FillFromNumber(s string, n Number, data map[string]any) string {
	if !strings.Contains(s, "{{") {
		return s
	}
	return placeholderRe.ReplaceAllStringFunc(s, func(ph string) string {
		key := placeholderRe.FindStringSubmatch(ph)[1]
		switch key {
		case "name":
			return n.Name
		case "phone":
			return n.Phone
		}
		var v any = data
		for _, part := range strings.Split(strings.TrimPrefix(key, "data."), ".") {
			obj, ok := v.(map[string]any)
			if !ok {
				return ""
			}
			v = obj[part]
		}
		switch x := v.(type) {
		case nil:
			return ""
		case string:
			return x
		case json.Number:
			return x.String()
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64)
		default:
			b, _ := json.Marshal(x)
			return string(b)
		}
	})
}

// FillParams applies FillFromNumber to every parameter.
func FillParams(p TemplateParams, n Number, data map[string]any) TemplateParams {
	if p.IsNamed() {
		out := make(map[string]string, len(p.Named))
		for k, v := range p.Named {
			out[k] = FillFromNumber(v, n, data)
		}
		return TemplateParams{Named: out}
	}
	out := make([]string, len(p.Positional))
	for i, v := range p.Positional {
		out[i] = FillFromNumber(v, n, data)
	}
	return TemplateParams{Positional: out}
}

// MatchesFilter reports whether cached data has every field of filter with exactly
// its value (compared as JSON values, so "1" and 1 differ).
func MatchesFilter(data map[string]any, filter map[string]json.RawMessage) bool {
	for k, want := range filter {
		got, ok := data[k]
		if !ok {
			return false
		}
		var w any
		d := json.NewDecoder(bytes.NewReader(want))
		d.UseNumber()
		if d.Decode(&w) != nil || !jsonEqual(got, w) {
			return false
		}
	}
	return true
}

func jsonEqual(a, b any) bool {
	ab, err1 := json.Marshal(a)
	bb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}

// DecodeData decodes a cached number's free-form data, numbers kept exact.
func DecodeData(raw json.RawMessage) map[string]any {
	var data map[string]any
	if len(raw) == 0 {
		return data
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	_ = d.Decode(&data)
	return data
}

// Template registry: what Meta says of an approved template.

// Template statuses and parameter formats as Meta writes them.
const (
	TemplateApproved   = "APPROVED"
	TemplatePaused     = "PAUSED"
	TemplateDisabled   = "DISABLED"
	FormatPositional   = "POSITIONAL"
	FormatNamed        = "NAMED"
	TemplateHeaderText = "TEXT"
)

// TemplateSpec is one template of the business account's registry, as far as a send
// must match it.
type TemplateSpec struct {
	Name, Language, Status, Category string
	// ParameterFormat is POSITIONAL or NAMED.
	ParameterFormat string
	// BodyParams are the body's variables: "1", "2", ... or the names.
	BodyParams []string
	// HeaderFormat is "" (no header), TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION;
	// HeaderParams is how many variables a TEXT header has (0 or 1).
	HeaderFormat string
	HeaderParams int
	// URLButtons are the buttons of type URL whose URL ends in a variable, by index
	// among all the template's buttons.
	URLButtons []int
}

// templateVarRe finds {{1}} or {{name}} variables in a template's text.
var templateVarRe = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)

// TemplateVariables lists the distinct variables of a template text in order.
func TemplateVariables(text string) []string {
	var out []string
	for _, m := range templateVarRe.FindAllStringSubmatch(text, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

// CheckTemplate checks one message against the registry's spec of its template, the
// way Meta would (132000 count, 132012 format), so that a campaign that cannot succeed
// is refused before it starts. who names the recipient in the error.
func (s TemplateSpec) CheckTemplate(who string, m Message) error {
	t := m.Template
	name := fmt.Sprintf("'%s' (%s)", Cut(s.Name), Cut(s.Language))
	switch s.Status {
	case TemplateApproved:
	case "":
		return Invalidf("La plantilla %s no tiene estado en Meta", name)
	default:
		return Invalidf("La plantilla %s no está aprobada en Meta (estado %s)", name, s.Status)
	}
	given := len(t.Parameters)
	if len(t.Named) > 0 {
		given = len(t.Named)
	}
	switch {
	case s.ParameterFormat == FormatNamed && len(t.Parameters) > 0:
		return Invalidf("La plantilla %s usa parámetros con nombre (%s); %s los da por posición", name, strings.Join(s.BodyParams, ", "), who)
	case s.ParameterFormat != FormatNamed && len(t.Named) > 0:
		return Invalidf("La plantilla %s usa parámetros por posición; %s los da con nombre", name, who)
	case given != len(s.BodyParams):
		return Invalidf("La plantilla %s espera %d parámetros en el cuerpo; %s da %d", name, len(s.BodyParams), who, given)
	}
	if s.ParameterFormat == FormatNamed {
		for _, p := range t.Named {
			if !slices.Contains(s.BodyParams, p.Name) {
				return Invalidf("La plantilla %s no tiene el parámetro '%s' (tiene %s); lo da %s", name, Cut(p.Name), strings.Join(s.BodyParams, ", "), who)
			}
		}
	}
	switch s.HeaderFormat {
	case "":
		if m.Header != nil {
			return Invalidf("La plantilla %s no tiene encabezado; %s da uno", name, who)
		}
	case TemplateHeaderText:
		if s.HeaderParams > 0 && (m.Header == nil || m.Header.Type != HeaderText) {
			return Invalidf("La plantilla %s tiene un encabezado de texto con una variable; %s no da header_content", name, who)
		}
		if s.HeaderParams == 0 && m.Header != nil {
			return Invalidf("La plantilla %s tiene un encabezado de texto fijo; %s da uno", name, who)
		}
	default:
		want := strings.ToLower(s.HeaderFormat)
		if m.Header == nil || m.Header.Type != want {
			got := "ninguno"
			if m.Header != nil {
				got = m.Header.Type
			}
			return Invalidf("La plantilla %s tiene un encabezado %s; %s da %s", name, want, who, got)
		}
	}
	if len(s.URLButtons) > 0 && t.ButtonURLSuffix == "" {
		return Invalidf("La plantilla %s tiene un botón URL con variable; %s no da button_url_suffix", name, who)
	}
	if len(s.URLButtons) == 0 && t.ButtonURLSuffix != "" {
		return Invalidf("La plantilla %s no tiene un botón URL con variable; %s da button_url_suffix", name, who)
	}
	return nil
}
