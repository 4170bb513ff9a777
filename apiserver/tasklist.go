package apiserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/wagate/wagate/shared"
)

// Bounds of GET /api/tasks.
const (
	defaultTaskPage = 50
	maxTaskPage     = 200
	// firstSlice is the first window of creation times a page looks in; each next one
	// is eight times longer, back to listFloor.
	firstSlice = time.Hour
)

// listFloor is older than any task.
var listFloor = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// taskKinds are the kinds a task can have, one per endpoint that starts tasks.
var taskKinds = map[string]bool{
	"send-message": true, "send-template": true, "send-interactive": true, "send-list": true,
	"send-bulk": true, "send-bulk-list": true, "send-bulk-interactive": true,
	"send-broadcast-interactive": true, "send-personalized-broadcast": true, "send-bulk-template": true,
}

// statusQueries are the visibility conditions of each task status.
var statusQueries = map[string]string{
	shared.StatusPending: "ExecutionStatus = 'Running' AND WagateStatus = 'PENDING'",
	shared.StatusStarted: "ExecutionStatus = 'Running' AND WagateStatus = 'STARTED'",
	shared.StatusPaused:  "ExecutionStatus = 'Running' AND WagateStatus = 'PAUSED'",
	shared.StatusSuccess: "ExecutionStatus = 'Completed' AND WagateStatus = 'SUCCESS'",
	shared.StatusRevoked: "ExecutionStatus = 'Completed' AND WagateStatus = 'REVOKED'",
	shared.StatusFailure: "ExecutionStatus IN ('Failed', 'Terminated', 'TimedOut', 'Canceled')",
}

// pageToken is the cursor of GET /api/tasks: the creation time and id of the last task
// of the previous page; the next page holds the tasks after it, newest first.
type pageToken struct {
	Created time.Time `json:"c"`
	ID      string    `json:"i"`
}

// listedTask is one task of a page.
type listedTask struct {
	created time.Time
	body    map[string]any
}

// listTasks answers GET /api/tasks?status=&kind=&created_from=&created_to=&limit=&page_token=
// from Temporal's visibility, newest first. SQL visibility (the dev stack's) cannot
// order by a custom attribute, so a page reads windows of creation times, newest
// window first, each sorted here, until the page is full.
func (s *Server) listTasks(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	where := []string{fmt.Sprintf("WorkflowType = '%s'", shared.BulkWorkflowName), "ExecutionStatus != 'ContinuedAsNew'"}
	if st := q.Get("status"); st != "" {
		cond, ok := statusQueries[strings.ToUpper(st)]
		if !ok {
			return shared.Invalidf("status inválido (%s): PENDING, STARTED, PAUSED, SUCCESS, FAILURE o REVOKED", shared.Echo(st))
		}
		where = append(where, cond)
	}
	if k := q.Get("kind"); k != "" {
		if !taskKinds[k] {
			return shared.Invalidf("kind inválido (%s): el nombre de un endpoint de envío, p. ej. send-bulk", shared.Echo(k))
		}
		where = append(where, fmt.Sprintf("WagateKind = '%s'", k))
	}
	from, err := queryTime(q.Get("created_from"), "created_from")
	if err != nil {
		return err
	}
	to, err := queryTime(q.Get("created_to"), "created_to")
	if err != nil {
		return err
	}
	limit := defaultTaskPage
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > maxTaskPage {
			return shared.Invalidf("limit inválido (%s): de 1 a %d", shared.Echo(l), maxTaskPage)
		}
	}
	var after *pageToken
	if t := q.Get("page_token"); t != "" {
		raw, err := base64.RawURLEncoding.DecodeString(t)
		var tok pageToken
		if err != nil || json.Unmarshal(raw, &tok) != nil || tok.ID == "" {
			return shared.Invalidf("page_token inválido")
		}
		after = &tok
	}
	if !s.indexed(r.Context()) {
		return shared.Errorf(shared.KindUnavailable,
			"El listado de tareas no está disponible: el namespace de Temporal no tiene los search attributes de wagate (ver README)")
	}

	hi := s.Now().Add(24 * time.Hour)
	if !to.IsZero() {
		hi = to
	}
	if after != nil && after.Created.Before(hi) {
		hi = after.Created
	}
	floor := listFloor
	if !from.IsZero() {
		floor = from
	}
	var tasks []listedTask
	first := true
	for span := firstSlice; len(tasks) <= limit && !hi.Before(floor); span *= 8 {
		lo := hi.Add(-span)
		if lo.Before(floor) {
			lo = floor
		}
		upper := "<"
		if first {
			upper = "<="
		}
		cond := fmt.Sprintf("WagateCreatedAt >= '%s' AND WagateCreatedAt %s '%s'",
			lo.UTC().Format(time.RFC3339Nano), upper, hi.UTC().Format(time.RFC3339Nano))
		slice, err := s.listAll(r.Context(), strings.Join(append(where, cond), " AND "))
		if err != nil {
			return err
		}
		sort.Slice(slice, func(i, j int) bool {
			if !slice[i].created.Equal(slice[j].created) {
				return slice[i].created.After(slice[j].created)
			}
			return slice[i].body["task_id"].(string) > slice[j].body["task_id"].(string)
		})
		for _, t := range slice {
			if after != nil && t.created.Equal(after.Created) && t.body["task_id"].(string) >= after.ID {
				continue // on the previous page
			}
			tasks = append(tasks, t)
		}
		if lo.Equal(floor) {
			break
		}
		hi, first = lo, false
	}

	var next any
	if len(tasks) > limit {
		tasks = tasks[:limit]
		last := tasks[limit-1]
		raw, _ := json.Marshal(pageToken{Created: last.created, ID: last.body["task_id"].(string)})
		next = base64.RawURLEncoding.EncodeToString(raw)
	}
	out := make([]map[string]any, len(tasks))
	for i, t := range tasks {
		out[i] = t.body
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "tasks": out, "next_page_token": next})
	return nil
}

func queryTime(v, name string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return t, shared.Invalidf("%s inválido (%s): una fecha RFC 3339, p. ej. 2025-01-16T10:30:00-05:00", name, shared.Echo(v))
	}
	return t, nil
}

// listAll reads every execution a visibility query matches.
func (s *Server) listAll(ctx context.Context, query string) ([]listedTask, error) {
	var out []listedTask
	var token []byte
	for {
		lctx, cancel := context.WithTimeout(ctx, temporalTimeout)
		resp, err := s.Temporal.ListWorkflow(lctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: s.Config.TemporalNamespace, Query: query, PageSize: 1000, NextPageToken: token,
		})
		cancel()
		if err != nil {
			return nil, shared.Wrap(shared.KindUnavailable, err, "No se pudo listar las tareas: Temporal no está disponible")
		}
		for _, e := range resp.GetExecutions() {
			out = append(out, listed(e))
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return out, nil
		}
	}
}

// listed renders one execution as a listed task, from its search attributes, memo and
// close status.
func listed(e *workflow.WorkflowExecutionInfo) listedTask {
	dc := converter.GetDefaultDataConverter()
	attr := func(name string, v any) bool {
		p, ok := e.GetSearchAttributes().GetIndexedFields()[name]
		return ok && dc.FromPayload(p, v) == nil
	}
	memo := func(name string, v any) {
		if p, ok := e.GetMemo().GetFields()[name]; ok {
			_ = dc.FromPayload(p, v)
		}
	}
	var kind, status string
	var created, sendAt time.Time
	attr(shared.SearchKind.GetName(), &kind)
	attr(shared.SearchStatus.GetName(), &status)
	attr(shared.SearchCreatedAt.GetName(), &created)
	hasSendAt := attr(shared.SearchSendAt.GetName(), &sendAt)
	switch e.GetStatus() {
	case enums.WORKFLOW_EXECUTION_STATUS_RUNNING:
	case enums.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		if status != shared.StatusRevoked {
			status = shared.StatusSuccess
		}
	default:
		status = shared.StatusFailure
	}
	var sent, failed, total int
	memo(shared.MemoSent, &sent)
	memo(shared.MemoFailed, &failed)
	memo(shared.MemoTotal, &total)
	body := map[string]any{
		"task_id":      e.GetExecution().GetWorkflowId(),
		"kind":         kind,
		"status":       status,
		"created_at":   created.UTC().Format(time.RFC3339),
		"completed_at": nil,
		"send_at":      nil,
		"result":       map[string]any{"sent": sent, "failed": failed, "total": total},
	}
	if ct := e.GetCloseTime(); ct != nil && ct.IsValid() && !ct.AsTime().IsZero() {
		body["completed_at"] = ct.AsTime().UTC().Format(time.RFC3339)
	}
	if hasSendAt {
		body["send_at"] = sendAt.UTC().Format(time.RFC3339)
	}
	return listedTask{created: created, body: body}
}
