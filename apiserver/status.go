package apiserver

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/wagate/wagate/shared"
)

// status answers GET /api/status: every service probed at once, each within
// checkTimeout; "healthy" with 200 when all answer, else "degraded" with 503.
func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var whatsapp, queue, ws bool
	var send, delivery map[string]any
	var wg sync.WaitGroup
	wg.Go(func() { whatsapp = s.whatsAppReachable(ctx) })
	wg.Go(func() { delivery = s.deliveryState(ctx) })
	wg.Go(func() { send = s.sendState(ctx) })
	wg.Go(func() { queue = s.queueServiceOK(ctx) })
	wg.Go(func() { ws = s.websocketAvailable(ctx) })
	wg.Wait()

	state, code := "healthy", http.StatusOK
	if !(whatsapp && queue && ws) {
		state, code = "degraded", http.StatusServiceUnavailable
	}
	body := map[string]any{
		"status": state,
		"services": map[string]bool{
			"webhook":           true,
			"whatsapp_service":  whatsapp,
			"queue_service":     queue,
			"websocket_service": ws,
		},
	}
	if send != nil {
		body["whatsapp_send"] = send
	}
	if delivery != nil {
		body["delivery_tracking"] = delivery
	}
	if warnings := s.Config.SecurityWarnings(); len(warnings) > 0 {
		body["warnings"] = warnings
	}
	writeJSON(w, code, body)
	return nil
}

// sendState is the send path's state in /api/status: the number's circuit breaker and
// the learned send rate; nil when Redis does not answer.
func (s *Server) sendState(ctx context.Context) map[string]any {
	if s.policy == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	st, err := s.policy.Status(ctx)
	if err != nil {
		return nil
	}
	out := map[string]any{
		"circuit":      "closed",
		"rate_mps":     float64(int(st.Governor.Rate*10+0.5)) / 10,
		"max_mps":      st.Governor.Ceiling,
		"rate_lowered": formatTime(timeOrNil(st.Governor.LastCut)),
	}
	if b := st.Breaker; b.Open {
		out["circuit"] = "open"
		out["waiting"] = string(b.Reason)
		out["since"] = formatTime(timeOrNil(b.Since))
		out["next_probe"] = formatTime(timeOrNil(b.NextProbe))
		out["last_error"] = b.Error
		if b.Code != 0 {
			out["last_code"] = b.Code
		}
	}
	return out
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
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
