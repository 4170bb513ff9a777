// Command bench measures wagate's bulk path against a plain goroutine pool, side by
// side in one run, on the Graph API sandbox with a fixed latency.
//
// For each W it sends N recipients (a) through W goroutines calling the sandbox
// directly (no queue, no durability) and (b) through the whole stack: POST
// /api/send-bulk to an apiserver process, a worker process with BULK_MAX_WORKERS=W,
// the embedded Temporal server and Redis, polled on /api/task-status until SUCCESS.
// It prints both rates, their ratio, the peak RSS of each process and the largest
// workflow history, and writes them to docs/BENCHMARKS.md. With -scale it also sends
// one large request and reports its acceptance time, completion and worker memory.
//
// Run it with `make bench`.
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/proto"

	"github.com/wagate/wagate/devserver"
	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/internal/redisserver"
	"github.com/wagate/wagate/shared"
)

const (
	phoneNumberID     = "100000000000001"
	businessAccountID = "100000000000002"
)

type options struct {
	n         int
	workers   []int
	latency   time.Duration
	scale     int
	binDir    string
	out       string
	command   string
	keepGoing bool
	faults    bool   // also measure the rows of faults.go
	template  bool   // also measure the template campaign row (template.go)
	only      string // "faults": only those rows
	inbound   bool   // also compare the inbound relay with a plain Redis-list relay (inbound.go)
	delivery  bool   // also measure status webhooks and delivery tracking's memory (delivery.go)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var o options
	var workers string
	flag.IntVar(&o.n, "n", 10_000, "recipients per run")
	flag.StringVar(&workers, "workers", "10,100", "comma-separated BULK_MAX_WORKERS values")
	flag.DurationVar(&o.latency, "latency", 50*time.Millisecond, "sandbox latency per send")
	flag.IntVar(&o.scale, "scale", 0, "also send one request with this many recipients (0 = skip)")
	flag.StringVar(&o.binDir, "bin", "bin", "folder with the apiserver and worker binaries")
	flag.StringVar(&o.out, "out", "docs/BENCHMARKS.md", "report file (empty = stdout only)")
	flag.StringVar(&o.command, "command", "make bench", "the command recorded in the report")
	flag.BoolVar(&o.faults, "faults", true, "also measure the fault rows: fault mix, incidents mid-task (503 and hanging), real limit below WHATSAPP_MAX_MPS")
	flag.BoolVar(&o.template, "template", true, "also measure a template campaign (send-bulk-template, checked against the registry) against a plain pool")
	flag.StringVar(&o.only, "only", "", `"faults" or "delivery": measure only those rows and rewrite only their section of -out`)
	flag.BoolVar(&o.delivery, "delivery", true, "also measure delivery tracking: status webhook acks at 500/s and Redis bytes per recipient (delivery.go)")
	flag.BoolVar(&o.inbound, "inbound", true, "also compare the inbound relay with a plain Redis-list relay (inbound.go)")
	flag.Parse()
	for _, w := range strings.FieldsFunc(workers, func(r rune) bool { return r == ',' }) {
		v, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || v < 1 {
			return fmt.Errorf("bad -workers value %q", w)
		}
		o.workers = append(o.workers, v)
	}

	b, err := start(ctx, o)
	if err != nil {
		return err
	}
	defer b.stop()
	if o.only == "faults" {
		return b.runFaultsOnly(ctx, o)
	}
	if o.only == "delivery" {
		return b.runDeliveryOnly(ctx, o)
	}

	var rows []row
	for _, w := range o.workers {
		r, err := b.compare(ctx, w, o.n)
		if err != nil {
			return err
		}
		rows = append(rows, r)
		fmt.Println(r.line())
	}
	var tpl *row
	if o.template {
		r, err := b.compareTemplate(ctx, 100, o.n)
		if err != nil {
			return err
		}
		tpl = &r
		fmt.Println("template campaign:", r.line())
	}
	var sc *scaleResult
	if o.scale > 0 {
		small, err := b.scaleRun(ctx, 100, o.n)
		if err != nil {
			return err
		}
		large, err := b.scaleRun(ctx, 100, o.scale)
		if err != nil {
			return err
		}
		sc = &scaleResult{small: small, large: large}
		fmt.Println(sc.line())
	}
	hist, err := b.histories(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("largest history: %d events; largest event: %d bytes; workflow runs: %d\n", hist.maxEvents, hist.maxEventBytes, hist.runs)
	report := b.report(o, rows, sc, hist)
	if tpl != nil {
		report = spliceTemplate(report, *tpl)
	}
	// After the histories and the report: those are the happy path's, which a faulty
	// task's errors and memory would hide.
	if o.faults {
		md, err := b.faultsSection(ctx, o)
		if err != nil {
			return err
		}
		report = spliceSection(report, md)
	}
	if o.inbound {
		if report, err = b.appendInbound(ctx, report); err != nil {
			return err
		}
	}
	if o.delivery {
		md, err := b.deliverySection(ctx)
		if err != nil {
			return err
		}
		report = spliceDelivery(report, md)
	}
	if o.out != "" {
		if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", o.out)
	}
	return nil
}

// bench is the stack under measurement.
type bench struct {
	dir      string
	redis    *redisserver.Server
	sb       *sandbox.Server
	sbURL    string
	sbSrv    *http.Server
	dev      *devserver.Server
	temporal client.Client
	binDir   string
	latency  time.Duration

	api, worker   *proc
	apiURL        string
	workerMetrics string           // the worker's /metrics (its METRICS_ADDR)
	peak          map[string]int64 // peak RSS per process role, in KiB
	onTask        func(taskID string)
	extraEnv      []string // appended to the processes' environment (later entries win)
}

func start(ctx context.Context, o options) (*bench, error) {
	dir, err := os.MkdirTemp("", "wagate-bench-")
	if err != nil {
		return nil, err
	}
	b := &bench{dir: dir, binDir: o.binDir, latency: o.latency, peak: map[string]int64{}}
	for _, name := range []string{"apiserver", "worker"} {
		if _, err := os.Stat(filepath.Join(o.binDir, name)); err != nil {
			return nil, fmt.Errorf("%s binary missing in %s (run make build): %w", name, o.binDir, err)
		}
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := os.MkdirAll(filepath.Join(dir, "redis"), 0o755); err != nil {
		return nil, err
	}
	if b.redis, err = redisserver.Start(ctx, filepath.Join(dir, "redis"), 0); err != nil {
		return nil, err
	}
	b.sb = sandbox.New(sandbox.Options{PhoneNumberID: phoneNumberID, BusinessAccountID: businessAccountID, Token: "bench",
		Latency: o.latency, Logger: quiet})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b.sbURL = "http://" + ln.Addr().String()
	b.sb.SetPublicURL(b.sbURL)
	b.sbSrv = &http.Server{Handler: b.sb.Handler()}
	go func() { _ = b.sbSrv.Serve(ln) }()

	if b.dev, err = devserver.Start(ctx, devserver.Options{DataDir: filepath.Join(dir, "temporal"), UIPort: -1, Logger: quiet}); err != nil {
		return nil, err
	}
	if b.temporal, err = client.DialContext(ctx, client.Options{HostPort: b.dev.FrontendHostPort(), Namespace: b.dev.Namespace(),
		Logger: sdklog.NewStructuredLogger(quiet)}); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *bench) stop() {
	b.stopStack()
	if b.temporal != nil {
		b.temporal.Close()
	}
	if b.dev != nil {
		_ = b.dev.Stop()
	}
	if b.sbSrv != nil {
		_ = b.sbSrv.Close()
	}
	if b.redis != nil {
		_ = b.redis.Stop()
	}
	_ = os.RemoveAll(b.dir)
}

// startStack runs the apiserver and worker processes with BULK_MAX_WORKERS=w.
func (b *bench) startStack(ctx context.Context, w int) error {
	b.stopStack()
	port, err := freePort()
	if err != nil {
		return err
	}
	env := append(os.Environ(),
		"HTTP_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"REDIS_URL="+b.redis.URL(),
		"TEMPORAL_ADDRESS="+b.dev.FrontendHostPort(),
		"TEMPORAL_NAMESPACE="+b.dev.Namespace(),
		"WHATSAPP_API_URL="+b.sbURL,
		"WHATSAPP_TOKEN=bench",
		"WHATSAPP_PHONE_NUMBER_ID="+phoneNumberID,
		"BULK_MAX_WORKERS="+strconv.Itoa(w),
		// Meta's governor must not bind: the sandbox enforces no throughput limit here.
		"WHATSAPP_MAX_MPS=1000000",
		// Template campaigns are checked against the sandbox's template registry.
		"WHATSAPP_BUSINESS_ACCOUNT_ID="+businessAccountID,
		// The production apiserver wants a webhook secret or an explicit opt-out.
		"WEBHOOK_ALLOW_UNSIGNED=true",
	)
	env = append(env, b.extraEnv...)
	mport, err := freePort()
	if err != nil {
		return err
	}
	// Only the worker: the apiserver serves /metrics on its API port.
	workerEnv := append(slices.Clone(env), "METRICS_ADDR=127.0.0.1:"+strconv.Itoa(mport))
	b.workerMetrics = "http://127.0.0.1:" + strconv.Itoa(mport) + "/metrics"
	if b.worker, err = startProc(filepath.Join(b.binDir, "worker"), workerEnv); err != nil {
		return err
	}
	if b.api, err = startProc(filepath.Join(b.binDir, "apiserver"), env); err != nil {
		return err
	}
	b.apiURL = "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(b.apiURL + "/api/health")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("apiserver did not come up: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// redisClient connects to the bench's Redis server; the caller closes it.
func (b *bench) redisClient() (*redis.Client, error) {
	opts, err := redis.ParseURL(b.redis.URL())
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opts), nil
}

func (b *bench) stopStack() {
	for role, p := range map[string]*proc{"apiserver": b.api, "worker": b.worker} {
		if p == nil {
			continue
		}
		if rss := p.peakRSS(); rss > b.peak[role] {
			b.peak[role] = rss
		}
		p.stop()
	}
	b.api, b.worker = nil, nil
}

type row struct {
	workers          int
	n                int
	poolRate, stack  float64
	poolDur, stackD  time.Duration
	workerRSS, apiRS int64
	ratios           []float64 // every pair's ratio in run order, when the row took more than one
	cost             sendCost  // what the measured stack runs' sends cost (sendcost.go)
}

func (r row) ratio() float64 { return r.stack / r.poolRate }

func (r row) line() string {
	line := fmt.Sprintf("W=%d N=%d: pool %.1f sends/s (%.2fs), stack %.1f sends/s (%.2fs), ratio %.3f%s; peak RSS worker %d MiB, apiserver %d MiB",
		r.workers, r.n, r.poolRate, r.poolDur.Seconds(), r.stack, r.stackD.Seconds(), r.ratio(), r.pairsNote(), r.workerRSS/1024, r.apiRS/1024)
	if r.cost.trips > 0 {
		line += fmt.Sprintf("; Redis round trip before each send %.2f ms, Redis CPU %.0f µs per send", ms(r.cost.trip()), r.cost.perSend(r.cost.redisCPU))
	}
	return line
}

// pairsNote lists the ratios of a row measured more than once.
func (r row) pairsNote() string {
	if len(r.ratios) < 2 {
		return ""
	}
	return " (median of " + r.ratiosText() + ")"
}

// ratiosText is every pair's ratio, in run order.
func (r row) ratiosText() string {
	parts := make([]string, len(r.ratios))
	for i, v := range r.ratios {
		parts[i] = fmt.Sprintf("%.3f", v)
	}
	return strings.Join(parts, ", ")
}

// shortPair: a row whose pool run takes less than this is measured three times. A run
// of a few seconds on a shared machine moves by a few percent from one pair to the next,
// so such rows report the pair of median ratio, with every pair's ratio beside it; a
// longer run averages the noise out by itself.
const shortPair = 20 * time.Second

// measurePairs runs pool(k) then stack(k), one right after the other, for k = 0, and
// for k = 1 and 2 as well when the first pool run took less than shortPair, and fills
// r's rates and durations with the pair of median ratio.
func measurePairs(r *row, pool, stack func(k int) (time.Duration, error)) error {
	type pair struct{ pool, stack time.Duration }
	var ps []pair
	for k := 0; k < 3; k++ {
		pd, err := pool(k)
		if err != nil {
			return err
		}
		sd, err := stack(k)
		if err != nil {
			return err
		}
		ps = append(ps, pair{pd, sd})
		if k == 0 && pd >= shortPair {
			break
		}
	}
	ratio := func(p pair) float64 { return p.pool.Seconds() / p.stack.Seconds() }
	if len(ps) > 1 {
		for _, p := range ps {
			r.ratios = append(r.ratios, ratio(p))
		}
	}
	sorted := slices.Clone(ps)
	slices.SortFunc(sorted, func(a, b pair) int { return cmp.Compare(ratio(a), ratio(b)) })
	m := sorted[len(sorted)/2]
	r.poolDur, r.stackD = m.pool, m.stack
	r.poolRate, r.stack = float64(r.n)/m.pool.Seconds(), float64(r.n)/m.stack.Seconds()
	return nil
}

// compare measures the plain pool and the stack at W, one right after the other.
func (b *bench) compare(ctx context.Context, w, n int) (row, error) {
	r := row{workers: w, n: n}
	if err := b.startStack(ctx, w); err != nil {
		return r, err
	}
	// Warm both paths so neither pays one-off start-up costs in its measurement.
	if _, err := b.pool(ctx, w, min(n, 2*w), "warm"); err != nil {
		return r, err
	}
	if _, _, err := b.stackRun(ctx, min(n, 2*w), "warm"); err != nil {
		return r, err
	}

	err := measurePairs(&r, func(k int) (time.Duration, error) {
		return b.pool(ctx, w, n, fmt.Sprintf("pool%d.%d", w, k))
	}, func(k int) (time.Duration, error) {
		before, serr := b.sampleCost(ctx, b.workerMetrics)
		d, _, err := b.stackRun(ctx, n, fmt.Sprintf("stack%d.%d", w, k))
		if err == nil && serr == nil {
			var after costSample
			if after, serr = b.sampleCost(ctx, b.workerMetrics); serr == nil {
				r.cost.add(n, before, after)
			}
		}
		if serr != nil {
			fmt.Fprintf(os.Stderr, "bench: W=%d: what a send costs is not measured: %v\n", w, serr)
		}
		return d, err
	})
	r.workerRSS, r.apiRS = b.worker.peakRSS(), b.api.peakRSS()
	return r, err
}

// pool sends n text messages through w goroutines calling the sandbox directly.
func (b *bench) pool(ctx context.Context, w, n int, tag string) (time.Duration, error) {
	return b.poolOf(ctx, w, n, func(i int) shared.Message {
		return shared.Message{To: phone(i), Kind: shared.KindText, Body: fmt.Sprintf("%s %d", tag, i)}
	})
}

// poolOf sends msg(0) to msg(n-1) through w goroutines calling the sandbox directly.
func (b *bench) poolOf(ctx context.Context, w, n int, msg func(i int) shared.Message) (time.Duration, error) {
	g := graphapi.New(graphapi.Config{BaseURL: b.sbURL, Token: "bench", PhoneNumberID: phoneNumberID})
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if _, err := g.Send(ctx, msg(i), ""); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	if f := failed.Load(); f > 0 {
		return d, fmt.Errorf("plain pool: %d of %d sends failed", f, n)
	}
	return d, ctx.Err()
}

func phone(i int) string { return fmt.Sprintf("57%010d", i) }

// stackRun posts one send-bulk request of n recipients and polls it to SUCCESS. It
// returns the time from the request to the observed SUCCESS and the time the request
// took to be accepted.
func (b *bench) stackRun(ctx context.Context, n int, tag string) (total, accept time.Duration, err error) {
	recipients := make([]map[string]string, n)
	for i := range recipients {
		recipients[i] = map[string]string{"phone": phone(i), "message": fmt.Sprintf("%s %d", tag, i)}
	}
	body, _ := json.Marshal(map[string]any{"recipients": recipients, "use_queue": true})
	return b.postAndWait(ctx, "/api/send-bulk", body, n)
}

// postAndWait posts a bulk request of n recipients to path and polls it to SUCCESS; see
// stackRun.
func (b *bench) postAndWait(ctx context.Context, path string, body []byte, n int) (total, accept time.Duration, err error) {
	before := b.sb.Stats()
	start := time.Now()
	resp, err := http.Post(b.apiURL+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	var out struct {
		Success bool   `json:"success"`
		TaskID  string `json:"task_id"`
		Error   string `json:"error"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	accept = time.Since(start)
	if err != nil || !out.Success {
		return 0, 0, fmt.Errorf("%s: status %d, %s %v", path, resp.StatusCode, out.Error, err)
	}
	if b.onTask != nil {
		b.onTask(out.TaskID)
	}
	for {
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		st, err := b.status(out.TaskID)
		if err != nil {
			return 0, 0, err
		}
		if st.Status == shared.StatusSuccess {
			total = time.Since(start)
			if st.Result.Sent != n {
				return 0, 0, fmt.Errorf("task %s: %d of %d sent (%d failed)", out.TaskID, st.Result.Sent, n, st.Result.Failed)
			}
			break
		}
		if st.Status == shared.StatusFailure {
			return 0, 0, fmt.Errorf("task %s failed", out.TaskID)
		}
		b.awaitPoll(before.Accepted + int64(n))
	}
	after := b.sb.Stats()
	if got := after.Accepted - before.Accepted; got != int64(n) {
		return 0, 0, fmt.Errorf("task of %d recipients: the sandbox accepted %d messages", n, got)
	}
	if d := after.Duplicates - before.Duplicates; d != 0 {
		return 0, 0, fmt.Errorf("task of %d recipients: %d duplicate deliveries", n, d)
	}
	return total, accept, nil
}

// The stack's end is the first task-status answering SUCCESS, which comes only after
// the sandbox has accepted every recipient. Until then the bench asks every
// pollWhileSending, so that its own queries (each a workflow query and Redis reads)
// load the machine no more than a client would; from then on every pollAtEnd, so
// that the end is not rounded up by a poll interval. The pool's end is exact.
const (
	pollWhileSending = 100 * time.Millisecond
	pollAtEnd        = time.Millisecond
)

// awaitPoll waits until the next task-status poll of a run that is done once the
// sandbox has accepted `accepted` sends in all.
func (b *bench) awaitPoll(accepted int64) {
	for deadline := time.Now().Add(pollWhileSending); time.Now().Before(deadline); {
		if b.sb.Accepted() >= accepted {
			time.Sleep(pollAtEnd)
			return
		}
		time.Sleep(pollAtEnd)
	}
}

func (b *bench) status(id string) (shared.TaskState, error) {
	var st shared.TaskState
	resp, err := http.Get(b.apiURL + "/api/task-status/" + id)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return st, fmt.Errorf("task-status %s: %d %s", id, resp.StatusCode, msg)
	}
	var raw struct {
		Status string            `json:"status"`
		Result shared.TaskResult `json:"result"`
	}
	err = json.NewDecoder(resp.Body).Decode(&raw)
	st.Status, st.Result = raw.Status, raw.Result
	return st, err
}

type scaleRun struct {
	n            int
	accept       time.Duration
	total        time.Duration
	workerRSS    int64
	apiRSS       int64
	longestPause time.Duration // the largest pause between two task-status changes
}

type scaleResult struct{ small, large scaleRun }

func (s scaleResult) line() string {
	return fmt.Sprintf("scale: N=%d accepted in %.2fs, done in %.1fs, worker peak RSS %d MiB; N=%d accepted in %.2fs, done in %.1fs, worker peak RSS %d MiB; longest pause between progress updates %.1fs",
		s.small.n, s.small.accept.Seconds(), s.small.total.Seconds(), s.small.workerRSS/1024,
		s.large.n, s.large.accept.Seconds(), s.large.total.Seconds(), s.large.workerRSS/1024, s.large.longestPause.Seconds())
}

// scaleRun sends one request of n recipients on a fresh worker process and reports
// its acceptance time, its duration and the worker's peak memory.
func (b *bench) scaleRun(ctx context.Context, w, n int) (scaleRun, error) {
	r := scaleRun{n: n}
	if err := b.startStack(ctx, w); err != nil {
		return r, err
	}
	total, accept, err := b.stackRunWatching(ctx, n, fmt.Sprintf("scale%d", n), &r.longestPause)
	if err != nil {
		return r, err
	}
	r.total, r.accept = total, accept
	r.workerRSS, r.apiRSS = b.worker.peakRSS(), b.api.peakRSS()
	return r, nil
}

// stackRunWatching is stackRun that also records the longest time task-status went
// without its counts changing.
func (b *bench) stackRunWatching(ctx context.Context, n int, tag string, longest *time.Duration) (time.Duration, time.Duration, error) {
	done := make(chan struct{})
	var taskID atomic.Value
	var watcher sync.WaitGroup
	watcher.Add(1)
	go func() {
		defer watcher.Done()
		var last int
		lastChange := time.Now()
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			id, _ := taskID.Load().(string)
			if id == "" {
				continue
			}
			st, err := b.status(id)
			if err != nil || st.Status == shared.StatusSuccess {
				continue
			}
			if c := st.Result.Sent + st.Result.Failed; c != last {
				if gap := time.Since(lastChange); c > 0 && last > 0 && gap > *longest {
					*longest = gap
				}
				last, lastChange = c, time.Now()
			}
		}
	}()
	defer func() {
		close(done)
		watcher.Wait() // *longest is final once the watcher has stopped
	}()
	b.onTask = func(id string) { taskID.Store(id) }
	defer func() { b.onTask = nil }()
	return b.stackRun(ctx, n, tag)
}

type histories struct {
	maxEvents     int64
	maxEventBytes int
	runs          int
}

// histories inspects every workflow run the benchmark made: the longest history and
// the largest single event (inputs, results and signals are events).
func (b *bench) histories(ctx context.Context) (histories, error) {
	var h histories
	var token []byte
	for {
		resp, err := b.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: b.dev.Namespace(), NextPageToken: token, PageSize: 1000,
		})
		if err != nil {
			return h, err
		}
		for _, e := range resp.Executions {
			h.runs++
			h.maxEvents = max(h.maxEvents, e.GetHistoryLength())
			it := b.temporal.GetWorkflowHistory(ctx, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					return h, err
				}
				h.maxEventBytes = max(h.maxEventBytes, eventSize(ev))
			}
		}
		if token = resp.NextPageToken; len(token) == 0 {
			return h, nil
		}
	}
}

func eventSize(ev *historypb.HistoryEvent) int { return proto.Size(ev) }

func (b *bench) report(o options, rows []row, sc *scaleResult, h histories) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# Benchmarks\n\n")
	fmt.Fprintf(&sb, "Reproduce with `%s` (it builds bin/apiserver and bin/worker first). Measured %s on %d CPUs; the\n", o.command, time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU())
	fmt.Fprintf(&sb, "sandbox answers every send after %v. Both columns of a row ran one right after the other in the same run,\n", o.latency)
	fmt.Fprintf(&sb, "so the ratio, not the absolute rates, is the figure to compare across machines.\n\n")
	fmt.Fprintf(&sb, "(a) plain pool: W goroutines calling the sandbox directly, no queue, no durability.\n")
	fmt.Fprintf(&sb, "(b) wagate: `POST /api/send-bulk` to the apiserver process, BulkSend on the worker process (BULK_MAX_WORKERS=W),\n")
	fmt.Fprintf(&sb, "embedded Temporal (SQLite) and Redis, timed from the request to the first task-status answering SUCCESS.\n")
	fmt.Fprintf(&sb, "task-status is asked every %v until the sandbox has accepted every recipient (SUCCESS cannot come before),\n", pollWhileSending)
	fmt.Fprintf(&sb, "then every %v: the bench's own queries load the machine no more than a client would, and do not round the end up.\n\n", pollAtEnd)
	fmt.Fprintf(&sb, "| W | N | (a) pool sends/s | (b) wagate sends/s | ratio (b)/(a) | worker peak RSS | apiserver peak RSS |\n")
	fmt.Fprintf(&sb, "|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&sb, "| %d | %d | %.1f | %.1f | **%.3f** | %d MiB | %d MiB |\n", r.workers, r.n, r.poolRate, r.stack, r.ratio(), r.workerRSS/1024, r.apiRS/1024)
	}
	sb.WriteString(pairsText(rows))
	sb.WriteString(costText(rows))
	fmt.Fprintf(&sb, "\nBenchmark process (embedded Temporal server, sandbox, Redis client, plain pool) peak RSS: %d MiB.\n", selfPeakRSS()/1024)
	fmt.Fprintf(&sb, "\nLargest workflow history of any run: **%d events**; largest single history event (inputs, results, signals): **%d bytes**; %d workflow runs inspected.\n", h.maxEvents, h.maxEventBytes, h.runs)
	if sc != nil {
		fmt.Fprintf(&sb, "\n## Scale (W=100)\n\nOne request each, on fresh apiserver and worker processes.\n\n")
		fmt.Fprintf(&sb, "| N | accepted in | completed in | worker peak RSS | apiserver peak RSS |\n|---|---|---|---|---|\n")
		for _, s := range []scaleRun{sc.small, sc.large} {
			fmt.Fprintf(&sb, "| %d | %.2f s | %.1f s | %d MiB | %d MiB |\n", s.n, s.accept.Seconds(), s.total.Seconds(), s.workerRSS/1024, s.apiRSS/1024)
		}
		fmt.Fprintf(&sb, "\nLongest pause between two changes of task-status counts during the N=%d run: %.1f s (polled every 100 ms).\n", sc.large.n, sc.large.longestPause.Seconds())
	}
	return sb.String()
}

// pairsText says which rows were measured three times, and their ratios.
func pairsText(rows []row) string {
	var sb strings.Builder
	for _, r := range rows {
		if len(r.ratios) > 1 {
			if sb.Len() == 0 {
				fmt.Fprintf(&sb, "\nA row whose pool run takes less than %v ran three pairs, one after the other; it shows the pair of median ratio.\n", shortPair)
			}
			fmt.Fprintf(&sb, "W=%d: the ratios of the three pairs were %s.\n", r.workers, r.ratiosText())
		}
	}
	return sb.String()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// proc is a child process whose peak memory is read from /proc.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(path string, env []string) (*proc, error) {
	cmd := exec.Command(path)
	cmd.Env = env
	logFile, err := os.Create(path + ".bench.log")
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) peakRSS() int64 { return vmHWM(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)) }

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func selfPeakRSS() int64 { return vmHWM("/proc/self/status") }

// vmHWM reads the peak resident set size (KiB) from a /proc status file.
func vmHWM(path string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}
