package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/wagate/wagate/shared"
)

// checkTimeout bounds each health probe of the queue and status endpoints.
const checkTimeout = 2 * time.Second

// clearTimeout bounds the clear update: it needs a worker to run it.
const clearTimeout = 10 * time.Second

// pollerFreshness is how recently a worker must have polled to count as alive: idle
// workers long-poll about once a minute, and the server remembers pollers for minutes.
const pollerFreshness = 2 * time.Minute

// testMessageText is the body of the contract's queue test message.
const testMessageText = "Mensaje de prueba del sistema de colas"

// relayRun is what the API knows about the relay workflow.
type relayRun struct {
	running bool
	info    shared.QueueInfo
}

// failing reports whether the head has failed at least once and is still being retried.
func (r relayRun) failing() bool { return r.info.LastError != "" || r.info.HeadAttempt > 1 }

// describeRelay describes the relay workflow and, when it runs, queries its QueueInfo
// and completes it with the head's attempt and last failure, which only the server
// knows. A relay that never started, or ended, is not running and has nothing pending.
// The query needs a live worker: callers bound ctx.
func (s *Server) describeRelay(ctx context.Context) (relayRun, error) {
	desc, err := s.Temporal.DescribeWorkflowExecution(ctx, shared.RelayWorkflowID, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return relayRun{}, nil
	}
	if err != nil {
		return relayRun{}, shared.Wrap(shared.KindUnavailable, err, "Temporal no está disponible")
	}
	if desc.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return relayRun{}, nil
	}
	v, err := s.Temporal.QueryWorkflow(ctx, shared.RelayWorkflowID, "", shared.PendingQuery)
	if err != nil {
		return relayRun{running: true}, shared.Wrap(shared.KindUnavailable, err,
			"El procesador de la cola no responde: ¿hay un worker en ejecución?")
	}
	run := relayRun{running: true}
	if err := v.Get(&run.info); err != nil {
		return run, shared.Wrap(shared.KindInternal, err, "respuesta inválida del procesador de la cola")
	}
	for _, pa := range desc.GetPendingActivities() {
		if name := pa.GetActivityType().GetName(); name == shared.RelayInboundActivity || name == shared.RelayInboundBatchActivity {
			run.info.HeadAttempt = pa.GetAttempt()
			run.info.LastError = pa.GetLastFailure().GetMessage()
		}
	}
	return run, nil
}

// workerPolling reports whether a worker polls shared.TaskQueue for both workflow and
// activity tasks, as the relay needs both.
func (s *Server) workerPolling(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	for _, typ := range []enums.TaskQueueType{enums.TASK_QUEUE_TYPE_WORKFLOW, enums.TASK_QUEUE_TYPE_ACTIVITY} {
		resp, err := s.Temporal.DescribeTaskQueue(ctx, shared.TaskQueue, typ)
		if err != nil {
			return false
		}
		alive := false
		for _, p := range resp.GetPollers() {
			if t := p.GetLastAccessTime(); t != nil && time.Since(t.AsTime()) < pollerFreshness {
				alive = true
			}
		}
		if !alive {
			return false
		}
	}
	return true
}

// websocketAvailable reports whether WEBSOCKET_URL accepts a connection now.
func (s *Server) websocketAvailable(ctx context.Context) bool {
	if s.Config.WebSocketURL == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	d := websocket.Dialer{HandshakeTimeout: checkTimeout}
	ws, resp, err := d.DialContext(ctx, s.Config.WebSocketURL, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return false
	}
	_ = ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = ws.Close()
	return true
}

// queueStatus answers GET /api/queue/status. Every probe runs at once, each within
// checkTimeout; a probe that fails reports false rather than failing the request.
func (s *Server) queueStatus(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var (
		wsOK, polling bool
		run           relayRun
		runErr        error
		wg            sync.WaitGroup
	)
	wg.Go(func() { wsOK = s.websocketAvailable(ctx) })
	wg.Go(func() { polling = s.workerPolling(ctx) })
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(ctx, checkTimeout)
		defer cancel()
		run, runErr = s.describeRelay(ctx)
	})
	var logged int64
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(ctx, checkTimeout)
		defer cancel()
		var err error
		if logged, err = s.Store.InboundLogLen(ctx); err != nil {
			s.Logger.Warn("queue status: inbound log not answering", "err", err)
		}
	})
	wg.Wait()
	if runErr != nil {
		s.Logger.Warn("queue status: relay not answering", "err", runErr)
	}
	healthy := wsOK && polling && run.running && runErr == nil && !run.failing()
	writeJSON(w, http.StatusOK, map[string]any{
		"success": true,
		"status": map[string]any{
			"websocket_available":    wsOK,
			"processor_running":      run.running,
			"processor_thread_alive": polling,
			"queue_healthy":          healthy,
		},
		"queue_lengths": map[string]any{"pending": int64(run.info.Pending) + logged},
	})
	return nil
}

// queueLengths answers GET /api/queue/lengths: the events queued in the relay workflow
// plus those accepted and not yet forwarded to it (the inbound log).
func (s *Server) queueLengths(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	run, err := s.describeRelay(ctx)
	if err != nil {
		return err
	}
	logged, err := s.Store.InboundLogLen(ctx)
	if err != nil {
		return shared.Wrap(shared.KindUnavailable, err, "Redis no está disponible")
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"success": true, "queue_lengths": map[string]any{"pending": int64(run.info.Pending) + logged},
	})
	return nil
}

// queueClear answers DELETE /api/queue/clear: it drops the events queued in the relay
// workflow (its clear update, with update-with-start: 0 when no relay ran) and those
// still in the inbound log, and answers how many it dropped in all. Forwarding is
// paused meanwhile and the clear starts once no forward step is in flight, so that no
// event is both in the log and in the workflow while they are counted, nor forwarded
// after the workflow was cleared.
func (s *Server) queueClear(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), clearTimeout)
	defer cancel()
	token := uuid.NewString()
	if err := s.Store.PauseForwarding(ctx, token, clearPause); err != nil {
		return shared.Wrap(shared.KindUnavailable, err, "No se pudo limpiar la cola: Redis no está disponible")
	}
	defer func() {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer rcancel()
		if err := s.Store.ResumeForwarding(rctx, token); err != nil {
			s.Logger.Warn("forwarding stays paused until the pause expires", "err", err)
		}
	}()
	if err := s.waitForwardIdle(ctx); err != nil {
		return shared.Wrap(shared.KindUnavailable, err, "No se pudo limpiar la cola; reintente")
	}
	cleared, err := s.clearRelay(ctx)
	if err != nil {
		return shared.Wrap(shared.KindUnavailable, err, "No se pudo limpiar la cola: ¿hay un worker en ejecución?")
	}
	logged, err := s.Store.DropInboundLog(ctx)
	if err == nil && logged < 0 {
		// Only a forwarder whose pause expired starts a step now: the workflow then
		// gets the step's refs, and the rest of the log is dropped on the next clear.
		err = errors.New("a forward step started during the clear")
	}
	if err != nil {
		return shared.Wrap(shared.KindUnavailable, err, "No se pudo limpiar la cola; reintente")
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "result": map[string]any{"cleared": int64(cleared) + logged}})
	return nil
}

// clearPause bounds how long a clear holds the forwarders back, should its API server
// die during it.
const clearPause = clearTimeout + 5*time.Second

// waitForwardIdle waits until no forward step is in flight: a step's signal lands in
// the workflow before the clear, and its refs are trimmed from the log.
func (s *Server) waitForwardIdle(ctx context.Context) error {
	for {
		idle, err := s.Store.ForwardIdle(ctx)
		if err != nil || idle {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// clearRelay runs the relay workflow's clear update and returns how many it dropped.
func (s *Server) clearRelay(ctx context.Context) (int, error) {
	opts := relayStartOptions()
	opts.WorkflowIDConflictPolicy = enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
	start := s.Temporal.NewWithStartWorkflowOperation(opts, shared.RelayWorkflowName, shared.RelayState{})
	h, err := s.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			WorkflowID:   shared.RelayWorkflowID,
			UpdateName:   shared.ClearUpdate,
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return 0, err
	}
	var cleared int
	if err := h.Get(ctx, &cleared); err != nil {
		return 0, err
	}
	return cleared, nil
}

// queueTest answers POST /api/queue/test: the contract's test message, wrapped in a
// webhook-shaped event with a unique id, goes through the queue like a real one.
func (s *Server) queueTest(w http.ResponseWriter, r *http.Request) error {
	ts := strconv.FormatInt(s.Now().Unix(), 10)
	id := "test-" + uuid.NewString()
	ev := shared.InboundEvent{ID: id, From: "test_user", Event: testEvent(id, ts, s.Config.WhatsAppPhoneNumberID)}
	if err := s.enqueueInbound(r.Context(), ev); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"success": true,
		"result":  map[string]any{"success": true, "method": "fifo_queue"},
		"test_message": map[string]any{
			"from": "test_user", "type": "text", "text": testMessageText, "timestamp": ts,
		},
	})
	return nil
}

// testEvent is the webhook JSON of the queue test message, shaped like Meta's.
func testEvent(id, ts, phoneNumberID string) json.RawMessage {
	type m = map[string]any
	return mustJSON(m{
		"object": "whatsapp_business_account",
		"entry": []m{{
			"id": "queue-test",
			"changes": []m{{
				"field": "messages",
				"value": m{
					"messaging_product": "whatsapp",
					"metadata":          m{"display_phone_number": "", "phone_number_id": phoneNumberID},
					"contacts":          []m{{"profile": m{"name": "test_user"}, "wa_id": "test_user"}},
					"messages": []m{{
						"from": "test_user", "id": id, "timestamp": ts, "type": "text",
						"text": m{"body": testMessageText},
					}},
				},
			}},
		}},
	})
}
