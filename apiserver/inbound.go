package apiserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/wagate/wagate/internal/metrics"
	"github.com/wagate/wagate/shared"
)

// handleWebhookVerify answers Meta's subscription check, GET /webhook: the raw
// hub.challenge when hub.mode is "subscribe" and hub.verify_token equals
// WEBHOOK_VERIFY_TOKEN, else 403. An unset token never matches.
func (s *Server) handleWebhookVerify(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	want := s.Config.WebhookVerifyToken
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if q.Get("hub.mode") != "subscribe" || want == "" ||
		subtle.ConstantTimeCompare([]byte(q.Get("hub.verify_token")), []byte(want)) != 1 {
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, "Forbidden")
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, q.Get("hub.challenge"))
}

// webhook answers POST /webhook. It checks the signature of the raw body, stores every
// status item (monotonically) and every message, each message once, and appends each
// new message to the inbound log; it answers 200 {"success":true} once Redis holds all
// of that, 503 when Redis cannot take it (Meta then retries the whole delivery, whose
// already queued messages are recognised as repeats). The forwarder relays the logged
// messages to the relay workflow asynchronously, so Temporal's state plays no part.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"success": false,
				"error": fmt.Sprintf("El cuerpo del webhook supera el máximo de %d bytes", maxWebhookBody)})
			return nil
		}
		return shared.Invalidf("No se pudo leer el cuerpo del webhook")
	}
	// With a secret every signature is checked; an unsigned body passes only where
	// unsigned webhooks are allowed explicitly (the dev stack, for the contract's curl).
	sig := r.Header.Get("X-Hub-Signature-256")
	if secret := s.Config.WhatsAppAppSecret; secret != "" && (sig != "" || !s.Config.WebhookAllowUnsigned) && !validSignature(secret, body, sig) {
		return shared.Errorf(shared.KindUnauthorized, "Firma X-Hub-Signature-256 ausente o inválida")
	}
	events, statuses, err := splitWebhookRelay(body, s.Config.RelayStatuses)
	if err != nil {
		return err
	}
	ctx := r.Context()
	// Every status of the delivery in one round trip: applying one twice (Meta's retry
	// after a 503) changes nothing.
	if _, err := s.Store.ApplyStatuses(ctx, statuses); err != nil {
		return shared.Wrap(shared.KindUnavailable, err, "No se pudo registrar el estado; reintente")
	}
	if err := s.enqueueInbound(ctx, events...); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
	metrics.InboundStatuses(len(statuses))
	metrics.WebhookAck(start)
	return nil
}

// validSignature checks header against "sha256=" + hex HMAC-SHA256(secret, body).
func validSignature(secret string, body []byte, header string) bool {
	got, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	sig, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal(sig, mac.Sum(nil))
}

// enqueueInbound stores every event once and appends the new ones' ids to the inbound
// log, in one Redis script; the forwarder takes them from there to the relay workflow.
// Repeated ids are accepted and not queued again. Temporal plays no part: once Redis
// holds the events they are durable (AOF) and are forwarded whenever Temporal answers.
func (s *Server) enqueueInbound(ctx context.Context, evs ...shared.InboundEvent) error {
	if len(evs) == 0 {
		return nil
	}
	now := s.Now().UnixMilli()
	for i := range evs {
		evs[i].AcceptedAt = now // for the relay's delivery lag
	}
	claimed, err := s.Store.AcceptInbounds(ctx, evs, shared.InboundDedupeTTL, shared.InboundEventTTL)
	if err != nil {
		return shared.Wrap(shared.KindUnavailable, err, "No se pudo guardar el mensaje entrante; reintente")
	}
	n := 0
	for _, c := range claimed {
		if c {
			n++
		}
	}
	metrics.InboundAccepted(n, len(claimed)-n)
	return nil
}

func relayStartOptions() client.StartWorkflowOptions {
	return client.StartWorkflowOptions{ID: shared.RelayWorkflowID, TaskQueue: shared.TaskQueue}
}

// object is one level of the webhook JSON, its unknown fields kept as they came.
type object = map[string]json.RawMessage

// splitWebhook splits a webhook delivery into one event per message and one status per
// status item. Each event is the delivery narrowed to its message: the same envelope,
// entry and change, with value.messages holding that message alone and value.contacts
// the sender's contact; statuses are left out. Message types are not interpreted, so
// none is ever rejected. Only a body that is not a JSON object is an error; parts of
// it that do not have the expected shape are skipped.
func splitWebhook(body []byte) ([]shared.InboundEvent, []shared.DeliveryStatus, error) {
	return splitWebhookRelay(body, false)
}

// splitWebhookRelay is splitWebhook that, with relayStatuses, also makes one event per
// status item (RELAY_STATUSES): the delivery narrowed to that status the way a message
// is narrowed, value.statuses holding it alone, after the messages of its change.
func splitWebhookRelay(body []byte, relayStatuses bool) ([]shared.InboundEvent, []shared.DeliveryStatus, error) {
	var top object
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		if err == nil {
			err = errors.New("null")
		}
		return nil, nil, shared.Invalidf("JSON inválido: %s", shared.Cut(err.Error()))
	}
	var events []shared.InboundEvent
	var statuses []shared.DeliveryStatus
	for _, entry := range objects(top["entry"]) {
		for _, change := range objects(entry["changes"]) {
			var value object
			if json.Unmarshal(change["value"], &value) != nil || value == nil {
				continue
			}
			items := statusItems(value["statuses"])
			statuses = append(statuses, items...)
			contacts := objects(value["contacts"])
			for _, msg := range rawItems(value["messages"]) {
				ev, ok := narrow(top, entry, change, value, contacts, msg)
				if ok {
					events = append(events, ev)
				}
			}
			if relayStatuses {
				events = append(events, narrowStatuses(top, entry, change, value)...)
			}
		}
	}
	return events, statuses, nil
}

func rawItems(raw json.RawMessage) []json.RawMessage {
	var items []json.RawMessage
	_ = json.Unmarshal(raw, &items)
	return items
}

func objects(raw json.RawMessage) []object {
	var out []object
	for _, item := range rawItems(raw) {
		var o object
		if json.Unmarshal(item, &o) == nil && o != nil {
			out = append(out, o)
		}
	}
	return out
}

// narrow builds the event of one message.
func narrow(top, entry, change, value object, contacts []object, msg json.RawMessage) (shared.InboundEvent, bool) {
	var head struct {
		ID   string `json:"id"`
		From string `json:"from"`
	}
	if json.Unmarshal(msg, &head) != nil {
		return shared.InboundEvent{}, false
	}
	if head.ID == "" {
		// Meta always sends the wamid; without one, the content itself is the dedupe key.
		sum := sha256.Sum256(msg)
		head.ID = "noid-" + hex.EncodeToString(sum[:16])
	}
	var sender []object
	for _, c := range contacts {
		var waID string
		if json.Unmarshal(c["wa_id"], &waID) == nil && waID == head.From {
			sender = append(sender, c)
		}
	}
	if len(sender) == 0 && len(contacts) == 1 {
		// Meta may normalise wa_id differently from "from" (BR and MX numbers).
		sender = contacts
	}

	v := with(value, "messages", []json.RawMessage{msg})
	delete(v, "statuses")
	if sender != nil {
		v["contacts"] = mustJSON(sender)
	} else {
		delete(v, "contacts")
	}
	c := with(change, "value", v)
	e := with(entry, "changes", []object{c})
	t := with(top, "entry", []object{e})
	return shared.InboundEvent{ID: head.ID, From: head.From, Event: mustJSON(t)}, true
}

// with returns a copy of o with key set to v.
func with(o object, key string, v any) object {
	out := make(object, len(o)+1)
	for k, raw := range o {
		out[k] = raw
	}
	out[key] = mustJSON(v)
	return out
}

// mustJSON marshals values built from already valid JSON, which cannot fail.
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("apiserver: marshal webhook part: %v", err))
	}
	return b
}

// statusItems reads value.statuses.
func statusItems(raw json.RawMessage) []shared.DeliveryStatus {
	var out []shared.DeliveryStatus
	for _, o := range objects(raw) {
		st := shared.DeliveryStatus{
			ID:                    text(o["id"]),
			Status:                text(o["status"]),
			Timestamp:             text(o["timestamp"]),
			RecipientID:           text(o["recipient_id"]),
			BizOpaqueCallbackData: text(o["biz_opaque_callback_data"]),
			Errors:                o["errors"],
		}
		if st.ID == "" || st.Status == "" {
			continue
		}
		out = append(out, st)
	}
	return out
}

// text reads a JSON string, or a number as its literal (Meta documents timestamps as
// strings, but tolerating numbers costs nothing).
func text(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// narrowStatuses builds one event per status item of value: the envelope, entry and
// change of the delivery, value.statuses holding that status alone, no messages or
// contacts. Its id is "status:<wamid>:<status>", Meta's dedupe key for statuses, so a
// repeated delivery is relayed once; From is the recipient, whose cache entry the relay
// adds as it does for a sender.
func narrowStatuses(top, entry, change, value object) []shared.InboundEvent {
	var out []shared.InboundEvent
	for _, raw := range rawItems(value["statuses"]) {
		var o object
		if json.Unmarshal(raw, &o) != nil || o == nil {
			continue
		}
		id, status := text(o["id"]), text(o["status"])
		if id == "" || status == "" {
			continue
		}
		v := with(value, "statuses", []json.RawMessage{raw})
		delete(v, "messages")
		delete(v, "contacts")
		c := with(change, "value", v)
		e := with(entry, "changes", []object{c})
		t := with(top, "entry", []object{e})
		out = append(out, shared.InboundEvent{ID: "status:" + id + ":" + status, From: text(o["recipient_id"]), Event: mustJSON(t)})
	}
	return out
}
