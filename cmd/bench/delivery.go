package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/redisstore"
)

// The delivery tracking rows: status webhooks posted to the production apiserver at a
// steady rate for the recipients of a real bulk task (their real wamids and opaque
// data), each answered as Meta needs it; the task's counts checked against what was
// posted; and what per-recipient tracking costs in Redis for a 100k-recipient task.
const (
	deliveryBegin = "<!-- delivery:begin -->"
	deliveryEnd   = "<!-- delivery:end -->"
	// deliveryRate is the status webhooks per second posted, one status each (Meta's
	// most common delivery).
	deliveryRate = 500
	// deliveryN recipients of the task whose statuses are posted: about 2.5 statuses
	// each, about 30 s at deliveryRate.
	deliveryN = 6000
	// deliveryMemoryN is the task size of the memory row.
	deliveryMemoryN = 100_000
)

type deliveryResult struct {
	n, webhooks                int
	rate                       float64
	p50, p99, max              time.Duration
	wantDelivered, wantRead    int
	wantFailed                 int
	gotDelivered, gotRead      int
	gotFailed                  int
	bytesPerRecipient          float64
	memoryN                    int
	apiserverRSS, redisUsedMiB int64
}

// runDeliveryOnly measures the delivery rows and rewrites only their section of -out.
func (b *bench) runDeliveryOnly(ctx context.Context, o options) error {
	md, err := b.deliverySection(ctx)
	if err != nil {
		return err
	}
	return spliceInto(o.out, md, spliceDelivery, "the delivery tracking rows")
}

// spliceDelivery replaces the delivery section of a report, or appends it.
func spliceDelivery(report, section string) string {
	return spliceMarked(report, section, deliveryBegin, deliveryEnd)
}

func (b *bench) deliverySection(ctx context.Context) (string, error) {
	r, err := b.measureDelivery(ctx)
	if err != nil {
		return "", err
	}
	fmt.Printf("delivery tracking: %d status webhooks at %.0f/s, ack p50 %.1f ms p99 %.1f ms max %.1f ms; counts delivered %d/%d read %d/%d failed_after_send %d/%d; %.1f bytes per recipient for %d recipients\n",
		r.webhooks, r.rate, ms(r.p50), ms(r.p99), ms(r.max), r.gotDelivered, r.wantDelivered, r.gotRead, r.wantRead, r.gotFailed, r.wantFailed,
		r.bytesPerRecipient, r.memoryN)
	var sb strings.Builder
	sb.WriteString(deliveryBegin + "\n## Delivery tracking\n\n")
	fmt.Fprintf(&sb, "Status webhooks posted to the production apiserver (signed, one status each, the way Meta mostly\n")
	fmt.Fprintf(&sb, "delivers them) at %d per second for the %d recipients of a real bulk task, with their wamids and\n", deliveryRate, r.n)
	fmt.Fprintf(&sb, "`biz_opaque_callback_data`: sent for all, then delivered or failed, then read for some; each is applied\n")
	fmt.Fprintf(&sb, "to the task's records before the webhook is answered. Memory: `redisstore.MeasureDeliveryMemory`,\n")
	fmt.Fprintf(&sb, "MEMORY USAGE of the task's records, counters and share of the wamid index after a campaign's statuses\n")
	fmt.Fprintf(&sb, "(the ledger and the staged messages, which expire an hour after the task, are not counted).\n\n")
	fmt.Fprintf(&sb, "| status webhooks | rate | ack p50 | ack p99 | ack max | delivered | read | failed after send | Redis per recipient (%dk task) |\n", r.memoryN/1000)
	fmt.Fprintf(&sb, "|---|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(&sb, "| %d | %.0f/s | %.1f ms | **%.1f ms** | %.1f ms | %d of %d | %d of %d | %d of %d | **%.1f B** |\n",
		r.webhooks, r.rate, ms(r.p50), ms(r.p99), ms(r.max), r.gotDelivered, r.wantDelivered, r.gotRead, r.wantRead,
		r.gotFailed, r.wantFailed, r.bytesPerRecipient)
	sb.WriteString("\n" + deliveryEnd + "\n")
	return sb.String(), nil
}

func (b *bench) measureDelivery(ctx context.Context) (deliveryResult, error) {
	r := deliveryResult{n: deliveryN, memoryN: deliveryMemoryN}
	saved := b.extraEnv
	b.extraEnv = append(append([]string{}, saved...), "WHATSAPP_APP_SECRET="+benchAppSecret)
	defer func() { b.extraEnv = saved }()
	b.resetSandbox(sandbox.Faults{}, 0)
	if err := b.startStack(ctx, 100); err != nil {
		return r, err
	}
	defer b.stopStack()

	id, err := b.postTask(ctx, deliveryN, "entrega")
	if err != nil {
		return r, err
	}
	if err := b.waitTask(ctx, id, 10*time.Minute); err != nil {
		return r, err
	}
	rows, err := b.recipients(ctx, id)
	if err != nil {
		return r, err
	}
	if len(rows) != deliveryN {
		return r, fmt.Errorf("the task lists %d recipients, want %d", len(rows), deliveryN)
	}

	// The statuses of each recipient: sent; then failed (3%), or delivered and, for 60%,
	// read. Posted in rounds, so a recipient's statuses go in order.
	type item struct {
		wamid, phone, status string
		index                int
	}
	var rounds [3][]item
	for _, row := range rows {
		it := item{wamid: row.WAMID, phone: row.Phone, index: row.Index}
		it.status = "sent"
		rounds[0] = append(rounds[0], it)
		switch {
		case row.Index%100 < 3:
			it.status = "failed"
			rounds[1] = append(rounds[1], it)
			r.wantFailed++
		default:
			it.status = "delivered"
			rounds[1] = append(rounds[1], it)
			r.wantDelivered++
			if row.Index%10 < 6 {
				it.status = "read"
				rounds[2] = append(rounds[2], it)
				r.wantRead++
			}
		}
	}
	var all []item
	for _, rd := range rounds {
		all = append(all, rd...)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	lat := make([]time.Duration, len(all))
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Second / deliveryRate
	for i, it := range all {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		body := statusWebhookBody(it.wamid, it.phone, it.status, id+":"+strconv.Itoa(it.index))
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.apiURL+"/webhook", strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Hub-Signature-256", sandbox.Sign([]byte(benchAppSecret), body))
			t0 := time.Now()
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("POST /webhook: status %d", resp.StatusCode)
				}
			}
			lat[i] = time.Since(t0)
			if err != nil {
				select {
				case errc <- err:
				default:
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errc:
		return r, err
	default:
	}
	r.webhooks = len(all)
	r.rate = float64(len(all)) / elapsed.Seconds()
	r.p50, r.p99, r.max = percentile(lat, 0.5), percentile(lat, 0.99), percentile(lat, 1)

	st, err := b.taskResult(ctx, id)
	if err != nil {
		return r, err
	}
	r.gotDelivered, r.gotRead, r.gotFailed = st["delivered"], st["read"], st["failed_after_send"]
	if r.gotDelivered != r.wantDelivered || r.gotRead != r.wantRead || r.gotFailed != r.wantFailed {
		return r, fmt.Errorf("task-status counts delivered %d read %d failed_after_send %d; posted %d, %d, %d",
			r.gotDelivered, r.gotRead, r.gotFailed, r.wantDelivered, r.wantRead, r.wantFailed)
	}

	// Memory, on the bench's Redis under a prefix of its own.
	rdb, err := b.redisClient()
	if err != nil {
		return r, err
	}
	defer rdb.Close()
	store := redisstore.New(rdb, "benchdl:")
	r.bytesPerRecipient, err = redisstore.MeasureDeliveryMemory(ctx, store, "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d", deliveryMemoryN)
	return r, err
}

func statusWebhookBody(wamid, phone, status, opaque string) []byte {
	st := map[string]any{"id": wamid, "status": status, "timestamp": strconv.FormatInt(time.Now().Unix(), 10),
		"recipient_id": phone, "biz_opaque_callback_data": opaque}
	if status == "failed" {
		st["errors"] = []any{map[string]any{"code": 131049, "title": "Message failed to send to maintain healthy ecosystem engagement",
			"message":    "Message failed to send to maintain healthy ecosystem engagement",
			"error_data": map[string]any{"details": "Message failed to send to maintain healthy ecosystem engagement."}}}
	}
	b, _ := json.Marshal(map[string]any{"object": "whatsapp_business_account", "entry": []any{map[string]any{
		"id": "WABA", "changes": []any{map[string]any{"field": "messages", "value": map[string]any{
			"messaging_product": "whatsapp",
			"metadata":          map[string]any{"display_phone_number": "15550559999", "phone_number_id": phoneNumberID},
			"statuses":          []any{st}}}}}}})
	return b
}

// postTask starts a send-bulk task of n recipients and returns its id.
func (b *bench) postTask(ctx context.Context, n int, tag string) (string, error) {
	recipients := make([]map[string]string, n)
	for i := range recipients {
		recipients[i] = map[string]string{"phone": fmt.Sprintf("5738%08d", i), "message": fmt.Sprintf("%s %d", tag, i)}
	}
	body, _ := json.Marshal(map[string]any{"recipients": recipients})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.apiURL+"/api/send-bulk", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		TaskID string `json:"task_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.TaskID == "" {
		return "", fmt.Errorf("send-bulk answered %d without a task_id: %v", resp.StatusCode, err)
	}
	return out.TaskID, nil
}

func (b *bench) getJSON(ctx context.Context, path string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.apiURL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (b *bench) waitTask(ctx context.Context, id string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var st struct {
			Status string `json:"status"`
		}
		if err := b.getJSON(ctx, "/api/task-status/"+id, &st); err == nil && st.Status == "SUCCESS" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("task %s not finished after %v", id, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (b *bench) taskResult(ctx context.Context, id string) (map[string]int, error) {
	var st struct {
		Result map[string]any `json:"result"`
	}
	if err := b.getJSON(ctx, "/api/task-status/"+id, &st); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for k, v := range st.Result {
		if f, ok := v.(float64); ok {
			out[k] = int(f)
		}
	}
	return out, nil
}

// recipients lists a task's recipients through the API, page by page.
func (b *bench) recipients(ctx context.Context, id string) ([]redisstore.RecipientRow, error) {
	var all []redisstore.RecipientRow
	cursor := ""
	for {
		var page struct {
			Recipients []redisstore.RecipientRow `json:"recipients"`
			Next       *string                   `json:"next_cursor"`
		}
		path := "/api/task-status/" + id + "/recipients?limit=1000"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if err := b.getJSON(ctx, path, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Recipients...)
		if page.Next == nil {
			return all, nil
		}
		cursor = *page.Next
	}
}
