package graphapi

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wagate/wagate/shared"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from BuildPayload")

func TestBuildPayloadGolden(t *testing.T) {
	sections := []shared.Section{
		{Title: "I want it ASAP!", Rows: []shared.Row{
			{ID: "priority_express", Title: "Priority Mail Express", Description: "Next Day to 2 Days"},
			{ID: "same_day", Title: "Same day"},
		}},
		{Title: "I can wait a bit", Rows: []shared.Row{
			{ID: "usps_ground", Title: "USPS Ground Advantage", Description: "2–5 Days"},
		}},
	}
	tests := []struct {
		name   string
		msg    shared.Message
		opaque string
	}{
		{"text", shared.Message{To: "5215512345678", Kind: shared.KindText, Body: "Hola <Ada> & co."}, ""},
		{"text_url", shared.Message{To: "16505551234", Kind: shared.KindText, Body: "Here it is: https://example.com/x?a=1&b=2"}, "task-1:0"},
		{"template", shared.Message{To: "16505551234", Kind: shared.KindTemplate,
			Template: &shared.Template{Name: "hello_world", Language: "en_US"}}, ""},
		{"template_params", shared.Message{To: "16505551234", Kind: shared.KindTemplate,
			Template: &shared.Template{Name: "order_update", Language: "es", Parameters: []string{"Ada", "#1234"}}}, "task-2:7"},
		{"template_named", shared.Message{To: "573123456789", Kind: shared.KindTemplate,
			Template: &shared.Template{Name: "pedido_listo", Language: "es",
				Named: []shared.NamedParam{{Name: "nombre", Text: "Ana"}, {Name: "pedido", Text: "#123"}}}}, "task-5:0"},
		{"template_text_header", shared.Message{To: "573123456789", Kind: shared.KindTemplate,
			Header:   &shared.Header{Type: shared.HeaderText, Text: "Ana"},
			Template: &shared.Template{Name: "saludo_encabezado", Language: "es", Parameters: []string{"50%"}}}, ""},
		{"template_image_header_id", shared.Message{To: "573123456789", Kind: shared.KindTemplate,
			Header:   &shared.Header{Type: shared.HeaderImage, Link: "https://cdn.x/promo.jpg", MediaID: "1037543291543636"},
			Template: &shared.Template{Name: "promo_imagen", Language: "es", Parameters: []string{"Ana", "50%"}}}, "task-6:3"},
		{"template_document_header_link", shared.Message{To: "573123456789", Kind: shared.KindTemplate,
			Header:   &shared.Header{Type: shared.HeaderDocument, Link: "https://cdn.x/factura.pdf", Filename: "factura.pdf"},
			Template: &shared.Template{Name: "factura", Language: "es", Parameters: []string{"Ana"}}}, ""},
		{"template_video_header_url_button", shared.Message{To: "573123456789", Kind: shared.KindTemplate,
			Header: &shared.Header{Type: shared.HeaderVideo, MediaID: "5566"},
			Template: &shared.Template{Name: "seguimiento", Language: "es_CO",
				Named:           []shared.NamedParam{{Name: "nombre", Text: "Ana"}},
				ButtonURLSuffix: "pedido/123", ButtonIndex: 1}}, ""},
		{"cta_text_header", shared.Message{To: "16505551234", Kind: shared.KindCTAURL,
			Header: &shared.Header{Type: shared.HeaderText, Text: "Workshop"},
			Body:   "Tap the button below to see available dates.", Footer: "Dates subject to change.",
			Button: "See Dates", URL: "https://x.com/?id=1&ref=wa"}, ""},
		{"cta_image_link", shared.Message{To: "16505551234", Kind: shared.KindCTAURL,
			Header: &shared.Header{Type: shared.HeaderImage, Link: "https://cdn.x/banner.png?sig=a&exp=2"},
			Body:   "New arrivals", Button: "Shop", URL: "https://x.com/shop"}, ""},
		{"cta_image_id", shared.Message{To: "16505551234", Kind: shared.KindCTAURL,
			Header: &shared.Header{Type: shared.HeaderImage, Link: "https://cdn.x/banner.png", MediaID: "1037543291543636"},
			Body:   "New arrivals", Footer: "Lucky Shrub", Button: "Shop", URL: "https://x.com/shop"}, "task-3:12"},
		{"cta_document", shared.Message{To: "16505551234", Kind: shared.KindCTAURL,
			Header: &shared.Header{Type: shared.HeaderDocument, MediaID: "998877", Filename: "invoice.pdf"},
			Body:   "Your invoice", Button: "Pay", URL: "https://x.com/pay"}, ""},
		{"list", shared.Message{To: "16505551234", Kind: shared.KindList,
			Header: &shared.Header{Type: shared.HeaderText, Text: "Choose Shipping Option"},
			Body:   "Which shipping option do you prefer?", Footer: "Lucky Shrub", Button: "Shipping Options",
			Sections: sections}, "task-4:1"},
		{"media_caption", shared.Message{To: "16505551234", Kind: shared.KindMedia,
			Header: &shared.Header{Type: shared.HeaderImage, MediaID: "2762702990552401"}, Body: "Look at this"}, ""},
		{"media_document_link", shared.Message{To: "16505551234", Kind: shared.KindMedia,
			Header: &shared.Header{Type: shared.HeaderDocument, Link: "https://cdn.x/a.pdf", Filename: "a.pdf"}}, ""},
		{"media_video", shared.Message{To: "+16505551234", Kind: shared.KindMedia,
			Header: &shared.Header{Type: shared.HeaderVideo, Link: "https://cdn.x/v.mp4"}, Body: "Clip"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BuildPayload(tt.msg, tt.opaque)
			if err != nil {
				t.Fatalf("BuildPayload: %v", err)
			}
			if !json.Valid(got) {
				t.Fatalf("BuildPayload produced invalid JSON: %s", got)
			}
			file := filepath.Join("testdata", tt.name+".golden.json")
			if *update {
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, got, "", "  "); err != nil {
					t.Fatal(err)
				}
				pretty.WriteByte('\n')
				if err := os.WriteFile(file, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("read golden (run with -update to create it): %v", err)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, want); err != nil {
				t.Fatalf("golden %s: %v", file, err)
			}
			if !bytes.Equal(got, compact.Bytes()) {
				t.Errorf("BuildPayload mismatch\n got: %s\nwant: %s", got, compact.Bytes())
			}
		})
	}
}

// TestBuildPayloadShape checks the rules the golden files encode, so that a careless
// -update cannot bless a wrong payload.
func TestBuildPayloadShape(t *testing.T) {
	decode := func(t *testing.T, m shared.Message, opaque string) map[string]any {
		t.Helper()
		b, err := BuildPayload(m, opaque)
		if err != nil {
			t.Fatalf("BuildPayload: %v", err)
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	t.Run("envelope", func(t *testing.T) {
		v := decode(t, shared.Message{To: "5215512345678", Kind: shared.KindText, Body: "hi"}, "t:3")
		for k, want := range map[string]any{
			"messaging_product": "whatsapp", "recipient_type": "individual", "to": "+5215512345678",
			"type": "text", "biz_opaque_callback_data": "t:3",
		} {
			if got := v[k]; got != want {
				t.Errorf("%s = %v, want %v", k, got, want)
			}
		}
	})
	t.Run("no opaque, no preview", func(t *testing.T) {
		v := decode(t, shared.Message{To: "5215512345678", Kind: shared.KindText, Body: "no link here"}, "")
		if _, ok := v["biz_opaque_callback_data"]; ok {
			t.Errorf("biz_opaque_callback_data present without opaque: %v", v)
		}
		if _, ok := v["text"].(map[string]any)["preview_url"]; ok {
			t.Errorf("preview_url present for a body without a link: %v", v["text"])
		}
	})
	t.Run("preview for http", func(t *testing.T) {
		v := decode(t, shared.Message{To: "5215512345678", Kind: shared.KindText, Body: "see http://a.b"}, "")
		if got := v["text"].(map[string]any)["preview_url"]; got != true {
			t.Errorf("preview_url = %v, want true", got)
		}
	})
	t.Run("media id wins over link", func(t *testing.T) {
		v := decode(t, shared.Message{To: "5215512345678", Kind: shared.KindMedia,
			Header: &shared.Header{Type: shared.HeaderImage, Link: "https://a/b.png", MediaID: "42"}}, "")
		img := v["image"].(map[string]any)
		if img["id"] != "42" || img["link"] != nil {
			t.Errorf("image = %v, want only id 42", img)
		}
	})
	t.Run("no html escaping", func(t *testing.T) {
		b, err := BuildPayload(shared.Message{To: "5215512345678", Kind: shared.KindText, Body: "a<b>&c https://x?y=1&z=2"}, "")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`a<b>&c https://x?y=1&z=2`)) || bytes.Contains(b, []byte(`\u0026`)) {
			t.Errorf("payload escaped HTML: %s", b)
		}
	})
}

func TestBuildPayloadInvalid(t *testing.T) {
	tests := []struct {
		name string
		msg  shared.Message
		want string
	}{
		{"unknown kind", shared.Message{To: "5215512345678", Kind: "sticker"}, "desconocido"},
		{"no recipient", shared.Message{Kind: shared.KindText, Body: "x"}, "destinatario"},
		{"template without template", shared.Message{To: "5215512345678", Kind: shared.KindTemplate}, "plantilla"},
		{"media without header", shared.Message{To: "5215512345678", Kind: shared.KindMedia, Body: "x"}, "multimedia"},
		{"media header text", shared.Message{To: "5215512345678", Kind: shared.KindMedia,
			Header: &shared.Header{Type: shared.HeaderText, Text: "x"}}, "multimedia"},
		{"media without link or id", shared.Message{To: "5215512345678", Kind: shared.KindMedia,
			Header: &shared.Header{Type: shared.HeaderVideo}}, "enlace"},
		{"cta bad header type", shared.Message{To: "5215512345678", Kind: shared.KindCTAURL,
			Header: &shared.Header{Type: "location"}, Body: "b", Button: "B", URL: "https://x"}, "encabezado"},
		{"list image header", shared.Message{To: "5215512345678", Kind: shared.KindList,
			Header: &shared.Header{Type: shared.HeaderImage, Link: "https://x/a.png"}, Body: "b", Button: "B",
			Sections: []shared.Section{{Title: "s", Rows: []shared.Row{{ID: "1", Title: "r"}}}}}, "texto"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BuildPayload(tt.msg, "")
			if err == nil {
				t.Fatalf("BuildPayload = %s, want an error", got)
			}
			if k := shared.KindOf(err); k != shared.KindInvalid {
				t.Errorf("KindOf(err) = %v, want KindInvalid", k)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if c := Classify(err); c != ClassPermanent {
				t.Errorf("Classify = %v, want permanent", c)
			}
		})
	}
}
