package sandbox

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// WABAID is the WhatsApp Business Account id in every webhook envelope.
	WABAID = "102000000000001"
	// DisplayPhoneNumber is the sandbox number shown in webhooks and GET /{phone-number-id}.
	DisplayPhoneNumber = "15550001234"

	webhookWorkers = 8
	webhookQueue   = 1 << 16 // statuses waiting for their time; beyond it they are dropped
	webhookBatch   = 50      // statuses due together may share one POST, as Meta may batch
	webhookTimeout = 10 * time.Second
)

// statusEvent is one status of one accepted message, due at a given time.
type statusEvent struct {
	due      time.Time
	step     int // index in the message's statuses
	wamid    string
	to       string
	pnid     string
	opaque   string
	category string
	// fate is what the message comes to (its statuses, drawn from the plan when it was
	// accepted); failCode the code of its failed status.
	fate     fate
	failCode int
}

// fate is the sequence of statuses of one message.
type fate byte

const (
	fateRead      fate = iota // sent, delivered, read
	fateDelivered             // sent, delivered: never read
	fateFailed                // sent, failed: Meta accepted it and could not deliver it
)

var fateStatuses = map[fate][]string{
	fateRead:      {"sent", "delivered", "read"},
	fateDelivered: {"sent", "delivered"},
	fateFailed:    {"sent", "failed"},
}

func (ev statusEvent) status() string { return fateStatuses[ev.fate][ev.step] }

// eventHeap orders pending statuses by when they are due.
type eventHeap []statusEvent

func (h eventHeap) Len() int           { return len(h) }
func (h eventHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h eventHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)        { *h = append(*h, x.(statusEvent)) }
func (h *eventHeap) Pop() any {
	old := *h
	ev := old[len(old)-1]
	*h = old[:len(old)-1]
	return ev
}

// webhooks posts status updates through a bounded pool. Every accepted message enters the
// pending queue without blocking; the next status of a message is queued only after the
// previous one was posted, so each message is seen in its order (sent -> delivered ->
// read, or sent -> failed), each status after its own delay (the StatusPlan).
type webhooks struct {
	url    string
	secret []byte
	plan   atomic.Pointer[StatusPlan]
	client *http.Client
	log    *slog.Logger

	pending chan statusEvent
	work    chan statusEvent
	sent    atomic.Int64
	failed  atomic.Int64
	posted  postedLog

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newWebhooks(url, secret string, plan StatusPlan, log *slog.Logger) *webhooks {
	ctx, cancel := context.WithCancel(context.Background())
	h := &webhooks{
		url:    url,
		secret: []byte(secret),
		client: &http.Client{
			Timeout:   webhookTimeout,
			Transport: &http.Transport{MaxIdleConnsPerHost: webhookWorkers, IdleConnTimeout: 30 * time.Second},
		},
		log:     log,
		pending: make(chan statusEvent, webhookQueue),
		work:    make(chan statusEvent, webhookBatch),
		cancel:  cancel,
	}
	h.plan.Store(&plan)
	h.posted.reset()
	h.wg.Add(1 + webhookWorkers)
	go h.dispatch(ctx)
	for range webhookWorkers {
		go h.worker(ctx)
	}
	return h
}

// accepted queues the statuses of a message Meta just accepted, its fate drawn from the
// plan in force.
func (h *webhooks) accepted(ev statusEvent) {
	p := h.plan.Load()
	ev.fate, ev.failCode = p.fate(ev.to)
	ev.due = time.Now().Add(p.delay(ev))
	h.enqueue(ev)
}

// enqueue never blocks: a full queue drops the status and counts it failed.
func (h *webhooks) enqueue(ev statusEvent) {
	select {
	case h.pending <- ev:
	default:
		h.failed.Add(1)
	}
}

// dispatch releases pending statuses when they are due, earliest first: statuses wait
// different delays, so arrival order is not due order.
func (h *webhooks) dispatch(ctx context.Context) {
	defer h.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var q eventHeap
	for {
		var wake <-chan time.Time
		var out chan statusEvent
		var head statusEvent
		if len(q) > 0 {
			if d := time.Until(q[0].due); d > 0 {
				timer.Reset(d)
				wake = timer.C
			} else {
				out, head = h.work, q[0]
			}
		}
		select {
		case <-ctx.Done():
			return
		case ev := <-h.pending:
			if len(q) >= webhookQueue {
				h.failed.Add(1)
				continue
			}
			heap.Push(&q, ev)
		case <-wake:
		case out <- head:
			heap.Pop(&q)
		}
		if wake != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func (h *webhooks) worker(ctx context.Context) {
	defer h.wg.Done()
	batch := make([]statusEvent, 0, webhookBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case ev := <-h.work:
			batch = append(batch, ev)
		}
	fill:
		for len(batch) < webhookBatch {
			select {
			case ev := <-h.work:
				batch = append(batch, ev)
			default:
				break fill
			}
		}
		if err := h.post(ctx, batch); err != nil {
			h.failed.Add(int64(len(batch)))
			h.log.Debug("status webhook failed", "url", h.url, "statuses", len(batch), "err", err)
		} else {
			h.sent.Add(int64(len(batch)))
			for _, ev := range batch {
				h.posted.note(ev.wamid, ev.status(), ev.failCode)
			}
		}
		now := time.Now()
		p := h.plan.Load()
		for _, ev := range batch {
			if ev.step+1 < len(fateStatuses[ev.fate]) {
				ev.step++
				ev.due = now.Add(p.delay(ev))
				h.enqueue(ev)
			}
		}
	}
}

type webhookEnvelope struct {
	Object string         `json:"object"`
	Entry  []webhookEntry `json:"entry"`
}

type webhookEntry struct {
	ID      string          `json:"id"`
	Changes []webhookChange `json:"changes"`
}

type webhookChange struct {
	Field string       `json:"field"`
	Value webhookValue `json:"value"`
}

type webhookValue struct {
	MessagingProduct string          `json:"messaging_product"`
	Metadata         webhookMetadata `json:"metadata"`
	Statuses         []webhookStatus `json:"statuses"`
}

type webhookMetadata struct {
	DisplayPhoneNumber string `json:"display_phone_number"`
	PhoneNumberID      string `json:"phone_number_id"`
}

type webhookStatus struct {
	ID                    string         `json:"id"`
	Status                string         `json:"status"`
	Timestamp             string         `json:"timestamp"`
	RecipientID           string         `json:"recipient_id"`
	BizOpaqueCallbackData string         `json:"biz_opaque_callback_data,omitempty"`
	Pricing               *pricing       `json:"pricing,omitempty"`
	Errors                []statusErrObj `json:"errors,omitempty"`
}

// statusErrObj is an errors[] item of a failed status, Meta's shape.
type statusErrObj struct {
	Code      int               `json:"code"`
	Title     string            `json:"title"`
	Message   string            `json:"message"`
	ErrorData map[string]string `json:"error_data"`
	Href      string            `json:"href"`
}

type pricing struct {
	Billable     bool   `json:"billable"`
	PricingModel string `json:"pricing_model"`
	Type         string `json:"type"`
	Category     string `json:"category"`
}

// post sends one envelope per phone number id (Meta routes by metadata.phone_number_id),
// signed with the app secret over the exact bytes sent.
func (h *webhooks) post(ctx context.Context, batch []statusEvent) error {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	byPNID := make(map[string][]webhookStatus)
	var order []string
	for _, ev := range batch {
		st := webhookStatus{
			ID:                    ev.wamid,
			Status:                ev.status(),
			Timestamp:             ts,
			RecipientID:           ev.to,
			BizOpaqueCallbackData: ev.opaque,
		}
		switch {
		case ev.step == 0:
			st.Pricing = &pricing{Billable: true, PricingModel: "PMP", Type: "regular", Category: ev.category}
		case st.Status == "failed":
			title := titles[ev.failCode]
			st.Errors = []statusErrObj{{Code: ev.failCode, Title: title, Message: title,
				ErrorData: map[string]string{"details": failedDetails(ev.failCode)},
				Href:      "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}}
		}
		if _, seen := byPNID[ev.pnid]; !seen {
			order = append(order, ev.pnid)
		}
		byPNID[ev.pnid] = append(byPNID[ev.pnid], st)
	}
	env := webhookEnvelope{Object: "whatsapp_business_account"}
	for _, pnid := range order {
		env.Entry = append(env.Entry, webhookEntry{ID: WABAID, Changes: []webhookChange{{
			Field: "messages",
			Value: webhookValue{
				MessagingProduct: "whatsapp",
				Metadata:         webhookMetadata{DisplayPhoneNumber: DisplayPhoneNumber, PhoneNumberID: pnid},
				Statuses:         byPNID[pnid],
			},
		}}})
	}
	body, err := json.Marshal(env)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if len(h.secret) > 0 {
		req.Header.Set("X-Hub-Signature-256", Sign(h.secret, body))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &statusError{code: resp.StatusCode}
	}
	return nil
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "webhook answered HTTP " + strconv.Itoa(e.code) }

// Sign returns the X-Hub-Signature-256 value Meta sends: "sha256=" and the hex
// HMAC-SHA256 of body keyed with the app secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (h *webhooks) close() {
	h.cancel()
	h.wg.Wait()
	h.client.CloseIdleConnections()
}
