package apiserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

// Idempotency-Key handling (the IETF httpapi draft's semantics, as Stripe has them):
// the same key with the same body within idemTTL answers the first answer again; with
// another body, 422; while the first is still being handled, 409. Keys are scoped to
// the API key in use.
const (
	idemTTL    = 24 * time.Hour
	idemLease  = 5 * time.Minute // an accepting record outlives a crashed replica this long
	maxIdemKey = 255
)

// idemNamespace derives task ids from idempotency keys (UUID v5), so that replicas
// racing on one key start one workflow.
var idemNamespace = uuid.MustParse("6f0b7c1e-2b1d-5a3e-9c4f-1d2e3f4a5b6c")

// taskOpts are what the request middleware learned for the task a handler starts.
type taskOpts struct {
	id     string     // the task id derived from the Idempotency-Key, "" for a new one
	sendAt *time.Time // send_at, in the future
}

type taskOptsCtx struct{}

func taskOptsOf(ctx context.Context) taskOpts {
	o, _ := ctx.Value(taskOptsCtx{}).(taskOpts)
	return o
}

// sendRequest wraps a sending endpoint: it reads the body once (limit bytes), checks
// send_at on a bulk endpoint, and applies the Idempotency-Key.
func (s *Server) sendRequest(limit int64, bulkEndpoint bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return s.handle(func(w http.ResponseWriter, r *http.Request) error {
			raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
			var maxErr *http.MaxBytesError
			switch {
			case errors.As(err, &maxErr):
				return shared.Invalidf("El cuerpo de la solicitud supera el máximo de %d bytes", limit)
			case err != nil:
				return shared.Invalidf("No se pudo leer el cuerpo de la solicitud")
			}
			r.Body = io.NopCloser(bytes.NewReader(raw))
			var opts taskOpts
			if bulkEndpoint {
				if opts.sendAt, err = s.parseSendAt(raw); err != nil {
					return err
				}
			}
			key := r.Header.Get("Idempotency-Key")
			if key == "" {
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), taskOptsCtx{}, opts)))
				return nil
			}
			if len(key) > maxIdemKey || !printable(key) {
				return shared.Invalidf("Idempotency-Key inválida: de 1 a %d caracteres ASCII visibles", maxIdemKey)
			}
			return s.idempotent(w, r, raw, key, opts, next)
		})
	}
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// parseSendAt reads send_at (RFC 3339 with an offset) from a bulk body. In the past it
// means now (nil); more than shared.MaxSendAtAhead ahead is refused; a scheduled task
// must be queued.
func (s *Server) parseSendAt(raw []byte) (*time.Time, error) {
	if !bytes.Contains(raw, []byte(`"send_at"`)) {
		// Most bodies have none: a large bulk body is not decoded twice for it.
		return nil, nil
	}
	var body struct {
		SendAt   json.RawMessage `json:"send_at"`
		UseQueue *bool           `json:"use_queue"`
	}
	if json.Unmarshal(raw, &body) != nil || len(body.SendAt) == 0 || string(body.SendAt) == "null" {
		return nil, nil // a malformed body is the handler's to refuse
	}
	var text string
	if err := json.Unmarshal(body.SendAt, &text); err != nil {
		return nil, shared.Invalidf("send_at debe ser una fecha RFC 3339 con zona horaria, p. ej. 2025-01-16T10:30:00-05:00")
	}
	at, err := time.Parse(time.RFC3339, text)
	if err != nil {
		return nil, shared.Invalidf("send_at inválido (%s): debe ser una fecha RFC 3339 con zona horaria, p. ej. 2025-01-16T10:30:00-05:00", shared.Echo(text))
	}
	now := s.Now()
	if at.Sub(now) > shared.MaxSendAtAhead {
		return nil, shared.Invalidf("send_at (%s) está a más de %d días", shared.Echo(text), int(shared.MaxSendAtAhead/(24*time.Hour)))
	}
	if !at.After(now) {
		return nil, nil
	}
	if !shared.QueueOr(body.UseQueue, true) {
		return nil, shared.Invalidf("send_at requiere use_queue: true")
	}
	at = at.UTC()
	return &at, nil
}

// idempotent answers a request with an Idempotency-Key: again the stored answer, a
// conflict, or next's answer, stored when it is a success.
func (s *Server) idempotent(w http.ResponseWriter, r *http.Request, raw []byte, key string, opts taskOpts, next http.Handler) error {
	scope := keyFingerprintOf(r)
	if scope == "" {
		scope = "-"
	}
	scoped := scope + "\n" + key
	sum := sha256.Sum256([]byte(scoped))
	recID := hex.EncodeToString(sum[:])
	body := sha256.Sum256(append([]byte(r.Method+" "+r.URL.Path+"\n"), raw...))
	bodyHash := hex.EncodeToString(body[:])

	ctx := r.Context()
	prev, err := s.Store.BeginIdempotent(ctx, recID, bodyHash, idemLease)
	if err != nil {
		return shared.Wrap(shared.KindUnavailable, err, "No se pudo comprobar la Idempotency-Key: Redis no está disponible")
	}
	if prev != nil {
		switch {
		case prev.BodyHash != bodyHash:
			return shared.Errorf(shared.KindUnprocessable, "Idempotency-Key ya usada con otra solicitud: use una clave nueva para otro envío")
		case prev.State != redisstore.IdemDone:
			return shared.Errorf(shared.KindConflict, "Una solicitud con esta Idempotency-Key todavía se está procesando; reintente en unos segundos")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Idempotent-Replayed", "true")
		w.WriteHeader(prev.Status)
		_, _ = w.Write(prev.Body)
		return nil
	}

	// This request holds the key; its lease is extended while it runs (a bulk send
	// without a queue waits for its task).
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(idemLease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = s.Store.ExtendIdempotent(context.WithoutCancel(ctx), recID, idemLease)
			}
		}
	}()
	opts.id = uuid.NewSHA1(idemNamespace, []byte(scoped)).String()
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	next.ServeHTTP(rec, r.WithContext(context.WithValue(ctx, taskOptsCtx{}, opts)))
	close(done)

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if rec.status >= 200 && rec.status < 300 {
		if err := s.Store.FinishIdempotent(sctx, recID, redisstore.IdemRecord{
			BodyHash: bodyHash, Status: rec.status, Body: rec.body.Bytes(),
		}, idemTTL); err != nil {
			s.Logger.Warn("idempotent answer not stored; a retry is answered from Temporal", "err", err)
		}
		return nil
	}
	// A refusal or a failure is not kept: the client may correct and retry with the key.
	if err := s.Store.DropIdempotent(sctx, recID); err != nil {
		s.Logger.Warn("idempotency key not released", "err", err)
	}
	return nil
}

// recorder copies what a handler writes, to store it as the key's answer.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}
