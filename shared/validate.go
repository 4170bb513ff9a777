package shared

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Meta's documented limits, counted in characters (runes), not bytes.
const (
	MaxTextBody        = 4096
	MaxInteractiveBody = 1024
	MaxHeaderText      = 60
	MaxFooterText      = 60
	MaxCTADisplayText  = 20
	MaxListButton      = 20
	MaxListSections    = 10
	MaxListRows        = 10 // in total, across all sections
	MaxSectionTitle    = 24
	MaxRowID           = 200
	MaxRowTitle        = 24
	MaxRowDescription  = 72
	MaxTemplateName    = 512
	MaxTemplateParam   = 1024
	MaxURL             = 2000
	MinPhoneDigits     = 8
	MaxPhoneDigits     = 15
	// MaxRecipients bounds one bulk or broadcast request.
	MaxRecipients = 200_000
	// DefaultLanguage is the template language when none is given.
	DefaultLanguage = "es"
)

// field prefixes a field path to a message: "recipients[3].phone".
func field(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func required(path, v string) error {
	if strings.TrimSpace(v) == "" {
		return Invalidf("Se requiere el campo '%s'", path)
	}
	return nil
}

func maxLen(path, v string, n int) error {
	if c := utf8.RuneCountInString(v); c > n {
		return Invalidf("El campo '%s' tiene %d caracteres; el máximo es %d", path, c, n)
	}
	return nil
}

func requiredMax(path, v string, n int) error {
	if err := required(path, v); err != nil {
		return err
	}
	return maxLen(path, v, n)
}

// ValidatePhone checks the contract's phone format: international, digits only, no '+'
// or spaces, 8 to 15 digits.
func ValidatePhone(path, phone string) error {
	if err := required(path, phone); err != nil {
		return err
	}
	if len(phone) < MinPhoneDigits || len(phone) > MaxPhoneDigits || strings.Trim(phone, "0123456789") != "" {
		return Invalidf("Número de teléfono inválido en '%s': %s (formato internacional, solo dígitos, de %d a %d, sin '+' ni espacios)",
			path, Echo(phone), MinPhoneDigits, MaxPhoneDigits)
	}
	return nil
}

func validateURL(path, raw string) error {
	if err := requiredMax(path, raw, MaxURL); err != nil {
		return err
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Invalidf("El campo '%s' debe ser una URL http(s) válida", path)
	}
	return nil
}

// TextMessage builds and checks a text message.
func TextMessage(prefix, phone, body string) (Message, error) {
	if err := ValidatePhone(field(prefix, "phone"), phone); err != nil {
		return Message{}, err
	}
	if err := requiredMax(field(prefix, "message"), body, MaxTextBody); err != nil {
		return Message{}, err
	}
	return Message{To: phone, Kind: KindText, Body: body}, nil
}

// TemplateMessage builds and checks a template message; language defaults to "es".
func TemplateMessage(r SendTemplateRequest) (Message, error) {
	if err := ValidatePhone("phone", r.Phone); err != nil {
		return Message{}, err
	}
	if err := requiredMax("template_name", r.TemplateName, MaxTemplateName); err != nil {
		return Message{}, err
	}
	lang := r.Language
	if lang == "" {
		lang = DefaultLanguage
	}
	if err := maxLen("language", lang, 15); err != nil {
		return Message{}, err
	}
	for i, p := range r.Parameters {
		path := fmt.Sprintf("parameters[%d]", i)
		if err := requiredMax(path, p, MaxTemplateParam); err != nil {
			return Message{}, err
		}
		// Meta rejects these with 132018.
		if strings.ContainsAny(p, "\n\t") || strings.Contains(p, "     ") {
			return Message{}, Invalidf("El campo '%s' no puede tener saltos de línea, tabulaciones ni más de 4 espacios seguidos", path)
		}
	}
	return Message{To: r.Phone, Kind: KindTemplate, Template: &Template{
		Name: r.TemplateName, Language: lang, Parameters: r.Parameters,
	}}, nil
}

// header checks header_type and header_content and builds the header, nil when absent.
func header(prefix, typ, content string) (*Header, error) {
	typePath, contentPath := field(prefix, "header_type"), field(prefix, "header_content")
	switch typ {
	case "":
		if content != "" {
			// A header_content alone is a text header, as the seed service treated it.
			return header(prefix, HeaderText, content)
		}
		return nil, nil
	case HeaderText:
		if err := requiredMax(contentPath, content, MaxHeaderText); err != nil {
			return nil, err
		}
		return &Header{Type: HeaderText, Text: content}, nil
	case HeaderImage, HeaderVideo, HeaderDocument:
		if err := validateURL(contentPath, content); err != nil {
			return nil, err
		}
		return &Header{Type: typ, Link: content}, nil
	default:
		return nil, Invalidf("El campo '%s' no es válido: %s (use text, image, video o document)", typePath, Echo(typ))
	}
}

// InteractiveMessage builds and checks a CTA-URL interactive message. Without a button
// (both button_text and button_url absent) it becomes a plain message: a media message
// with the body as caption, or a text message.
func InteractiveMessage(prefix, phone string, f InteractiveFields) (Message, error) {
	if err := ValidatePhone(field(prefix, "phone"), phone); err != nil {
		return Message{}, err
	}
	h, err := header(prefix, f.HeaderType, f.HeaderContent)
	if err != nil {
		return Message{}, err
	}
	if err := maxLen(field(prefix, "footer_text"), f.FooterText, MaxFooterText); err != nil {
		return Message{}, err
	}
	if f.ButtonText == "" && f.ButtonURL == "" {
		return plainMessage(prefix, phone, h, f)
	}
	if err := requiredMax(field(prefix, "body_text"), f.BodyText, MaxInteractiveBody); err != nil {
		return Message{}, err
	}
	if err := requiredMax(field(prefix, "button_text"), f.ButtonText, MaxCTADisplayText); err != nil {
		return Message{}, err
	}
	if err := validateURL(field(prefix, "button_url"), f.ButtonURL); err != nil {
		return Message{}, err
	}
	return Message{To: phone, Kind: KindCTAURL, Header: h, Body: f.BodyText, Footer: f.FooterText,
		Button: f.ButtonText, URL: f.ButtonURL}, nil
}

func plainMessage(prefix, phone string, h *Header, f InteractiveFields) (Message, error) {
	body := f.BodyText
	if h.IsMedia() {
		if err := maxLen(field(prefix, "body_text"), body, MaxInteractiveBody); err != nil {
			return Message{}, err
		}
		if f.FooterText != "" {
			body = strings.TrimSpace(body + "\n\n" + f.FooterText)
		}
		return Message{To: phone, Kind: KindMedia, Header: h, Body: body}, nil
	}
	if err := requiredMax(field(prefix, "body_text"), body, MaxTextBody); err != nil {
		return Message{}, err
	}
	parts := []string{}
	if h != nil {
		parts = append(parts, "*"+h.Text+"*")
	}
	parts = append(parts, body)
	if f.FooterText != "" {
		parts = append(parts, "_"+f.FooterText+"_")
	}
	return Message{To: phone, Kind: KindText, Body: strings.Join(parts, "\n\n")}, nil
}

// ValidateList checks the common parts of a list message against Meta's limits.
// requireHeaderFooter follows the contract's send-list, which requires both.
func ValidateList(l ListFields, requireHeaderFooter bool) error {
	check := maxLen
	if requireHeaderFooter {
		check = requiredMax
	}
	if err := check("header_text", l.HeaderText, MaxHeaderText); err != nil {
		return err
	}
	if err := check("footer_text", l.FooterText, MaxFooterText); err != nil {
		return err
	}
	if err := requiredMax("button_text", l.ButtonText, MaxListButton); err != nil {
		return err
	}
	if len(l.Sections) == 0 {
		return Invalidf("Se requiere el campo 'sections' con al menos una sección")
	}
	if len(l.Sections) > MaxListSections {
		return Invalidf("El campo 'sections' tiene %d secciones; el máximo es %d", len(l.Sections), MaxListSections)
	}
	rows := 0
	ids := map[string]string{}
	for i, s := range l.Sections {
		sp := fmt.Sprintf("sections[%d]", i)
		if err := requiredMax(sp+".title", s.Title, MaxSectionTitle); err != nil {
			return err
		}
		if len(s.Rows) == 0 {
			return Invalidf("Se requiere al menos una fila en '%s.rows'", sp)
		}
		for j, r := range s.Rows {
			rp := fmt.Sprintf("%s.rows[%d]", sp, j)
			if err := requiredMax(rp+".id", r.ID, MaxRowID); err != nil {
				return err
			}
			if prev, dup := ids[r.ID]; dup {
				return Invalidf("El id %s de '%s' está repetido (ya usado en '%s'); cada fila necesita un id único", Echo(r.ID), rp, prev)
			}
			ids[r.ID] = rp
			if err := requiredMax(rp+".title", r.Title, MaxRowTitle); err != nil {
				return err
			}
			if err := maxLen(rp+".description", r.Description, MaxRowDescription); err != nil {
				return err
			}
		}
		rows += len(s.Rows)
	}
	if rows > MaxListRows {
		return Invalidf("La lista tiene %d filas en total; WhatsApp permite máximo %d entre todas las secciones", rows, MaxListRows)
	}
	return nil
}

// ListMessage builds a list message for one recipient; the common parts must already
// have passed ValidateList.
func ListMessage(prefix, phone, body string, l ListFields) (Message, error) {
	if err := ValidatePhone(field(prefix, "phone"), phone); err != nil {
		return Message{}, err
	}
	if err := requiredMax(field(prefix, "body_text"), body, MaxInteractiveBody); err != nil {
		return Message{}, err
	}
	m := Message{To: phone, Kind: KindList, Body: body, Footer: l.FooterText, Button: l.ButtonText, Sections: l.Sections}
	if l.HeaderText != "" {
		m.Header = &Header{Type: HeaderText, Text: l.HeaderText}
	}
	return m, nil
}

// CountRecipients checks the number of recipients of a bulk request.
func CountRecipients(path string, n int) error {
	if n == 0 {
		return Invalidf("Se requiere el campo '%s' con al menos un destinatario", path)
	}
	if n > MaxRecipients {
		return Invalidf("El campo '%s' tiene %d destinatarios; el máximo por solicitud es %d", path, n, MaxRecipients)
	}
	return nil
}

// Index formats the path of the i-th element of a list field.
func Index(list string, i int) string { return list + "[" + strconv.Itoa(i) + "]" }

// MaxTaskMedia bounds the distinct header media a task uploads; further distinct links
// (per-recipient media) are sent by link, which Meta fetches and caches itself.
const MaxTaskMedia = 50

// DistinctMedia returns the distinct media headers of msgs, in first-seen order, at most
// MaxTaskMedia: each is uploaded once per task and reused by id.
func DistinctMedia(msgs []Message) []MediaRef {
	var out []MediaRef
	seen := map[string]bool{}
	for _, m := range msgs {
		if len(out) == MaxTaskMedia {
			break
		}
		if m.Header.IsMedia() && m.Header.Link != "" && !seen[m.Header.Link] {
			seen[m.Header.Link] = true
			out = append(out, MediaRef{Type: m.Header.Type, Link: m.Header.Link})
		}
	}
	return out
}
