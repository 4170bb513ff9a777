package main

// The inbound comparison: webhooks in, WebSocket frames out, side by side in one run.
//
// (a) a plain Redis-list relay, the replaced service's design, built here: POST /webhook
// verifies the signature, LPUSHes each message, and one loop BRPOPs it, looks its
// sender up in a numbers cache (one HGETALL, as the contract's frame needs) and writes
// it to the WebSocket consumer.
// (b) wagate: the apiserver and worker processes, the embedded Temporal server and
// Redis, relaying to the same kind of consumer.
//
// Each run: senders post signed one-message webhooks, each sender in order and waiting
// for each answer. It reports webhooks acknowledged per second and their p99, events
// relayed per second (from the first post to the last frame read), and lost, repeated
// and out-of-order events. Then the backlog: events posted to wagate while the consumer
// is down, then the consumer comes up; it reports the drain rate and the worker's peak
// memory.

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/shared"
)

const benchAppSecret = "bench-app-secret"

// The sizes of the inbound comparison: the load by default.
var (
	inboundSenders   = flag.Int("inbound-senders", 16, "inbound: concurrent webhook senders")
	inboundPerSender = flag.Int("inbound-per-sender", 125, "inbound: webhooks each sender posts in order")
	inboundBacklog   = flag.Int("inbound-backlog", 100_000, "inbound: events posted while the consumer is down (0 = skip)")
	inboundRounds    = flag.Int("inbound-rounds", 5, "inbound: alternating rounds of (a) and (b); the median is reported")
)

// appendInbound measures the inbound relays and appends their section to report.
func (b *bench) appendInbound(ctx context.Context, report string) (string, error) {
	sec, err := b.inboundSection(ctx, inboundOptions{senders: *inboundSenders, perSender: *inboundPerSender, rounds: max(1, *inboundRounds), backlog: *inboundBacklog})
	if err != nil {
		return report, err
	}
	return report + sec, nil
}

// inboundOptions sizes the inbound comparison.
type inboundOptions struct {
	senders, perSender int
	rounds             int
	backlog            int
}

// inboundRun is one relay measured under load.
type inboundRun struct {
	events                  int
	ackRate                 float64 // webhooks acknowledged per second
	ackP50, ackP99          time.Duration
	relayRate               float64 // events read by the consumer per second, from the first post
	lost, repeated, misorde int
	history                 string // the relay's history events during the load, by type
	signals, tasks          int    // signals and workflow tasks among them
}

func (r inboundRun) line(name string) string {
	return fmt.Sprintf("%s: %d events, acked %.0f/s (p50 %.1f ms, p99 %.1f ms), relayed %.0f/s, lost %d, repeated %d, out of order %d",
		name, r.events, r.ackRate, ms(r.ackP50), ms(r.ackP99), r.relayRate, r.lost, r.repeated, r.misorde)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// backlogRun is the drain of a backlog built while the consumer was down.
type backlogRun struct {
	events               int
	ackRate              float64
	ackP99               time.Duration
	firstFrame           time.Duration // from the consumer coming up to its first frame
	drain                time.Duration // from the first frame to the last
	lost, repeated, miso int
	workerRSS, apiRSS    int64
}

// inboundSection measures both relays and the backlog drain and returns the markdown
// section of the report.
func (b *bench) inboundSection(ctx context.Context, o inboundOptions) (string, error) {
	plainT, err := b.setupPlain(ctx)
	if err != nil {
		return "", fmt.Errorf("plain relay: %w", err)
	}
	defer plainT.close()
	stackT, err := b.setupWagate(ctx)
	if err != nil {
		return "", fmt.Errorf("wagate relay: %w", err)
	}
	defer stackT.close()

	// Rounds alternate (a) and (b), so that both see the same machine; the report shows
	// the median round of each.
	var plains, stacks []inboundRun
	var ratios []float64
	before, err := b.relayHistory(ctx)
	if err != nil {
		return "", err
	}
	for r := range o.rounds {
		p, err := measureLoad(ctx, plainT.url, plainT.consumer, o.senders, o.perSender, fmt.Sprintf("plain%d", r))
		if err != nil {
			return "", fmt.Errorf("plain relay: %w", err)
		}
		fmt.Println(p.line(fmt.Sprintf("inbound round %d (a) plain Redis-list relay", r+1)))
		w, err := measureLoad(ctx, stackT.url, stackT.consumer, o.senders, o.perSender, fmt.Sprintf("wagate%d", r))
		if err != nil {
			return "", fmt.Errorf("wagate relay: %w", err)
		}
		fmt.Println(w.line(fmt.Sprintf("inbound round %d (b) wagate", r+1)))
		plains, stacks, ratios = append(plains, p), append(stacks, w), append(ratios, w.relayRate/p.relayRate)
	}
	after, err := b.relayHistory(ctx)
	if err != nil {
		return "", err
	}
	plain, stack := medianRun(plains), medianRun(stacks)
	stack.history = historyDelta(before, after)
	stack.signals = after["WorkflowExecutionSignaled"] - before["WorkflowExecutionSignaled"]
	stack.tasks = after["WorkflowTaskCompleted"] - before["WorkflowTaskCompleted"]
	fmt.Println("relay history events during the rounds:", stack.history)
	fmt.Printf("inbound ratio (b)/(a) per round: %s\n", formatRatios(ratios))
	var backlog backlogRun
	if o.backlog > 0 {
		if backlog, err = b.backlog(ctx, stackT, o); err != nil {
			return "", fmt.Errorf("wagate backlog: %w", err)
		}
	}
	sec := comparisonSection(plain, stack, ratios, o)
	if backlog.events == 0 {
		return sec, nil
	}
	fmt.Printf("inbound backlog: %d events acked %.0f/s (p99 %.1f ms); drained %.0f/s (first frame %.1fs after the consumer came up); lost %d, repeated %d, out of order %d; worker peak RSS %d MiB\n",
		backlog.events, backlog.ackRate, ms(backlog.ackP99), float64(backlog.events)/backlog.drain.Seconds(), backlog.firstFrame.Seconds(),
		backlog.lost, backlog.repeated, backlog.miso, backlog.workerRSS/1024)

	var sb strings.Builder
	sb.WriteString(sec)
	fmt.Fprintf(&sb, "\n### Backlog drain\n\n")
	fmt.Fprintf(&sb, "%d events posted to wagate by %d senders while the consumer was down, then the consumer came up.\n\n", backlog.events, o.senders)
	fmt.Fprintf(&sb, "| webhooks acked/s during the outage | ack p99 | first frame after the consumer came up | drain | lost / repeated / out of order | worker peak RSS | apiserver peak RSS |\n|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(&sb, "| %.0f | %.1f ms | %.1f s | **%.0f events/s** (%.1f s) | %d / %d / %d | %d MiB | %d MiB |\n",
		backlog.ackRate, ms(backlog.ackP99), backlog.firstFrame.Seconds(), float64(backlog.events)/backlog.drain.Seconds(), backlog.drain.Seconds(),
		backlog.lost, backlog.repeated, backlog.miso, backlog.workerRSS/1024, backlog.apiRSS/1024)
	fmt.Fprintf(&sb, "\nThe drain, with no webhooks competing for Temporal, relays at %.2f of the plain relay's rate under load.\n",
		float64(backlog.events)/backlog.drain.Seconds()/plain.relayRate)
	return sb.String(), nil
}

func medianRun(runs []inboundRun) inboundRun {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b inboundRun) int { return cmp.Compare(a.relayRate, b.relayRate) })
	return s[len(s)/2]
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func formatRatios(v []float64) string {
	parts := make([]string, len(v))
	for i, r := range v {
		parts[i] = fmt.Sprintf("%.3f", r)
	}
	return strings.Join(parts, ", ")
}

// comparisonSection is the comparison part of the section.
func comparisonSection(plain, stack inboundRun, ratios []float64, o inboundOptions) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n## Inbound relay\n\n")
	command := "make bench"
	if f := flag.Lookup("command"); f != nil {
		command = f.Value.String()
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&sb, "Reproduce with `%s` (`-inbound=false` skips this section, `-workers \"\"` the bulk rows). Measured %s on %d CPUs\n",
		command, time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU())
	fmt.Fprintf(&sb, "(load average when the section was written: %s).\n\n", strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "))
	fmt.Fprintf(&sb, "%d senders at once, each posting %d signed one-message webhooks in order (waiting for each answer), to a\n", o.senders, o.perSender)
	fmt.Fprintf(&sb, "WebSocket consumer that reads every frame. Both relays ran in the same run, in %d alternating rounds (a, b, a, b…) on\n", o.rounds)
	fmt.Fprintf(&sb, "the same machine; each row is that relay's median round (by events relayed/s).\n\n")
	fmt.Fprintf(&sb, "(a) plain Redis-list relay (the replaced service's design, built into the bench): verify the signature, LPUSH,\n")
	fmt.Fprintf(&sb, "one loop BRPOPs each event, looks its sender up in a numbers cache (one HGETALL, for `save_number`/`cached_info`)\n")
	fmt.Fprintf(&sb, "and writes it to the WebSocket. No durability beyond Redis, no retry, no confirmation of frames.\n")
	fmt.Fprintf(&sb, "(b) wagate: `POST /webhook` to the apiserver process, the InboundRelay workflow and RelayInboundBatch on the worker\n")
	fmt.Fprintf(&sb, "process, embedded Temporal (SQLite) and Redis; every frame confirmed by the consumer's pong.\n\n")
	fmt.Fprintf(&sb, "Events relayed/s count from the first post to the last frame read. Out of order: a frame read before one\n")
	fmt.Fprintf(&sb, "whose webhook was acknowledged before the frame's own webhook was posted.\n\n")
	fmt.Fprintf(&sb, "| | webhooks acked/s | ack p50 | ack p99 | events relayed/s | lost / repeated / out of order |\n|---|---|---|---|---|---|\n")
	for _, r := range []struct {
		name string
		run  inboundRun
	}{{"(a) plain Redis-list relay", plain}, {"(b) wagate", stack}} {
		fmt.Fprintf(&sb, "| %s | %.0f | %.1f ms | %.1f ms | %.0f | %d / %d / %d |\n", r.name, r.run.ackRate, ms(r.run.ackP50), ms(r.run.ackP99),
			r.run.relayRate, r.run.lost, r.run.repeated, r.run.misorde)
	}
	fmt.Fprintf(&sb, "\nRatio of events relayed/s, (b)/(a), per round: %s; median **%.3f**.\n", formatRatios(ratios), median(ratios))
	events := o.rounds * o.senders * o.perSender
	fmt.Fprintf(&sb, "\n(b) relays %.0f%% of the rate at which its webhooks are acknowledged. A webhook is acknowledged once one Redis\n", 100*stack.relayRate/stack.ackRate)
	fmt.Fprintf(&sb, "script has claimed, stored and logged its event; the forwarder signals the inbound log into the one relay workflow,\n")
	fmt.Fprintf(&sb, "as many refs per signal as arrived during the previous one: %d signals (%.1f events each) and %d workflow tasks\n", stack.signals, float64(events)/float64(max(1, stack.signals)), stack.tasks)
	fmt.Fprintf(&sb, "for %d events, on the same %d CPUs as everything else.\n", events, runtime.NumCPU())
	fmt.Fprintf(&sb, "History events of the relay workflow during the %d rounds of (b), by type: %s.\n", o.rounds, stack.history)
	return sb.String()
}

// relayTarget is one relay ready to take load: where to post, the consumer it writes
// to, and how to take it down.
type relayTarget struct {
	url      string
	consumer *benchConsumer
	close    func()
}

// setupPlain starts relay (a) on the bench's Redis and warms it.
func (b *bench) setupPlain(ctx context.Context) (*relayTarget, error) {
	consumer, err := newBenchConsumer()
	if err != nil {
		return nil, err
	}
	consumer.start()
	rdb, err := b.redisClient()
	if err != nil {
		consumer.close()
		return nil, err
	}
	p := &plainRelay{rdb: rdb, key: "plainrelay:" + fmt.Sprint(time.Now().UnixNano()), ws: consumer.url()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		consumer.close()
		rdb.Close()
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(p.webhook)}
	go func() { _ = srv.Serve(ln) }()
	rctx, stop := context.WithCancel(ctx)
	loopDone := make(chan error, 1)
	go func() { loopDone <- p.loop(rctx) }()
	t := &relayTarget{url: "http://" + ln.Addr().String() + "/webhook", consumer: consumer, close: func() {
		stop()
		<-loopDone
		srv.Close()
		rdb.Close()
		consumer.close()
	}}
	if err := t.warm(ctx, "warma"); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// warm posts a few events and waits for them, so that no measurement pays start-up.
func (t *relayTarget) warm(ctx context.Context, tag string) error {
	t.consumer.reset()
	if _, err := postLoad(ctx, t.url, t.consumer, 4, 10, tag); err != nil {
		return err
	}
	return t.consumer.wait(ctx, 40, time.Minute)
}

// plainRelay is relay (a).
type plainRelay struct {
	rdb *redis.Client
	key string
	ws  string
}

func (p *plainRelay) webhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 3<<20))
	if err != nil {
		http.Error(w, `{"success":false}`, http.StatusBadRequest)
		return
	}
	if !validBenchSignature(body, r.Header.Get("X-Hub-Signature-256")) {
		http.Error(w, `{"success":false}`, http.StatusUnauthorized)
		return
	}
	var hook struct {
		Entry []struct {
			Changes []struct {
				Value struct {
					Messages []json.RawMessage `json:"messages"`
				} `json:"value"`
			} `json:"changes"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &hook); err != nil {
		http.Error(w, `{"success":false}`, http.StatusBadRequest)
		return
	}
	// One entry per message; the bench's webhooks carry one message each, so the
	// webhook itself is that message's event.
	var msgs []any
	for _, e := range hook.Entry {
		for _, c := range e.Changes {
			for range c.Value.Messages {
				msgs = append(msgs, body)
			}
		}
	}
	if len(msgs) > 0 {
		if err := p.rdb.LPush(r.Context(), p.key, msgs...).Err(); err != nil {
			http.Error(w, `{"success":false}`, http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"success":true}`)
}

func validBenchSignature(body []byte, header string) bool {
	got, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	sig, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(benchAppSecret))
	mac.Write(body)
	return hmac.Equal(sig, mac.Sum(nil))
}

// loop BRPOPs events and writes each as one frame, dialling again after a failure.
func (p *plainRelay) loop(ctx context.Context) error {
	var ws *websocket.Conn
	defer func() {
		if ws != nil {
			ws.Close()
		}
	}()
	for ctx.Err() == nil {
		v, err := p.rdb.BRPop(ctx, time.Second, p.key).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for {
			if ws == nil {
				if ws, _, err = websocket.DefaultDialer.DialContext(ctx, p.ws, nil); err != nil {
					ws = nil
					if ctx.Err() != nil {
						return nil
					}
					time.Sleep(100 * time.Millisecond)
					continue
				}
			}
			frame, err := p.frame(ctx, []byte(v[1]))
			if err != nil {
				return err
			}
			if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
				ws.Close()
				ws = nil
				continue
			}
			break
		}
	}
	return nil
}

// frame adds save_number and cached_info to an event, as the contract asks, with the
// sender looked up in the numbers cache (a hash per phone) when the event is written.
func (p *plainRelay) frame(ctx context.Context, event []byte) ([]byte, error) {
	var hook struct {
		Entry []struct {
			Changes []struct {
				Value struct {
					Messages []struct {
						From string `json:"from"`
					} `json:"messages"`
				} `json:"value"`
			} `json:"changes"`
		} `json:"entry"`
	}
	_ = json.Unmarshal(event, &hook)
	from := ""
	if len(hook.Entry) > 0 && len(hook.Entry[0].Changes) > 0 && len(hook.Entry[0].Changes[0].Value.Messages) > 0 {
		from = hook.Entry[0].Changes[0].Value.Messages[0].From
	}
	cached, err := p.rdb.HGetAll(ctx, p.key+":number:"+from).Result()
	if err != nil {
		return nil, err
	}
	info := []byte("null")
	if len(cached) > 0 {
		info, _ = json.Marshal(cached)
	}
	i := strings.LastIndexByte(string(event), '}')
	if i < 0 {
		return event, nil
	}
	out := make([]byte, 0, len(event)+len(info)+40)
	out = append(out, event[:i]...)
	out = append(out, fmt.Sprintf(`,"save_number":%t,"cached_info":%s}`, len(cached) == 0, info)...)
	return out, nil
}

// setupWagate starts fresh apiserver and worker processes that relay to a consumer of
// the bench, and warms them.
func (b *bench) setupWagate(ctx context.Context) (*relayTarget, error) {
	consumer, err := newBenchConsumer()
	if err != nil {
		return nil, err
	}
	consumer.start()
	// startStack passes its own environment on to the processes.
	var restore []func()
	for k, v := range map[string]string{"WEBSOCKET_URL": consumer.url(), "WHATSAPP_APP_SECRET": benchAppSecret} {
		old, had := os.LookupEnv(k)
		if had {
			restore = append(restore, func() { os.Setenv(k, old) })
		} else {
			restore = append(restore, func() { os.Unsetenv(k) })
		}
		os.Setenv(k, v)
	}
	err = b.startStack(ctx, 10)
	for _, f := range restore {
		f()
	}
	t := &relayTarget{url: b.apiURL + "/webhook", consumer: consumer, close: func() {
		b.stopStack()
		consumer.close()
	}}
	if err != nil {
		t.close()
		return nil, err
	}
	if err := t.warm(ctx, "warmb"); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// backlog posts o.backlog events to wagate while its consumer is down, then brings the
// consumer up and measures the drain.
func (b *bench) backlog(ctx context.Context, t *relayTarget, o inboundOptions) (backlogRun, error) {
	consumer := t.consumer
	consumer.stop()
	consumer.reset()
	per := (o.backlog + o.senders - 1) / o.senders
	start := time.Now()
	acks, err := postLoad(ctx, t.url, consumer, o.senders, per, "backlog")
	if err != nil {
		return backlogRun{}, err
	}
	posted := time.Since(start)
	n := o.senders * per
	bl := backlogRun{events: n, ackRate: float64(n) / posted.Seconds(), ackP99: percentile(acks.latencies(), 0.99)}
	up := time.Now()
	consumer.start()
	if err := consumer.wait(ctx, n, 30*time.Minute); err != nil {
		return bl, err
	}
	time.Sleep(time.Second) // a repeat would show up now
	first, last := consumer.span()
	bl.firstFrame, bl.drain = first.Sub(up), last.Sub(first)
	bl.lost, bl.repeated, bl.miso = consumer.check(acks)
	bl.workerRSS, bl.apiRSS = b.worker.peakRSS(), b.api.peakRSS()
	return bl, nil
}

// historyDelta lists, by type, the relay's history events added between two counts.
func historyDelta(before, after map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if d := after[k] - before[k]; d > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, d))
		}
	}
	return strings.Join(parts, ", ")
}

// relayHistory counts the events of every run of the relay workflow, by type.
func (b *bench) relayHistory(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	resp, err := b.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: b.dev.Namespace(), Query: "WorkflowId = '" + shared.RelayWorkflowID + "'", PageSize: 1000,
	})
	if err != nil {
		return nil, err
	}
	for _, e := range resp.Executions {
		out["runs"]++
		it := b.temporal.GetWorkflowHistory(ctx, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return nil, err
			}
			out[strings.TrimPrefix(ev.GetEventType().String(), "EVENT_TYPE_")]++
			out["total"]++
		}
	}
	return out, nil
}

// measureLoad posts the load, waits for every frame and checks them.
func measureLoad(ctx context.Context, url string, consumer *benchConsumer, senders, per int, tag string) (inboundRun, error) {
	consumer.reset()
	start := time.Now()
	acks, err := postLoad(ctx, url, consumer, senders, per, tag)
	if err != nil {
		return inboundRun{}, err
	}
	ackedIn := time.Since(start)
	n := senders * per
	if err := consumer.wait(ctx, n, 10*time.Minute); err != nil {
		return inboundRun{}, err
	}
	_, last := consumer.span()
	time.Sleep(500 * time.Millisecond) // a repeat would show up now
	lat := acks.latencies()
	r := inboundRun{events: n, ackRate: float64(n) / ackedIn.Seconds(), ackP50: percentile(lat, 0.5), ackP99: percentile(lat, 0.99),
		relayRate: float64(n) / last.Sub(start).Seconds()}
	r.lost, r.repeated, r.misorde = consumer.check(acks)
	return r, nil
}

// postRecord is one webhook: its event id, when it was posted and acknowledged.
type postRecord struct {
	id          string
	posted, ack time.Time
}

type postLog struct {
	mu      sync.Mutex
	records []postRecord
}

func (l *postLog) latencies() []time.Duration {
	out := make([]time.Duration, len(l.records))
	for i, r := range l.records {
		out[i] = r.ack.Sub(r.posted)
	}
	return out
}

// postLoad posts per signed webhooks from each of senders at once, each sender in order.
func postLoad(ctx context.Context, url string, consumer *benchConsumer, senders, per int, tag string) (*postLog, error) {
	log := &postLog{}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := fmt.Sprintf("5731%08d", s)
			for i := range per {
				if ctx.Err() != nil {
					errs <- ctx.Err()
					return
				}
				id := fmt.Sprintf("wamid.%s.%02d.%06d", tag, s, i)
				body := benchWebhook(id, from, fmt.Sprintf("%s %d", tag, i))
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(string(body)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Hub-Signature-256", sandbox.Sign([]byte(benchAppSecret), body))
				posted := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ack := time.Now()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("POST /webhook %s: status %d", id, resp.StatusCode)
					return
				}
				log.mu.Lock()
				log.records = append(log.records, postRecord{id: id, posted: posted, ack: ack})
				log.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return log, err
	}
	return log, nil
}

func benchWebhook(id, from, body string) []byte {
	return []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"value":{`+
		`"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550559999","phone_number_id":%q},`+
		`"contacts":[{"profile":{"name":"Cliente"},"wa_id":%q}],`+
		`"messages":[{"from":%q,"id":%q,"timestamp":"1705491000","text":{"body":%q},"type":"text"}]},"field":"messages"}]}]}`,
		phoneNumberID, from, from, id, body))
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// benchConsumer is the WebSocket consumer both relays write to. It records the message
// id of every frame with the time it was read. It can stop (refusing connections) and
// start again on the same port.
type benchConsumer struct {
	addr string

	mu     sync.Mutex
	srv    *http.Server
	conns  map[*websocket.Conn]bool
	ids    []string
	times  []time.Time
	notify chan struct{}
}

func newBenchConsumer() (*benchConsumer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	return &benchConsumer{addr: addr, conns: map[*websocket.Conn]bool{}, notify: make(chan struct{}, 1)}, nil
}

func (c *benchConsumer) url() string { return "ws://" + c.addr + "/ws" }

func (c *benchConsumer) start() {
	var ln net.Listener
	var err error
	for range 100 { // the port may linger briefly after stop
		if ln, err = net.Listen("tcp", c.addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		panic(fmt.Sprintf("bench consumer: listen %s: %v", c.addr, err))
	}
	up := websocket.Upgrader{ReadBufferSize: 64 << 10}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c.mu.Lock()
		c.conns[ws] = true
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			delete(c.conns, ws)
			c.mu.Unlock()
			ws.Close()
		}()
		for {
			typ, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if typ != websocket.TextMessage {
				continue
			}
			id := frameID(msg)
			now := time.Now()
			c.mu.Lock()
			c.ids = append(c.ids, id)
			c.times = append(c.times, now)
			c.mu.Unlock()
			select {
			case c.notify <- struct{}{}:
			default:
			}
		}
	})}
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// frameID reads the message id of a frame: a narrowed webhook (wagate) or the message
// itself (the plain relay).
func frameID(msg []byte) string {
	if id, err := shared.RelayedMessageID(msg); err == nil {
		return id
	}
	var f struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(msg, &f)
	return f.ID
}

func (c *benchConsumer) stop() {
	c.mu.Lock()
	srv := c.srv
	c.srv = nil
	for ws := range c.conns {
		ws.Close()
	}
	c.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func (c *benchConsumer) close() { c.stop() }

func (c *benchConsumer) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids, c.times = nil, nil
}

func (c *benchConsumer) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

func (c *benchConsumer) span() (first, last time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.times) == 0 {
		return
	}
	return c.times[0], c.times[len(c.times)-1]
}

// wait waits until n frames were read.
func (c *benchConsumer) wait(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.After(timeout)
	for c.count() < n {
		select {
		case <-c.notify:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			return fmt.Errorf("consumer read %d of %d frames in %v", c.count(), n, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// check compares the frames read with the webhooks acknowledged: events never read,
// read more than once, and read out of order (before an event whose webhook was
// acknowledged before this event's webhook was posted).
func (c *benchConsumer) check(l *postLog) (lost, repeated, misordered int) {
	c.mu.Lock()
	ids := slices.Clone(c.ids)
	c.mu.Unlock()
	pos := map[string]int{}
	for i, id := range ids {
		if _, ok := pos[id]; ok {
			repeated++
			continue
		}
		pos[id] = i
	}
	recs := slices.Clone(l.records)
	for _, r := range recs {
		if _, ok := pos[r.id]; !ok {
			lost++
		}
	}
	// For each event, the latest position among the events acknowledged before it was
	// posted must come before its own.
	byAck := slices.Clone(recs)
	sort.Slice(byAck, func(i, j int) bool { return byAck[i].ack.Before(byAck[j].ack) })
	prefixMax := make([]int, len(byAck))
	m := -1
	for i, r := range byAck {
		if p, ok := pos[r.id]; ok && p > m {
			m = p
		}
		prefixMax[i] = m
	}
	for _, r := range recs {
		p, ok := pos[r.id]
		if !ok {
			continue
		}
		k := sort.Search(len(byAck), func(i int) bool { return !byAck[i].ack.Before(r.posted) })
		if k > 0 && prefixMax[k-1] > p {
			misordered++
		}
	}
	return lost, repeated, misordered
}
