// Package e2e tests wagate end to end: the real API server over HTTP, a real worker, an
// embedded Temporal server, a real redis-server and the Graph API sandbox, all in the
// test process (crash tests run the worker binary as a child process). It is the only
// test package that links the embedded Temporal server.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/wagate/wagate/activities"
	"github.com/wagate/wagate/apiserver"
	"github.com/wagate/wagate/devserver"
	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/internal/app"
	"github.com/wagate/wagate/internal/redisserver"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
	"github.com/wagate/wagate/worker"
)

// Sandbox credentials the stack is configured with.
const (
	SandboxToken         = "sandbox-token"
	SandboxPhoneNumberID = "100000000000001"
	SandboxWABAID        = "100000000000002"
)

// binDir holds the binaries BuildBinary built during this run; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wagate-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// StackOptions shape a test's stack. The zero value is a stack with an in-process
// worker, no rate limits, a sandbox that answers at once, and no auth.
type StackOptions struct {
	// MaxWorkers is BULK_MAX_WORKERS; 10 when 0.
	MaxWorkers int
	// SandboxLatency is added by the sandbox before each send or upload answer.
	SandboxLatency time.Duration
	// MPS is both the sandbox's per-number limit (above it Meta answers 130429) and
	// WHATSAPP_MAX_MPS; 0 means no sandbox limit and a gateway limit too high to matter.
	MPS int
	// APIKey is API_KEY; PostJSON and Get send it when set.
	APIKey string
	// WebSocketURL is WEBSOCKET_URL, where inbound events are relayed.
	WebSocketURL string
	// AppSecret is WHATSAPP_APP_SECRET; VerifyToken is WEBHOOK_VERIFY_TOKEN.
	AppSecret, VerifyToken string
	// DataDir keeps Temporal's SQLite file and Redis's append-only file, so a stack
	// stopped with Stop and built again on the same DataDir finds its tasks. "" keeps
	// Temporal in memory and gives Redis no persistence.
	DataDir string
	// NoWorker starts no in-process worker: for tests that run the worker binary as a
	// child process (StartBinary) or start one later (StartWorker).
	NoWorker bool
	// WebUI serves the embedded Temporal Web UI on a free port (Dev.UIURL()), for the
	// browser tests.
	WebUI bool
	// SandboxWebhooks makes the sandbox post signed status webhooks (sent, delivered,
	// read) to the API's /webhook, as the dev stack does. Off by default so that inbound
	// tests see only the events they post.
	SandboxWebhooks bool
	// ChunkReturns makes every SendRange return to the workflow as soon as its frontier
	// moved by a chunk, as a slow task's do, instead of after activities'
	// DefaultRangeMinTime: for tests about the activities and runs of a history.
	ChunkReturns bool
	// Statuses is the sandbox's status plan (delays, later failures, read share); the
	// zero value posts sent, delivered and read for every message.
	Statuses sandbox.StatusPlan
	// RelayStatuses is RELAY_STATUSES.
	RelayStatuses bool
}

// Stack is a running wagate for one test.
type Stack struct {
	// API is the base URL of the API server (httptest over apiserver.New).
	API string
	// Sandbox is the Graph API simulator the stack talks to, served at SandboxURL.
	Sandbox    *sandbox.Server
	SandboxURL string
	// Temporal is a client of the embedded server Dev, in Config.TemporalNamespace.
	Temporal client.Client
	Dev      *devserver.Server
	// Store is the Redis adapter of the redis-server at RedisURL.
	Store    *redisstore.Store
	RedisURL string
	// Config is the configuration the API server and the worker run with.
	Config shared.Config
	// Worker is the in-process worker; nil with NoWorker or after StopWorker.
	Worker sdkworker.Worker

	opts     StackOptions
	graph    *graphapi.Client
	logger   *slog.Logger
	api      *httptest.Server
	sandbox  *httptest.Server
	mu       sync.Mutex
	stopOnce sync.Once
	stops    []func() // run in order by Stop
}

// NewStack starts a stack and registers its Stop in t.Cleanup.
func NewStack(t *testing.T, o StackOptions) *Stack {
	t.Helper()
	ctx := context.Background()
	logger := testLogger(t)
	s := &Stack{opts: o, logger: logger}
	// Registered first so it runs last, after every part is stopped, even when a
	// later step fails the test.
	t.Cleanup(s.Stop)

	// The API listens first: the sandbox needs the webhook URL.
	s.api = httptest.NewUnstartedServer(http.NotFoundHandler())
	s.API = "http://" + s.api.Listener.Addr().String()
	apiStarted := false
	s.addStop(func() {
		if !apiStarted {
			s.api.Listener.Close()
		}
	})

	s.RedisURL = s.startRedis(t)

	cfg, err := env.ParseAsWithOptions[shared.Config](env.Options{Environment: map[string]string{}})
	if err != nil {
		t.Fatalf("default config: %v", err)
	}
	cfg.HTTPAddr = s.api.Listener.Addr().String()
	cfg.WhatsAppToken = SandboxToken
	cfg.WhatsAppPhoneNumberID = SandboxPhoneNumberID
	cfg.WhatsAppBusinessAccountID = SandboxWABAID
	cfg.WhatsAppAppSecret = o.AppSecret
	cfg.WebhookVerifyToken = o.VerifyToken
	cfg.WebSocketURL = o.WebSocketURL
	cfg.RedisURL = s.RedisURL
	cfg.APIKey = o.APIKey
	cfg.BulkMaxWorkers = 10
	if o.MaxWorkers > 0 {
		cfg.BulkMaxWorkers = o.MaxWorkers
	}
	cfg.WhatsAppMaxMPS = 100000
	cfg.MediaFetchAllowPrivate = true // the sandbox's sample media is on loopback
	cfg.RelayStatuses = o.RelayStatuses
	if o.MPS > 0 {
		cfg.WhatsAppMaxMPS = o.MPS
	}

	// Sandbox.
	sbOpts := sandbox.Options{
		PhoneNumberID:     SandboxPhoneNumberID,
		BusinessAccountID: SandboxWABAID,
		Token:             SandboxToken,
		Latency:           o.SandboxLatency,
		MPS:               o.MPS,
		AppSecret:         o.AppSecret,
		Logger:            logger.With("component", "sandbox"),
		Statuses:          o.Statuses,
	}
	if o.SandboxWebhooks {
		sbOpts.WebhookURL = s.API + "/webhook"
	}
	s.Sandbox = sandbox.New(sbOpts)
	s.sandbox = httptest.NewServer(s.Sandbox.Handler())
	s.SandboxURL = s.sandbox.URL
	s.Sandbox.SetPublicURL(s.SandboxURL)
	s.addStop(func() {
		s.Sandbox.Close()
		s.sandbox.Close()
	})
	cfg.WhatsAppAPIURL = s.SandboxURL

	// Temporal.
	devOpts := devserver.Options{UIPort: -1, Logger: logger.With("component", "temporal"), Namespace: cfg.TemporalNamespace}
	if o.WebUI {
		devOpts.UIPort = 0
	}
	if o.DataDir != "" {
		devOpts.DataDir = filepath.Join(o.DataDir, "temporal")
	}
	s.Dev, err = devserver.Start(ctx, devOpts)
	if err != nil {
		t.Fatalf("start temporal: %v", err)
	}
	s.addStop(func() {
		if err := s.Dev.Stop(); err != nil {
			t.Errorf("stop temporal: %v", err)
		}
	})
	cfg.TemporalAddress = s.Dev.FrontendHostPort()
	if err := cfg.Check(); err != nil {
		t.Fatalf("config: %v", err)
	}
	s.Config = cfg

	s.Temporal, err = client.Dial(client.Options{
		HostPort:  cfg.TemporalAddress,
		Namespace: cfg.TemporalNamespace,
		Logger:    sdklog.NewStructuredLogger(logger.With("component", "sdk")),
	})
	if err != nil {
		t.Fatalf("dial temporal: %v", err)
	}
	s.addStop(s.Temporal.Close)

	// Redis client.
	s.Store, err = redisstore.Open(ctx, s.RedisURL, "")
	if err != nil {
		t.Fatalf("open redis: %v", err)
	}
	if err := s.Store.Ping(ctx); err != nil {
		t.Fatalf("ping redis: %v", err)
	}
	s.addStop(func() { _ = s.Store.Close() })

	s.graph = app.Graph(cfg)

	// Worker, stopped before the client.
	s.addStop(s.StopWorker)
	if !o.NoWorker {
		s.StartWorker(t)
	}

	// API server, stopped first.
	deps := apiserver.Deps{
		Config: cfg, Temporal: s.Temporal, Graph: s.graph, Store: s.Store, Logger: logger.With("component", "api"),
	}
	stopForwarder := apiserver.StartForwarder(deps) // stopped after the API server
	s.addStop(func() { _ = stopForwarder(context.Background()) })
	s.api.Config.Handler = apiserver.New(deps)
	s.api.Start()
	apiStarted = true
	s.addStop(s.api.Close)
	return s
}

// startRedis returns the URL of a private redis-server: persistent in DataDir/redis
// when DataDir is set, else an ephemeral one.
func (s *Stack) startRedis(t *testing.T) string {
	t.Helper()
	// Not testredis: its cleanup would stop Redis before the stack's parts that use it.
	rc := redisserver.Config{Ephemeral: true}
	if s.opts.DataDir != "" {
		rc = redisserver.Config{Dir: filepath.Join(s.opts.DataDir, "redis")}
		if err := os.MkdirAll(rc.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		dir, err := os.MkdirTemp("", "wagate-e2e-redis-")
		if err != nil {
			t.Fatal(err)
		}
		rc.Dir = dir
		s.addStop(func() { os.RemoveAll(dir) })
	}
	srv, err := rc.Start(context.Background())
	if errors.Is(err, redisserver.ErrNotInstalled) {
		t.Fatalf("redis-server is not installed; run `make redis` (%v)", err)
	}
	if err != nil {
		t.Fatalf("start redis: %v", err)
	}
	s.addStop(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("stop redis: %v", err)
		}
	})
	return srv.URL()
}

// addStop queues f to run in Stop before every stop added earlier.
func (s *Stack) addStop(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stops = append(s.stops, f)
}

// Stop stops the stack in order: API server, worker, client, Redis client, Temporal,
// sandbox, Redis. It is idempotent and also runs in t.Cleanup; tests call it to restart
// a stack on the same DataDir.
func (s *Stack) Stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		stops := s.stops
		s.mu.Unlock()
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	})
}

// StartWorker starts an in-process worker (after NoWorker or StopWorker) and sets
// s.Worker.
func (s *Stack) StartWorker(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Worker != nil {
		t.Fatal("StartWorker: a worker is already running")
	}
	acts := activities.New(s.Config, s.graph, s.Store, s.logger.With("component", "activities"))
	if s.opts.ChunkReturns {
		acts.RangeMinTime = -1
	}
	w := worker.New(s.Temporal, acts)
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	s.Worker = w
}

// StopWorker stops the in-process worker, waiting for running activities, and sets
// s.Worker to nil; a no-op when none runs.
func (s *Stack) StopWorker() {
	s.mu.Lock()
	w := s.Worker
	s.Worker = nil
	s.mu.Unlock()
	if w != nil {
		w.Stop()
	}
}

// Env is the environment a wagate binary needs to join this stack (Temporal, Redis, the
// sandbox and the stack's options), on top of PATH and HOME.
func (s *Stack) Env() []string {
	c := s.Config
	vars := map[string]string{
		"HTTP_ADDR":                    "127.0.0.1:0",
		"WHATSAPP_API_URL":             c.WhatsAppAPIURL,
		"WHATSAPP_API_VERSION":         c.WhatsAppAPIVersion,
		"WHATSAPP_TOKEN":               c.WhatsAppToken,
		"WHATSAPP_PHONE_NUMBER_ID":     c.WhatsAppPhoneNumberID,
		"WHATSAPP_BUSINESS_ACCOUNT_ID": c.WhatsAppBusinessAccountID,
		"WHATSAPP_APP_SECRET":          c.WhatsAppAppSecret,
		"WHATSAPP_MAX_MPS":             strconv.Itoa(c.WhatsAppMaxMPS),
		"MEDIA_FETCH_ALLOW_PRIVATE":    strconv.FormatBool(c.MediaFetchAllowPrivate),
		"WEBHOOK_VERIFY_TOKEN":         c.WebhookVerifyToken,
		"WEBSOCKET_URL":                c.WebSocketURL,
		"REDIS_URL":                    c.RedisURL,
		"TEMPORAL_ADDRESS":             c.TemporalAddress,
		"TEMPORAL_NAMESPACE":           c.TemporalNamespace,
		"BULK_MAX_WORKERS":             strconv.Itoa(c.BulkMaxWorkers),
		"API_KEY":                      c.APIKey,
		"TASK_SUMMARY_TTL":             c.SummaryTTL.String(),
	}
	if c.WhatsAppAppSecret == "" {
		// The production apiserver refuses to start without a secret unless told.
		vars["WEBHOOK_ALLOW_UNSIGNED"] = "true"
	}
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

// Process is a wagate binary running as a child of the test.
type Process struct {
	Cmd  *exec.Cmd
	out  syncBuffer
	done chan struct{}
	err  error
}

// Output is what the process wrote to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// Wait waits up to timeout for the process to exit and returns its exit error (nil
// for status 0); the test fails when it is still running then.
func (p *Process) Wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("%s still running after %v", p.Cmd.Path, timeout)
		return nil
	}
}

// Kill ends the process with SIGKILL, as a crash would, and waits until it is gone.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// StartBinary builds ./cmd/<name> (once per run) and starts it with s.Env() plus
// extraEnv ("KEY=value", later entries win). Its output is logged when the test fails;
// it is killed, if still running, in t.Cleanup.
func (s *Stack) StartBinary(t *testing.T, name string, extraEnv ...string) *Process {
	t.Helper()
	p := &Process{Cmd: exec.Command(BuildBinary(t, name)), done: make(chan struct{})}
	p.Cmd.Env = append(s.Env(), extraEnv...)
	p.Cmd.Stdout = &p.out
	p.Cmd.Stderr = &p.out
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.Output())
		}
	})
	return p
}

var (
	buildMu   sync.Mutex
	builtBins = map[string]string{}
)

// BuildBinary builds ./cmd/<name> once per test run into a temporary directory and
// returns its path.
func BuildBinary(t *testing.T, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := builtBins[name]; ok {
		return p
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("BuildBinary: %v", err)
	}
	out := filepath.Join(binDir, name)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, b)
	}
	builtBins[name] = out
	return out
}

// moduleRoot is the directory holding go.mod, found upwards from the test's directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test directory")
		}
		dir = parent
	}
}

// PostJSON posts body (marshalled to JSON; a string or []byte is sent as is) to
// s.API+path, with the API key when the stack has one, and decodes the JSON answer.
func (s *Stack) PostJSON(t *testing.T, path string, body any) (status int, resp map[string]any) {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatalf("PostJSON %s: marshal: %v", path, err)
		}
	}
	return s.do(t, http.MethodPost, path, raw)
}

// Get sends GET s.API+path, with the API key when the stack has one, and decodes the
// JSON answer.
func (s *Stack) Get(t *testing.T, path string) (status int, resp map[string]any) {
	t.Helper()
	return s.do(t, http.MethodGet, path, nil)
}

func (s *Stack) do(t *testing.T, method, path string, body []byte) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.API+path, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.opts.APIKey != "" {
		req.Header.Set("X-API-Key", s.opts.APIKey)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: status %d, body is not a JSON object: %v\n%s", method, path, res.StatusCode, err, b)
	}
	return res.StatusCode, out
}

// History reads the whole history of a workflow run (runID "": the latest run).
func (s *Stack) History(t *testing.T, id, runID string) *historypb.History {
	t.Helper()
	it := s.Temporal.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", id, err)
		}
		h.Events = append(h.Events, ev)
	}
	return h
}

// WaitTask polls GET /api/task-status/{taskID} until the task's status is SUCCESS or
// FAILURE and returns that answer; the test fails when timeout passes first.
func (s *Stack) WaitTask(t *testing.T, taskID string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var status int
	var last map[string]any
	for {
		status, last = s.Get(t, "/api/task-status/"+taskID)
		if st, _ := last["status"].(string); status == http.StatusOK && (st == shared.StatusSuccess || st == shared.StatusFailure) {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s not finished after %v; last answer %d %v", taskID, timeout, status, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testLogger logs at Warn and above into the test's log. Records that arrive after the
// test has finished (late goroutines of stopped parts) are dropped, since t.Log would
// panic then.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	mu     sync.Mutex
	t      *testing.T
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// syncBuffer is a bytes.Buffer safe for a child process's stdout and stderr at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// queueBulk posts a queued bulk send to n recipients and returns its task id.
func queueBulk(t *testing.T, s *Stack, n int) string {
	t.Helper()
	recipients := make([]map[string]string, n)
	for i := range recipients {
		recipients[i] = map[string]string{"phone": fmt.Sprintf("5731%08d", i), "message": fmt.Sprint("hola ", i)}
	}
	status, resp := s.PostJSON(t, "/api/send-bulk", map[string]any{"recipients": recipients})
	id, _ := resp["task_id"].(string)
	if status != http.StatusOK || id == "" {
		t.Fatalf("POST /api/send-bulk = %d %v, want 200 with a task_id", status, resp)
	}
	return id
}

// checkAllSent fails unless task answered SUCCESS with n sent and every recipient
// reached the sandbox exactly once.
func checkAllSent(t *testing.T, s *Stack, task map[string]any, n int) {
	t.Helper()
	res, _ := task["result"].(map[string]any)
	if task["status"] != shared.StatusSuccess || res["sent"] != float64(n) || res["failed"] != float64(0) {
		t.Errorf("task = %v, want SUCCESS with %d sent and 0 failed", task, n)
	}
	for i := range n {
		phone := fmt.Sprintf("5731%08d", i)
		if got := len(s.Sandbox.Messages(phone)); got != 1 {
			t.Errorf("sandbox got %d messages for %s, want 1", got, phone)
		}
	}
}

func TestStackRestartOnDataDirKeepsQueuedTasks(t *testing.T) {
	dir := t.TempDir()
	// First life: the task is accepted, but no worker runs it.
	first := NewStack(t, StackOptions{DataDir: dir, NoWorker: true})
	id := queueBulk(t, first, 5)
	if _, st := first.Get(t, "/api/task-status/"+id); st["status"] == shared.StatusSuccess {
		t.Fatalf("task finished without a worker: %v", st)
	}
	first.Stop()

	// Second life on the same DataDir: Temporal and Redis kept the workflow and its
	// staged recipients, and the new worker finishes it.
	second := NewStack(t, StackOptions{DataDir: dir})
	checkAllSent(t, second, second.WaitTask(t, id, time.Minute), 5)
}

func TestStackWorkerStopAndStart(t *testing.T) {
	s := NewStack(t, StackOptions{})
	if s.Worker == nil {
		t.Fatal("Worker is nil, want the in-process worker")
	}
	s.StopWorker()
	if s.Worker != nil {
		t.Fatal("Worker is not nil after StopWorker")
	}
	id := queueBulk(t, s, 3)
	time.Sleep(time.Second)
	if got := s.Sandbox.Stats().Accepted; got != 0 {
		t.Fatalf("sandbox accepted %d sends with the worker stopped, want 0", got)
	}
	// No worker answers the status query: Temporal's description says the task waits.
	if _, st := s.Get(t, "/api/task-status/"+id); st["status"] != shared.StatusPending || st["task_id"] != id {
		t.Errorf("task-status with the worker stopped = %v, want PENDING", st)
	}
	s.StartWorker(t)
	checkAllSent(t, s, s.WaitTask(t, id, time.Minute), 3)
	// A finished task whose summary is gone is read from its closed workflow: the status
	// query, rejected at once while the workflow is not open, is asked of its history.
	if err := s.Store.Client().Del(context.Background(), "wagate:task:"+id+":summary").Err(); err != nil {
		t.Fatal(err)
	}
	_, st := s.Get(t, "/api/task-status/"+id)
	checkAllSent(t, s, st, 3)
	if st["completed_at"] == nil {
		t.Errorf("task-status of the closed workflow = %v, want its completed_at", st)
	}
}

func TestWorkerBinaryRunsTasksAndStopsOnSIGTERM(t *testing.T) {
	s := NewStack(t, StackOptions{NoWorker: true})
	p := s.StartBinary(t, "worker")
	id := queueBulk(t, s, 4)
	checkAllSent(t, s, s.WaitTask(t, id, time.Minute), 4)

	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(t, 45*time.Second); err != nil {
		t.Errorf("worker exited with %v after SIGTERM, want status 0\n%s", err, p.Output())
	}
}

func TestAPIServerBinaryServesAndStopsOnSIGTERM(t *testing.T) {
	s := NewStack(t, StackOptions{APIKey: "clave"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := s.StartBinary(t, "apiserver", "HTTP_ADDR="+addr)

	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/api/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("apiserver never answered /api/health: %v\n%s", err, p.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The container healthcheck: the same binary, asked to probe the running one.
	hc := exec.Command(BuildBinary(t, "apiserver"), "healthcheck")
	hc.Env = append(s.Env(), "HTTP_ADDR="+addr)
	if out, err := hc.CombinedOutput(); err != nil {
		t.Errorf("apiserver healthcheck = %v (%s), want success", err, out)
	}

	// A direct send through the binary reaches the sandbox; the key is enforced.
	api := &Stack{API: base, opts: StackOptions{APIKey: "clave"}}
	status, resp := api.PostJSON(t, "/api/send-message", map[string]any{"phone": "573001112233", "message": "hola", "use_queue": false})
	if status != http.StatusOK || resp["success"] != true {
		t.Errorf("send-message via the binary = %d %v, want 200 success", status, resp)
	}
	if got := len(s.Sandbox.Messages("573001112233")); got != 1 {
		t.Errorf("sandbox got %d messages, want 1", got)
	}
	noKey := &Stack{API: base}
	if status, _ := noKey.PostJSON(t, "/api/send-message", map[string]any{"phone": "573001112233", "message": "hola"}); status != http.StatusUnauthorized {
		t.Errorf("send-message without the key = %d, want 401", status)
	}

	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(t, 30*time.Second); err != nil {
		t.Errorf("apiserver exited with %v after SIGTERM, want status 0\n%s", err, p.Output())
	}
	hc = exec.Command(BuildBinary(t, "apiserver"), "healthcheck")
	hc.Env = append(s.Env(), "HTTP_ADDR="+addr)
	if err := hc.Run(); err == nil {
		t.Error("apiserver healthcheck succeeded with the server stopped")
	}
}
