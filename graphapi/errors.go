package graphapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/wagate/wagate/shared"
)

// Error is an error answer of the Graph API: Meta's error object
// {"error":{"message","type","code","error_subcode","error_data":{"details"},"fbtrace_id"}}
// together with the HTTP status. An answer without such an object (an HTML 502 from a
// proxy, an empty 503) is an Error too, with Code 0 and Message describing the body.
// A failing GET in FetchURL is also an Error with Code 0.
type Error struct {
	HTTPStatus int
	Code       int // Meta's error code; what to branch on (Meta: not the HTTP status)
	Subcode    int
	Message    string // Meta's message, "(#code) title"
	Type       string
	Details    string // error_data.details, the useful explanation
	FBTraceID  string // quote it in support tickets with Meta

	// fromMeta is set when the body carried Meta's error object, so that a code 0 from
	// Meta (an auth failure) is told apart from a body that had no code at all.
	fromMeta bool
}

// Error formats e like Meta's own message followed by the details and trace id, for
// example "(#131026) Message undeliverable: <details> (fbtrace_id X)".
func (e *Error) Error() string {
	var b strings.Builder
	if !e.fromMeta && e.Code == 0 {
		fmt.Fprintf(&b, "graph api: HTTP %d", e.HTTPStatus)
		if e.Message != "" {
			b.WriteString(": ")
			b.WriteString(e.Message)
		}
		return b.String()
	}
	if !strings.HasPrefix(e.Message, "(#") {
		fmt.Fprintf(&b, "(#%d) ", e.Code)
	}
	b.WriteString(e.Message)
	if e.Details != "" && e.Details != e.Message {
		b.WriteString(": ")
		b.WriteString(e.Details)
	}
	if e.FBTraceID != "" {
		b.WriteString(" (fbtrace_id ")
		b.WriteString(e.FBTraceID)
		b.WriteString(")")
	}
	return b.String()
}

// Class is what a caller should do about a failed Graph API call.
type Class int

// The classes of failure. The zero Class means no failure (Classify of nil).
const (
	// ClassRetryable: transient (server error, timeout, network); retry with backoff.
	// A timeout or a 5xx may still have sent the message: Meta has no idempotency key.
	ClassRetryable Class = iota + 1
	// ClassRateLimited: the number's or app's throughput was exceeded; slow down, retry.
	ClassRateLimited
	// ClassPairRateLimited: too many messages to this one recipient (131056); retry only
	// this recipient after 4^n seconds.
	ClassPairRateLimited
	// ClassPermanent: this message can never succeed as it is; do not retry.
	ClassPermanent
	// ClassAuth: token, permission, account or payment problem; stop sending for the
	// whole tenant until someone fixes it.
	ClassAuth
)

// String returns a lower-case name of c, for logs and metrics.
func (c Class) String() string {
	switch c {
	case 0:
		return "none"
	case ClassRetryable:
		return "retryable"
	case ClassRateLimited:
		return "rate_limited"
	case ClassPairRateLimited:
		return "pair_rate_limited"
	case ClassPermanent:
		return "permanent"
	case ClassAuth:
		return "auth"
	default:
		return "class(" + strconv.Itoa(int(c)) + ")"
	}
}

// codeClass is the retry policy of Meta's codes (whatsapp-cloud-api.md §5). Codes
// 200-299 (permissions) are ClassAuth too, see classOfCode.
var codeClass = map[int]Class{
	// Throughput and API call limits.
	130429: ClassRateLimited, 4: ClassRateLimited, 80007: ClassRateLimited, 613: ClassRateLimited,
	131056: ClassPairRateLimited,
	// Meta-side trouble.
	131000: ClassRetryable, 1: ClassRetryable, 2: ClassRetryable, 131016: ClassRetryable,
	133004: ClassRetryable, 131057: ClassRetryable,
	// Token, permissions, account, payment.
	0: ClassAuth, 190: ClassAuth, 3: ClassAuth, 10: ClassAuth, 131005: ClassAuth,
	368: ClassAuth, 131031: ClassAuth, 130497: ClassAuth, 131042: ClassAuth,
	// The message or recipient is wrong.
	131026: ClassPermanent, 131047: ClassPermanent, 131050: ClassPermanent, 131048: ClassPermanent,
	131049: ClassPermanent, 132000: ClassPermanent, 132001: ClassPermanent, 132005: ClassPermanent,
	132007: ClassPermanent, 132012: ClassPermanent, 132015: ClassPermanent, 132016: ClassPermanent,
	132018: ClassPermanent, 100: ClassPermanent, 131008: ClassPermanent, 131009: ClassPermanent,
	131051: ClassPermanent, 131053: ClassPermanent, 131021: ClassPermanent, 131030: ClassPermanent,
}

// Classify tells what to do about err from this package. Meta's errors are classed by
// code (whatsapp-cloud-api.md §5); an unknown code is retryable with a 5xx status and
// permanent otherwise (429 counts as rate limited). Answers without Meta's error object
// are retryable for 5xx and 408, rate limited for 429, permanent otherwise. Network
// errors, timeouts, context deadlines and cancellations are retryable. A KindUnavailable
// *shared.Error is retryable; any other error (a message that cannot be built, an
// oversized download) is permanent. Classify(nil) is 0.
func Classify(err error) Class {
	if err == nil {
		return 0
	}
	var ge *Error
	if errors.As(err, &ge) {
		if ge.fromMeta || ge.Code != 0 {
			return classOfCode(ge.Code, ge.HTTPStatus)
		}
		return classOfStatus(ge.HTTPStatus)
	}
	var se *shared.Error
	if errors.As(err, &se) {
		if se.Kind == shared.KindUnavailable {
			return ClassRetryable
		}
		return ClassPermanent
	}
	if isTransient(err) {
		return ClassRetryable
	}
	return ClassPermanent
}

func classOfCode(code, status int) Class {
	if c, ok := codeClass[code]; ok {
		// Meta's code 0 (an auth failure) arrives with a 4xx; with a 5xx the server
		// failed before it could say anything better.
		if code == 0 && status >= 500 {
			return ClassRetryable
		}
		return c
	}
	if code >= 200 && code <= 299 {
		return ClassAuth
	}
	switch {
	case status >= 500:
		return ClassRetryable
	case status == http.StatusTooManyRequests:
		return ClassRateLimited
	default:
		return ClassPermanent
	}
}

func classOfStatus(status int) Class {
	switch {
	case status >= 500, status == http.StatusRequestTimeout:
		return ClassRetryable
	case status == http.StatusTooManyRequests:
		return ClassRateLimited
	default:
		return ClassPermanent
	}
}

// isTransient reports failures of the transport rather than answers: the request may
// or may not have reached Meta.
func isTransient(err error) bool {
	var ne net.Error
	var ue *url.Error
	var errno syscall.Errno
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return true
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	case errors.As(err, &ne), errors.As(err, &ue), errors.As(err, &errno):
		return true
	}
	return false
}

// Code returns Meta's error code carried by err, or 0 when err is not a Graph API
// error answer (0 is also Meta's own code for some auth failures: use Classify).
func Code(err error) int {
	var ge *Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

// flexInt decodes a JSON number or a string holding one: Meta documents codes as
// numbers, but some answers and proxies quote them.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if len(s) >= 2 && s[0] == '"' {
		uq, err := strconv.Unquote(s)
		if err != nil {
			return err
		}
		s = strings.TrimSpace(uq)
		if s == "" {
			return nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// A float such as 1.5e3 is still a number.
		fl, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return fmt.Errorf("not an integer: %s", b)
		}
		n = int64(fl)
	}
	*f = flexInt(n)
	return nil
}

type errorBody struct {
	Error *struct {
		Message   string   `json:"message"`
		Type      string   `json:"type"`
		Code      *flexInt `json:"code"`
		Subcode   flexInt  `json:"error_subcode"`
		ErrorData struct {
			Details string `json:"details"`
		} `json:"error_data"`
		FBTraceID string `json:"fbtrace_id"`
	} `json:"error"`
}

// maxErrorSnippet bounds how much of a non-Meta body goes into an error message.
const maxErrorSnippet = 256

// parseError turns a non-2xx answer into an *Error.
func parseError(status int, body []byte) *Error {
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error != nil {
		e := eb.Error
		out := &Error{
			HTTPStatus: status, Subcode: int(e.Subcode), Message: e.Message, Type: e.Type,
			Details: e.ErrorData.Details, FBTraceID: e.FBTraceID, fromMeta: e.Code != nil,
		}
		if e.Code != nil {
			out.Code = int(*e.Code)
		}
		if !out.fromMeta && out.Message == "" {
			out.Message = http.StatusText(status)
		}
		return out
	}
	return &Error{HTTPStatus: status, Message: describeBody(status, body)}
}

func describeBody(status int, body []byte) string {
	msg := http.StatusText(status)
	s := strings.Join(strings.Fields(string(body)), " ")
	if s == "" {
		return msg
	}
	if len(s) > maxErrorSnippet {
		s = s[:maxErrorSnippet]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	if msg == "" {
		return s
	}
	return msg + ": " + s
}
