package sandbox

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

const to = "+1 (650) 555-1234"

func envelope(typ string, content any) map[string]any {
	return map[string]any{"messaging_product": "whatsapp", "to": to, "type": typ, typ: content}
}

var (
	templateMsg = envelope("template", map[string]any{
		"name": "order_update", "language": map[string]any{"code": "es"},
		"components": []any{
			map[string]any{"type": "header", "parameters": []any{
				map[string]any{"type": "image", "image": map[string]any{"link": "https://cdn.example.com/banner.jpg"}},
			}},
			map[string]any{"type": "body", "parameters": []any{
				map[string]any{"type": "text", "text": "Ada"},
				map[string]any{"type": "text", "text": "#1234"},
			}},
			map[string]any{"type": "button", "sub_type": "url", "index": "0", "parameters": []any{
				map[string]any{"type": "text", "text": "abc123"},
			}},
		},
	})
	ctaMsg = envelope("interactive", map[string]any{
		"type":   "cta_url",
		"header": map[string]any{"type": "text", "text": "Promo"},
		"body":   map[string]any{"text": "Tap the button below."},
		"footer": map[string]any{"text": "wagate"},
		"action": map[string]any{"name": "cta_url", "parameters": map[string]any{
			"display_text": "See dates", "url": "https://example.com/?id=1",
		}},
	})
	listMsg = envelope("interactive", map[string]any{
		"type":   "list",
		"header": map[string]any{"type": "text", "text": "Shipping"},
		"body":   map[string]any{"text": "Which option do you prefer?"},
		"footer": map[string]any{"text": "Lucky Shrub"},
		"action": map[string]any{"button": "Options", "sections": []any{
			map[string]any{"title": "Fast", "rows": []any{
				map[string]any{"id": "express", "title": "Express", "description": "Next day"},
				map[string]any{"id": "priority", "title": "Priority"},
			}},
			map[string]any{"title": "Slow", "rows": []any{
				map[string]any{"id": "ground", "title": "Ground", "description": "2–5 días"},
			}},
		}},
	})
	buttonMsg = envelope("interactive", map[string]any{
		"type": "button",
		"body": map[string]any{"text": "Your workshop is at 9am."},
		"action": map[string]any{"buttons": []any{
			map[string]any{"type": "reply", "reply": map[string]any{"id": "change", "title": "Change"}},
			map[string]any{"type": "reply", "reply": map[string]any{"id": "cancel", "title": "Cancel"}},
		}},
	})
	imageMsg = envelope("image", map[string]any{"link": "https://cdn.example.com/a.jpg", "caption": "hola"})
)

// rows builds n list rows with distinct ids.
func rows(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"id": fmt.Sprintf("r%d", i), "title": fmt.Sprintf("Row %d", i)}
	}
	return out
}

// sections builds n sections with one row each.
func sections(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"title": fmt.Sprintf("S%d", i), "rows": []any{
			map[string]any{"id": fmt.Sprintf("s%d", i), "title": "Row"},
		}}
	}
	return out
}

func buttons(titles ...string) []any {
	out := make([]any, len(titles))
	for i, title := range titles {
		out[i] = map[string]any{"type": "reply", "reply": map[string]any{"id": fmt.Sprintf("b%d", i), "title": title}}
	}
	return out
}

var r = strings.Repeat

func TestValidation(t *testing.T) {
	_, ts := strict(t)
	tests := []struct {
		name    string
		payload any
		status  int    // 200 for an accepted payload
		code    int    // Meta code when rejected
		details string // substring of error_data.details
	}{
		// text
		{"text", textMsg(to, "hola"), 200, 0, ""},
		{"text, digits only", textMsg("5491122334455", "hola"), 200, 0, ""},
		{"text, type omitted defaults to text", set(textMsg(to, "hola"), "type", nil), 200, 0, ""},
		{"text, 4096 accented runes", textMsg(to, r("á", 4096)), 200, 0, ""},
		{"text, 4096 emoji", textMsg(to, r("😀", 4096)), 200, 0, ""},
		{"text, 4097 accented runes", textMsg(to, r("é", 4097)), 400, CodeInvalidParameter, "text.body: max length 4096"},
		{"text, 4097 emoji", textMsg(to, r("🎉", 4097)), 400, CodeInvalidParameter, "text.body: max length 4096"},
		{"text, empty body", textMsg(to, ""), 400, CodeMissingParameter, "text.body: required"},
		{"text, body not a string", set(textMsg(to, "x"), "text.body", 5), 400, CodeInvalidParameter, "text.body: must be a string"},
		{"text, object missing", set(textMsg(to, "x"), "text", nil), 400, CodeMissingParameter, "text: required"},
		{"text, preview_url not bool", set(textMsg(to, "x"), "text.preview_url", "yes"), 400, CodeInvalidParameter, "text.preview_url"},
		{"envelope, not JSON", `{"messaging_product":`, 400, CodeInvalidParameter, "JSON object"},
		{"envelope, messaging_product missing", set(textMsg(to, "x"), "messaging_product", nil), 400, CodeMissingParameter, "messaging_product: required"},
		{"envelope, messaging_product wrong", set(textMsg(to, "x"), "messaging_product", "sms"), 400, CodeInvalidParameter, "messaging_product: must be 'whatsapp'"},
		{"envelope, recipient_type wrong", set(textMsg(to, "x"), "recipient_type", "many"), 400, CodeInvalidParameter, "recipient_type"},
		{"envelope, to missing", set(textMsg(to, "x"), "to", nil), 400, CodeMissingParameter, "to: required"},
		{"envelope, to 7 digits", textMsg("1234567", "x"), 400, CodeInvalidParameter, "to: invalid phone number"},
		{"envelope, to 16 digits", textMsg("+1234567890123456", "x"), 400, CodeInvalidParameter, "to: invalid phone number"},
		{"envelope, to 15 digits", textMsg("+123456789012345", "x"), 200, 0, ""},
		{"envelope, to with letters", textMsg("+1650555ABCD", "x"), 400, CodeInvalidParameter, "to: invalid phone number"},
		{"envelope, type unsupported", set(textMsg(to, "x"), "type", "sticker"), 400, CodeInvalidValue, "type: unsupported message type 'sticker'"},
		{"envelope, opaque 512", set(textMsg(to, "x"), "biz_opaque_callback_data", r("a", 512)), 200, 0, ""},
		{"envelope, opaque 513", set(textMsg(to, "x"), "biz_opaque_callback_data", r("a", 513)), 400, CodeInvalidParameter, "biz_opaque_callback_data: max length 512"},
		{"envelope, context without message_id", set(textMsg(to, "x"), "context", map[string]any{}), 400, CodeMissingParameter, "context.message_id"},
		{"envelope, unknown field tolerated", set(textMsg(to, "x"), "tracking", "abc"), 200, 0, ""},

		// template
		{"template", templateMsg, 200, 0, ""},
		{"template, no components", set(templateMsg, "template.components", nil), 400, CodeTemplateFormat, "header: Format mismatch, expected IMAGE, received UNKNOWN"},
		{"template, named parameters", set(templateMsg, "template.components.1.parameters", []any{
			map[string]any{"type": "text", "parameter_name": "name", "text": "Ada"},
		}), 400, CodeTemplateFormat, "body: Parameter format does not match"},
		{"template, mixed named and positional", set(templateMsg, "template.components.1.parameters", []any{
			map[string]any{"type": "text", "parameter_name": "name", "text": "Ada"},
			map[string]any{"type": "text", "text": "x"},
		}), 400, CodeInvalidParameter, "Parameter name is missing or empty"},
		{"template, name missing", set(templateMsg, "template.name", nil), 400, CodeMissingParameter, "template.name: required"},
		{"template, language missing", set(templateMsg, "template.language", nil), 400, CodeMissingParameter, "template.language: required"},
		{"template, language code missing", set(templateMsg, "template.language.code", nil), 400, CodeMissingParameter, "template.language.code: required"},
		{"template, components not an array", set(templateMsg, "template.components", "x"), 400, CodeInvalidParameter, "template.components: must be an array"},
		{"template, unknown component type", set(templateMsg, "template.components.0.type", "top"), 400, CodeInvalidParameter, "template.components[0].type"},
		{"template, button without sub_type", set(templateMsg, "template.components.2.sub_type", nil), 400, CodeMissingParameter, "template.components[2].sub_type: required"},
		{"template, button index 10", set(templateMsg, "template.components.2.index", "10"), 400, CodeInvalidParameter, "template.components[2].index"},
		{"template, button index as number", set(templateMsg, "template.components.2.index", 0), 200, 0, ""},
		{"template, button at an index the template lacks", set(templateMsg, "template.components.2.index", "1"), 400, CodeTemplateParamCount, "button 0: number of localizable_params (0)"},
		{"template, parameter type missing", set(templateMsg, "template.components.1.parameters.0.type", nil), 400, CodeMissingParameter, "template.components[1].parameters[0].type: required"},
		{"template, text parameter with newline", set(templateMsg, "template.components.1.parameters.0.text", "a\nb"), 400, CodeTemplateParamText, "new-line/tab"},
		{"template, text parameter with 5 spaces", set(templateMsg, "template.components.1.parameters.0.text", "a     b"), 400, CodeTemplateParamText, "consecutive spaces"},
		{"template, header image without id or link", set(templateMsg, "template.components.0.parameters.0.image", map[string]any{}), 400, CodeMissingParameter, "one of id or link"},
		{"template, header image unknown id", set(templateMsg, "template.components.0.parameters.0.image", map[string]any{"id": "123456789012345"}), 400, CodeInvalidParameter, "unknown media id"},

		// interactive cta_url
		{"cta_url", ctaMsg, 200, 0, ""},
		{"cta_url, limits reached", set(set(set(set(ctaMsg,
			"interactive.header.text", r("ñ", 60)),
			"interactive.body.text", r("ü", 1024)),
			"interactive.footer.text", r("😀", 60)),
			"interactive.action.parameters.display_text", r("é", 20)), 200, 0, ""},
		{"cta_url, no header nor footer", set(set(ctaMsg, "interactive.header", nil), "interactive.footer", nil), 200, 0, ""},
		{"cta_url, image header link", set(ctaMsg, "interactive.header", map[string]any{"type": "image", "image": map[string]any{"link": "https://cdn.example.com/x.png"}}), 200, 0, ""},
		{"cta_url, image header unknown id", set(ctaMsg, "interactive.header", map[string]any{"type": "image", "image": map[string]any{"id": "999"}}), 400, CodeInvalidParameter, "interactive.header.image.id: unknown media id"},
		{"cta_url, image header empty", set(ctaMsg, "interactive.header", map[string]any{"type": "image", "image": map[string]any{}}), 400, CodeMissingParameter, "interactive.header.image"},
		{"cta_url, image header bad link", set(ctaMsg, "interactive.header", map[string]any{"type": "image", "image": map[string]any{"link": "ftp://x/y.png"}}), 400, CodeInvalidParameter, "interactive.header.image.link: invalid URL"},
		{"cta_url, header type unknown", set(ctaMsg, "interactive.header.type", "audio"), 400, CodeInvalidValue, "interactive.header.type"},
		{"cta_url, text header without text", set(ctaMsg, "interactive.header.text", nil), 400, CodeInvalidValue, "Text cannot be null for header type text"},
		{"cta_url, header 61", set(ctaMsg, "interactive.header.text", r("ñ", 61)), 400, CodeInvalidParameter, "interactive.header.text: max length 60"},
		{"cta_url, body missing", set(ctaMsg, "interactive.body", nil), 400, CodeMissingParameter, "interactive.body: required"},
		{"cta_url, body 1025", set(ctaMsg, "interactive.body.text", r("ü", 1025)), 400, CodeInvalidParameter, "interactive.body.text: max length 1024"},
		{"cta_url, footer 61", set(ctaMsg, "interactive.footer.text", r("😀", 61)), 400, CodeInvalidParameter, "interactive.footer.text: max length 60"},
		{"cta_url, display_text 21", set(ctaMsg, "interactive.action.parameters.display_text", r("é", 21)), 400, CodeInvalidParameter, "interactive.action.parameters.display_text: max length 20"},
		{"cta_url, display_text missing", set(ctaMsg, "interactive.action.parameters.display_text", nil), 400, CodeMissingParameter, "display_text: required"},
		{"cta_url, url missing", set(ctaMsg, "interactive.action.parameters.url", nil), 400, CodeMissingParameter, "interactive.action.parameters.url: required"},
		{"cta_url, url not http", set(ctaMsg, "interactive.action.parameters.url", "javascript:alert(1)"), 400, CodeInvalidParameter, "interactive.action.parameters.url: invalid URL"},
		{"cta_url, action name wrong", set(ctaMsg, "interactive.action.name", "open"), 400, CodeInvalidValue, "interactive.action.name"},
		{"interactive, type missing", set(ctaMsg, "interactive.type", nil), 400, CodeMissingParameter, "interactive.type: required"},
		{"interactive, type unsupported", set(ctaMsg, "interactive.type", "product"), 400, CodeInvalidValue, "interactive.type"},

		// interactive list
		{"list", listMsg, 200, 0, ""},
		{"list, one untitled section", set(listMsg, "interactive.action.sections", []any{map[string]any{"rows": rows(2)}}), 200, 0, ""},
		{"list, 10 sections and 10 rows", set(listMsg, "interactive.action.sections", sections(10)), 200, 0, ""},
		{"list, one section with 10 rows", set(listMsg, "interactive.action.sections", []any{map[string]any{"title": "All", "rows": rows(10)}}), 200, 0, ""},
		{"list, limits reached", set(set(set(set(set(set(set(listMsg,
			"interactive.body.text", r("á", 4096)),
			"interactive.action.button", r("😀", 20)),
			"interactive.action.sections.0.title", r("ñ", 24)),
			"interactive.action.sections.0.rows.0.id", r("i", 200)),
			"interactive.action.sections.0.rows.0.title", r("é", 24)),
			"interactive.action.sections.0.rows.0.description", r("ó", 72)),
			"interactive.header.text", r("x", 60)), 200, 0, ""},
		{"list, 11 sections", set(listMsg, "interactive.action.sections", sections(11)), 400, CodeInvalidValue, "interactive.action.sections: at most 10 sections, got 11"},
		{"list, 11 rows in total", set(listMsg, "interactive.action.sections", []any{
			map[string]any{"title": "A", "rows": rows(6)},
			map[string]any{"title": "B", "rows": []any{
				map[string]any{"id": "b1", "title": "1"}, map[string]any{"id": "b2", "title": "2"},
				map[string]any{"id": "b3", "title": "3"}, map[string]any{"id": "b4", "title": "4"},
				map[string]any{"id": "b5", "title": "5"},
			}},
		}), 400, CodeInvalidValue, "at most 10 rows in total, got 11"},
		{"list, no sections", set(listMsg, "interactive.action.sections", []any{}), 400, CodeMissingParameter, "interactive.action.sections: at least 1 section"},
		{"list, sections missing", set(listMsg, "interactive.action.sections", nil), 400, CodeMissingParameter, "interactive.action.sections: required"},
		{"list, section without rows", set(listMsg, "interactive.action.sections.1.rows", []any{}), 400, CodeMissingParameter, "interactive.action.sections[1].rows: at least 1 row"},
		{"list, button missing", set(listMsg, "interactive.action.button", nil), 400, CodeMissingParameter, "interactive.action.button: required"},
		{"list, button 21", set(listMsg, "interactive.action.button", r("😀", 21)), 400, CodeInvalidParameter, "interactive.action.button: max length 20"},
		{"list, body missing", set(listMsg, "interactive.body", nil), 400, CodeMissingParameter, "interactive.body: required"},
		{"list, body 4097", set(listMsg, "interactive.body.text", r("á", 4097)), 400, CodeInvalidParameter, "interactive.body.text: max length 4096"},
		{"list, image header", set(listMsg, "interactive.header", map[string]any{"type": "image", "image": map[string]any{"link": "https://x.com/a.jpg"}}), 400, CodeInvalidValue, "text header only"},
		{"list, header 61", set(listMsg, "interactive.header.text", r("x", 61)), 400, CodeInvalidParameter, "interactive.header.text: max length 60"},
		{"list, footer 61", set(listMsg, "interactive.footer.text", r("x", 61)), 400, CodeInvalidParameter, "interactive.footer.text: max length 60"},
		{"list, section title 25", set(listMsg, "interactive.action.sections.0.title", r("ñ", 25)), 400, CodeInvalidParameter, "interactive.action.sections[0].title: max length 24"},
		{"list, second section untitled", set(listMsg, "interactive.action.sections.1.title", nil), 400, CodeMissingParameter, "interactive.action.sections[1].title: required"},
		{"list, row id 201", set(listMsg, "interactive.action.sections.0.rows.0.id", r("i", 201)), 400, CodeInvalidParameter, "interactive.action.sections[0].rows[0].id: max length 200"},
		{"list, row id missing", set(listMsg, "interactive.action.sections.0.rows.1.id", nil), 400, CodeMissingParameter, "interactive.action.sections[0].rows[1].id: required"},
		{"list, row ids repeated across sections", set(listMsg, "interactive.action.sections.1.rows.0.id", "express"), 400, CodeInvalidValue, "interactive.action.sections[1].rows[0].id: duplicate row id"},
		{"list, row title 25", set(listMsg, "interactive.action.sections.0.rows.1.title", r("😀", 25)), 400, CodeInvalidParameter, "Invalid parameter: interactive.action.sections[0].rows[1].title: max length 24"},
		{"list, row title missing", set(listMsg, "interactive.action.sections.0.rows.1.title", nil), 400, CodeMissingParameter, "interactive.action.sections[0].rows[1].title: required"},
		{"list, row description 73", set(listMsg, "interactive.action.sections.0.rows.0.description", r("ó", 73)), 400, CodeInvalidParameter, "interactive.action.sections[0].rows[0].description: max length 72"},

		// interactive button
		{"button", buttonMsg, 200, 0, ""},
		{"button, 3 buttons of 20", set(buttonMsg, "interactive.action.buttons", buttons(r("a", 20), r("b", 20), r("ç", 20))), 200, 0, ""},
		{"button, 4 buttons", set(buttonMsg, "interactive.action.buttons", buttons("a", "b", "c", "d")), 400, CodeInvalidValue, "at most 3 buttons, got 4"},
		{"button, none", set(buttonMsg, "interactive.action.buttons", []any{}), 400, CodeMissingParameter, "interactive.action.buttons"},
		{"button, title 21", set(buttonMsg, "interactive.action.buttons", buttons(r("é", 21))), 400, CodeInvalidParameter, "interactive.action.buttons[0].reply.title: max length 20"},
		{"button, duplicate titles", set(buttonMsg, "interactive.action.buttons", buttons("Yes", "Yes")), 400, CodeInvalidValue, "interactive.action.buttons[1].reply.title: duplicate button title"},
		{"button, type not reply", set(buttonMsg, "interactive.action.buttons.0.type", "url"), 400, CodeInvalidValue, "interactive.action.buttons[0].type"},
		{"button, id missing", set(buttonMsg, "interactive.action.buttons.0.reply.id", nil), 400, CodeMissingParameter, "interactive.action.buttons[0].reply.id: required"},

		// media messages
		{"image link", imageMsg, 200, 0, ""},
		{"video link", envelope("video", map[string]any{"link": "https://cdn.example.com/a.mp4"}), 200, 0, ""},
		{"document link with filename", envelope("document", map[string]any{"link": "https://cdn.example.com/a.pdf", "filename": "a.pdf"}), 200, 0, ""},
		{"image without id or link", envelope("image", map[string]any{"caption": "x"}), 400, CodeMissingParameter, "image: one of id or link is required"},
		{"image with id and link", envelope("image", map[string]any{"id": "1", "link": "https://x.com/a.jpg"}), 400, CodeInvalidParameter, "either id or link"},
		{"image unknown id", envelope("image", map[string]any{"id": "1234567890123456"}), 400, CodeInvalidParameter, "image.id: unknown media id"},
		{"image caption 1025", set(imageMsg, "image.caption", r("ñ", 1025)), 400, CodeInvalidParameter, "image.caption: max length 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := send(t, ts, tt.payload)
			if tt.status == http.StatusOK {
				got := wantSuccess(t, resp)
				m, _ := tt.payload.(map[string]any)
				if want := m["to"]; got.Contacts[0].Input != want {
					t.Errorf("contacts[0].input: got %q, want %q", got.Contacts[0].Input, want)
				}
				if want := onlyDigits(m["to"].(string)); got.Contacts[0].WaID != want {
					t.Errorf("contacts[0].wa_id: got %q, want %q", got.Contacts[0].WaID, want)
				}
				wantStatus := ""
				if m["type"] == "template" {
					wantStatus = "accepted"
				}
				if got.Messages[0].MessageStatus != wantStatus {
					t.Errorf("message_status: got %q, want %q", got.Messages[0].MessageStatus, wantStatus)
				}
				return
			}
			wantError(t, resp, tt.status, tt.code, tt.details)
		})
	}
}

func TestStatsByType(t *testing.T) {
	s, ts := strict(t)
	for _, p := range []any{textMsg(to, "a"), templateMsg, ctaMsg, listMsg, listMsg, buttonMsg, imageMsg, textMsg("1", "bad")} {
		send(t, ts, p)
	}
	st := s.Stats()
	want := map[string]int64{"text": 1, "template": 1, "interactive.cta_url": 1, "interactive.list": 2, "interactive.button": 1, "image": 1}
	for k, v := range want {
		if st.ByType[k] != v {
			t.Errorf("ByType[%s]: got %d, want %d", k, st.ByType[k], v)
		}
	}
	if st.Accepted != 7 || st.Rejected != 1 || st.ByCode[CodeInvalidParameter] != 1 {
		t.Errorf("stats: got accepted %d rejected %d by_code %v, want 7, 1, {100:1}", st.Accepted, st.Rejected, st.ByCode)
	}
	if st.Duplicates != 1 {
		t.Errorf("duplicates: got %d, want 1 (the list was sent twice)", st.Duplicates)
	}
}
