package shared

// Request bodies of the contract's send endpoints (../seed/api-spec.md). UseQueue is a
// pointer so that an absent field takes the endpoint's default: false for single sends,
// true for bulk and broadcast sends.

// SendMessageRequest is the body of POST /api/send-message.
type SendMessageRequest struct {
	Phone    string `json:"phone"`
	Message  string `json:"message"`
	UseQueue *bool  `json:"use_queue"`
}

// SendTemplateRequest is the body of POST /api/send-template.
type SendTemplateRequest struct {
	Phone        string   `json:"phone"`
	TemplateName string   `json:"template_name"`
	Language     string   `json:"language"`
	Parameters   []string `json:"parameters"`
	UseQueue     *bool    `json:"use_queue"`
}

// InteractiveFields are the parts of a CTA-button message.
type InteractiveFields struct {
	HeaderType    string `json:"header_type"`
	HeaderContent string `json:"header_content"`
	BodyText      string `json:"body_text"`
	ButtonText    string `json:"button_text"`
	ButtonURL     string `json:"button_url"`
	FooterText    string `json:"footer_text"`
}

// SendInteractiveRequest is the body of POST /api/send-interactive.
type SendInteractiveRequest struct {
	Phone string `json:"phone"`
	InteractiveFields
	UseQueue *bool `json:"use_queue"`
}

// ListFields are the common parts of a list message.
type ListFields struct {
	HeaderText string    `json:"header_text"`
	FooterText string    `json:"footer_text"`
	ButtonText string    `json:"button_text"`
	Sections   []Section `json:"sections"`
}

// SendListRequest is the body of POST /api/send-list.
type SendListRequest struct {
	Phone    string `json:"phone"`
	BodyText string `json:"body_text"`
	ListFields
	UseQueue *bool `json:"use_queue"`
}

// BulkTextRecipient is one recipient of POST /api/send-bulk.
type BulkTextRecipient struct {
	Phone   string `json:"phone"`
	Message string `json:"message"`
}

// SendBulkRequest is the body of POST /api/send-bulk.
type SendBulkRequest struct {
	Recipients []BulkTextRecipient `json:"recipients"`
	UseQueue   *bool               `json:"use_queue"`
}

// BodyRecipient is a recipient with its own body text (and optionally its own button URL).
type BodyRecipient struct {
	Phone     string `json:"phone"`
	BodyText  string `json:"body_text"`
	ButtonURL string `json:"button_url,omitempty"`
}

// SendBulkListRequest is the body of POST /api/send-bulk-list.
type SendBulkListRequest struct {
	ListFields
	Recipients []BodyRecipient `json:"recipients"`
	UseQueue   *bool           `json:"use_queue"`
}

// InteractiveRecipient is one recipient of POST /api/send-bulk-interactive.
type InteractiveRecipient struct {
	Phone string `json:"phone"`
	InteractiveFields
}

// SendBulkInteractiveRequest is the body of POST /api/send-bulk-interactive.
type SendBulkInteractiveRequest struct {
	Recipients []InteractiveRecipient `json:"recipients"`
	UseQueue   *bool                  `json:"use_queue"`
}

// BroadcastInteractiveRequest is the body of POST /api/send-broadcast-interactive.
type BroadcastInteractiveRequest struct {
	Phones []string `json:"phones"`
	InteractiveFields
	UseQueue *bool `json:"use_queue"`
}

// PersonalizedBroadcastRequest is the body of POST /api/send-personalized-broadcast.
type PersonalizedBroadcastRequest struct {
	Recipients []BodyRecipient `json:"recipients"`
	InteractiveFields
	UseQueue *bool `json:"use_queue"`
}

// QueueOr returns the value of a use_queue field, or def when it was absent.
func QueueOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}
