package apiserver

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/wagate/wagate/internal/metrics"
)

// inboundLogTimeout bounds the scrape-time read of the inbound log's length.
const inboundLogTimeout = time.Second

// serveMetrics mounts GET /metrics on r and makes scrapes read the inbound log's
// length. /metrics needs no API key, like /api/health: Prometheus scrape jobs rarely
// carry one, and the metrics hold counts, latencies and the phone number id, never a
// message, a recipient or a key. Deployments that expose the API port to the internet
// keep /metrics off their public proxy (see README.md).
func (s *Server) serveMetrics(r chi.Router) {
	if s.Store != nil {
		store := s.Store
		metrics.ServeInboundLogLength(func() (int64, error) {
			ctx, cancel := context.WithTimeout(context.Background(), inboundLogTimeout)
			defer cancel()
			return store.InboundLogLen(ctx)
		})
	}
	r.Method(http.MethodGet, metrics.Path, metrics.Handler())
}

// instrument counts every request by method, chi's route pattern (never the raw path,
// which carries ids and phone numbers) and status, and observes its latency. It runs
// outside the recoverer, so that a panic's 500 is counted too.
func instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		metrics.HTTPInFlight(1)
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		defer func() {
			metrics.HTTPInFlight(-1)
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK // nothing written: net/http answers 200
			}
			route := ""
			if rc := chi.RouteContext(r.Context()); rc != nil {
				route = rc.RoutePattern()
			}
			metrics.HTTPRequest(r.Method, route, status, time.Since(start))
		}()
		next.ServeHTTP(ww, r)
	})
}
