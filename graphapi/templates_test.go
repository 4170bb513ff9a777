package graphapi_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/shared"
)

const wabaID = "102290129340398"

func sandboxClient(t *testing.T) *graphapi.Client {
	t.Helper()
	sb := sandbox.New(sandbox.Options{Token: "tok", PhoneNumberID: "106540352242922", BusinessAccountID: wabaID})
	ts := httptest.NewServer(sb.Handler())
	t.Cleanup(ts.Close)
	return graphapi.New(graphapi.Config{BaseURL: ts.URL, Token: "tok", PhoneNumberID: "106540352242922"})
}

// Templates reads Meta's registry (through its paging) into specs a send can be
// checked against.
func TestTemplatesReadsTheRegistry(t *testing.T) {
	c := sandboxClient(t)
	ctx := context.Background()
	all, err := c.Templates(ctx, wabaID, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(all), len(sandbox.DefaultTemplates()); got != want {
		t.Fatalf("Templates = %d specs, want %d", got, want)
	}
	specs, err := c.Templates(ctx, wabaID, "promo_descuento")
	if err != nil || len(specs) != 1 {
		t.Fatalf("Templates(promo_descuento) = %v, %v; want one", specs, err)
	}
	got := specs[0]
	want := shared.TemplateSpec{Name: "promo_descuento", Language: "es", Status: "APPROVED", Category: "MARKETING",
		ParameterFormat: "POSITIONAL", BodyParams: []string{"1", "2"}, URLButtons: []int{1}}
	if got.Name != want.Name || got.Status != want.Status || got.ParameterFormat != want.ParameterFormat ||
		!slices.Equal(got.BodyParams, want.BodyParams) || !slices.Equal(got.URLButtons, want.URLButtons) || got.HeaderFormat != "" {
		t.Errorf("spec = %+v, want %+v", got, want)
	}
	specs, _ = c.Templates(ctx, wabaID, "saludo_encabezado")
	if len(specs) != 1 || specs[0].HeaderFormat != "TEXT" || specs[0].HeaderParams != 1 {
		t.Errorf("saludo_encabezado = %+v, want a TEXT header with one variable", specs)
	}
	specs, _ = c.Templates(ctx, wabaID, "pedido_listo")
	if len(specs) != 1 || specs[0].ParameterFormat != "NAMED" || !slices.Equal(specs[0].BodyParams, []string{"nombre", "pedido"}) {
		t.Errorf("pedido_listo = %+v, want NAMED nombre, pedido", specs)
	}
	if _, err := c.Templates(ctx, "999", ""); err == nil {
		t.Error("Templates of another account succeeded")
	}
}

// Every template form wagate builds is accepted by a registry that knows the template,
// and the registry's spec agrees with Meta's answer on the forms it refuses.
func TestTemplateFormsAgainstTheRegistry(t *testing.T) {
	c := sandboxClient(t)
	ctx := context.Background()
	specs, err := c.Templates(ctx, wabaID, "")
	if err != nil {
		t.Fatal(err)
	}
	spec := func(name string) shared.TemplateSpec {
		for _, s := range specs {
			if s.Name == name && s.Language == "es" {
				return s
			}
		}
		t.Fatalf("no spec for %s", name)
		return shared.TemplateSpec{}
	}
	img := "https://cdn.example.com/promo.jpg"
	tests := []struct {
		name, template string
		parts          shared.TemplateParts
		metaCode       int // 0 = accepted
	}{
		{"positional", "hello_world", shared.TemplateParts{Params: shared.TemplateParams{Positional: []string{"Juan", "Empresa XYZ"}}}, 0},
		{"named", "pedido_listo", shared.TemplateParts{Params: shared.TemplateParams{Named: map[string]string{"pedido": "#1", "nombre": "Ana"}}}, 0},
		{"image header", "promo_imagen", shared.TemplateParts{Params: shared.TemplateParams{Positional: []string{"Ana", "50%"}}, HeaderType: "image", HeaderContent: img}, 0},
		{"document header, named", "factura", shared.TemplateParts{Params: shared.TemplateParams{Named: map[string]string{"nombre": "Ana"}}, HeaderType: "document", HeaderContent: "https://cdn.example.com/f.pdf"}, 0},
		{"video header, named", "video_bienvenida", shared.TemplateParts{Params: shared.TemplateParams{Named: map[string]string{"nombre": "Ana", "empresa": "XYZ"}}, HeaderType: "video", HeaderContent: "https://cdn.example.com/v.mp4"}, 0},
		{"text header variable", "saludo_encabezado", shared.TemplateParts{Params: shared.TemplateParams{Positional: []string{"50%"}}, HeaderType: "text", HeaderContent: "Ana"}, 0},
		{"URL button suffix", "promo_descuento", shared.TemplateParts{Params: shared.TemplateParams{Positional: []string{"Ana", "50%"}}, ButtonURLSuffix: "ana", ButtonIndex: 1}, 0},
		{"count mismatch", "hello_world", shared.TemplateParts{Params: shared.TemplateParams{Positional: []string{"Juan"}}}, 132000},
		{"named given positional", "pedido_listo", shared.TemplateParts{Params: shared.TemplateParams{Positional: []string{"Ana", "#1"}}}, 100},
		{"media header missing", "promo_imagen", shared.TemplateParts{Params: shared.TemplateParams{Positional: []string{"Ana", "50%"}}}, 132012},
		{"URL suffix missing", "promo_descuento", shared.TemplateParts{Params: shared.TemplateParams{Positional: []string{"Ana", "50%"}}}, 132000},
		{"paused", "oferta_pausada", shared.TemplateParts{Params: shared.TemplateParams{Positional: []string{"Ana", "50%"}}}, 132015},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := shared.BulkTemplateMessage("recipients[0]", "573123456789", tt.template, "es", tt.parts)
			if err != nil {
				t.Fatalf("BulkTemplateMessage: %v", err)
			}
			_, sendErr := c.Send(ctx, m, "")
			checkErr := spec(tt.template).CheckTemplate("recipients[0]", m)
			if got := graphapi.Code(sendErr); got != tt.metaCode {
				t.Errorf("Meta's code = %d (%v), want %d", got, sendErr, tt.metaCode)
			}
			if (checkErr == nil) != (tt.metaCode == 0) {
				t.Errorf("preflight = %v, but Meta answered %v", checkErr, sendErr)
			}
			if checkErr != nil && shared.HTTPStatus(checkErr) != 400 {
				t.Errorf("preflight error %v is %d, want 400", checkErr, shared.HTTPStatus(checkErr))
			}
		})
	}
	if !graphapi.TemplatePaused(func() error {
		m, _ := shared.BulkTemplateMessage("", "573123456789", "oferta_pausada", "es", shared.TemplateParts{Params: shared.TemplateParams{Positional: []string{"a", "b"}}})
		_, err := c.Send(ctx, m, "")
		return err
	}()) {
		t.Error("TemplatePaused does not recognise Meta's 132015")
	}
}
