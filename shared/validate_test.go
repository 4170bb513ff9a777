package shared

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestValidatePhone(t *testing.T) {
	tests := []struct {
		phone string
		ok    bool
	}{
		{"573123456789", true},
		{"12345678", true},        // 8 digits
		{"123456789012345", true}, // 15 digits
		{"1234567", false},
		{"1234567890123456", false},
		{"+573123456789", false},
		{"57 3123456789", false},
		{"57-3123456789", false},
		{"57312345678a", false},
		{"", false},
		{"５７３１２３４５６７８９", false}, // full-width digits are not ASCII digits
	}
	for _, tt := range tests {
		err := ValidatePhone("phone", tt.phone)
		if (err == nil) != tt.ok {
			t.Errorf("ValidatePhone(%q) = %v, want ok=%v", tt.phone, err, tt.ok)
		}
		if err != nil && (KindOf(err) != KindInvalid || !strings.Contains(err.Error(), "'phone'")) {
			t.Errorf("ValidatePhone(%q) error %q: want an invalid-input error naming 'phone'", tt.phone, err)
		}
	}
}

func TestTextMessage(t *testing.T) {
	tests := []struct {
		name, prefix, phone, body, wantErr string
	}{
		{"ok", "", "573123456789", "hola", ""},
		{"4096 runes with accents", "", "573123456789", strings.Repeat("á", MaxTextBody), ""},
		{"4097 runes", "", "573123456789", strings.Repeat("a", MaxTextBody+1), "'message' tiene 4097 caracteres"},
		{"empty", "", "573123456789", "  ", "Se requiere el campo 'message'"},
		{"bad phone in a list", "recipients[3]", "+57", "x", "'recipients[3].phone'"},
		{"missing body in a list", "recipients[0]", "573123456789", "", "'recipients[0].message'"},
	}
	for _, tt := range tests {
		m, err := TextMessage(tt.prefix, tt.phone, tt.body)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tt.name, err)
		case tt.wantErr == "" && (m.Kind != KindText || m.To != tt.phone || m.Body != tt.body):
			t.Errorf("%s: message = %+v", tt.name, m)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: error = %v, want it to contain %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestTemplateMessage(t *testing.T) {
	m, err := TemplateMessage(SendTemplateRequest{Phone: "573123456789", TemplateName: "hello_world", Parameters: []string{"Juan"}})
	if err != nil || m.Template.Language != DefaultLanguage || m.Template.Name != "hello_world" || len(m.Template.Parameters) != 1 {
		t.Fatalf("TemplateMessage = %+v, %v; want language %q by default", m.Template, err, DefaultLanguage)
	}
	bad := []struct {
		req     SendTemplateRequest
		wantErr string
	}{
		{SendTemplateRequest{Phone: "573123456789"}, "'template_name'"},
		{SendTemplateRequest{Phone: "573123456789", TemplateName: "t", Parameters: []string{"a\tb"}}, "parameters[0]"},
		{SendTemplateRequest{Phone: "573123456789", TemplateName: "t", Parameters: []string{"ok", "a     b"}}, "parameters[1]"},
		{SendTemplateRequest{Phone: "573123456789", TemplateName: "t", Parameters: []string{""}}, "parameters[0]"},
		{SendTemplateRequest{Phone: "1", TemplateName: "t"}, "'phone'"},
	}
	for _, tt := range bad {
		if _, err := TemplateMessage(tt.req); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("TemplateMessage(%+v) = %v, want an error naming %s", tt.req, err, tt.wantErr)
		}
	}
}

func TestInteractiveMessage(t *testing.T) {
	base := InteractiveFields{BodyText: "cuerpo", ButtonText: "Ver", ButtonURL: "https://x.co/a"}
	with := func(f func(*InteractiveFields)) InteractiveFields { c := base; f(&c); return c }
	tests := []struct {
		name    string
		f       InteractiveFields
		wantErr string
		check   func(Message) bool
	}{
		{"cta without header", base, "", func(m Message) bool { return m.Kind == KindCTAURL && m.Header == nil }},
		{"text header", with(func(f *InteractiveFields) { f.HeaderType, f.HeaderContent = "text", "Hola" }), "",
			func(m Message) bool { return m.Header.Type == HeaderText && m.Header.Text == "Hola" }},
		{"content alone is a text header", with(func(f *InteractiveFields) { f.HeaderContent = "Hola" }), "",
			func(m Message) bool { return m.Header.Type == HeaderText }},
		{"image header", with(func(f *InteractiveFields) { f.HeaderType, f.HeaderContent = "image", "https://x.co/i.jpg" }), "",
			func(m Message) bool { return m.Header.IsMedia() && m.Header.Link == "https://x.co/i.jpg" }},
		{"unknown header type", with(func(f *InteractiveFields) { f.HeaderType, f.HeaderContent = "gif", "x" }), "header_type'", nil},
		{"media header not a URL", with(func(f *InteractiveFields) { f.HeaderType, f.HeaderContent = "video", "file.mp4" }), "header_content'", nil},
		{"header text 61", with(func(f *InteractiveFields) { f.HeaderType, f.HeaderContent = "text", strings.Repeat("ñ", 61) }), "header_content' tiene 61", nil},
		{"body 1025", with(func(f *InteractiveFields) { f.BodyText = strings.Repeat("b", 1025) }), "body_text' tiene 1025", nil},
		{"display text 21", with(func(f *InteractiveFields) { f.ButtonText = strings.Repeat("é", 21) }), "button_text' tiene 21", nil},
		{"display text 20 emoji", with(func(f *InteractiveFields) { f.ButtonText = strings.Repeat("😀", 20) }), "", nil},
		{"footer 61", with(func(f *InteractiveFields) { f.FooterText = strings.Repeat("f", 61) }), "footer_text' tiene 61", nil},
		{"button URL not http", with(func(f *InteractiveFields) { f.ButtonURL = "javascript:alert(1)" }), "button_url'", nil},
		{"button text without URL", with(func(f *InteractiveFields) { f.ButtonURL = "" }), "button_url'", nil},
		{"no button: text message", InteractiveFields{HeaderType: "text", HeaderContent: "Aviso", BodyText: "cuerpo", FooterText: "pie"}, "",
			func(m Message) bool { return m.Kind == KindText && m.Body == "*Aviso*\n\ncuerpo\n\n_pie_" }},
		{"no button with image: media message", InteractiveFields{HeaderType: "image", HeaderContent: "https://x.co/i.jpg", BodyText: "cuerpo"}, "",
			func(m Message) bool {
				return m.Kind == KindMedia && m.Body == "cuerpo" && m.Header.Link == "https://x.co/i.jpg"
			}},
	}
	for _, tt := range tests {
		m, err := InteractiveMessage("recipients[2]", "573123456789", tt.f)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tt.name, err)
		case tt.wantErr == "" && tt.check != nil && !tt.check(m):
			t.Errorf("%s: message = %+v (header %+v)", tt.name, m, m.Header)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "recipients[2].")):
			t.Errorf("%s: error = %v, want it to name recipients[2] and contain %q", tt.name, err, tt.wantErr)
		}
	}
}

func rows(n int) []Row {
	out := make([]Row, n)
	for i := range out {
		out[i] = Row{ID: fmt.Sprint("r", i), Title: fmt.Sprint("Fila ", i)}
	}
	return out
}

func TestValidateList(t *testing.T) {
	ok := ListFields{HeaderText: "h", FooterText: "f", ButtonText: "Ver", Sections: []Section{{Title: "s", Rows: rows(2)}}}
	with := func(f func(*ListFields)) ListFields {
		c := ok
		c.Sections = append([]Section{}, ok.Sections...)
		f(&c)
		return c
	}
	tests := []struct {
		name         string
		l            ListFields
		headerFooter bool
		wantErr      string
	}{
		{"ok", ok, true, ""},
		{"header optional in bulk", with(func(l *ListFields) { l.HeaderText, l.FooterText = "", "" }), false, ""},
		{"header required in send-list", with(func(l *ListFields) { l.HeaderText = "" }), true, "'header_text'"},
		{"footer required in send-list", with(func(l *ListFields) { l.FooterText = "" }), true, "'footer_text'"},
		{"no sections", with(func(l *ListFields) { l.Sections = nil }), true, "'sections'"},
		{"11 sections", with(func(l *ListFields) {
			l.Sections = make([]Section, 11)
			for i := range l.Sections {
				l.Sections[i] = Section{Title: "s", Rows: []Row{{ID: fmt.Sprint(i), Title: "t"}}}
			}
		}), true, "11 secciones"},
		{"10 rows in total across sections", with(func(l *ListFields) {
			l.Sections = []Section{{Title: "a", Rows: rows(5)}, {Title: "b", Rows: []Row{{ID: "x1", Title: "t"}, {ID: "x2", Title: "t"}, {ID: "x3", Title: "t"}, {ID: "x4", Title: "t"}, {ID: "x5", Title: "t"}}}}
		}), true, ""},
		{"11 rows in total across sections", with(func(l *ListFields) {
			l.Sections = []Section{{Title: "a", Rows: rows(6)}, {Title: "b", Rows: []Row{{ID: "x1", Title: "t"}, {ID: "x2", Title: "t"}, {ID: "x3", Title: "t"}, {ID: "x4", Title: "t"}, {ID: "x5", Title: "t"}}}}
		}), true, "11 filas"},
		{"empty section", with(func(l *ListFields) { l.Sections = []Section{{Title: "a"}} }), true, "sections[0].rows"},
		{"section title 25", with(func(l *ListFields) { l.Sections[0].Title = strings.Repeat("t", 25) }), true, "sections[0].title"},
		{"row title 25", with(func(l *ListFields) {
			l.Sections = []Section{{Title: "a", Rows: []Row{{ID: "1", Title: strings.Repeat("ó", 25)}}}}
		}), true, "sections[0].rows[0].title"},
		{"row title 24", with(func(l *ListFields) {
			l.Sections = []Section{{Title: "a", Rows: []Row{{ID: "1", Title: strings.Repeat("ó", 24)}}}}
		}), true, ""},
		{"description 73", with(func(l *ListFields) {
			l.Sections = []Section{{Title: "a", Rows: []Row{{ID: "1", Title: "t", Description: strings.Repeat("d", 73)}}}}
		}), true, "sections[0].rows[0].description"},
		{"row id missing", with(func(l *ListFields) { l.Sections = []Section{{Title: "a", Rows: []Row{{Title: "t"}}}} }), true, "sections[0].rows[0].id"},
		{"duplicate row id across sections", with(func(l *ListFields) {
			l.Sections = []Section{{Title: "a", Rows: []Row{{ID: "1", Title: "t"}}}, {Title: "b", Rows: []Row{{ID: "1", Title: "u"}}}}
		}), true, "repetido"},
		{"button 21", with(func(l *ListFields) { l.ButtonText = strings.Repeat("b", 21) }), true, "'button_text'"},
	}
	for _, tt := range tests {
		err := ValidateList(tt.l, tt.headerFooter)
		if tt.wantErr == "" && err != nil {
			t.Errorf("%s: unexpected error %v", tt.name, err)
		}
		if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: error = %v, want it to contain %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestDistinctMediaKeepsFirstSeenOrderAndCaps(t *testing.T) {
	var msgs []Message
	for i := range MaxTaskMedia + 10 {
		link := fmt.Sprintf("https://x.co/%d.jpg", i%(MaxTaskMedia+5))
		msgs = append(msgs, Message{Kind: KindCTAURL, Header: &Header{Type: HeaderImage, Link: link}},
			Message{Kind: KindText}, Message{Kind: KindCTAURL, Header: &Header{Type: HeaderText, Text: "t"}})
	}
	got := DistinctMedia(msgs)
	if len(got) != MaxTaskMedia || got[0].Link != "https://x.co/0.jpg" || got[1].Link != "https://x.co/1.jpg" {
		t.Fatalf("DistinctMedia = %d refs starting %v, want %d in first-seen order", len(got), got[:2], MaxTaskMedia)
	}
}

func TestChunkSize(t *testing.T) {
	for _, tt := range []struct{ w, want int }{{1, 500}, {10, 500}, {11, 550}, {100, 5000}, {200, 10000}, {1000, 10000}} {
		if got := ChunkSize(tt.w); got != tt.want {
			t.Errorf("ChunkSize(%d) = %d, want %d", tt.w, got, tt.want)
		}
	}
}

func TestErrorVocabulary(t *testing.T) {
	tests := []struct {
		err    error
		status int
		msg    string
	}{
		{Invalidf("campo %s", "x"), http.StatusBadRequest, "campo x"},
		{Errorf(KindUpstream, "Meta dijo no"), http.StatusBadRequest, "Meta dijo no"},
		{Errorf(KindUnauthorized, "no"), http.StatusUnauthorized, "no"},
		{ErrNotFound, http.StatusNotFound, "not found"},
		{fmt.Errorf("wrapped: %w", Wrap(KindUnavailable, errors.New("dial tcp: refused"), "Redis no está disponible")), http.StatusServiceUnavailable, "Redis no está disponible"},
		{errors.New("secret internal detail"), http.StatusInternalServerError, "Error interno del servidor"},
	}
	for _, tt := range tests {
		if got := HTTPStatus(tt.err); got != tt.status {
			t.Errorf("HTTPStatus(%v) = %d, want %d", tt.err, got, tt.status)
		}
		if got := ClientMessage(tt.err); got != tt.msg {
			t.Errorf("ClientMessage(%v) = %q, want %q", tt.err, got, tt.msg)
		}
	}
}

func TestConfigDefaultsAndChecks(t *testing.T) {
	t.Setenv("BULK_MAX_WORKERS", "")
	cfg, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":5000" || cfg.BulkMaxWorkers != 10 || cfg.WhatsAppAPIVersion != "v23.0" || cfg.WhatsAppMaxMPS != 80 ||
		cfg.RedisURL != "redis://localhost:6379/0" || cfg.TemporalAddress != "localhost:7233" || cfg.TemporalNamespace != "default" {
		t.Errorf("defaults = %+v", cfg)
	}
	t.Setenv("BULK_MAX_WORKERS", "15")
	if cfg, err := LoadConfig(); err != nil || cfg.BulkMaxWorkers != 15 {
		t.Errorf("BULK_MAX_WORKERS=15: %d, %v", cfg.BulkMaxWorkers, err)
	}
	for _, bad := range []string{"0", "1001", "diez"} {
		t.Setenv("BULK_MAX_WORKERS", bad)
		if _, err := LoadConfig(); err == nil {
			t.Errorf("BULK_MAX_WORKERS=%s accepted", bad)
		}
	}
}
