package sandbox

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func templateSend(name, lang string, components ...any) map[string]any {
	t := map[string]any{"name": name, "language": map[string]any{"code": lang}}
	if len(components) > 0 {
		t["components"] = components
	}
	return envelope("template", t)
}

func body(params ...any) map[string]any {
	return map[string]any{"type": "body", "parameters": params}
}

func text(v string) map[string]any { return map[string]any{"type": "text", "text": v} }

func named(name, v string) map[string]any {
	return map[string]any{"type": "text", "parameter_name": name, "text": v}
}

func headerOf(p map[string]any) map[string]any {
	return map[string]any{"type": "header", "parameters": []any{p}}
}

func urlButton(index, suffix string) map[string]any {
	return map[string]any{"type": "button", "sub_type": "url", "index": index, "parameters": []any{text(suffix)}}
}

var sampleImage = map[string]any{"type": "image", "image": map[string]any{"link": "https://cdn.example.com/promo.jpg"}}

// Template sends are checked against the registry as Meta checks them.
func TestTemplateRegistryChecksSends(t *testing.T) {
	_, ts := strict(t)
	tests := []struct {
		name    string
		payload map[string]any
		status  int
		code    int
		details string
	}{
		{"contract example", templateSend("hello_world", "es", body(text("Juan"), text("Empresa XYZ"))), 200, 0, ""},
		{"Meta's sample without parameters", templateSend("hello_world", "en_US"), 200, 0, ""},
		{"unknown name", templateSend("no_existe", "es"), 400, CodeTemplateMissing, "template name (no_existe) does not exist in es"},
		{"known name, other language", templateSend("pedido_listo", "en_US", body(named("nombre", "Ana"), named("pedido", "1"))), 400, CodeTemplateMissing, "does not exist in en_US"},
		{"paused", templateSend("oferta_pausada", "es", body(text("Ana"), text("50%"))), 400, CodeTemplatePaused, "paused"},
		{"too few body parameters", templateSend("hello_world", "es", body(text("Juan"))), 400, CodeTemplateParamCount, "body: number of localizable_params (1) does not match the expected number of params (2)"},
		{"too many body parameters", templateSend("hello_world", "es", body(text("a"), text("b"), text("c"))), 400, CodeTemplateParamCount, "(3)"},
		{"named template", templateSend("pedido_listo", "es", body(named("nombre", "Ana"), named("pedido", "#1"))), 200, 0, ""},
		{"named template given positional", templateSend("pedido_listo", "es", body(text("Ana"), text("#1"))), 400, CodeInvalidParameter, "Parameter name is missing or empty"},
		{"named template, unknown name", templateSend("pedido_listo", "es", body(named("nombre", "Ana"), named("otro", "#1"))), 400, CodeTemplateParamCount, "parameter 'otro'"},
		{"positional template given names", templateSend("hello_world", "es", body(named("a", "Juan"), named("b", "X"))), 400, CodeTemplateFormat, "Parameter format does not match"},
		{"image header", templateSend("promo_imagen", "es", headerOf(sampleImage), body(text("Ana"), text("50%"))), 200, 0, ""},
		{"image header missing", templateSend("promo_imagen", "es", body(text("Ana"), text("50%"))), 400, CodeTemplateFormat, "header: Format mismatch, expected IMAGE, received UNKNOWN"},
		{"image header given a document", templateSend("promo_imagen", "es", headerOf(map[string]any{"type": "document", "document": map[string]any{"link": "https://cdn.example.com/a.pdf"}}), body(text("Ana"), text("50%"))), 400, CodeTemplateFormat, "expected IMAGE, received DOCUMENT"},
		{"header on a template without one", templateSend("hello_world", "es", headerOf(text("x")), body(text("a"), text("b"))), 400, CodeTemplateParamCount, "header: number of localizable_params (1)"},
		{"text header variable", templateSend("saludo_encabezado", "es", headerOf(text("Ana")), body(text("50%"))), 200, 0, ""},
		{"text header variable missing", templateSend("saludo_encabezado", "es", body(text("50%"))), 400, CodeTemplateParamCount, "header: number of localizable_params (0) does not match the expected number of params (1)"},
		{"URL button suffix", templateSend("promo_descuento", "es", body(text("Ana"), text("50%")), urlButton("1", "ana-50")), 200, 0, ""},
		{"URL button suffix missing", templateSend("promo_descuento", "es", body(text("Ana"), text("50%"))), 400, CodeTemplateParamCount, "button 1"},
		{"URL button at the quick reply's index", templateSend("promo_descuento", "es", body(text("Ana"), text("50%")), urlButton("0", "x")), 400, CodeTemplateParamCount, "button 1"},
		{"video header, named body", templateSend("video_bienvenida", "es",
			headerOf(map[string]any{"type": "video", "video": map[string]any{"link": "https://cdn.example.com/v.mp4"}}),
			body(named("nombre", "Ana"), named("empresa", "XYZ"))), 200, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(t, ts, tt.payload)
			if tt.status == 200 {
				wantSuccess(t, r)
				return
			}
			wantError(t, r, tt.status, tt.code, tt.details)
		})
	}
}

// GET /{waba-id}/message_templates lists the registry in Meta's shape and pages it;
// the control endpoint pauses and re-approves a template at run time.
func TestTemplateRegistryListingAndStatus(t *testing.T) {
	s, ts := start(t, Options{Token: testToken, PhoneNumberID: testPNID, BusinessAccountID: "102290129340398"})
	get := func(query string) (recs []templateRecord, next, after string) {
		t.Helper()
		r := do(t, http.MethodGet, ts.URL+"/v23.0/102290129340398/message_templates"+query, testToken, nil, "")
		if r.status != http.StatusOK {
			t.Fatalf("GET message_templates%s = %d %s", query, r.status, r.body)
		}
		var ans struct {
			Data   []templateRecord `json:"data"`
			Paging struct {
				Cursors struct{ After string } `json:"cursors"`
				Next    string                 `json:"next"`
			} `json:"paging"`
		}
		if err := json.Unmarshal(r.body, &ans); err != nil {
			t.Fatal(err)
		}
		return ans.Data, ans.Paging.Next, ans.Paging.Cursors.After
	}

	var all []templateRecord
	q := "?limit=4"
	for range 10 {
		page, next, after := get(q)
		all = append(all, page...)
		if next == "" {
			break
		}
		q = "?limit=4&after=" + after
	}
	if got, want := len(all), len(DefaultTemplates()); got != want {
		t.Fatalf("paged listing has %d templates, want %d", got, want)
	}
	recs, _, _ := get("?name=pedido_listo")
	if len(recs) != 1 || recs[0].ParameterFormat != "NAMED" || recs[0].Status != "APPROVED" || recs[0].Components[0].Type != "BODY" ||
		!strings.Contains(recs[0].Components[0].Text, "{{nombre}}") {
		t.Errorf("pedido_listo = %+v, want one NAMED APPROVED template with a BODY of {{nombre}}", recs)
	}
	if r := do(t, http.MethodGet, ts.URL+"/v23.0/999/message_templates", testToken, nil, ""); r.status != http.StatusBadRequest {
		t.Errorf("another WABA's templates = %d, want 400", r.status)
	}
	if r := do(t, http.MethodGet, ts.URL+"/v23.0/102290129340398/message_templates", "wrong", nil, ""); r.status != http.StatusUnauthorized {
		t.Errorf("templates with a wrong token = %d, want 401", r.status)
	}

	payload := templateSend("pedido_listo", "es", body(named("nombre", "Ana"), named("pedido", "#1")))
	r := do(t, http.MethodPut, ts.URL+"/_sandbox/templates/pedido_listo", "", strings.NewReader(`{"status":"PAUSED"}`), "application/json")
	if r.status != http.StatusOK {
		t.Fatalf("pause = %d %s", r.status, r.body)
	}
	wantError(t, send(t, ts, payload), 400, CodeTemplatePaused, "paused")
	if recs, _, _ := get("?name=pedido_listo"); recs[0].Status != "PAUSED" {
		t.Errorf("listing after the pause says %s, want PAUSED", recs[0].Status)
	}
	s.SetTemplateStatus("pedido_listo", "es", "DISABLED")
	wantError(t, send(t, ts, payload), 400, CodeTemplateDisabled, "disabled")
	s.SetTemplateStatus("pedido_listo", "", "APPROVED")
	wantSuccess(t, send(t, ts, payload))
	if r := do(t, http.MethodPut, ts.URL+"/_sandbox/templates/no_existe", "", strings.NewReader(`{"status":"PAUSED"}`), "application/json"); r.status != http.StatusNotFound {
		t.Errorf("pausing an unknown template = %d, want 404", r.status)
	}
}
