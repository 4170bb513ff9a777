package sandbox

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
)

// Meta error codes the sandbox answers with. Clients are expected to branch on these
// codes, as Meta asks, never on the HTTP status or the title.
const (
	CodeUnknown            = 1      // "An unknown error occurred" (HTTP 500)
	CodeInvalidParameter   = 100    // malformed or too long value, unknown object
	CodeAccessToken        = 190    // missing or wrong bearer token (HTTP 401)
	CodeUnknownPath        = 2500   // no such Graph path
	CodeRateLimit          = 130429 // per-number throughput (MPS) reached
	CodeGeneric            = 131000 // "Something went wrong": retryable (HTTP 500)
	CodeUndeliverable      = 131026
	CodeReEngagement       = 131047
	CodeSpamRateLimit      = 131048
	CodeEcosystem          = 131049
	CodeExperiment         = 130472
	CodeMarketingOptOut    = 131050
	CodeUnsupportedType    = 131051
	CodeMediaUpload        = 131053
	CodePairRateLimit      = 131056
	CodeMissingParameter   = 131008
	CodeInvalidValue       = 131009
	CodeTemplateParamCount = 132000
	CodeTemplateMissing    = 132001
	CodeTemplateFormat     = 132012
	CodeTemplatePaused     = 132015
	CodeTemplateDisabled   = 132016
	CodeTemplateParamText  = 132018
)

// titles are Meta's error titles, which also form the "(#code) title" message.
var titles = map[int]string{
	CodeUnknown:            "An unknown error occurred",
	CodeServiceUnavailable: "Service temporarily unavailable",
	CodeInvalidParameter:   "Invalid parameter",
	CodeAccessToken:        "Invalid OAuth access token - Cannot parse access token",
	CodeUnknownPath:        "Unknown path components",
	CodeRateLimit:          "Rate limit hit",
	CodeGeneric:            "Something went wrong",
	CodeUndeliverable:      "Message undeliverable",
	CodeReEngagement:       "Re-engagement message",
	CodeSpamRateLimit:      "Spam rate limit hit",
	CodeEcosystem:          "Message failed to send to maintain healthy ecosystem engagement",
	CodeExperiment:         "User's number is part of an experiment",
	CodeMarketingOptOut:    "User has chosen to stop receiving marketing messages",
	CodeUnsupportedType:    "Unsupported message type",
	CodeMediaUpload:        "Media upload error",
	CodePairRateLimit:      "(Business Account, Consumer Account) pair rate limit hit",
	CodeMissingParameter:   "Required parameter is missing",
	CodeInvalidValue:       "Parameter value is not valid",
	CodeTemplateParamCount: "Number of parameters does not match the expected number of params",
	CodeTemplateMissing:    "Template name does not exist in the translation",
	CodeTemplateParamText:  "There was an issue with the parameters in your template",
	131021:                 "Recipient cannot be sender",
	131031:                 "Account has been locked",
	131042:                 "Business eligibility payment issue",
	131057:                 "Account in maintenance mode",
	CodeTemplateFormat:     "Parameter format does not match format in the created template",
	CodeTemplatePaused:     "Template is paused",
	CodeTemplateDisabled:   "Template is disabled",
	368:                    "Temporarily blocked for policies violations",
	4:                      "Application request limit reached",
	80007:                  "Rate limit issues",
}

// defaultDetails are the error_data.details Meta gives when nothing more specific applies.
var defaultDetails = map[int]string{
	CodeRateLimit:       "Cloud API message throughput has been reached.",
	CodePairRateLimit:   "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.",
	CodeGeneric:         "Message failed to send due to an unknown error.",
	CodeUnknown:         "An unknown error occurred. Please retry your request later.",
	CodeUndeliverable:   "Message Undeliverable.",
	CodeReEngagement:    "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
	CodeMarketingOptOut: "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
	CodeEcosystem:       "This message was not delivered to maintain healthy ecosystem engagement.",
	CodeSpamRateLimit:   "Message failed to send because there are restrictions on how many messages can be sent from this phone number.",
}

// Title returns Meta's title for code, "Error" when the sandbox knows none.
func Title(code int) string {
	if t, ok := titles[code]; ok {
		return t
	}
	return "Error"
}

// graphError is the object under "error" in every Graph API error body.
type graphError struct {
	Message      string     `json:"message"`
	Type         string     `json:"type"`
	Code         int        `json:"code"`
	ErrorSubcode int        `json:"error_subcode,omitempty"`
	ErrorData    *errorData `json:"error_data,omitempty"`
	IsTransient  bool       `json:"is_transient,omitempty"` // Graph sets it on Meta-side trouble
	FBTraceID    string     `json:"fbtrace_id"`
}

type errorData struct {
	MessagingProduct string `json:"messaging_product"`
	Details          string `json:"details"`
}

// apiError is one answer the sandbox gives instead of a success.
type apiError struct {
	status  int
	code    int
	typ     string
	subcode int
	message string // overrides "(#code) title" when set (Graph-level errors)
	details string
	// transient marks Meta-side trouble a retry may get past (Graph's is_transient).
	transient bool
}

// metaErr builds the usual WhatsApp error: HTTP 400 (500 for the server-side codes),
// OAuthException, "(#code) title" and the given details.
func metaErr(code int, details string) *apiError {
	status := http.StatusBadRequest
	if code == CodeGeneric || code == CodeUnknown {
		status = http.StatusInternalServerError
	}
	if details == "" {
		details = defaultDetails[code]
	}
	if details == "" {
		details = Title(code)
	}
	e := &apiError{status: status, code: code, typ: "OAuthException", details: details}
	if code == CodeRateLimit {
		// Meta's documented 130429 example still carries this (deprecated) subcode.
		e.subcode = rateLimitSubcode
	}
	return e
}

// rateLimitSubcode is the error_subcode of Meta's 130429 example answer.
const rateLimitSubcode = 2494055

// fieldErr is a payload violation on one field; details read "<title>: <path>: <problem>".
func fieldErr(code int, path, problem string) *apiError {
	return metaErr(code, fmt.Sprintf("%s: %s: %s", Title(code), path, problem))
}

func missing(path string) *apiError { return fieldErr(CodeMissingParameter, path, "required") }

func tooLong(path string, max int) *apiError {
	return fieldErr(CodeInvalidParameter, path, fmt.Sprintf("max length %d", max))
}

func authErr() *apiError {
	return &apiError{
		status:  http.StatusUnauthorized,
		code:    CodeAccessToken,
		typ:     "OAuthException",
		message: Title(CodeAccessToken),
		details: "Invalid OAuth access token.",
	}
}

// unsupported is Graph's answer for an object id that does not exist or does not take
// this method.
func unsupported(method, id string) *apiError {
	return &apiError{
		status:  http.StatusBadRequest,
		code:    CodeInvalidParameter,
		typ:     "GraphMethodException",
		subcode: 33,
		message: fmt.Sprintf("Unsupported %s request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api", method, id),
		details: "Object with ID '" + id + "' does not exist.",
	}
}

func (e *apiError) body() graphError {
	msg := e.message
	if msg == "" {
		msg = fmt.Sprintf("(#%d) %s", e.code, Title(e.code))
	}
	return graphError{
		Message:      msg,
		Type:         e.typ,
		Code:         e.code,
		ErrorSubcode: e.subcode,
		ErrorData:    &errorData{MessagingProduct: "whatsapp", Details: e.details},
		IsTransient:  e.transient,
		FBTraceID:    traceID(),
	}
}

// traceID imitates fbtrace_id: 22 URL-safe characters, random enough for log correlation.
func traceID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `OAuth "Facebook Platform" "invalid_token" "`+Title(CodeAccessToken)+`"`)
	}
	writeJSON(w, e.status, map[string]graphError{"error": e.body()})
}
