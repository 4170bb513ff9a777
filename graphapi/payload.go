package graphapi

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"sync"

	"github.com/wagate/wagate/shared"
)

// The payload types mirror Meta's JSON objects. They are structs rather than maps so
// that the encoded field order is stable, which keeps golden files and logs diffable.

type payload struct {
	MessagingProduct      string             `json:"messaging_product"`
	RecipientType         string             `json:"recipient_type"`
	To                    string             `json:"to"`
	Type                  string             `json:"type"`
	Text                  *textObject        `json:"text,omitempty"`
	Template              *templateObject    `json:"template,omitempty"`
	Interactive           *interactiveObject `json:"interactive,omitempty"`
	Image                 *mediaObject       `json:"image,omitempty"`
	Video                 *mediaObject       `json:"video,omitempty"`
	Document              *mediaObject       `json:"document,omitempty"`
	BizOpaqueCallbackData string             `json:"biz_opaque_callback_data,omitempty"`
}

type textObject struct {
	Body       string `json:"body"`
	PreviewURL bool   `json:"preview_url,omitempty"`
}

type templateObject struct {
	Name       string            `json:"name"`
	Language   languageObject    `json:"language"`
	Components []componentObject `json:"components,omitempty"`
}

type languageObject struct {
	Code string `json:"code"`
}

type componentObject struct {
	Type       string            `json:"type"`
	SubType    string            `json:"sub_type,omitempty"`
	Index      string            `json:"index,omitempty"`
	Parameters []parameterObject `json:"parameters"`
}

type parameterObject struct {
	Type          string       `json:"type"`
	ParameterName string       `json:"parameter_name,omitempty"`
	Text          string       `json:"text,omitempty"`
	Image         *mediaObject `json:"image,omitempty"`
	Video         *mediaObject `json:"video,omitempty"`
	Document      *mediaObject `json:"document,omitempty"`
}

type interactiveObject struct {
	Type   string        `json:"type"`
	Header *headerObject `json:"header,omitempty"`
	Body   textOnly      `json:"body"`
	Footer *textOnly     `json:"footer,omitempty"`
	Action actionObject  `json:"action"`
}

type textOnly struct {
	Text string `json:"text"`
}

type headerObject struct {
	Type     string       `json:"type"`
	Text     string       `json:"text,omitempty"`
	Image    *mediaObject `json:"image,omitempty"`
	Video    *mediaObject `json:"video,omitempty"`
	Document *mediaObject `json:"document,omitempty"`
}

type mediaObject struct {
	ID       string `json:"id,omitempty"`
	Link     string `json:"link,omitempty"`
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
}

type actionObject struct {
	Name       string          `json:"name,omitempty"`
	Parameters *ctaParameters  `json:"parameters,omitempty"`
	Button     string          `json:"button,omitempty"`
	Sections   []sectionObject `json:"sections,omitempty"`
}

type ctaParameters struct {
	DisplayText string `json:"display_text"`
	URL         string `json:"url"`
}

type sectionObject struct {
	Title string      `json:"title"`
	Rows  []rowObject `json:"rows"`
}

type rowObject struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
}

// encodeBuffers recycles the encoding scratch space: at thousands of sends per second
// the growing buffer would otherwise be most of a send's garbage.
var encodeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// BuildPayload returns the JSON body that Send posts to Meta for m: the common envelope
// (messaging_product, recipient_type "individual", "to" with a leading '+') plus the
// text, template, interactive (cta_url, list) or media object. opaque, when not empty,
// is sent as biz_opaque_callback_data. HTML characters are not escaped, so signed media
// URLs reach Meta byte for byte. A message that cannot be expressed is a KindInvalid
// *shared.Error.
func BuildPayload(m shared.Message, opaque string) ([]byte, error) {
	p, err := buildPayload(m)
	if err != nil {
		return nil, err
	}
	p.BizOpaqueCallbackData = opaque

	buf := encodeBuffers.Get().(*bytes.Buffer)
	defer encodeBuffers.Put(buf)
	buf.Reset()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&p); err != nil {
		return nil, shared.Wrap(shared.KindInternal, err, "no se pudo codificar el mensaje")
	}
	// Encode terminates the value with a newline, which is not part of the payload.
	return bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})), nil
}

func buildPayload(m shared.Message) (payload, error) {
	if strings.TrimSpace(m.To) == "" {
		return payload{}, invalid("falta el destinatario")
	}
	p := payload{MessagingProduct: "whatsapp", RecipientType: "individual", To: e164(m.To)}
	switch m.Kind {
	case shared.KindText:
		p.Type = "text"
		p.Text = &textObject{Body: m.Body, PreviewURL: hasLink(m.Body)}
	case shared.KindTemplate:
		t, err := template(m.Template, m.Header)
		if err != nil {
			return payload{}, err
		}
		p.Type, p.Template = "template", t
	case shared.KindCTAURL:
		in, err := ctaURL(m)
		if err != nil {
			return payload{}, err
		}
		p.Type, p.Interactive = "interactive", in
	case shared.KindList:
		in, err := list(m)
		if err != nil {
			return payload{}, err
		}
		p.Type, p.Interactive = "interactive", in
	case shared.KindMedia:
		if !m.Header.IsMedia() {
			return payload{}, invalid("un mensaje multimedia necesita un encabezado image, video o document")
		}
		obj, err := media(m.Header)
		if err != nil {
			return payload{}, err
		}
		obj.Caption = m.Body
		p.Type = m.Header.Type
		p.Image, p.Video, p.Document = byType(m.Header.Type, obj)
	default:
		return payload{}, invalid("tipo de mensaje desconocido %q", m.Kind)
	}
	return p, nil
}

// e164 prefixes '+' because without it Meta prepends the business number's own country
// code, sending to the wrong person.
func e164(to string) string {
	if strings.HasPrefix(to, "+") {
		return to
	}
	return "+" + to
}

// hasLink reports whether body contains an http(s) URL; Meta renders a preview for the
// first one only when asked to.
func hasLink(body string) bool {
	return strings.Contains(body, "http://") || strings.Contains(body, "https://")
}

// template builds the template object: the header component from h (a text variable or
// a media), the body's positional or named parameters, and the URL button's suffix.
func template(t *shared.Template, h *shared.Header) (*templateObject, error) {
	if t == nil || t.Name == "" {
		return nil, invalid("falta el nombre de la plantilla")
	}
	lang := t.Language
	if lang == "" {
		lang = shared.DefaultLanguage
	}
	out := &templateObject{Name: t.Name, Language: languageObject{Code: lang}}
	if h != nil {
		p := parameterObject{Type: h.Type}
		switch {
		case h.Type == shared.HeaderText:
			p.Text = h.Text
		case h.IsMedia():
			obj, err := media(h)
			if err != nil {
				return nil, err
			}
			p.Image, p.Video, p.Document = byType(h.Type, obj)
		default:
			return nil, invalid("encabezado de plantilla desconocido %q", h.Type)
		}
		out.Components = append(out.Components, componentObject{Type: "header", Parameters: []parameterObject{p}})
	}
	switch {
	case len(t.Named) > 0:
		// Meta needs parameter_name on every parameter of a named template.
		params := make([]parameterObject, len(t.Named))
		for i, v := range t.Named {
			params[i] = parameterObject{Type: "text", ParameterName: v.Name, Text: v.Text}
		}
		out.Components = append(out.Components, componentObject{Type: "body", Parameters: params})
	case len(t.Parameters) > 0:
		params := make([]parameterObject, len(t.Parameters))
		for i, v := range t.Parameters {
			params[i] = parameterObject{Type: "text", Text: v}
		}
		out.Components = append(out.Components, componentObject{Type: "body", Parameters: params})
	}
	if t.ButtonURLSuffix != "" {
		out.Components = append(out.Components, componentObject{
			Type: "button", SubType: "url", Index: strconv.Itoa(t.ButtonIndex),
			Parameters: []parameterObject{{Type: "text", Text: t.ButtonURLSuffix}},
		})
	}
	return out, nil
}

func ctaURL(m shared.Message) (*interactiveObject, error) {
	in := &interactiveObject{
		Type:   "cta_url",
		Body:   textOnly{Text: m.Body},
		Footer: footer(m.Footer),
		Action: actionObject{Name: "cta_url", Parameters: &ctaParameters{DisplayText: m.Button, URL: m.URL}},
	}
	if m.Header != nil {
		h, err := header(m.Header)
		if err != nil {
			return nil, err
		}
		in.Header = h
	}
	return in, nil
}

func list(m shared.Message) (*interactiveObject, error) {
	in := &interactiveObject{
		Type:   "list",
		Body:   textOnly{Text: m.Body},
		Footer: footer(m.Footer),
		Action: actionObject{Button: m.Button, Sections: make([]sectionObject, len(m.Sections))},
	}
	if m.Header != nil {
		// Meta accepts only text headers on list messages.
		if m.Header.Type != shared.HeaderText {
			return nil, invalid("el encabezado de una lista solo puede ser de texto, no %q", m.Header.Type)
		}
		in.Header = &headerObject{Type: shared.HeaderText, Text: m.Header.Text}
	}
	for i, s := range m.Sections {
		rows := make([]rowObject, len(s.Rows))
		for j, r := range s.Rows {
			rows[j] = rowObject{ID: r.ID, Title: r.Title, Description: r.Description}
		}
		in.Action.Sections[i] = sectionObject{Title: s.Title, Rows: rows}
	}
	return in, nil
}

func footer(text string) *textOnly {
	if text == "" {
		return nil
	}
	return &textOnly{Text: text}
}

func header(h *shared.Header) (*headerObject, error) {
	if h.Type == shared.HeaderText {
		return &headerObject{Type: shared.HeaderText, Text: h.Text}, nil
	}
	if !h.IsMedia() {
		return nil, invalid("tipo de encabezado desconocido %q", h.Type)
	}
	obj, err := media(h)
	if err != nil {
		return nil, err
	}
	out := &headerObject{Type: h.Type}
	out.Image, out.Video, out.Document = byType(h.Type, obj)
	return out, nil
}

// media prefers the uploaded id: Meta fetches and caches links itself, which is slower
// and fails when the host is slow or serves the wrong content type.
func media(h *shared.Header) (*mediaObject, error) {
	obj := &mediaObject{}
	switch {
	case h.MediaID != "":
		obj.ID = h.MediaID
	case h.Link != "":
		obj.Link = h.Link
	default:
		return nil, invalid("el encabezado %s no tiene enlace ni id de medio", h.Type)
	}
	if h.Type == shared.HeaderDocument {
		obj.Filename = h.Filename
	}
	return obj, nil
}

func byType(typ string, obj *mediaObject) (image, video, document *mediaObject) {
	switch typ {
	case shared.HeaderImage:
		return obj, nil, nil
	case shared.HeaderVideo:
		return nil, obj, nil
	default:
		return nil, nil, obj
	}
}

func invalid(format string, args ...any) error {
	return shared.Invalidf("Mensaje no válido para WhatsApp: "+format, args...)
}
