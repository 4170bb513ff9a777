package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/wagate/wagate/shared"
)

// controlTimeout bounds a control update: a pause or a cancel answers once the sends in
// flight have finished, which takes a Graph API round trip or two.
const controlTimeout = 30 * time.Second

// startOptions are the workflow options of a task: its id, the memo the Web UI shows,
// and the search attributes GET /api/tasks filters on. A task id derived from an
// Idempotency-Key is started at most once: a running one is joined, a closed one is
// not started again (the SDK answers the existing run for both). WagateCreatedAt is
// created to the nanosecond, so that tasks of one second list in order.
func startOptions(in shared.BulkInput, created time.Time) client.StartWorkflowOptions {
	memo := map[string]any{
		shared.MemoKind: in.Kind, shared.MemoTotal: in.Total,
		shared.MemoSent: 0, shared.MemoFailed: 0, shared.MemoProgress: fmt.Sprintf("0/%d (0%%)", in.Total),
	}
	summary := fmt.Sprintf("%s: %d destinatarios", in.Kind, in.Total)
	if in.SendAt != nil {
		memo[shared.MemoSendAt] = in.SendAt.UTC().Format(time.RFC3339)
		summary += ", programada para " + in.SendAt.UTC().Format(time.RFC3339)
	}
	o := client.StartWorkflowOptions{
		ID:                       in.TaskID,
		TaskQueue:                shared.TaskQueue,
		StaticSummary:            summary,
		Memo:                     memo,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
	}
	if in.Indexed {
		attrs := []temporal.SearchAttributeUpdate{
			shared.SearchKind.ValueSet(in.Kind),
			shared.SearchStatus.ValueSet(shared.StatusPending),
			shared.SearchCreatedAt.ValueSet(created),
		}
		if in.SendAt != nil {
			attrs = append(attrs, shared.SearchSendAt.ValueSet(*in.SendAt))
		}
		o.TypedSearchAttributes = temporal.NewSearchAttributes(attrs...)
	}
	return o
}

// taskExists reports whether a workflow with the task id exists (running or closed).
func (s *Server) taskExists(ctx context.Context, id string) bool {
	dctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	_, err := s.Temporal.DescribeWorkflowExecution(dctx, id, "")
	return err == nil
}

// searchAttrs caches whether the namespace has wagate's search attributes: tasks are
// started with them, and GET /api/tasks works, only then (an unregistered attribute
// would fail the start).
type searchAttrs struct {
	mu      sync.Mutex
	ok      bool
	checked time.Time
}

// indexed reports whether the namespace has every search attribute of
// shared.SearchAttributes. A yes is kept; a no is asked again after a minute.
func (s *Server) indexed(ctx context.Context) bool {
	s.attrs.mu.Lock()
	defer s.attrs.mu.Unlock()
	if s.attrs.ok || (!s.attrs.checked.IsZero() && time.Since(s.attrs.checked) < time.Minute) {
		return s.attrs.ok
	}
	lctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	resp, err := s.Temporal.OperatorService().ListSearchAttributes(lctx,
		&operatorservice.ListSearchAttributesRequest{Namespace: s.Config.TemporalNamespace})
	if err != nil {
		// Unknown yet: not remembered as a no.
		return false
	}
	s.attrs.checked = time.Now()
	have := resp.GetCustomAttributes()
	for name, typ := range shared.SearchAttributes() {
		if got, ok := have[name]; !ok || got != typ {
			if !s.attrs.ok {
				s.Logger.Warn("the Temporal namespace lacks wagate's search attributes: GET /api/tasks is unavailable (see README)",
					"namespace", s.Config.TemporalNamespace, "missing", name)
			}
			return false
		}
	}
	s.attrs.ok = true
	return true
}

// searchAttrsRefused reports whether a start failed on wagate's search attributes (a
// namespace whose frontend does not know them yet); the next starts then go without
// them until indexed asks again, a minute later.
func (s *Server) searchAttrsRefused(err error) bool {
	// An InvalidArgument on the frontend ("no mapping defined for search attribute").
	if !strings.Contains(err.Error(), "search attribute") {
		return false
	}
	s.attrs.mu.Lock()
	s.attrs.ok, s.attrs.checked = false, time.Now()
	s.attrs.mu.Unlock()
	s.Logger.Warn("Temporal refused wagate's search attributes; the task starts without them", "err", err)
	return true
}

// Texts of the control endpoints.
var controlTexts = map[string]string{
	shared.ActionCancel: "Tarea cancelada",
	shared.ActionPause:  "Tarea en pausa",
	shared.ActionResume: "Tarea reanudada",
}

// taskControl answers POST /api/task-cancel/{task_id} (and DELETE
// /api/task-status/{task_id}), /api/task-pause/{task_id} and /api/task-resume/{task_id}:
// it applies the change and answers the task's state once it took effect.
func (s *Server) taskControl(action string) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		id := chi.URLParam(r, "task_id")
		if _, err := uuid.Parse(id); err != nil {
			return shared.Errorf(shared.KindNotFound, "Tarea no encontrada: %s", shared.Cut(id))
		}
		ctx := r.Context()
		if st, err := s.Store.Summary(ctx, id); err == nil {
			return finished(id, st.Status)
		}
		uctx, cancel := context.WithTimeout(ctx, controlTimeout)
		defer cancel()
		h, err := s.Temporal.UpdateWorkflow(uctx, client.UpdateWorkflowOptions{
			WorkflowID:   id,
			UpdateName:   shared.ControlUpdate,
			Args:         []any{shared.ControlRequest{Action: action}},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		var st shared.TaskState
		if err == nil {
			err = h.Get(uctx, &st)
		}
		if err != nil {
			return s.controlError(ctx, id, err)
		}
		writeJSON(w, http.StatusOK, controlBody(st, controlTexts[action]))
		return nil
	}
}

func finished(id, status string) error {
	return shared.Errorf(shared.KindConflict, "La tarea %s ya terminó (%s)", id, status)
}

// controlError maps a refused or failed control update to the contract's errors.
func (s *Server) controlError(ctx context.Context, id string, err error) error {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		switch app.Type() {
		case shared.ErrTypeTaskFinished:
			var status string
			if app.HasDetails() && app.Details(&status) == nil {
				return finished(id, status)
			}
			return finished(id, shared.StatusSuccess)
		case shared.ErrTypeBadAction:
			return shared.Invalidf("Acción de control inválida")
		}
		if strings.Contains(app.Error(), "unknown update") {
			return shared.Wrap(shared.KindConflict, err, "La tarea "+id+" empezó antes del control de tareas: no se puede pausar ni cancelar")
		}
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		// Unknown, or closed (an update reaches running workflows only).
		desc, derr := s.Temporal.DescribeWorkflowExecution(ctx, id, "")
		if derr == nil {
			st := workflowStatus(desc.GetWorkflowExecutionInfo().GetStatus(), shared.StatusSuccess)
			if sum, serr := s.Store.Summary(ctx, id); serr == nil {
				st = sum.Status
			}
			return finished(id, st)
		}
		return shared.Errorf(shared.KindNotFound, "Tarea no encontrada: %s", shared.Cut(id))
	}
	if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return shared.Wrap(shared.KindUnavailable, err, "La tarea "+id+" no respondió a tiempo: ningún worker está disponible")
	}
	return shared.Wrap(shared.KindUnavailable, err, "No se pudo controlar la tarea "+id+": Temporal no está disponible")
}

// controlBody answers a control: success, its message, and the task's state as
// task-status renders it.
func controlBody(st shared.TaskState, msg string) map[string]any {
	body := taskBody(st, resultBody(st))
	body["success"] = true
	body["message"] = msg
	return body
}
