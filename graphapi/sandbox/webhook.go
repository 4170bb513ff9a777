package sandbox

import (
	"bytes"
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

var statusOrder = []string{"sent", "delivered", "read"}

// statusEvent is one status of one accepted message, due at a given time.
type statusEvent struct {
	due      time.Time
	step     int // index in statusOrder
	wamid    string
	to       string
	pnid     string
	opaque   string
	category string
}

// webhooks posts status updates through a bounded pool. Every accepted message enters the
// pending queue without blocking; the next status of a message is queued only after the
// previous one was posted, so each message is seen sent -> delivered -> read.
type webhooks struct {
	url    string
	secret []byte
	delay  time.Duration
	client *http.Client
	log    *slog.Logger

	pending chan statusEvent
	work    chan statusEvent
	sent    atomic.Int64
	failed  atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newWebhooks(url, secret string, delay time.Duration, log *slog.Logger) *webhooks {
	ctx, cancel := context.WithCancel(context.Background())
	h := &webhooks{
		url:    url,
		secret: []byte(secret),
		delay:  delay,
		client: &http.Client{
			Timeout:   webhookTimeout,
			Transport: &http.Transport{MaxIdleConnsPerHost: webhookWorkers, IdleConnTimeout: 30 * time.Second},
		},
		log:     log,
		pending: make(chan statusEvent, webhookQueue),
		work:    make(chan statusEvent, webhookBatch),
		cancel:  cancel,
	}
	h.wg.Add(1 + webhookWorkers)
	go h.dispatch(ctx)
	for range webhookWorkers {
		go h.worker(ctx)
	}
	return h
}

// enqueue never blocks: a full queue drops the status and counts it failed.
func (h *webhooks) enqueue(ev statusEvent) {
	select {
	case h.pending <- ev:
	default:
		h.failed.Add(1)
	}
}

// dispatch releases pending statuses when they are due. The queue is nearly in due order
// because every status waits the same delay, so waiting on its head is enough.
func (h *webhooks) dispatch(ctx context.Context) {
	defer h.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var ev statusEvent
		select {
		case <-ctx.Done():
			return
		case ev = <-h.pending:
		}
		if d := time.Until(ev.due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		select {
		case <-ctx.Done():
			return
		case h.work <- ev:
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
		}
		now := time.Now()
		for _, ev := range batch {
			if ev.step+1 < len(statusOrder) {
				ev.step++
				ev.due = now.Add(h.delay)
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
	ID                    string   `json:"id"`
	Status                string   `json:"status"`
	Timestamp             string   `json:"timestamp"`
	RecipientID           string   `json:"recipient_id"`
	BizOpaqueCallbackData string   `json:"biz_opaque_callback_data,omitempty"`
	Pricing               *pricing `json:"pricing,omitempty"`
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
			Status:                statusOrder[ev.step],
			Timestamp:             ts,
			RecipientID:           ev.to,
			BizOpaqueCallbackData: ev.opaque,
		}
		if ev.step == 0 {
			st.Pricing = &pricing{Billable: true, PricingModel: "PMP", Type: "regular", Category: ev.category}
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
