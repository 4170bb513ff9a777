// Package apiserver is wagate's HTTP API: the contract of ../seed/api-spec.md on a chi
// router. Handlers validate input, then start, query, signal or update Temporal
// workflows, or call the Graph API directly for single sends without a queue.
package apiserver

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.temporal.io/sdk/client"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/sendpolicy"
	"github.com/wagate/wagate/shared"
)

// Body limits: single sends are small; bulk requests may carry MaxRecipients entries;
// Meta's webhook payloads reach 3 MB.
const (
	maxSingleBody  = 1 << 20
	maxBulkBody    = 64 << 20
	maxWebhookBody = 3 << 20
)

// Deps are what the API server talks to.
type Deps struct {
	Config   shared.Config
	Temporal client.Client
	Graph    *graphapi.Client
	Store    *redisstore.Store
	Logger   *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Server holds the handlers' dependencies.
type Server struct {
	Deps
	// policy paces and breaks direct single sends with the same Redis state as the
	// worker's bulk sends; nil without a Store or Graph client.
	policy    *sendpolicy.Policy
	templates templateCache // Meta's template registry, for campaign preflight
	keyLog    keyLogger
	attrs     searchAttrs // whether the namespace has wagate's search attributes
}

// newServer fills d's defaults.
func newServer(d Deps) *Server {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	s := &Server{Deps: d}
	if d.Store != nil && d.Graph != nil {
		s.policy = sendpolicy.New(d.Store, d.Graph.PhoneNumberID(), d.Config.WhatsAppMaxMPS, sendpolicy.Options{}, d.Logger)
	}
	return s
}

// New returns the HTTP handler of the whole API.
func New(d Deps) http.Handler {
	s := newServer(d)
	r := chi.NewRouter()
	r.Use(instrument, middleware.Recoverer)
	r.NotFound(s.handle(func(http.ResponseWriter, *http.Request) error {
		return shared.Errorf(shared.KindNotFound, "Ruta no encontrada")
	}))
	r.MethodNotAllowed(s.handle(func(http.ResponseWriter, *http.Request) error {
		return shared.Errorf(shared.KindInvalid, "Método no permitido")
	}))

	s.serveMetrics(r)
	r.Get("/webhook", s.handleWebhookVerify)
	r.Post("/webhook", s.handle(s.webhook))

	// The API's document and its docs page need no key (see openAPI).
	r.Get("/docs", s.docsPage)
	r.Get("/docs/assets/{file}", s.handle(s.docsAsset))

	r.Route("/api", func(r chi.Router) {
		r.Get("/health", s.handle(s.health))
		r.Get("/openapi.json", s.openAPI)
		r.Group(func(r chi.Router) {
			r.Use(s.requireAPIKey)

			// Every sending endpoint takes an Idempotency-Key; the bulk ones send_at.
			single := r.With(s.sendRequest(maxSingleBody, false))
			single.Post("/send-message", s.handle(s.sendMessage))
			single.Post("/send-template", s.handle(s.sendTemplate))
			single.Post("/send-interactive", s.handle(s.sendInteractive))
			single.Post("/send-list", s.handle(s.sendList))

			many := r.With(s.sendRequest(maxBulkBody, true))
			many.Post("/send-bulk", s.handle(s.sendBulk))
			many.Post("/send-bulk-list", s.handle(s.sendBulkList))
			many.Post("/send-bulk-interactive", s.handle(s.sendBulkInteractive))
			many.Post("/send-broadcast-interactive", s.handle(s.sendBroadcastInteractive))
			many.Post("/send-personalized-broadcast", s.handle(s.sendPersonalizedBroadcast))
			many.Post("/send-bulk-template", s.handle(s.sendBulkTemplate))

			r.Get("/task-status/{task_id}", s.handle(s.taskStatus))
			r.Get("/task-status/{task_id}/recipients", s.handle(s.taskRecipients))
			r.Get("/messages/{wamid}", s.handle(s.message))
			r.Delete("/task-status/{task_id}", s.handle(s.taskControl(shared.ActionCancel)))
			r.Post("/task-cancel/{task_id}", s.handle(s.taskControl(shared.ActionCancel)))
			r.Post("/task-pause/{task_id}", s.handle(s.taskControl(shared.ActionPause)))
			r.Post("/task-resume/{task_id}", s.handle(s.taskControl(shared.ActionResume)))
			r.Get("/tasks", s.handle(s.listTasks))
			r.Get("/media/{media_id}", s.handle(s.media))

			r.Get("/numbers", s.handle(s.listNumbers))
			r.Post("/numbers", s.handle(s.addNumber))
			r.Post("/numbers/clear", s.handle(s.clearNumbers))
			r.Get("/numbers/{phone}", s.handle(s.getNumber))
			r.Delete("/numbers/{phone}", s.handle(s.deleteNumber))

			r.Get("/queue/status", s.handle(s.queueStatus))
			r.Get("/queue/lengths", s.handle(s.queueLengths))
			r.Delete("/queue/clear", s.handle(s.queueClear))
			r.Post("/queue/test", s.handle(s.queueTest))

			r.Get("/status", s.handle(s.status))
		})
	})
	return r
}

// handle adapts a handler that returns an error: the error is written in the contract's
// shape with the status of its kind; internal errors are logged and never shown.
func (s *Server) handle(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		status := shared.HTTPStatus(err)
		if status >= 500 {
			s.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "api_key", keyFingerprintOf(r), "err", err)
		}
		writeJSON(w, status, map[string]any{"success": false, "error": shared.ClientMessage(err)})
	}
}

// requireAPIKey enforces API_KEY and API_KEYS, when set, by X-API-Key or
// Authorization: Bearer. Every key is compared in constant time, whichever matches. The
// key a request used is known to the logs by its fingerprint only.
func (s *Server) requireAPIKey(next http.Handler) http.Handler {
	keys := s.Config.Keys()
	if len(keys) == 0 {
		return next
	}
	wants := make([][]byte, len(keys))
	prints := make([]string, len(keys))
	for i, k := range keys {
		wants[i], prints[i] = []byte(k), shared.KeyFingerprint(k)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("X-API-Key")
		if got == "" {
			if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
				got = a[7:]
			}
		}
		match := -1
		for i, want := range wants {
			if subtle.ConstantTimeCompare([]byte(got), want) == 1 {
				match = i
			}
		}
		if match < 0 {
			if got != "" {
				s.keyLog.note(s.Logger, "api key refused", shared.KeyFingerprint(got))
			}
			writeJSON(w, http.StatusUnauthorized, map[string]any{"success": false,
				"error": "No autorizado: se requiere una API key válida en X-API-Key o Authorization: Bearer"})
			return
		}
		s.keyLog.note(s.Logger, "api key in use", prints[match])
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyPrintCtx{}, prints[match])))
	})
}

// keyPrintCtx carries the fingerprint of the request's API key.
type keyPrintCtx struct{}

// keyFingerprintOf is the fingerprint of the API key r was authenticated with, "" when
// none is configured.
func keyFingerprintOf(r *http.Request) string {
	p, _ := r.Context().Value(keyPrintCtx{}).(string)
	return p
}

// maxLoggedKeys bounds the fingerprints keyLogger remembers, so that a flood of wrong
// keys cannot grow it.
const maxLoggedKeys = 1024

// keyLogger logs the first use of each key fingerprint in this process: during a
// rotation the logs tell which keys are still in use, never the keys themselves.
type keyLogger struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (k *keyLogger) note(log *slog.Logger, msg, print string) {
	k.mu.Lock()
	first := !k.seen[print] && len(k.seen) < maxLoggedKeys
	if first {
		if k.seen == nil {
			k.seen = map[string]bool{}
		}
		k.seen[print] = true
	}
	k.mu.Unlock()
	if first {
		log.Info(msg, "api_key", print)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// decode reads a JSON body of at most limit bytes into v. It rejects malformed JSON,
// trailing data and oversized bodies with clear client errors.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var maxErr *http.MaxBytesError
		var syntaxErr *json.SyntaxError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &maxErr):
			return shared.Invalidf("El cuerpo de la solicitud supera el máximo de %d bytes", limit)
		case errors.Is(err, io.EOF):
			return shared.Invalidf("Se requiere un cuerpo JSON")
		case errors.As(err, &syntaxErr):
			return shared.Invalidf("JSON inválido en la posición %d: %v", syntaxErr.Offset, syntaxErr)
		case errors.As(err, &typeErr):
			return shared.Invalidf("Tipo inválido en el campo '%s': se esperaba %s", shared.Cut(typeErr.Field), typeErr.Type)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return shared.Invalidf("JSON inválido: el cuerpo termina antes de tiempo")
		default:
			return shared.Invalidf("JSON inválido: %s", shared.Cut(err.Error()))
		}
	}
	if dec.More() {
		return shared.Invalidf("JSON inválido: hay datos después del objeto")
	}
	return nil
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}
