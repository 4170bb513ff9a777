package graphapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/wagate/wagate/shared"
)

// templateFields are the fields of a message template a send must match.
const templateFields = "name,language,status,category,parameter_format,components"

// maxTemplatePages bounds how many pages of the registry one lookup reads (100
// templates a page).
const maxTemplatePages = 50

// templateAnswer is one page of GET /{waba-id}/message_templates.
type templateAnswer struct {
	Data   []templateRecord `json:"data"`
	Paging struct {
		Cursors struct {
			After string `json:"after"`
		} `json:"cursors"`
		Next string `json:"next"`
	} `json:"paging"`
}

type templateRecord struct {
	Name            string `json:"name"`
	Language        string `json:"language"`
	Status          string `json:"status"`
	Category        string `json:"category"`
	ParameterFormat string `json:"parameter_format"`
	Components      []struct {
		Type    string `json:"type"`
		Format  string `json:"format"`
		Text    string `json:"text"`
		Buttons []struct {
			Type string `json:"type"`
			URL  string `json:"url"`
		} `json:"buttons"`
	} `json:"components"`
}

// Templates reads the message templates named name (every template when name is "")
// of the WhatsApp Business Account wabaID, following Meta's paging.
func (c *Client) Templates(ctx context.Context, wabaID, name string) ([]shared.TemplateSpec, error) {
	if wabaID == "" {
		return nil, shared.Invalidf("Falta WHATSAPP_BUSINESS_ACCOUNT_ID")
	}
	q := url.Values{"fields": {templateFields}, "limit": {"100"}}
	if name != "" {
		q.Set("name", name)
	}
	base := c.versionURL + "/" + url.PathEscape(wabaID) + "/message_templates"
	var out []shared.TemplateSpec
	for page := 0; page < maxTemplatePages; page++ {
		raw, err := c.call(ctx, c.timeout, http.MethodGet, base+"?"+q.Encode(), "", nil)
		if err != nil {
			return nil, fmt.Errorf("graphapi: message templates: %w", err)
		}
		var ans templateAnswer
		if err := json.Unmarshal(raw, &ans); err != nil {
			return nil, fmt.Errorf("graphapi: message templates: malformed answer: %w", err)
		}
		for _, r := range ans.Data {
			// Meta's name filter matches by prefix as well; keep exact names only.
			if name == "" || r.Name == name {
				out = append(out, r.spec())
			}
		}
		if ans.Paging.Next == "" || ans.Paging.Cursors.After == "" {
			return out, nil
		}
		q.Set("after", ans.Paging.Cursors.After)
	}
	return out, nil
}

func (r templateRecord) spec() shared.TemplateSpec {
	s := shared.TemplateSpec{
		Name: r.Name, Language: r.Language, Status: strings.ToUpper(r.Status),
		Category: r.Category, ParameterFormat: strings.ToUpper(r.ParameterFormat),
	}
	if s.ParameterFormat == "" {
		s.ParameterFormat = shared.FormatPositional
	}
	buttonIndex := 0
	for _, comp := range r.Components {
		switch strings.ToUpper(comp.Type) {
		case "HEADER":
			s.HeaderFormat = strings.ToUpper(comp.Format)
			if s.HeaderFormat == shared.TemplateHeaderText {
				s.HeaderParams = len(shared.TemplateVariables(comp.Text))
			}
		case "BODY":
			s.BodyParams = shared.TemplateVariables(comp.Text)
		case "BUTTONS":
			for _, b := range comp.Buttons {
				if strings.EqualFold(b.Type, "URL") && len(shared.TemplateVariables(b.URL)) > 0 {
					s.URLButtons = append(s.URLButtons, buttonIndex)
				}
				buttonIndex++
			}
		}
	}
	return s
}

// TemplatePaused reports whether err is Meta refusing a template that is paused
// (132015) or disabled (132016), which a campaign waits out rather than failing every
// remaining recipient.
func TemplatePaused(err error) bool {
	c := Code(err)
	return c == 132015 || c == 132016
}
