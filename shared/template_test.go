package shared

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestTemplateParamsJSON(t *testing.T) {
	tests := []struct {
		in        string
		named     bool
		count     int
		wantError bool
	}{
		{`["Ana", "50%"]`, false, 2, false},
		{`{"nombre": "Ana"}`, true, 1, false},
		{`{}`, true, 0, false},
		{`null`, false, 0, false},
		{`"Ana"`, false, 0, true},
		{`[1, 2]`, false, 0, true},
		{`{"n": 1}`, false, 0, true},
	}
	for _, tt := range tests {
		var p TemplateParams
		err := json.Unmarshal([]byte(tt.in), &p)
		if (err != nil) != tt.wantError {
			t.Errorf("Unmarshal(%s) error = %v, want error %v", tt.in, err, tt.wantError)
			continue
		}
		if err == nil && (p.IsNamed() != tt.named || p.Count() != tt.count) {
			t.Errorf("Unmarshal(%s) = named %v count %d, want %v %d", tt.in, p.IsNamed(), p.Count(), tt.named, tt.count)
		}
	}
}

func TestFillFromNumberAndFilter(t *testing.T) {
	n := Number{Phone: "573123456789", Name: "Juan Pérez",
		Data: json.RawMessage(`{"company": "Empresa XYZ", "tier": 2, "address": {"city": "Bogotá"}, "vip": true}`)}
	data := DecodeData(n.Data)
	for in, want := range map[string]string{
		"{{name}}":                             "Juan Pérez",
		"Hola {{ name }}, de {{data.company}}": "Hola Juan Pérez, de Empresa XYZ",
		"{{phone}}":                            "573123456789",
		"{{data.tier}}":                        "2",
		"{{data.address.city}}":                "Bogotá",
		"{{data.missing}}":                     "",
		"{{data.vip}}":                         "true",
		"sin marcadores":                       "sin marcadores",
		"{{1}} queda igual":                    "{{1}} queda igual",
	} {
		if got := FillFromNumber(in, n, data); got != want {
			t.Errorf("FillFromNumber(%q) = %q, want %q", in, got, want)
		}
	}
	filter := func(s string) map[string]json.RawMessage {
		var f map[string]json.RawMessage
		if err := json.Unmarshal([]byte(s), &f); err != nil {
			t.Fatal(err)
		}
		return f
	}
	for f, want := range map[string]bool{
		`{}`:                         true,
		`{"company": "Empresa XYZ"}`: true,
		`{"company": "Empresa ABC"}`: false,
		`{"tier": 2}`:                true,
		`{"tier": "2"}`:              false,
		`{"company": "Empresa XYZ", "vip": true}`: true,
		`{"department": "Ventas"}`:                false,
		`{"address": {"city": "Bogotá"}}`:         true,
	} {
		if got := MatchesFilter(data, filter(f)); got != want {
			t.Errorf("MatchesFilter(%s) = %v, want %v", f, got, want)
		}
	}
}

func TestBulkTemplateMessageValidation(t *testing.T) {
	pos := func(v ...string) TemplateParts { return TemplateParts{Params: TemplateParams{Positional: v}} }
	tests := []struct {
		name, phone, template string
		parts                 TemplateParts
		wantErr               string // "" = valid
	}{
		{"positional", "573123456789", "hello_world", pos("Juan", "XYZ"), ""},
		{"named sorted", "573123456789", "pedido_listo", TemplateParts{Params: TemplateParams{Named: map[string]string{"pedido": "1", "nombre": "Ana"}}}, ""},
		{"bad phone", "+57 312", "hello_world", pos("a"), "recipients[3].phone"},
		{"no template", "573123456789", "", pos("a"), "template_name"},
		{"empty parameter", "573123456789", "hello_world", pos("Juan", ""), "recipients[3].parameters[1]"},
		{"newline", "573123456789", "hello_world", pos("a\nb"), "saltos de línea"},
		{"bad name", "573123456789", "t", TemplateParts{Params: TemplateParams{Named: map[string]string{"Nombre": "x"}}}, "recipients[3].parameters.Nombre"},
		{"image header", "573123456789", "t", TemplateParts{HeaderType: "image", HeaderContent: "https://cdn.x/a.jpg"}, ""},
		{"image header not a URL", "573123456789", "t", TemplateParts{HeaderType: "image", HeaderContent: "a.jpg"}, "header_content"},
		{"unknown header", "573123456789", "t", TemplateParts{HeaderType: "location", HeaderContent: "x"}, "header_type"},
		{"button index", "573123456789", "t", TemplateParts{ButtonURLSuffix: "x", ButtonIndex: 10}, "button_index"},
	}
	for _, tt := range tests {
		m, err := BulkTemplateMessage("recipients[3]", tt.phone, tt.template, "", tt.parts)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: error %v, want one naming %q", tt.name, err, tt.wantErr)
		case err != nil && HTTPStatus(err) != 400:
			t.Errorf("%s: status %d, want 400", tt.name, HTTPStatus(err))
		case err == nil && m.Template.Language != DefaultLanguage:
			t.Errorf("%s: language %q, want the default %q", tt.name, m.Template.Language, DefaultLanguage)
		}
	}
	m, _ := BulkTemplateMessage("", "573123456789", "pedido_listo", "es", TemplateParts{Params: TemplateParams{Named: map[string]string{"pedido": "1", "nombre": "Ana"}}})
	if len(m.Template.Named) != 2 || m.Template.Named[0].Name != "nombre" {
		t.Errorf("named parameters = %+v, want sorted by name", m.Template.Named)
	}
}

func TestCheckTemplate(t *testing.T) {
	spec := TemplateSpec{Name: "promo", Language: "es", Status: TemplateApproved, ParameterFormat: FormatPositional,
		BodyParams: []string{"1", "2"}, HeaderFormat: "IMAGE", URLButtons: []int{0}}
	ok := Message{Kind: KindTemplate, Header: &Header{Type: HeaderImage, Link: "https://x/a.jpg"},
		Template: &Template{Name: "promo", Parameters: []string{"a", "b"}, ButtonURLSuffix: "s"}}
	if err := spec.CheckTemplate("recipients[0]", ok); err != nil {
		t.Fatalf("matching message: %v", err)
	}
	mutate := map[string]func(m *Message, s *TemplateSpec){
		"paused": func(m *Message, s *TemplateSpec) { s.Status = TemplatePaused },
		"count":  func(m *Message, s *TemplateSpec) { m.Template.Parameters = []string{"a"} },
		"named given": func(m *Message, s *TemplateSpec) {
			m.Template.Parameters, m.Template.Named = nil, []NamedParam{{"a", "b"}, {"c", "d"}}
		},
		"header missing": func(m *Message, s *TemplateSpec) { m.Header = nil },
		"header wrong":   func(m *Message, s *TemplateSpec) { m.Header = &Header{Type: HeaderVideo, Link: "https://x/v.mp4"} },
		"suffix missing": func(m *Message, s *TemplateSpec) { m.Template.ButtonURLSuffix = "" },
		"suffix extra":   func(m *Message, s *TemplateSpec) { s.URLButtons = nil },
		"named wrong key": func(m *Message, s *TemplateSpec) {
			s.ParameterFormat, s.BodyParams = FormatNamed, []string{"x", "y"}
			m.Template.Parameters, m.Template.Named = nil, []NamedParam{{"x", "1"}, {"z", "2"}}
		},
	}
	for name, f := range mutate {
		m, s := ok, spec
		tpl := *ok.Template
		m.Template = &tpl
		f(&m, &s)
		err := s.CheckTemplate("recipients[7]", m)
		if err == nil || HTTPStatus(err) != 400 || !strings.Contains(err.Error(), "'promo'") {
			t.Errorf("%s: %v, want a 400 naming the template", name, err)
			continue
		}
		if s.Status == TemplateApproved && !strings.Contains(err.Error(), "recipients[7]") {
			t.Errorf("%s: %v does not name the recipient", name, err)
		}
	}
}
