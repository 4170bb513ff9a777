package main

// The rows of Meta's real world (issue 8): everyday faults, an incident mid-task and a
// real throughput limit below WHATSAPP_MAX_MPS. Each is played by the sandbox
// (sandbox.Mix, StartIncident, SetMPS) and counted there, at the stand-in for Meta:
// what was accepted, refused and repeated, recipient by recipient.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/shared"
)

// The section of docs/BENCHMARKS.md these rows own; -only faults rewrites just it.
const (
	faultsBegin = "<!-- bench:faults -->"
	faultsEnd   = "<!-- /bench:faults -->"
)

// faultsQuick shrinks every row (N/5, a 10 s incident) for a quick look; the report says so.
var faultsQuick = flag.Bool("faults-quick", false, "fault rows at N/5 with a 10 s incident (for a quick look; not for the report)")

// The rows' parameters, as issue 8 states them.
type faultParams struct {
	mixN, mixW       int
	incN, incW       int
	incident         time.Duration
	limN, limW       int
	realMPS, ceiling int
}

func defaultFaultParams() faultParams {
	p := faultParams{mixN: 3000, mixW: 10, incN: 2000, incW: 10, incident: 30 * time.Second,
		limN: 1500, limW: 20, realMPS: 20, ceiling: 80}
	if *faultsQuick {
		p.mixN, p.incN, p.limN, p.incident = p.mixN/5, p.incN/5, p.limN/5, 10*time.Second
	}
	return p
}

// benchMix is the everyday fault mix: 1 recipient in 50 gets two HTTP 500s, 1 in 100 a
// 131056, 1 in 200 a permanent 131026.
var benchMix = sandbox.Mix{Seed: 1, ServerError: 0.02, ServerErrorTimes: 2, PairRate: 0.01, Permanent: 0.005, PermanentCode: 131026}

// The in-place policy of the plain pool: wagate's per-recipient policy, with every
// backoff slept in the goroutine that holds the slot.
var (
	poolRetryBackoff = []time.Duration{time.Second, 2 * time.Second}                   // 3 attempts on retryable errors
	poolPairBackoff  = []time.Duration{time.Second, 4 * time.Second, 16 * time.Second} // 131056: 4^X s
)

const (
	poolThrottlePause = time.Second // 130429
	poolMaxThrottled  = 10
)

type mixRow struct {
	n, w                  int
	poolDur, stackDur     time.Duration
	poolFailed, stackFail []int // recipients never accepted, by index
	expected              []int // the permanent recipients of the mix
	stackTaskFailed       int
	stackStatus           string
}

type incidentRow struct {
	n, w     int
	incident time.Duration
	pool     incidentRun
	stack    incidentRun
	// hang: wagate again, Meta leaving every call unanswered for hangFor instead of
	// answering 503 (no pool: each of its calls would wait out the 30 s deadline in place).
	hang    incidentRun
	hangFor time.Duration
}

// hangIncident is how long the hanging incident lasts: longer than the Graph API
// deadline (30 s), so that the circuit opens while Meta still hangs.
const hangIncident = 45 * time.Second

type incidentRun struct {
	dur         time.Duration
	status      string // the task's final status (stack only)
	failed      int    // reported failed (pool: by the pool; stack: by task-status)
	notAccepted int    // recipients the sandbox never accepted
	lost        int    // never accepted and not reported failed
	repeats     int64  // accepted sends beyond one per recipient
	refused     int64  // sends answered 503, or left hanging, during the window
	resume      time.Duration
	resumed     bool
	statusSeen  time.Duration // stack: from recovery until task-status counts moved again
	statusMoved bool
	waiting     string // stack: what task-status said while Meta was down ("" = nothing)
}

type limitRow struct {
	n, w, realMPS, ceiling int
	counter                sandbox.MPSCounter
	dur                    time.Duration
	status                 string
	sent, failed           int
	calls, throttled       int64
	converged              time.Duration
	convergedOK            bool
	perSecond              []sandbox.Second
}

// faultsSection measures the three rows and returns their markdown section.
func (b *bench) faultsSection(ctx context.Context, o options) (string, error) {
	p := defaultFaultParams()
	defer func() {
		b.sb.SetFaults(sandbox.Faults{})
		b.sb.EndIncident()
		b.sb.SetMPS(0)
		b.extraEnv = nil
	}()
	mix, err := b.mixRow(ctx, p)
	if err != nil {
		return "", fmt.Errorf("fault mix row: %w", err)
	}
	fmt.Println(mix.line())
	inc, err := b.incidentRow(ctx, p)
	if err != nil {
		return "", fmt.Errorf("incident row: %w", err)
	}
	fmt.Println(inc.line())
	// Meta does not say how it counts its limit: any 1 s window (the sandbox's default),
	// and a token bucket, whose full bucket passes a burst above the limit at the start.
	var lims []limitRow
	for _, c := range []sandbox.MPSCounter{sandbox.CounterSliding, sandbox.CounterBucket} {
		lim, err := b.limitRow(ctx, p, c)
		if err != nil {
			return "", fmt.Errorf("real limit row (%s): %w", c, err)
		}
		fmt.Println(lim.line())
		lims = append(lims, lim)
	}
	return faultsMarkdown(o, mix, inc, lims), nil
}

// runFaultsOnly measures only these rows and splices their section into o.out,
// keeping the rest of the report.
func (b *bench) runFaultsOnly(ctx context.Context, o options) error {
	md, err := b.faultsSection(ctx, o)
	if err != nil {
		return err
	}
	return spliceInto(o.out, md, spliceSection, "the fault rows")
}

// spliceInto prints a section measured on its own (out empty) or splices it into the
// report out with splice, keeping the rest of the report.
func spliceInto(out, md string, splice func(report, section string) string, what string) error {
	if out == "" {
		fmt.Print(md)
		return nil
	}
	old, err := os.ReadFile(out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(splice(string(old), md)), 0o644); err != nil {
		return err
	}
	fmt.Println("wrote", what, "into", out)
	return nil
}

// spliceSection replaces the fault section of a report, or appends it.
func spliceSection(report, section string) string {
	if section == "" {
		return report
	}
	return spliceMarked(report, section, faultsBegin, faultsEnd)
}

// spliceMarked replaces the part of a report from its begin marker to its end marker
// with section (which starts with begin and ends with end), or appends section.
func spliceMarked(report, section, begin, end string) string {
	i := strings.Index(report, begin)
	j := strings.Index(report, end)
	if i < 0 || j < i {
		if report != "" && !strings.HasSuffix(report, "\n\n") {
			report = strings.TrimRight(report, "\n") + "\n\n"
		}
		return report + section
	}
	return report[:i] + strings.TrimRight(section, "\n") + report[j+len(end):]
}

// resetSandbox forgets counts and windows, and sets the faults and limit of a run.
func (b *bench) resetSandbox(f sandbox.Faults, mps int) {
	b.sb.EndIncident()
	b.sb.SetMPS(mps)
	b.sb.SetFaults(f)
	b.sb.Reset()
}

// warm runs a few sends through both paths with no faults, so neither pays one-off
// start-up costs in its measurement.
func (b *bench) warm(ctx context.Context, w int) error {
	b.resetSandbox(sandbox.Faults{}, 0)
	if _, err := b.pool(ctx, w, 2*w, "warm"); err != nil {
		return err
	}
	_, _, err := b.stackRun(ctx, 2*w, "warm")
	return err
}

func (b *bench) mixRow(ctx context.Context, p faultParams) (mixRow, error) {
	r := mixRow{n: p.mixN, w: p.mixW}
	mix := benchMix
	for i := range r.n {
		if mix.Fault(phone(i)) == sandbox.MixPermanent {
			r.expected = append(r.expected, i)
		}
	}
	if err := b.startStack(ctx, r.w); err != nil {
		return r, err
	}
	if err := b.warm(ctx, r.w); err != nil {
		return r, err
	}

	b.resetSandbox(sandbox.Faults{Mix: &mix}, 0)
	start := time.Now()
	if _, err := b.policyPool(ctx, r.w, r.n, "mixpool"); err != nil {
		return r, err
	}
	r.poolDur = time.Since(start)
	r.poolFailed, _ = b.notAccepted(r.n)

	b.resetSandbox(sandbox.Faults{Mix: &mix}, 0)
	t, err := b.runTask(ctx, r.n, "mixstack", 15*time.Minute, nil)
	if err != nil {
		return r, err
	}
	r.stackDur, r.stackStatus, r.stackTaskFailed = t.total, t.status, t.result.Failed
	r.stackFail, _ = b.notAccepted(r.n)
	return r, nil
}

func (r mixRow) poolRate() float64  { return float64(r.n) / r.poolDur.Seconds() }
func (r mixRow) stackRate() float64 { return float64(r.n) / r.stackDur.Seconds() }

func (r mixRow) line() string {
	return fmt.Sprintf("fault mix N=%d W=%d: pool %.1f sends/s (%d failed), wagate %.1f sends/s (%d failed, task %s), ratio %.3f; same permanent set: pool %v, wagate %v",
		r.n, r.w, r.poolRate(), len(r.poolFailed), r.stackRate(), len(r.stackFail), r.stackStatus, r.stackRate()/r.poolRate(),
		slices.Equal(r.poolFailed, r.expected), slices.Equal(r.stackFail, r.expected))
}

func (b *bench) incidentRow(ctx context.Context, p faultParams) (incidentRow, error) {
	r := incidentRow{n: p.incN, w: p.incW, incident: p.incident}
	if b.api == nil || b.worker == nil {
		if err := b.startStack(ctx, r.w); err != nil {
			return r, err
		}
	}
	if err := b.warm(ctx, r.w); err != nil {
		return r, err
	}

	// (a) the plain pool, the incident starting once half the recipients are accepted.
	b.resetSandbox(sandbox.Faults{}, 0)
	stopTrigger := b.incidentAt(ctx, int64(r.n/2), r.incident)
	start := time.Now()
	failed, err := b.policyPool(ctx, r.w, r.n, "incpool")
	stopTrigger()
	if err != nil {
		return r, err
	}
	r.pool.dur = time.Since(start)
	r.pool.failed = len(failed)
	b.countIncident(&r.pool, r.n)

	// (b) wagate, the same way, reading task-status while Meta is down and after.
	b.resetSandbox(sandbox.Faults{}, 0)
	stopTrigger = b.incidentAt(ctx, int64(r.n/2), r.incident)
	if err := b.stackIncident(ctx, &r.stack, r.n, "incstack"); err != nil {
		stopTrigger()
		return r, err
	}
	stopTrigger()

	// (c) wagate, Meta hanging instead of failing.
	r.hangFor = hangIncident
	b.resetSandbox(sandbox.Faults{}, 0)
	stopTrigger = b.incidentModeAt(ctx, int64(r.n/2), r.hangFor, sandbox.IncidentHang)
	defer stopTrigger()
	err = b.stackIncident(ctx, &r.hang, r.n, "inchang")
	return r, err
}

// stackIncident runs one wagate task of n recipients through an incident the caller
// has armed, reading task-status while Meta is down and after, into run.
func (b *bench) stackIncident(ctx context.Context, run *incidentRun, n int, label string) error {
	var lastSent = -1
	watch := func(st shared.TaskState, waiting string, at time.Time) {
		inc := b.sb.Incident()
		if inc.Active && waiting != "" && run.waiting == "" {
			run.waiting = waiting
		}
		if inc.Start.IsZero() || inc.Active {
			lastSent = st.Result.Sent
			return
		}
		if !run.statusMoved && lastSent >= 0 && (st.Result.Sent > lastSent || st.Status == shared.StatusSuccess) {
			run.statusMoved, run.statusSeen = true, at.Sub(inc.End)
		}
	}
	t, err := b.runTask(ctx, n, label, 15*time.Minute, watch)
	if err != nil {
		return err
	}
	run.dur, run.status, run.failed = t.total, t.status, t.result.Failed
	b.countIncident(run, n)
	return nil
}

// incidentAt starts an incident of d once the sandbox has accepted `after` sends; the
// returned func stops watching.
func (b *bench) incidentAt(ctx context.Context, after int64, d time.Duration) func() {
	return b.incidentModeAt(ctx, after, d, sandbox.IncidentError)
}

// incidentModeAt is incidentAt for an incident of the given mode.
func (b *bench) incidentModeAt(ctx context.Context, after int64, d time.Duration, mode sandbox.IncidentMode) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if b.sb.Accepted() >= after {
				b.sb.StartIncidentMode(d, mode)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return func() { cancel(); <-done }
}

// countIncident fills in what the sandbox saw of one incident run.
func (b *bench) countIncident(r *incidentRun, n int) {
	missing, repeats := b.notAccepted(n)
	r.notAccepted, r.repeats = len(missing), repeats
	r.lost = max(r.notAccepted-r.failed, 0)
	inc := b.sb.Incident()
	r.refused = inc.Refused
	if !inc.FirstAcceptAfter.IsZero() {
		r.resumed, r.resume = true, inc.FirstAcceptAfter.Sub(inc.End)
	}
}

// waitingCell is what task-status said a task waited on, as a table cell.
func waitingCell(waiting string) string {
	if waiting == "" {
		return "nothing"
	}
	return "`" + waiting + "`"
}

func (r incidentRow) line() string {
	return fmt.Sprintf("incident %v mid-task N=%d W=%d: pool failed %d, lost %d, repeated %d, resumed %s; wagate (%s) failed %d, lost %d, repeated %d, resumed %s (task-status %s); hanging %v: wagate (%s) failed %d, lost %d, repeated %d, resumed %s (task-status %s, waiting %q)",
		r.incident, r.n, r.w, r.pool.failed, r.pool.lost, r.pool.repeats, dur(r.pool.resume, r.pool.resumed),
		r.stack.status, r.stack.failed, r.stack.lost, r.stack.repeats, dur(r.stack.resume, r.stack.resumed), dur(r.stack.statusSeen, r.stack.statusMoved),
		r.hangFor, r.hang.status, r.hang.failed, r.hang.lost, r.hang.repeats, dur(r.hang.resume, r.hang.resumed), dur(r.hang.statusSeen, r.hang.statusMoved), r.hang.waiting)
}

func (b *bench) limitRow(ctx context.Context, p faultParams, counter sandbox.MPSCounter) (limitRow, error) {
	r := limitRow{n: p.limN, w: p.limW, realMPS: p.realMPS, ceiling: p.ceiling, counter: counter}
	// Each row learns the limit from the ceiling: forget what an earlier row learned.
	if err := b.forgetLearnedRate(ctx); err != nil {
		return r, err
	}
	b.sb.SetMPSCounter(counter)
	defer b.sb.SetMPSCounter(sandbox.CounterSliding)
	b.extraEnv = []string{fmt.Sprintf("WHATSAPP_MAX_MPS=%d", r.ceiling)}
	err := b.startStack(ctx, r.w)
	b.extraEnv = nil
	if err != nil {
		return r, err
	}
	if err := b.warm(ctx, r.w); err != nil {
		return r, err
	}
	// Let the warm-up's second pass so it does not count against the real limit.
	time.Sleep(1100 * time.Millisecond)
	b.resetSandbox(sandbox.Faults{}, r.realMPS)
	t, err := b.runTask(ctx, r.n, "limit", 15*time.Minute, nil)
	if err != nil {
		return r, err
	}
	r.dur, r.status, r.sent, r.failed = t.total, t.status, t.result.Sent, t.result.Failed
	st := b.sb.Stats()
	r.calls, r.throttled = st.Accepted+st.Rejected, st.Throttled
	r.perSecond = b.sb.Timeline()
	r.converged, r.convergedOK = sandbox.Convergence(r.perSecond, r.realMPS, r.n)
	return r, nil
}

// forgetLearnedRate deletes the governor's state of every phone number in Redis.
func (b *bench) forgetLearnedRate(ctx context.Context) error {
	rdb, err := b.redisClient()
	if err != nil {
		return err
	}
	defer rdb.Close()
	iter := rdb.Scan(ctx, 0, "*governor*", 1000).Iterator()
	for iter.Next(ctx) {
		if err := rdb.Del(ctx, iter.Val()).Err(); err != nil {
			return err
		}
	}
	return iter.Err()
}

func (r limitRow) rate() float64 { return float64(r.sent) / r.dur.Seconds() }

func (r limitRow) share() float64 {
	if r.calls == 0 {
		return 0
	}
	return float64(r.throttled) / float64(r.calls)
}

func (r limitRow) line() string {
	return fmt.Sprintf("real limit %d mps (%s) under WHATSAPP_MAX_MPS=%d N=%d W=%d: %d of %d Graph calls answered 130429 (%.1f%%), %.1f sends/s = %.0f%% of the limit, converged %s (task %s, %d failed)",
		r.realMPS, r.counter, r.ceiling, r.n, r.w, r.throttled, r.calls, 100*r.share(), r.rate(), 100*r.rate()/float64(r.realMPS),
		dur(r.converged, r.convergedOK), r.status, r.failed)
}

// policyPool sends n messages through w goroutines calling the sandbox directly and
// applying wagate's per-recipient policy in place: 3 attempts on retryable errors
// (sleeping 1 s, then 2 s), 131056 backed off 1, 4 and 16 s, 130429 paused 1 s,
// permanent errors failed at once. It returns the recipients it failed.
func (b *bench) policyPool(ctx context.Context, w, n int, tag string) ([]int, error) {
	g := graphapi.New(graphapi.Config{BaseURL: b.sbURL, Token: "bench", PhoneNumberID: phoneNumberID})
	var next atomic.Int64
	var mu sync.Mutex
	var failed []int
	var wg sync.WaitGroup
	for range w {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				m := shared.Message{To: phone(i), Kind: shared.KindText, Body: fmt.Sprintf("%s %d", tag, i)}
				if !sendInPlace(ctx, g, m) {
					mu.Lock()
					failed = append(failed, i)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(failed)
	return failed, ctx.Err()
}

// sendInPlace is one recipient of the policy pool; false when it failed for good.
func sendInPlace(ctx context.Context, g *graphapi.Client, m shared.Message) bool {
	retries, paired, throttled := 0, 0, 0
	for {
		_, err := g.Send(ctx, m, "")
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		var wait time.Duration
		switch graphapi.Classify(err) {
		case graphapi.ClassRateLimited:
			if throttled++; throttled > poolMaxThrottled {
				return false
			}
			wait = poolThrottlePause
		case graphapi.ClassPairRateLimited:
			if paired >= len(poolPairBackoff) {
				return false
			}
			wait = poolPairBackoff[paired]
			paired++
		case graphapi.ClassRetryable:
			if retries >= len(poolRetryBackoff) {
				return false
			}
			wait = poolRetryBackoff[retries]
			retries++
		default:
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}

// notAccepted lists the recipients 0..n-1 the sandbox never accepted a send to, and
// counts the accepted sends beyond one per recipient.
func (b *bench) notAccepted(n int) ([]int, int64) {
	var missing []int
	for i := range n {
		if b.sb.Deliveries(phone(i)) == 0 {
			missing = append(missing, i)
		}
	}
	return missing, b.sb.Stats().Repeats
}

type taskRun struct {
	status string
	result shared.TaskResult
	total  time.Duration
}

// runTask posts one send-bulk request of n recipients and polls task-status every 50
// ms until the task ends (or limit passes), calling watch on each answer. Unlike
// stackRun it expects failures and checks nothing.
func (b *bench) runTask(ctx context.Context, n int, tag string, limit time.Duration,
	watch func(st shared.TaskState, waiting string, at time.Time)) (taskRun, error) {
	var r taskRun
	recipients := make([]map[string]string, n)
	for i := range recipients {
		recipients[i] = map[string]string{"phone": phone(i), "message": fmt.Sprintf("%s %d", tag, i)}
	}
	body, _ := json.Marshal(map[string]any{"recipients": recipients, "use_queue": true})
	start := time.Now()
	resp, err := http.Post(b.apiURL+"/api/send-bulk", "application/json", strings.NewReader(string(body)))
	if err != nil {
		return r, err
	}
	var out struct {
		Success bool   `json:"success"`
		TaskID  string `json:"task_id"`
		Error   string `json:"error"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if err != nil || !out.Success {
		return r, fmt.Errorf("send-bulk: status %d, %s %v", resp.StatusCode, out.Error, err)
	}
	for {
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		st, waiting, err := b.taskStatus(out.TaskID)
		if err != nil {
			return r, err
		}
		now := time.Now()
		if watch != nil {
			watch(st, waiting, now)
		}
		if st.Status == shared.StatusSuccess || st.Status == shared.StatusFailure {
			r.status, r.result, r.total = st.Status, st.Result, now.Sub(start)
			return r, nil
		}
		if now.Sub(start) > limit {
			r.status, r.result, r.total = "did not finish in "+limit.String(), st.Result, now.Sub(start)
			return r, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// taskStatus reads task-status, and its "waiting" field (what the task waits on, when
// the gateway reports it) as raw JSON text.
func (b *bench) taskStatus(id string) (shared.TaskState, string, error) {
	var st shared.TaskState
	resp, err := http.Get(b.apiURL + "/api/task-status/" + id)
	if err != nil {
		return st, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return st, "", fmt.Errorf("task-status %s: %d %s", id, resp.StatusCode, data)
	}
	var raw struct {
		Status  string            `json:"status"`
		Result  shared.TaskResult `json:"result"`
		Waiting json.RawMessage   `json:"waiting"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return st, "", err
	}
	st.Status, st.Result = raw.Status, raw.Result
	waiting := string(raw.Waiting)
	if waiting == "null" || waiting == `""` {
		waiting = ""
	}
	return st, waiting, nil
}

func dur(d time.Duration, ok bool) string {
	if !ok {
		return "never"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// counterName says how a row's sandbox counted the limit.
func counterName(c sandbox.MPSCounter) string {
	if c == sandbox.CounterBucket {
		return "as a token bucket"
	}
	return "in any 1 s window"
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func faultsMarkdown(o options, mix mixRow, inc incidentRow, lims []limitRow) string {
	var sb strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&sb, format, a...) }
	w("%s\n## Meta's real world: everyday faults, an incident, a lower real limit\n\n", faultsBegin)
	w("Reproduce with `%s` (every row) or `make build && go run ./cmd/bench -only faults` (these rows only,\n", o.command)
	w("spliced into this file; `-faults-quick` for a smaller look). Measured %s on %d CPUs, sandbox latency %v.", time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), o.latency)
	if *faultsQuick {
		w(" **Quick run (-faults-quick): N/5 and a 10 s incident; not the figures of record.**")
	}
	w("\n\nThe sandbox plays Meta (`graphapi/sandbox`: a per-recipient fault mix, an incident window, a run-time\n")
	w("throughput limit) and counts at the stand-in what was accepted, refused and repeated, recipient by\n")
	w("recipient. Where there is a baseline, both columns ran one after the other in the same run against the\n")
	w("same recipients, which meet the same faults: the mix is drawn per recipient from a seed.\n\n")
	w("(a) plain pool: W goroutines calling the sandbox directly and applying wagate's per-recipient policy in\n")
	w("place (3 attempts on retryable errors, sleeping 1 s then 2 s; 131056 backed off 1, 4, 16 s; 130429 paused\n")
	w("1 s; permanent errors fail at once): a backoff holds its goroutine.\n")
	w("(b) wagate: `POST /api/send-bulk` through the apiserver and worker processes (BULK_MAX_WORKERS=W), timed\n")
	w("from the request to task-status answering SUCCESS.\n\n")
	w("The targets are those of issue 8: a durable sender whose backoffs hold no slot should beat a pool that\n")
	w("sleeps in place, ride out an incident without failing anyone, and learn the number's real limit.\n\n")

	same := func(got []int) string {
		if slices.Equal(got, mix.expected) {
			return "yes"
		}
		extra, lacking := diff(got, mix.expected)
		return fmt.Sprintf("**no** (%d more, %d missing)", extra, lacking)
	}
	w("### Everyday faults (N=%d, W=%d)\n\n", mix.n, mix.w)
	w("Fault mix `{\"seed\": %d, \"server_error\": %g, \"pair_rate\": %g, \"permanent\": %g, \"permanent_code\": %d}`: 1 recipient in\n",
		benchMix.Seed, benchMix.ServerError, benchMix.PairRate, benchMix.Permanent, benchMix.PermanentCode)
	w("50 gets two HTTP 500s (code 131000) then succeeds, 1 in 100 a 131056 (held 1 s), 1 in 200 a permanent 131026\n")
	w("(%d recipients of %d here).\n\n", len(mix.expected), mix.n)
	w("| | (a) pool, policy in place | (b) wagate | target |\n|---|---|---|---|\n")
	w("| sends/s | %.1f | %.1f | |\n", mix.poolRate(), mix.stackRate())
	w("| ratio (b)/(a) | | **%.3f** | >= 1.5 |\n", mix.stackRate()/mix.poolRate())
	w("| recipients failed (never accepted by the sandbox) | %d | %d | the %d permanent ones |\n", len(mix.poolFailed), len(mix.stackFail), len(mix.expected))
	w("| exactly the permanent set | %s | %s | yes |\n", same(mix.poolFailed), same(mix.stackFail))
	w("| task status, failed in task-status | | %s, %d | SUCCESS, %d |\n\n", mix.stackStatus, mix.stackTaskFailed, len(mix.expected))

	w("### Meta incident: every call HTTP 503 / code 2 for %v mid-task (N=%d, W=%d)\n\n", inc.incident, inc.n, inc.w)
	w("The window opens when the sandbox has accepted %d sends. *Lost*: recipients the sandbox never accepted and\n", inc.n/2)
	w("the sender did not report failed; *repeated*: accepted sends beyond one per recipient; *resumed*: from the end of\n")
	w("the window to the first send the sandbox accepted.\n\n")
	w("| | (a) pool, policy in place | (b) wagate | target (b) |\n|---|---|---|---|\n")
	w("| recipients failed for good | %d | **%d** | 0 |\n", inc.pool.failed, inc.stack.failed)
	w("| lost | %d | %d | 0 |\n", inc.pool.lost, inc.stack.lost)
	w("| repeated | %d | %d | <= W |\n", inc.pool.repeats, inc.stack.repeats)
	w("| resumed after Meta's recovery (sandbox) | %s | **%s** | <= 5 s |\n", dur(inc.pool.resume, inc.pool.resumed), dur(inc.stack.resume, inc.stack.resumed))
	w("| task-status counts moving again after the recovery | | %s | |\n", dur(inc.stack.statusSeen, inc.stack.statusMoved))
	w("| task-status `waiting` during the incident | | %s | `graph_api_unavailable` |\n", waitingCell(inc.stack.waiting))
	w("| sends refused during the window | %d | %d | a few probes |\n", inc.pool.refused, inc.stack.refused)
	w("| task status, duration | %.1f s | %s, %.1f s | SUCCESS |\n\n", inc.pool.dur.Seconds(), inc.stack.status, inc.stack.dur.Seconds())

	w("### Meta incident of hanging connections: no call answered for %v mid-task (N=%d, W=%d)\n\n", inc.hangFor, inc.n, inc.w)
	w("wagate only: the window opens when the sandbox has accepted %d sends, and a call made in it is never answered\n", inc.n/2)
	w("(it waits out the Graph API deadline, 30 s, and is not accepted). The circuit opens when the first ones time out;\n")
	w("a probe goes every 4 s while the earlier ones still hang.\n\n")
	w("| | (b) wagate | target |\n|---|---|---|\n")
	w("| recipients failed for good | **%d** | 0 |\n", inc.hang.failed)
	w("| lost | %d | 0 |\n", inc.hang.lost)
	w("| repeated | %d | <= W |\n", inc.hang.repeats)
	w("| resumed after Meta's recovery (sandbox) | **%s** | <= 5 s |\n", dur(inc.hang.resume, inc.hang.resumed))
	w("| task-status `waiting` during the incident | %s | `graph_api_unavailable` |\n", waitingCell(inc.hang.waiting))
	w("| sends left hanging | %d | W + one probe per 4 s |\n", inc.hang.refused)
	w("| task status, duration | %s, %.1f s | SUCCESS |\n\n", inc.hang.status, inc.hang.dur.Seconds())

	for _, lim := range lims {
		w("### Meta's real limit %d mps under WHATSAPP_MAX_MPS=%d (N=%d, W=%d), %s\n\n", lim.realMPS, lim.ceiling, lim.n, lim.w, counterName(lim.counter))
		switch lim.counter {
		case sandbox.CounterBucket:
			w("The sandbox holds the number to a token bucket of %d sends, refilled at %d a second (`counter: bucket`), and\n", lim.realMPS, lim.realMPS)
			w("answers 130429 when it is empty: a full bucket passes a burst above the limit at the start. *Converged*: from the\n")
		default:
			w("The sandbox holds the number at %d accepted sends in any 1 s and answers 130429 beyond. *Converged*: from the\n", lim.realMPS)
		}
		w("first Graph call to the first second after which every second stays within the limit (calls <= %d, fewer\n", lim.realMPS+lim.realMPS/20)
		w("than 5%% of them answered 130429), among the seconds that began with at least %d recipients left (the tail\n", 2*lim.realMPS)
		w("of a task cannot go over the limit).\n\n")
		w("| | wagate | target |\n|---|---|---|\n")
		w("| Graph calls answered 130429 | %d of %d: **%.1f%%** | < 5%% |\n", lim.throttled, lim.calls, 100*lim.share())
		w("| sends/s | %.1f = **%.0f%%** of the real limit | >= 90%% |\n", lim.rate(), 100*lim.rate()/float64(lim.realMPS))
		w("| converged | %s | within 10 s |\n", dur(lim.converged, lim.convergedOK))
		w("| task status, failed | %s, %d | SUCCESS, 0 |\n\n", lim.status, lim.failed)
		w("Graph calls per second (accepted/calls): %s\n\n", secondsLine(lim.perSecond))
	}
	w("%s\n", faultsEnd)
	return sb.String()
}

// diff counts the elements of got not in want, and of want not in got (both sorted).
func diff(got, want []int) (extra, lacking int) {
	for _, g := range got {
		if _, ok := slices.BinarySearch(want, g); !ok {
			extra++
		}
	}
	for _, x := range want {
		if _, ok := slices.BinarySearch(got, x); !ok {
			lacking++
		}
	}
	return extra, lacking
}

func secondsLine(secs []sandbox.Second) string {
	parts := make([]string, 0, len(secs))
	for _, s := range secs {
		parts = append(parts, fmt.Sprintf("%d/%d", s.Accepted, s.Calls))
	}
	return strings.Join(parts, ", ")
}
