package sandbox

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Meta's documented limits, counted in characters (runes) as Meta counts them.
const (
	maxTextBody         = 4096
	maxCaption          = 1024
	maxCTABody          = 1024
	maxListBody         = 4096 // the current list page; older pages said 1024
	maxButtonBody       = 1024
	maxHeaderText       = 60
	maxFooterText       = 60
	maxDisplayText      = 20
	maxListButton       = 20
	maxSections         = 10
	maxRows             = 10 // in total, across every section
	maxSectionTitle     = 24
	maxRowID            = 200
	maxRowTitle         = 24
	maxRowDescription   = 72
	maxReplyButtons     = 3
	maxReplyID          = 256
	maxReplyTitle       = 20
	maxTemplateName     = 512
	maxTemplateParam    = 32768
	maxURL              = 2000
	maxOpaque           = 512
	maxFilename         = 240
	minPhoneDigits      = 8
	maxPhoneDigits      = 15
	maxConsecutiveSpace = 4
)

type object = map[string]any

// mediaLookup says whether a media id was issued by this sandbox and is still stored.
type mediaLookup func(id string) bool

// sendRequest is a validated POST /messages payload.
type sendRequest struct {
	to      string // as given
	digits  string // wa_id
	typ     string // "text", "template", "interactive", ...
	kind    string // statistics key: typ, or "interactive.<subtype>"
	opaque  string // biz_opaque_callback_data
	content any    // the type object, for duplicate detection
}

// validateSend checks a decoded /messages payload against Meta's rules. The first
// violation found is answered, as Meta does.
func validateSend(m object, known mediaLookup) (*sendRequest, *apiError) {
	mp, err := str(m, "messaging_product", "messaging_product", true, 0)
	if err != nil {
		return nil, err
	}
	if mp != "whatsapp" {
		return nil, fieldErr(CodeInvalidParameter, "messaging_product", fmt.Sprintf("must be 'whatsapp', got '%s'", mp))
	}
	if _, present := m["recipient_type"]; present {
		rt, err := str(m, "recipient_type", "recipient_type", false, 0)
		if err != nil {
			return nil, err
		}
		if rt != "individual" && rt != "group" {
			return nil, fieldErr(CodeInvalidParameter, "recipient_type", fmt.Sprintf("must be 'individual' or 'group', got '%s'", rt))
		}
	}
	to, err := str(m, "to", "to", true, 0)
	if err != nil {
		return nil, err
	}
	digits, ok := phoneDigits(to)
	if !ok {
		return nil, fieldErr(CodeInvalidParameter, "to", fmt.Sprintf("invalid phone number '%s' (%d to %d digits)", to, minPhoneDigits, maxPhoneDigits))
	}
	opaque, err := str(m, "biz_opaque_callback_data", "biz_opaque_callback_data", false, maxOpaque)
	if err != nil {
		return nil, err
	}
	if ctx, err := obj(m, "context", "context", false); err != nil {
		return nil, err
	} else if ctx != nil {
		if _, err := str(ctx, "message_id", "context.message_id", true, 0); err != nil {
			return nil, err
		}
	}
	typ := "text" // Meta's default when type is omitted
	if _, present := m["type"]; present {
		if typ, err = str(m, "type", "type", true, 0); err != nil {
			return nil, err
		}
	}
	req := &sendRequest{to: to, digits: digits, typ: typ, kind: typ, opaque: opaque}
	content, err := obj(m, typ, typ, true)
	switch typ {
	case "text", "template", "interactive", "image", "video", "document":
		if err != nil {
			return nil, err
		}
	default:
		return nil, fieldErr(CodeInvalidValue, "type", fmt.Sprintf("unsupported message type '%s' (text, template, interactive, image, video, document)", typ))
	}
	req.content = content
	switch typ {
	case "text":
		err = validateText(content)
	case "template":
		err = validateTemplate(content, known)
	case "interactive":
		var sub string
		sub, err = validateInteractive(content, known)
		req.kind = "interactive." + sub
	default:
		err = validateMedia(content, typ, typ, known, true)
	}
	if err != nil {
		return nil, err
	}
	return req, nil
}

// phoneDigits strips the characters Meta tolerates in "to" and checks what is left.
func phoneDigits(to string) (string, bool) {
	var b strings.Builder
	for _, r := range to {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' || r == '-' || r == '(' || r == ')' || r == ' ':
		default:
			return "", false
		}
	}
	d := b.String()
	return d, len(d) >= minPhoneDigits && len(d) <= maxPhoneDigits
}

func validateText(t object) *apiError {
	if _, err := str(t, "body", "text.body", true, maxTextBody); err != nil {
		return err
	}
	return boolean(t, "preview_url", "text.preview_url")
}

// validateMedia checks an {id|link, caption, filename} media object.
func validateMedia(o object, typ, path string, known mediaLookup, captioned bool) *apiError {
	id, err := str(o, "id", path+".id", false, 0)
	if err != nil {
		return err
	}
	link, err := str(o, "link", path+".link", false, maxURL)
	if err != nil {
		return err
	}
	switch {
	case id == "" && link == "":
		return fieldErr(CodeMissingParameter, path, "one of id or link is required")
	case id != "" && link != "":
		return fieldErr(CodeInvalidParameter, path, "give either id or link, not both")
	case id != "" && !known(id):
		return fieldErr(CodeInvalidParameter, path+".id", fmt.Sprintf("unknown media id '%s'", id))
	case link != "":
		if err := checkURL(path+".link", link); err != nil {
			return err
		}
	}
	if captioned {
		if _, err := str(o, "caption", path+".caption", false, maxCaption); err != nil {
			return err
		}
	}
	if typ == "document" {
		if _, err := str(o, "filename", path+".filename", false, maxFilename); err != nil {
			return err
		}
	}
	return nil
}

func checkURL(path, raw string) *apiError {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fieldErr(CodeInvalidParameter, path, fmt.Sprintf("invalid URL '%s' (absolute http or https URL required)", raw))
	}
	return nil
}

func validateTemplate(t object, known mediaLookup) *apiError {
	if _, err := str(t, "name", "template.name", true, maxTemplateName); err != nil {
		return err
	}
	lang, err := obj(t, "language", "template.language", true)
	if err != nil {
		return err
	}
	if _, err := str(lang, "code", "template.language.code", true, 0); err != nil {
		return err
	}
	if p, err := str(lang, "policy", "template.language.policy", false, 0); err != nil {
		return err
	} else if p != "" && p != "deterministic" && p != "fallback" {
		return fieldErr(CodeInvalidParameter, "template.language.policy", fmt.Sprintf("unknown policy '%s'", p))
	}
	comps, err := arr(t, "components", "template.components", false)
	if err != nil {
		return err
	}
	for i, c := range comps {
		path := fmt.Sprintf("template.components[%d]", i)
		comp, ok := c.(object)
		if !ok {
			return fieldErr(CodeInvalidParameter, path, "must be an object")
		}
		if err := validateComponent(comp, path, known); err != nil {
			return err
		}
	}
	return nil
}

func validateComponent(c object, path string, known mediaLookup) *apiError {
	typ, err := str(c, "type", path+".type", true, 0)
	if err != nil {
		return err
	}
	switch typ {
	case "header", "body", "footer":
	case "button":
		sub, err := str(c, "sub_type", path+".sub_type", true, 0)
		if err != nil {
			return err
		}
		switch sub {
		case "quick_reply", "url", "copy_code", "flow", "catalog", "mpm", "voice_call", "order_details":
		default:
			return fieldErr(CodeInvalidParameter, path+".sub_type", fmt.Sprintf("unknown button sub_type '%s'", sub))
		}
		idx, present := c["index"]
		if !present {
			return missing(path + ".index")
		}
		if !validIndex(idx) {
			return fieldErr(CodeInvalidParameter, path+".index", "must be a number from 0 to 9")
		}
	default:
		return fieldErr(CodeInvalidParameter, path+".type", fmt.Sprintf("unknown component type '%s'", typ))
	}
	params, err := arr(c, "parameters", path+".parameters", false)
	if err != nil {
		return err
	}
	named := -1 // unknown yet; 0 positional, 1 named
	for i, p := range params {
		ppath := fmt.Sprintf("%s.parameters[%d]", path, i)
		param, ok := p.(object)
		if !ok {
			return fieldErr(CodeInvalidParameter, ppath, "must be an object")
		}
		name, err := str(param, "parameter_name", ppath+".parameter_name", false, 0)
		if err != nil {
			return err
		}
		isNamed := 0
		if name != "" {
			isNamed = 1
		}
		if named >= 0 && named != isNamed {
			return fieldErr(CodeInvalidParameter, ppath+".parameter_name", "Parameter name is missing or empty")
		}
		named = isNamed
		if err := validateParam(param, typ, ppath, known); err != nil {
			return err
		}
	}
	return nil
}

func validIndex(v any) bool {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.Number:
		s = x.String()
	default:
		return false
	}
	return len(s) == 1 && s[0] >= '0' && s[0] <= '9'
}

func validateParam(p object, component, path string, known mediaLookup) *apiError {
	typ, err := str(p, "type", path+".type", true, 0)
	if err != nil {
		return err
	}
	switch typ {
	case "text":
		text, err := str(p, "text", path+".text", true, maxTemplateParam)
		if err != nil {
			return err
		}
		if component == "body" || component == "header" {
			if strings.ContainsAny(text, "\n\t") || strings.Contains(text, strings.Repeat(" ", maxConsecutiveSpace+1)) {
				return metaErr(CodeTemplateParamText, path+".text: Param text cannot have new-line/tab characters or more than 4 consecutive spaces")
			}
		}
	case "image", "video", "document":
		if component != "header" {
			return fieldErr(CodeInvalidParameter, path+".type", fmt.Sprintf("%s parameters belong in the header component", typ))
		}
		media, err := obj(p, typ, path+"."+typ, true)
		if err != nil {
			return err
		}
		return validateMedia(media, typ, path+"."+typ, known, false)
	case "location":
		loc, err := obj(p, "location", path+".location", true)
		if err != nil {
			return err
		}
		for _, k := range []string{"latitude", "longitude"} {
			if _, present := loc[k]; !present {
				return missing(path + ".location." + k)
			}
		}
	case "currency":
		cur, err := obj(p, "currency", path+".currency", true)
		if err != nil {
			return err
		}
		if _, err := str(cur, "fallback_value", path+".currency.fallback_value", true, 0); err != nil {
			return err
		}
		if _, err := str(cur, "code", path+".currency.code", true, 3); err != nil {
			return err
		}
		if _, present := cur["amount_1000"]; !present {
			return missing(path + ".currency.amount_1000")
		}
	case "date_time":
		dt, err := obj(p, "date_time", path+".date_time", true)
		if err != nil {
			return err
		}
		if _, err := str(dt, "fallback_value", path+".date_time.fallback_value", true, 0); err != nil {
			return err
		}
	case "payload":
		if _, err := str(p, "payload", path+".payload", true, 0); err != nil {
			return err
		}
	case "coupon_code":
		if _, err := str(p, "coupon_code", path+".coupon_code", true, 15); err != nil {
			return err
		}
	case "action":
		if _, err := obj(p, "action", path+".action", true); err != nil {
			return err
		}
	default:
		return fieldErr(CodeInvalidParameter, path+".type", fmt.Sprintf("unknown parameter type '%s'", typ))
	}
	return nil
}

// validateInteractive checks cta_url, list and button messages and returns the subtype.
func validateInteractive(in object, known mediaLookup) (string, *apiError) {
	typ, err := str(in, "type", "interactive.type", true, 0)
	if err != nil {
		return "", err
	}
	var bodyMax int
	switch typ {
	case "cta_url":
		bodyMax = maxCTABody
	case "list":
		bodyMax = maxListBody
	case "button":
		bodyMax = maxButtonBody
	default:
		return "", fieldErr(CodeInvalidValue, "interactive.type", fmt.Sprintf("unsupported interactive type '%s' (cta_url, list, button)", typ))
	}
	if err := validateHeader(in, typ, known); err != nil {
		return "", err
	}
	body, err := obj(in, "body", "interactive.body", true)
	if err != nil {
		return "", err
	}
	if _, err := str(body, "text", "interactive.body.text", true, bodyMax); err != nil {
		return "", err
	}
	if footer, err := obj(in, "footer", "interactive.footer", false); err != nil {
		return "", err
	} else if footer != nil {
		if _, err := str(footer, "text", "interactive.footer.text", true, maxFooterText); err != nil {
			return "", err
		}
	}
	action, err := obj(in, "action", "interactive.action", true)
	if err != nil {
		return "", err
	}
	switch typ {
	case "cta_url":
		err = validateCTAAction(action)
	case "list":
		err = validateListAction(action)
	case "button":
		err = validateButtonAction(action)
	}
	return typ, err
}

func validateHeader(in object, typ string, known mediaLookup) *apiError {
	h, err := obj(in, "header", "interactive.header", false)
	if err != nil || h == nil {
		return err
	}
	ht, err := str(h, "type", "interactive.header.type", true, 0)
	if err != nil {
		return err
	}
	switch ht {
	case "text":
		if _, present := h["text"]; !present {
			return fieldErr(CodeInvalidValue, "interactive.header.text", "Text cannot be null for header type text")
		}
		_, err := str(h, "text", "interactive.header.text", true, maxHeaderText)
		return err
	case "image", "video", "document":
		if typ == "list" {
			return fieldErr(CodeInvalidValue, "interactive.header.type", fmt.Sprintf("list messages take a text header only, got '%s'", ht))
		}
		media, err := obj(h, ht, "interactive.header."+ht, true)
		if err != nil {
			return err
		}
		return validateMedia(media, ht, "interactive.header."+ht, known, false)
	default:
		return fieldErr(CodeInvalidValue, "interactive.header.type", fmt.Sprintf("unknown header type '%s'", ht))
	}
}

func validateCTAAction(a object) *apiError {
	name, err := str(a, "name", "interactive.action.name", true, 0)
	if err != nil {
		return err
	}
	if name != "cta_url" {
		return fieldErr(CodeInvalidValue, "interactive.action.name", fmt.Sprintf("must be 'cta_url', got '%s'", name))
	}
	params, err := obj(a, "parameters", "interactive.action.parameters", true)
	if err != nil {
		return err
	}
	if _, err := str(params, "display_text", "interactive.action.parameters.display_text", true, maxDisplayText); err != nil {
		return err
	}
	u, err := str(params, "url", "interactive.action.parameters.url", true, maxURL)
	if err != nil {
		return err
	}
	return checkURL("interactive.action.parameters.url", u)
}

func validateListAction(a object) *apiError {
	if _, err := str(a, "button", "interactive.action.button", true, maxListButton); err != nil {
		return err
	}
	sections, err := arr(a, "sections", "interactive.action.sections", true)
	if err != nil {
		return err
	}
	if len(sections) == 0 {
		return fieldErr(CodeMissingParameter, "interactive.action.sections", "at least 1 section is required")
	}
	if len(sections) > maxSections {
		return fieldErr(CodeInvalidValue, "interactive.action.sections", fmt.Sprintf("at most %d sections, got %d", maxSections, len(sections)))
	}
	rows := 0
	ids := make(map[string]bool)
	for i, s := range sections {
		spath := fmt.Sprintf("interactive.action.sections[%d]", i)
		sec, ok := s.(object)
		if !ok {
			return fieldErr(CodeInvalidParameter, spath, "must be an object")
		}
		// Meta requires a title only when there are several sections to tell apart.
		if _, err := str(sec, "title", spath+".title", len(sections) > 1, maxSectionTitle); err != nil {
			return err
		}
		rs, err := arr(sec, "rows", spath+".rows", true)
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			return fieldErr(CodeMissingParameter, spath+".rows", "at least 1 row is required")
		}
		for j, r := range rs {
			rpath := fmt.Sprintf("%s.rows[%d]", spath, j)
			row, ok := r.(object)
			if !ok {
				return fieldErr(CodeInvalidParameter, rpath, "must be an object")
			}
			id, err := str(row, "id", rpath+".id", true, maxRowID)
			if err != nil {
				return err
			}
			if ids[id] {
				return fieldErr(CodeInvalidValue, rpath+".id", fmt.Sprintf("duplicate row id '%s'", id))
			}
			ids[id] = true
			if _, err := str(row, "title", rpath+".title", true, maxRowTitle); err != nil {
				return err
			}
			if _, err := str(row, "description", rpath+".description", false, maxRowDescription); err != nil {
				return err
			}
		}
		rows += len(rs)
	}
	if rows > maxRows {
		return fieldErr(CodeInvalidValue, "interactive.action.sections", fmt.Sprintf("at most %d rows in total, got %d", maxRows, rows))
	}
	return nil
}

func validateButtonAction(a object) *apiError {
	buttons, err := arr(a, "buttons", "interactive.action.buttons", true)
	if err != nil {
		return err
	}
	if len(buttons) == 0 {
		return fieldErr(CodeMissingParameter, "interactive.action.buttons", "at least 1 button is required")
	}
	if len(buttons) > maxReplyButtons {
		return fieldErr(CodeInvalidValue, "interactive.action.buttons", fmt.Sprintf("at most %d buttons, got %d", maxReplyButtons, len(buttons)))
	}
	ids, titles := make(map[string]bool), make(map[string]bool)
	for i, b := range buttons {
		bpath := fmt.Sprintf("interactive.action.buttons[%d]", i)
		btn, ok := b.(object)
		if !ok {
			return fieldErr(CodeInvalidParameter, bpath, "must be an object")
		}
		bt, err := str(btn, "type", bpath+".type", true, 0)
		if err != nil {
			return err
		}
		if bt != "reply" {
			return fieldErr(CodeInvalidValue, bpath+".type", fmt.Sprintf("must be 'reply', got '%s'", bt))
		}
		reply, err := obj(btn, "reply", bpath+".reply", true)
		if err != nil {
			return err
		}
		id, err := str(reply, "id", bpath+".reply.id", true, maxReplyID)
		if err != nil {
			return err
		}
		title, err := str(reply, "title", bpath+".reply.title", true, maxReplyTitle)
		if err != nil {
			return err
		}
		if ids[id] {
			return fieldErr(CodeInvalidValue, bpath+".reply.id", fmt.Sprintf("duplicate button id '%s'", id))
		}
		if titles[title] {
			return fieldErr(CodeInvalidValue, bpath+".reply.title", fmt.Sprintf("duplicate button title '%s'", title))
		}
		ids[id], titles[title] = true, true
	}
	return nil
}

// str reads a string field. A required field that is absent or blank is missing; max
// (when > 0) bounds its length in runes.
func str(m object, key, path string, required bool, max int) (string, *apiError) {
	v, present := m[key]
	if !present || v == nil {
		if required {
			return "", missing(path)
		}
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fieldErr(CodeInvalidParameter, path, "must be a string")
	}
	if required && strings.TrimSpace(s) == "" {
		return "", missing(path)
	}
	if max > 0 && utf8.RuneCountInString(s) > max {
		return "", tooLong(path, max)
	}
	return s, nil
}

// obj reads an object field; it answers nil, nil for an absent optional one.
func obj(m object, key, path string, required bool) (object, *apiError) {
	v, present := m[key]
	if !present || v == nil {
		if required {
			return nil, missing(path)
		}
		return nil, nil
	}
	o, ok := v.(object)
	if !ok {
		return nil, fieldErr(CodeInvalidParameter, path, "must be an object")
	}
	return o, nil
}

func arr(m object, key, path string, required bool) ([]any, *apiError) {
	v, present := m[key]
	if !present || v == nil {
		if required {
			return nil, missing(path)
		}
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, fieldErr(CodeInvalidParameter, path, "must be an array")
	}
	return a, nil
}

func boolean(m object, key, path string) *apiError {
	v, present := m[key]
	if !present || v == nil {
		return nil
	}
	if _, ok := v.(bool); !ok {
		return fieldErr(CodeInvalidParameter, path, "must be a boolean")
	}
	return nil
}
