package shared

// MessageKind names the shape of one outbound WhatsApp message.
type MessageKind string

// The outbound message kinds wagate sends.
const (
	KindText     MessageKind = "text"     // type=text
	KindTemplate MessageKind = "template" // type=template
	KindCTAURL   MessageKind = "cta_url"  // type=interactive, interactive.type=cta_url
	KindList     MessageKind = "list"     // type=interactive, interactive.type=list
	KindMedia    MessageKind = "media"    // type=image|video|document with a caption
)

// Header types accepted in header_type.
const (
	HeaderText     = "text"
	HeaderImage    = "image"
	HeaderVideo    = "video"
	HeaderDocument = "document"
)

// Message is one outbound WhatsApp message in wagate's own terms; the Graph API client
// turns it into Meta's payload. It is what bulk tasks stage per recipient.
type Message struct {
	To   string      `json:"to"`
	Kind MessageKind `json:"kind"`
	// Body is the text body (text), the interactive body (cta_url, list) or the caption (media).
	Body string `json:"body,omitempty"`
	// Header is the interactive header, or the media itself for KindMedia.
	Header   *Header   `json:"header,omitempty"`
	Footer   string    `json:"footer,omitempty"`
	Button   string    `json:"button,omitempty"` // cta_url display_text, or the list button
	URL      string    `json:"url,omitempty"`    // cta_url url
	Sections []Section `json:"sections,omitempty"`
	Template *Template `json:"template,omitempty"`
}

// Header is an interactive header or a media attachment. Media is given by Link (a
// public URL) or, once uploaded, by MediaID.
type Header struct {
	Type     string `json:"type"`
	Text     string `json:"text,omitempty"`
	Link     string `json:"link,omitempty"`
	MediaID  string `json:"media_id,omitempty"`
	Filename string `json:"filename,omitempty"`
}

// IsMedia reports whether the header carries an image, video or document.
func (h *Header) IsMedia() bool {
	return h != nil && (h.Type == HeaderImage || h.Type == HeaderVideo || h.Type == HeaderDocument)
}

// Section is one section of a list message.
type Section struct {
	Title string `json:"title"`
	Rows  []Row  `json:"rows"`
}

// Row is one selectable option of a list message.
type Row struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
}

// Template is an approved template: its body parameters, positional or named, and
// the suffix of its URL button. A header component, when the template has one to fill,
// is the message's Header (a text, or a media uploaded once per task).
type Template struct {
	Name       string   `json:"name"`
	Language   string   `json:"language"`
	Parameters []string `json:"parameters,omitempty"`
	// Named are the body parameters of a template with named variables ({{nombre}}),
	// sorted by name; Parameters is then empty.
	Named []NamedParam `json:"named,omitempty"`
	// ButtonURLSuffix fills the variable at the end of the URL of the button at
	// ButtonIndex (0 to 9, among all the template's buttons).
	ButtonURLSuffix string `json:"button_url_suffix,omitempty"`
	ButtonIndex     int    `json:"button_index,omitempty"`
}
