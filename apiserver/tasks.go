package apiserver

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/shared"
)

// queryTimeout bounds the status query: a query needs a live worker, and task-status
// must answer even when none is polling.
const queryTimeout = 3 * time.Second

// taskStatus answers GET /api/task-status/{task_id}: the stored summary of a finished
// task, else the workflow's status query merged with the live per-recipient counters,
// else what Temporal's description of the workflow says.
func (s *Server) taskStatus(w http.ResponseWriter, r *http.Request) error {
	id := chi.URLParam(r, "task_id")
	if _, err := uuid.Parse(id); err != nil {
		// Task ids are UUIDs; anything else (such as the relay workflow's id) is no task.
		return shared.Errorf(shared.KindNotFound, "Tarea no encontrada: %s", shared.Cut(id))
	}
	st, err := s.taskState(r.Context(), id)
	if err != nil {
		return err
	}
	result := resultBody(st)
	s.deliveryResult(r.Context(), id, result, &st)
	body := taskBody(st, result)
	writeJSON(w, http.StatusOK, body)
	return nil
}

// resultBody is task-status's result: the contract's counts and errors.
func resultBody(st shared.TaskState) map[string]any {
	errs := st.Result.Errors
	if errs == nil {
		errs = []shared.RecipientError{}
	}
	return map[string]any{"sent": st.Result.Sent, "failed": st.Result.Failed, "total": st.Result.Total, "errors": errs}
}

// taskBody is task-status's answer for st with result: the contract's fields, and what
// the task waits on and when it is scheduled when it does or is.
func taskBody(st shared.TaskState, result map[string]any) map[string]any {
	body := map[string]any{
		"task_id":      st.TaskID,
		"kind":         st.Kind,
		"status":       st.Status,
		"result":       result,
		"created_at":   st.CreatedAt.UTC().Format(time.RFC3339),
		"completed_at": formatTime(st.CompletedAt),
	}
	if st.Waiting != "" {
		body["waiting"] = st.Waiting
		body["waiting_since"] = formatTime(st.WaitingSince)
	}
	if st.SendAt != nil {
		body["send_at"] = formatTime(st.SendAt)
	}
	return body
}

// waiting fills in what a running task waits on: the live circuit breaker of its
// number when Redis answers (the workflow learns it only when a send activity
// returns), else what the workflow last reported.
func (s *Server) waiting(ctx context.Context, st *shared.TaskState) {
	if s.policy == nil || st.Waiting == shared.WaitTemplatePaused || st.Waiting == shared.WaitPausedByClient {
		// A paused template or a client's pause is the task's own wait, not its number's.
		return
	}
	b, err := s.policy.Status(ctx)
	if err != nil {
		return
	}
	st.Waiting, st.WaitingSince = "", nil
	if b.Breaker.Open {
		since := b.Breaker.Since.UTC().Truncate(time.Second)
		st.Waiting, st.WaitingSince = string(b.Breaker.Reason), &since
	}
}

func formatTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

func (s *Server) taskState(ctx context.Context, id string) (shared.TaskState, error) {
	if st, err := s.Store.Summary(ctx, id); err == nil {
		return st, nil
	} else if !errors.Is(err, shared.ErrNotFound) {
		return st, shared.Wrap(shared.KindUnavailable, err, "No se pudo leer el estado de la tarea: Redis no está disponible")
	}

	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	// A running workflow answers the status query, and its answer is its status: no
	// description is needed. A closed one is rejected at once, and then read from its
	// history and description.
	var st shared.TaskState
	var nf *serviceerror.NotFound
	resp, qerr := s.Temporal.QueryWorkflowWithOptions(qctx, &client.QueryWorkflowWithOptionsRequest{
		WorkflowID: id, QueryType: shared.StatusQuery, QueryRejectCondition: enums.QUERY_REJECT_CONDITION_NOT_OPEN,
	})
	switch {
	case qerr == nil && resp.QueryRejected == nil:
		if qerr = resp.QueryResult.Get(&st); qerr == nil {
			return s.withLedger(ctx, id, st), nil
		}
	case qerr == nil:
		var v converter.EncodedValue
		if v, qerr = s.Temporal.QueryWorkflow(qctx, id, "", shared.StatusQuery); qerr == nil {
			qerr = v.Get(&st)
		}
	}
	if errors.As(qerr, &nf) {
		return st, shared.Errorf(shared.KindNotFound, "Tarea no encontrada: %s", shared.Cut(id))
	}

	desc, derr := s.Temporal.DescribeWorkflowExecution(ctx, id, "")
	if derr != nil {
		if errors.As(derr, &nf) {
			return st, shared.Errorf(shared.KindNotFound, "Tarea no encontrada: %s", shared.Cut(id))
		}
		if qerr != nil {
			return st, shared.Wrap(shared.KindUnavailable, derr, "No se pudo consultar la tarea: Temporal no está disponible")
		}
	}
	if qerr != nil {
		// No worker answered the query: build the state from Temporal's description.
		st = shared.TaskState{TaskID: id, Status: shared.StatusPending}
		if desc != nil {
			info := desc.GetWorkflowExecutionInfo()
			st.CreatedAt = info.GetStartTime().AsTime()
			if info.GetCloseTime() != nil && info.GetCloseTime().IsValid() && !info.GetCloseTime().AsTime().IsZero() {
				t := info.GetCloseTime().AsTime()
				st.CompletedAt = &t
			}
		}
	}
	if desc != nil {
		st.Status = workflowStatus(desc.GetWorkflowExecutionInfo().GetStatus(), st.Status)
	}
	return s.withLedger(ctx, id, st), nil
}

// withLedger completes the state of task id: a running one's counts with the
// ledger's, which move per recipient, and what it waits on; a finished one waits on
// nothing.
func (s *Server) withLedger(ctx context.Context, id string, st shared.TaskState) shared.TaskState {
	if st.Status == shared.StatusStarted || st.Status == shared.StatusPending || st.Status == shared.StatusPaused {
		// The workflow's counters move per chunk; the ledger's move per recipient.
		if sent, failed, err := s.Store.Progress(ctx, id); err == nil {
			st.Result.Sent = max(st.Result.Sent, sent)
			st.Result.Failed = max(st.Result.Failed, failed)
			if st.Status == shared.StatusPending && sent+failed > 0 {
				st.Status = shared.StatusStarted
			}
		}
		if st.Result.Sent+st.Result.Failed < st.Result.Total || st.Result.Total == 0 {
			s.waiting(ctx, &st)
		}
	} else {
		st.Waiting, st.WaitingSince = "", nil
	}
	return st
}

// workflowStatus maps a workflow's execution status to the contract's task status.
func workflowStatus(s enums.WorkflowExecutionStatus, running string) string {
	switch s {
	case enums.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		if running == shared.StatusRevoked {
			return running // a cancelled task completes too
		}
		return shared.StatusSuccess
	case enums.WORKFLOW_EXECUTION_STATUS_RUNNING, enums.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return running
	default:
		return shared.StatusFailure
	}
}

// media answers GET /api/media/{media_id} with the media's download URL.
func (s *Server) media(w http.ResponseWriter, r *http.Request) error {
	id := chi.URLParam(r, "media_id")
	if id == "" || len(id) > 64 {
		return shared.Invalidf("media_id inválido")
	}
	info, err := s.Graph.GetMedia(r.Context(), id)
	if err != nil {
		var ge *graphapi.Error
		if errors.As(err, &ge) && ge.Code == 100 {
			return shared.Errorf(shared.KindNotFound, "Media no encontrado: %s", shared.Cut(id))
		}
		return graphError("Error obteniendo media", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "media_url": info.URL,
		"mime_type": info.MimeType, "sha256": info.SHA256, "file_size": info.FileSize, "id": info.ID})
	return nil
}
