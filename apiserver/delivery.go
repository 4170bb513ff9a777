package apiserver

import (
	"context"
	"encoding/csv"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

// Delivery tracking's endpoints (docs/delivery.md): a task's recipients and what became
// of each, and the timeline of one message.
const (
	defaultRecipientsLimit = 100
	maxRecipientsLimit     = 1000
	// recipientsScan bounds the recipients one page reads while it filters, so that a
	// rare status in a large task costs a few pages, not one unbounded request.
	recipientsScan = 10_000
	// csvChunk is how many recipients the CSV export reads from Redis at a time.
	csvChunk = 1000
)

var recipientStatuses = map[string]bool{
	redisstore.RecipientPending: true, redisstore.RecipientSent: true, redisstore.RecipientDelivered: true,
	redisstore.RecipientRead: true, redisstore.RecipientFailed: true,
}

// deliveryResult adds delivery tracking's counts to task-status's result: delivered,
// read and failed_after_send, a failure after acceptance moved from sent to failed and
// its recipient added to errors with Meta's code and title. Without Redis the counts are
// zero and the contract's fields stay as the task reports them.
func (s *Server) deliveryResult(ctx context.Context, id string, res map[string]any, st *shared.TaskState) {
	res["delivered"], res["read"], res["failed_after_send"] = 0, 0, 0
	if s.Store == nil {
		return
	}
	dc, err := s.Store.Delivery(ctx, id)
	if err != nil {
		return
	}
	res["delivered"], res["read"], res["failed_after_send"] = dc.Delivered, dc.Read, dc.FailedAfterSend
	if dc.FailedAfterSend == 0 {
		return
	}
	res["sent"] = max(st.Result.Sent-dc.FailedAfterSend, 0)
	res["failed"] = st.Result.Failed + dc.FailedAfterSend
	late, err := s.Store.LateFailures(ctx, id)
	if err != nil {
		return
	}
	errs, _ := res["errors"].([]shared.RecipientError)
	res["errors"] = append(append([]shared.RecipientError{}, errs...), late...)
}

// recipientsQuery is the parsed query of GET /api/task-status/{task_id}/recipients.
type recipientsQuery struct {
	status string
	cursor int
	limit  int
	csv    bool
}

func parseRecipientsQuery(r *http.Request) (recipientsQuery, error) {
	q := r.URL.Query()
	out := recipientsQuery{status: q.Get("status"), limit: defaultRecipientsLimit}
	if out.status != "" && !recipientStatuses[out.status] {
		return out, shared.Invalidf("status inválido: %s (pending, sent, delivered, read o failed)", shared.Cut(out.status))
	}
	if c := q.Get("cursor"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 {
			return out, shared.Invalidf("cursor inválido: %s", shared.Cut(c))
		}
		out.cursor = n
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxRecipientsLimit {
			return out, shared.Invalidf("limit inválido: %s (1 a %d)", shared.Cut(l), maxRecipientsLimit)
		}
		out.limit = n
	}
	switch f := q.Get("format"); f {
	case "", "json":
	case "csv":
		out.csv = true
	default:
		return out, shared.Invalidf("format inválido: %s (json o csv)", shared.Cut(f))
	}
	return out, nil
}

// taskRecipients answers GET /api/task-status/{task_id}/recipients: one page of the
// task's recipients in index order, each with its phone, wamid, status, error and the
// times of its statuses, filtered by status; ?format=csv streams every recipient instead.
func (s *Server) taskRecipients(w http.ResponseWriter, r *http.Request) error {
	id := chi.URLParam(r, "task_id")
	if _, err := uuid.Parse(id); err != nil {
		return shared.Errorf(shared.KindNotFound, "Tarea no encontrada: %s", shared.Cut(id))
	}
	q, err := parseRecipientsQuery(r)
	if err != nil {
		return err
	}
	st, err := s.taskState(r.Context(), id)
	if err != nil {
		return err
	}
	titles, err := s.Store.ErrorTitles(r.Context(), id)
	if err != nil {
		return shared.Wrap(shared.KindUnavailable, err, "No se pudo leer la tarea: Redis no está disponible")
	}
	total := st.Result.Total
	if q.csv {
		return s.recipientsCSV(w, r, id, total, q, titles)
	}
	rows := make([]redisstore.RecipientRow, 0, q.limit)
	next := q.cursor
	for next < total && len(rows) < q.limit && next-q.cursor < recipientsScan {
		n := min(q.limit-len(rows), total-next)
		if q.status != "" {
			n = min(max(n, 500), total-next)
		}
		page, err := s.Store.Recipients(r.Context(), id, next, n, titles)
		if err != nil {
			return shared.Wrap(shared.KindUnavailable, err, "No se pudo leer la tarea: Redis no está disponible")
		}
		for _, row := range page {
			next = row.Index + 1
			if q.status == "" || row.Status == q.status {
				rows = append(rows, row)
				if len(rows) == q.limit {
					break
				}
			}
		}
	}
	var cursor any
	if next < total {
		cursor = strconv.Itoa(next)
	}
	filter := q.status
	if filter == "" {
		filter = "all"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"success": true, "task_id": id, "total": total, "status": filter,
		"recipients": rows, "next_cursor": cursor,
	})
	return nil
}

// recipientsCSV streams the task's recipients from cursor on as CSV, csvChunk at a time,
// flushing each, so that a 100k task never sits in memory.
func (s *Server) recipientsCSV(w http.ResponseWriter, r *http.Request, id string, total int, q recipientsQuery, titles map[string]string) error {
	// The first chunk is read before the header goes out, so that a Redis failure is
	// still answered in the contract's error shape.
	first, err := s.Store.Recipients(r.Context(), id, q.cursor, max(min(csvChunk, total-q.cursor), 0), titles)
	if err != nil {
		return shared.Wrap(shared.KindUnavailable, err, "No se pudo leer la tarea: Redis no está disponible")
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+id+`-recipients.csv"`)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	flusher, _ := w.(http.Flusher)
	_ = cw.Write([]string{"index", "phone", "wamid", "status", "error_code", "error", "sent_at", "delivered_at", "read_at", "failed_at"})
	page := first
	for off := q.cursor; ; {
		for _, row := range page {
			if q.status != "" && row.Status != q.status {
				continue
			}
			code := ""
			if row.ErrorCode != 0 {
				code = strconv.Itoa(row.ErrorCode)
			}
			_ = cw.Write([]string{strconv.Itoa(row.Index), row.Phone, row.WAMID, row.Status, code, row.Error,
				csvTime(row.SentAt), csvTime(row.DeliveredAt), csvTime(row.ReadAt), csvTime(row.FailedAt)})
		}
		cw.Flush()
		if flusher != nil {
			flusher.Flush()
		}
		off += len(page)
		if off >= total || len(page) == 0 || r.Context().Err() != nil {
			break
		}
		if page, err = s.Store.Recipients(r.Context(), id, off, min(csvChunk, total-off), titles); err != nil {
			// The header is out: the cut-short body is all that can say so.
			s.Logger.Error("recipients csv cut short", "task_id", id, "at", off, "err", err)
			break
		}
	}
	return nil
}

func csvTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// message answers GET /api/messages/{wamid}: the status timeline of a message wagate
// sent (a task's recipient or a direct send), or whose statuses it received.
func (s *Server) message(w http.ResponseWriter, r *http.Request) error {
	wamid := chi.URLParam(r, "wamid")
	if wamid == "" || len(wamid) > 256 {
		return shared.Invalidf("wamid inválido")
	}
	m, err := s.Store.Message(r.Context(), wamid)
	if err != nil {
		if errors.Is(err, shared.ErrNotFound) {
			return shared.Errorf(shared.KindNotFound, "Mensaje no encontrado: %s", shared.Cut(wamid))
		}
		return shared.Wrap(shared.KindUnavailable, err, "No se pudo leer el mensaje: Redis no está disponible")
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": m})
	return nil
}

// deliveryState is delivery tracking in /api/status: whether statuses are relayed, and
// the totals of what the webhook applied; nil when Redis does not answer.
func (s *Server) deliveryState(ctx context.Context) map[string]any {
	if s.Store == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	t, err := s.Store.Tracking(ctx)
	if err != nil {
		return nil
	}
	return map[string]any{
		"relay_statuses":      s.Config.RelayStatuses,
		"recipients_recorded": t.RecipientsRecorded,
		"statuses_counted":    t.StatusesCounted,
		"statuses_repeated":   t.StatusesRepeated,
		"statuses_kept":       t.StatusesKept,
	}
}
