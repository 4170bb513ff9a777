package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/sendpolicy"
	"github.com/wagate/wagate/shared"
)

// stagingTTL keeps a task's staged recipients until it has surely finished; the
// workflow shortens it when it completes.
const stagingTTL = 30 * 24 * time.Hour

// temporalTimeout bounds a call that starts a workflow.
const temporalTimeout = 10 * time.Second

// single describes one single-send endpoint: its success texts and its error prefix.
type single struct {
	kind     string // task kind for queued sends, e.g. "send-message"
	sent     string // use_queue=false success message
	queued   string // use_queue=true success message
	errorPre string // prefix of Meta's error text
}

var (
	sendMessageTexts     = single{"send-message", "Mensaje enviado exitosamente", "Mensaje enviado a cola", "Error enviando mensaje"}
	sendTemplateTexts    = single{"send-template", "Plantilla enviada exitosamente", "Plantilla enviada a cola", "Error enviando plantilla"}
	sendInteractiveTexts = single{"send-interactive", "Mensaje interactivo enviado exitosamente", "Mensaje interactivo enviado a cola", "Error enviando mensaje interactivo"}
	sendListTexts        = single{"send-list", "Mensaje de lista enviado exitosamente", "Mensaje de lista enviado a cola", "Error enviando mensaje de lista"}
)

func (s *Server) sendMessage(w http.ResponseWriter, r *http.Request) error {
	var req shared.SendMessageRequest
	if err := decode(w, r, maxSingleBody, &req); err != nil {
		return err
	}
	m, err := shared.TextMessage("", req.Phone, req.Message)
	if err != nil {
		return err
	}
	return s.sendOne(w, r, m, shared.QueueOr(req.UseQueue, false), sendMessageTexts)
}

func (s *Server) sendTemplate(w http.ResponseWriter, r *http.Request) error {
	var req shared.SendTemplateRequest
	if err := decode(w, r, maxSingleBody, &req); err != nil {
		return err
	}
	m, err := shared.TemplateMessage(req)
	if err != nil {
		return err
	}
	return s.sendOne(w, r, m, shared.QueueOr(req.UseQueue, false), sendTemplateTexts)
}

func (s *Server) sendInteractive(w http.ResponseWriter, r *http.Request) error {
	var req shared.SendInteractiveRequest
	if err := decode(w, r, maxSingleBody, &req); err != nil {
		return err
	}
	m, err := shared.InteractiveMessage("", req.Phone, req.InteractiveFields)
	if err != nil {
		return err
	}
	return s.sendOne(w, r, m, shared.QueueOr(req.UseQueue, false), sendInteractiveTexts)
}

func (s *Server) sendList(w http.ResponseWriter, r *http.Request) error {
	var req shared.SendListRequest
	if err := decode(w, r, maxSingleBody, &req); err != nil {
		return err
	}
	if err := shared.ValidatePhone("phone", req.Phone); err != nil {
		return err
	}
	if err := shared.ValidateList(req.ListFields, true); err != nil {
		return err
	}
	m, err := shared.ListMessage("", req.Phone, req.BodyText, req.ListFields)
	if err != nil {
		return err
	}
	return s.sendOne(w, r, m, shared.QueueOr(req.UseQueue, false), sendListTexts)
}

// sendOne sends a single message now and answers Meta's response, or queues it as a
// one-recipient task and answers its task_id.
func (s *Server) sendOne(w http.ResponseWriter, r *http.Request, m shared.Message, queue bool, t single) error {
	if queue {
		id, err := s.startTask(r.Context(), t.kind, []shared.Message{m})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": t.queued, "task_id": id})
		return nil
	}
	// The same policy as bulk sends: the shared rate, and no call to Meta while the
	// number's circuit is open (the client gets a 503 at once instead of a failure that
	// would also keep the circuit from closing).
	pm, err := s.policy.TryAcquire(r.Context())
	var open *sendpolicy.OpenError
	switch {
	case errors.As(err, &open):
		return shared.Wrap(shared.KindUnavailable, err, fmt.Sprintf(
			"%s: la API de WhatsApp no está disponible (envíos en pausa desde %s; se reanudan solos cuando Meta responda)",
			t.errorPre, open.State.Since.UTC().Format(time.RFC3339)))
	case err != nil:
		return shared.Wrap(shared.KindUnavailable, err, t.errorPre+": no se pudo reservar un turno de envío (Redis no disponible)")
	}
	res, err := s.Graph.Send(r.Context(), m, "")
	if err != nil && r.Context().Err() != nil {
		pm.Abandon()
	} else {
		pm.Done(r.Context(), err)
	}
	if err != nil {
		return graphError(t.errorPre, err)
	}
	if res.WAMID != "" {
		// GET /api/messages/{wamid} then knows the message as wagate's; the send
		// happened either way, so a Redis failure only costs that.
		if err := s.Store.RecordDirect(context.WithoutCancel(r.Context()), res.WAMID, m.To, s.Now()); err != nil {
			s.Logger.Warn("direct send not recorded for delivery tracking", "wamid", res.WAMID, "err", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": t.sent, "data": res.Raw})
	return nil
}

// graphError turns a Graph API failure into the contract's error: Meta's own message
// when Meta answered, 503 when it could not be reached.
func graphError(prefix string, err error) error {
	var ge *graphapi.Error
	if errors.As(err, &ge) && (ge.Code != 0 || ge.Type != "") { // Meta answered with its error object
		// Meta's details can echo the request; they quote no more of it than ours.
		msg := shared.CutQuoted(ge.Message)
		if ge.Details != "" {
			msg += " (" + shared.CutQuoted(ge.Details) + ")"
		}
		// Meta refusing the message is the client's to fix (400); Meta failing, or
		// refusing wagate's own credentials or account, is not (503).
		kind := shared.KindUpstream
		switch graphapi.Classify(err) {
		case graphapi.ClassRetryable, graphapi.ClassAuth:
			kind = shared.KindUnavailable
		}
		return &shared.Error{Kind: kind, Msg: fmt.Sprintf("%s: %s", prefix, msg), Err: err}
	}
	return shared.Wrap(shared.KindUnavailable, err, prefix+": la API de WhatsApp no está disponible")
}

// bulk describes one bulk endpoint's success texts.
type bulk struct {
	kind      string
	queued    string // use_queue=true
	processed string // use_queue=false ("Sin Cola")
}

var (
	sendBulkTexts              = bulk{"send-bulk", "Envío masivo enviado a cola", "Envío masivo procesado"}
	sendBulkListTexts          = bulk{"send-bulk-list", "Envío masivo de listas enviado a cola", "Envío masivo de listas procesado"}
	sendBulkInteractiveTexts   = bulk{"send-bulk-interactive", "Envío masivo interactivo enviado a cola", "Envío masivo interactivo procesado"}
	broadcastInteractiveTexts  = bulk{"send-broadcast-interactive", "Mensaje broadcast enviado a cola", "Mensaje broadcast procesado"}
	personalizedBroadcastTexts = bulk{"send-personalized-broadcast", "Broadcast personalizado enviado a cola", "Broadcast personalizado procesado"}
)

// messages checks the count of a bulk request's list and builds one message per
// element; the first invalid element's error names its index.
//
// build checks an element the same way whatever its prefix, which only names the
// fields in its error. So an element is built first without one, and its path
// ("recipients[3].phone") is made only for the error of an invalid element: for the
// thousands of valid ones the paths would be most of the work.
func messages[T any](list string, items []T, build func(prefix string, item T) (shared.Message, error)) ([]shared.Message, error) {
	if err := shared.CountRecipients(list, len(items)); err != nil {
		return nil, err
	}
	msgs := make([]shared.Message, len(items))
	for i, item := range items {
		m, err := build("", item)
		if err != nil {
			if _, named := build(shared.Index(list, i), item); named != nil {
				err = named
			}
			return nil, err
		}
		msgs[i] = m
	}
	return msgs, nil
}

func (s *Server) sendBulk(w http.ResponseWriter, r *http.Request) error {
	var req shared.SendBulkRequest
	if err := decode(w, r, maxBulkBody, &req); err != nil {
		return err
	}
	msgs, err := messages("recipients", req.Recipients, func(p string, rc shared.BulkTextRecipient) (shared.Message, error) {
		return shared.TextMessage(p, rc.Phone, rc.Message)
	})
	if err != nil {
		return err
	}
	return s.sendMany(w, r, msgs, shared.QueueOr(req.UseQueue, true), sendBulkTexts)
}

func (s *Server) sendBulkList(w http.ResponseWriter, r *http.Request) error {
	var req shared.SendBulkListRequest
	if err := decode(w, r, maxBulkBody, &req); err != nil {
		return err
	}
	if err := shared.ValidateList(req.ListFields, false); err != nil {
		return err
	}
	msgs, err := messages("recipients", req.Recipients, func(p string, rc shared.BodyRecipient) (shared.Message, error) {
		return shared.ListMessage(p, rc.Phone, rc.BodyText, req.ListFields)
	})
	if err != nil {
		return err
	}
	return s.sendMany(w, r, msgs, shared.QueueOr(req.UseQueue, true), sendBulkListTexts)
}

func (s *Server) sendBulkInteractive(w http.ResponseWriter, r *http.Request) error {
	var req shared.SendBulkInteractiveRequest
	if err := decode(w, r, maxBulkBody, &req); err != nil {
		return err
	}
	msgs, err := messages("recipients", req.Recipients, func(p string, rc shared.InteractiveRecipient) (shared.Message, error) {
		return shared.InteractiveMessage(p, rc.Phone, rc.InteractiveFields)
	})
	if err != nil {
		return err
	}
	return s.sendMany(w, r, msgs, shared.QueueOr(req.UseQueue, true), sendBulkInteractiveTexts)
}

func (s *Server) sendBroadcastInteractive(w http.ResponseWriter, r *http.Request) error {
	var req shared.BroadcastInteractiveRequest
	if err := decode(w, r, maxBulkBody, &req); err != nil {
		return err
	}
	msgs, err := messages("phones", req.Phones, func(p string, phone string) (shared.Message, error) {
		if err := shared.ValidatePhone(p, phone); err != nil {
			return shared.Message{}, err
		}
		return shared.InteractiveMessage("", phone, req.InteractiveFields)
	})
	if err != nil {
		return err
	}
	return s.sendMany(w, r, msgs, shared.QueueOr(req.UseQueue, true), broadcastInteractiveTexts)
}

func (s *Server) sendPersonalizedBroadcast(w http.ResponseWriter, r *http.Request) error {
	var req shared.PersonalizedBroadcastRequest
	if err := decode(w, r, maxBulkBody, &req); err != nil {
		return err
	}
	msgs, err := messages("recipients", req.Recipients, func(p string, rc shared.BodyRecipient) (shared.Message, error) {
		f := req.InteractiveFields
		f.BodyText = rc.BodyText
		if rc.ButtonURL != "" {
			f.ButtonURL = rc.ButtonURL
		}
		return shared.InteractiveMessage(p, rc.Phone, f)
	})
	if err != nil {
		return err
	}
	return s.sendMany(w, r, msgs, shared.QueueOr(req.UseQueue, true), personalizedBroadcastTexts)
}

// sendMany starts one task for msgs. Queued, it answers the task_id at once; without a
// queue it waits for the same workflow and answers the contract's "Sin Cola" result.
func (s *Server) sendMany(w http.ResponseWriter, r *http.Request, msgs []shared.Message, queue bool, t bulk) error {
	id, err := s.startTask(r.Context(), t.kind, msgs)
	if err != nil {
		return err
	}
	if queue {
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": t.queued, "task_id": id})
		return nil
	}
	var res shared.TaskResult
	if err := s.Temporal.GetWorkflow(r.Context(), id, "").Get(r.Context(), &res); err != nil {
		if r.Context().Err() != nil {
			return shared.Wrap(shared.KindUnavailable, err, "La solicitud terminó antes que la tarea "+id+"; consulte /api/task-status/"+id)
		}
		return shared.Wrap(shared.KindUnavailable, err, "La tarea "+id+" no terminó; consulte /api/task-status/"+id)
	}
	errs := res.Errors
	if errs == nil {
		errs = []shared.RecipientError{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"success": true,
		"message": t.processed,
		"task_id": id,
		"result": map[string]any{
			"total": res.Total, "successful": res.Sent, "failed": res.Failed, "errors": errs,
		},
	})
	return nil
}

// startTask stages msgs in Redis under a new task id and starts its workflow. The
// request's task options (see sendRequest) give the id derived from an
// Idempotency-Key and send_at.
func (s *Server) startTask(ctx context.Context, kind string, msgs []shared.Message) (string, error) {
	opts := taskOptsOf(ctx)
	id := opts.id
	if id == "" {
		id = uuid.NewString()
	} else if s.taskExists(ctx, id) {
		// A retry whose first attempt started the task (its answer was lost): the same
		// task, staged once.
		return id, nil
	}
	ttl := stagingTTL
	if opts.sendAt != nil {
		// The recipients wait with the task.
		ttl += time.Until(*opts.sendAt)
	}
	if err := s.Store.StageMessages(ctx, id, msgs, ttl); err != nil {
		return "", shared.Wrap(shared.KindUnavailable, err, "No se pudo encolar la tarea: Redis no está disponible")
	}
	created := s.Now().UTC()
	in := shared.BulkInput{
		TaskID:     id,
		Kind:       kind,
		Total:      len(msgs),
		MaxWorkers: s.Config.BulkMaxWorkers,
		Media:      shared.DistinctMedia(msgs),
		CreatedAt:  created.Truncate(time.Second),
		SendAt:     opts.sendAt,
		Indexed:    s.indexed(ctx),
	}
	// A Temporal cluster that went away makes the SDK retry; the client gets a 503
	// instead of waiting on it.
	sctx, cancel := context.WithTimeout(ctx, temporalTimeout)
	defer cancel()
	_, err := s.Temporal.ExecuteWorkflow(sctx, startOptions(in, created), shared.BulkWorkflowName, in)
	if err != nil && in.Indexed && s.searchAttrsRefused(err) {
		// Registered but not yet known to this frontend (its cache refreshes on its own
		// schedule): the task starts unindexed rather than not at all.
		in.Indexed = false
		_, err = s.Temporal.ExecuteWorkflow(sctx, startOptions(in, created), shared.BulkWorkflowName, in)
	}
	if err != nil {
		return "", shared.Wrap(shared.KindUnavailable, err, "No se pudo encolar la tarea: Temporal no está disponible")
	}
	return id, nil
}
