package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/wagate/wagate/shared"
)

// templateCacheTTL is how long the template registry read from Meta is trusted: Meta
// allows 200 management calls an hour per WABA, and a template's status rarely
// changes within minutes.
const templateCacheTTL = 5 * time.Minute

var sendBulkTemplateTexts = bulk{"send-bulk-template", "Envío masivo de plantillas enviado a cola", "Envío masivo de plantillas procesado"}

// sendBulkTemplate answers POST /api/send-bulk-template: one approved template to a
// list of recipients, or to the numbers cache filtered by data fields, each with its
// own parameters, header and URL-button suffix or the request's. With
// WHATSAPP_BUSINESS_ACCOUNT_ID set, every message is checked against Meta's registry
// first, so a campaign that cannot succeed is a 400 now instead of a failure per
// recipient later.
func (s *Server) sendBulkTemplate(w http.ResponseWriter, r *http.Request) error {
	var req shared.SendBulkTemplateRequest
	if err := decode(w, r, maxBulkBody, &req); err != nil {
		return err
	}
	var spec *shared.TemplateSpec
	if s.Config.WhatsAppBusinessAccountID != "" {
		if strings.TrimSpace(req.TemplateName) == "" {
			return shared.Invalidf("Se requiere el campo 'template_name'")
		}
		sp, err := s.templateSpec(r.Context(), req.TemplateName, language(req.Language))
		if err != nil {
			return err
		}
		spec = &sp
	}
	buttonIndex := 0
	switch {
	case req.ButtonIndex != nil:
		buttonIndex = *req.ButtonIndex
	case spec != nil && len(spec.URLButtons) > 0:
		buttonIndex = spec.URLButtons[0]
	}

	var msgs []shared.Message
	var err error
	switch {
	case req.FromCache != nil && len(req.Recipients) > 0:
		return shared.Invalidf("Use 'recipients' o 'from_cache', no ambos")
	case req.FromCache != nil:
		msgs, err = s.templateFromCache(r.Context(), req, buttonIndex)
	default:
		msgs, err = messages("recipients", req.Recipients, func(p string, rc shared.TemplateRecipient) (shared.Message, error) {
			return templateFor(p, rc, req, buttonIndex)
		})
	}
	if err != nil {
		return err
	}
	if spec != nil {
		for i, m := range msgs {
			if err := spec.CheckTemplate(recipientName(req, i, m), m); err != nil {
				return err
			}
		}
	}
	return s.sendMany(w, r, msgs, shared.QueueOr(req.UseQueue, true), sendBulkTemplateTexts)
}

func language(l string) string {
	if l == "" {
		return shared.DefaultLanguage
	}
	return l
}

// recipientName names the i-th recipient in a preflight error.
func recipientName(req shared.SendBulkTemplateRequest, i int, m shared.Message) string {
	if req.FromCache != nil {
		return fmt.Sprintf("el número %s del caché", m.To)
	}
	return fmt.Sprintf("recipients[%d] (%s)", i, m.To)
}

// templateFor builds one listed recipient's message: its own parameters, header and
// suffix, or the request's.
func templateFor(prefix string, rc shared.TemplateRecipient, req shared.SendBulkTemplateRequest, buttonIndex int) (shared.Message, error) {
	parts := shared.TemplateParts{
		HeaderType: req.HeaderType, HeaderContent: req.HeaderContent,
		ButtonURLSuffix: req.ButtonURLSuffix, ButtonIndex: buttonIndex,
	}
	switch {
	case !rc.Parameters.Empty():
		parts.Params = *rc.Parameters
	case req.Parameters != nil:
		parts.Params = *req.Parameters
	}
	if rc.HeaderContent != "" {
		parts.HeaderContent = rc.HeaderContent
	}
	if rc.ButtonURLSuffix != "" {
		parts.ButtonURLSuffix = rc.ButtonURLSuffix
	}
	return shared.BulkTemplateMessage(prefix, rc.Phone, req.TemplateName, req.Language, parts)
}

// templateFromCache resolves the campaign's recipients once, now: every cached number
// whose data matches the filter, with the request's parameters, header and suffix
// filled from its record ({{name}}, {{phone}}, {{data.<field>}}).
func (s *Server) templateFromCache(ctx context.Context, req shared.SendBulkTemplateRequest, buttonIndex int) ([]shared.Message, error) {
	numbers, err := s.Store.ListNumbers(ctx)
	if err != nil {
		return nil, shared.Wrap(shared.KindUnavailable, err, "No se pudo leer el caché de números: Redis no está disponible")
	}
	var msgs []shared.Message
	for _, n := range numbers {
		data := shared.DecodeData(n.Data)
		if !shared.MatchesFilter(data, req.FromCache.Filter) {
			continue
		}
		if len(msgs) == shared.MaxRecipients {
			return nil, shared.Invalidf("El filtro de 'from_cache' selecciona más de %d números; el máximo por solicitud es %d", shared.MaxRecipients, shared.MaxRecipients)
		}
		parts := shared.TemplateParts{
			HeaderType:      req.HeaderType,
			HeaderContent:   shared.FillFromNumber(req.HeaderContent, n, data),
			ButtonURLSuffix: shared.FillFromNumber(req.ButtonURLSuffix, n, data),
			ButtonIndex:     buttonIndex,
		}
		if req.Parameters != nil {
			parts.Params = shared.FillParams(*req.Parameters, n, data)
		}
		m, err := shared.BulkTemplateMessage(fmt.Sprintf("from_cache[%s]", n.Phone), n.Phone, req.TemplateName, req.Language, parts)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return nil, shared.Invalidf("Ningún número del caché coincide con el filtro de 'from_cache'")
	}
	return msgs, nil
}

// templateSpec answers the registry's spec of the template name in language, from a
// cache of Meta's answers kept templateCacheTTL.
func (s *Server) templateSpec(ctx context.Context, name, lang string) (shared.TemplateSpec, error) {
	specs, err := s.templates.get(ctx, name, func(ctx context.Context) ([]shared.TemplateSpec, error) {
		return s.Graph.Templates(ctx, s.Config.WhatsAppBusinessAccountID, name)
	})
	if err != nil {
		return shared.TemplateSpec{}, graphError("No se pudo leer el registro de plantillas de Meta", err)
	}
	var langs []string
	for _, sp := range specs {
		if sp.Language == lang {
			return sp, nil
		}
		langs = append(langs, sp.Language)
	}
	if len(langs) == 0 {
		return shared.TemplateSpec{}, shared.Invalidf("La plantilla '%s' no existe en la cuenta de WhatsApp Business", shared.Cut(name))
	}
	return shared.TemplateSpec{}, shared.Invalidf("La plantilla '%s' no existe en el idioma '%s' (idiomas: %s)", shared.Cut(name), shared.Cut(lang), strings.Join(langs, ", "))
}

// templateCache keeps the registry's answer per template name for templateCacheTTL.
type templateCache struct {
	mu      sync.Mutex
	entries map[string]templateEntry
}

type templateEntry struct {
	specs []shared.TemplateSpec
	at    time.Time
}

func (c *templateCache) get(ctx context.Context, name string, load func(context.Context) ([]shared.TemplateSpec, error)) ([]shared.TemplateSpec, error) {
	c.mu.Lock()
	e, ok := c.entries[name]
	c.mu.Unlock()
	if ok && time.Since(e.at) < templateCacheTTL {
		return e.specs, nil
	}
	specs, err := load(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]templateEntry{}
	}
	c.entries[name] = templateEntry{specs: specs, at: time.Now()}
	c.mu.Unlock()
	return specs, nil
}
