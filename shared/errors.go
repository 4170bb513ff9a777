package shared

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies an error for the client; each kind maps to one HTTP status.
type Kind int

// The error vocabulary of wagate.
const (
	KindInternal     Kind = iota // a bug or an unexpected failure: 500, text hidden
	KindInvalid                  // bad input: 400
	KindUnauthorized             // missing or wrong credentials: 401
	KindForbidden                // refused: 403
	KindNotFound                 // 404
	KindConflict                 // 409
	KindUnavailable              // a dependency (Temporal, Redis, Meta) cannot be reached: 503
	KindUpstream                 // Meta answered with an error: 400 with Meta's message
)

// KindUnprocessable is a well-formed request that is refused, such as an
// Idempotency-Key reused with another body: 422.
const KindUnprocessable = KindUpstream + 1

// Error is an error with a Kind and a message meant for the API client.
type Error struct {
	Kind Kind
	Msg  string
	Err  error // cause, for logs; never shown to the client
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error of the given kind.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Wrap builds an Error of the given kind with a client message and a hidden cause.
func Wrap(kind Kind, err error, msg string) *Error {
	return &Error{Kind: kind, Msg: msg, Err: err}
}

// Invalidf is shorthand for a KindInvalid error.
func Invalidf(format string, args ...any) *Error { return Errorf(KindInvalid, format, args...) }

// ErrNotFound is returned by stores for a missing key.
var ErrNotFound = &Error{Kind: KindNotFound, Msg: "not found"}

// KindOf returns the Kind of err, KindInternal when it carries none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// ClientMessage returns the client-facing text of err; internal errors get a generic text.
func ClientMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != KindInternal {
		return e.Msg
	}
	return "Error interno del servidor"
}

// HTTPStatus maps an error to its HTTP status code. It is the one place where the
// vocabulary meets HTTP.
func HTTPStatus(err error) int {
	switch KindOf(err) {
	case KindInvalid, KindUpstream:
		return http.StatusBadRequest
	case KindUnauthorized:
		return http.StatusUnauthorized
	case KindForbidden:
		return http.StatusForbidden
	case KindNotFound:
		return http.StatusNotFound
	case KindConflict:
		return http.StatusConflict
	case KindUnprocessable:
		return http.StatusUnprocessableEntity
	case KindUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
