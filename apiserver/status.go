package apiserver

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"go.temporal.io/api/serviceerror"

	"github.com/wagate/wagate/shared"
)

// status answers GET /api/status: every service probed at once, each within
// checkTimeout; "healthy" with 200 when all answer, else "degraded" with 503.
func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var whatsapp, queue, ws bool
	var wg sync.WaitGroup
	wg.Go(func() { whatsapp = s.whatsAppReachable(ctx) })
	wg.Go(func() { queue = s.queueServiceOK(ctx) })
	wg.Go(func() { ws = s.websocketAvailable(ctx) })
	wg.Wait()

	state, code := "healthy", http.StatusOK
	if !(whatsapp && queue && ws) {
		state, code = "degraded", http.StatusServiceUnavailable
	}
	out := map[string]any{
		"status": state,
		"services": map[string]bool{
			"webhook":           true,
			"whatsapp_service":  whatsapp,
			"queue_service":     queue,
			"websocket_service": ws,
		},
	}
	if warnings := s.Config.SecurityWarnings(); len(warnings) > 0 {
		out["warnings"] = warnings
	}
	writeJSON(w, code, out)
	return nil
}

func (s *Server) whatsAppReachable(ctx context.Context) bool {
	if s.Graph == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	return s.Graph.Ping(ctx) == nil
}

// queueServiceOK reports whether inbound events can be queued now: Redis answers and
// Temporal answers with the relay workflow running, or absent and so startable by the
// next event.
func (s *Server) queueServiceOK(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	var redisOK, relayOK bool
	var wg sync.WaitGroup
	wg.Go(func() { redisOK = s.Store != nil && s.Store.Ping(ctx) == nil })
	wg.Go(func() {
		if s.Temporal == nil {
			return
		}
		// Running, or closed or absent and so started by the next event: any answer
		// from Temporal but an error will do.
		_, err := s.Temporal.DescribeWorkflowExecution(ctx, shared.RelayWorkflowID, "")
		var notFound *serviceerror.NotFound
		relayOK = err == nil || errors.As(err, &notFound)
	})
	wg.Wait()
	return redisOK && relayOK
}
