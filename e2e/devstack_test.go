package e2e

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wagate/wagate/internal/metrics"
)

// devStackEnv is the environment of a new user's shell: the machine's, without any of
// the variables that point the dev stack at parts of its own (a Redis, a Temporal
// cluster, Meta, a consumer, a data folder).
func devStackEnv(extra ...string) []string {
	drop := map[string]bool{
		"REDIS_URL": true, "WAGATE_DATA_DIR": true, "TEMPORAL_ADDRESS": true, "TEMPORAL_NAMESPACE": true,
		"WHATSAPP_TOKEN": true, "WHATSAPP_PHONE_NUMBER_ID": true, "WHATSAPP_API_URL": true,
		"WHATSAPP_APP_SECRET": true, "WEBSOCKET_URL": true, "WEBHOOK_VERIFY_TOKEN": true,
		"API_KEY": true, "HTTP_ADDR": true,
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !drop[k] {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// startDevStack runs the cmd/wagate program as `make run` does: from dir as its working
// directory, with env. It returns once the banner is printed and /api/health answers,
// with the banner's API and Redis addresses.
func startDevStack(t *testing.T, dir string, env []string) (p *Process, api, redisURL string) {
	t.Helper()
	p = &Process{Cmd: exec.Command(BuildBinary(t, "wagate")), done: make(chan struct{})}
	p.Cmd.Dir = dir
	p.Cmd.Env = env
	p.Cmd.Stdout = &p.out
	p.Cmd.Stderr = &p.out
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start cmd/wagate: %v", err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("cmd/wagate output:\n%s", p.Output())
		}
	})

	apiRe := regexp.MustCompile(`API\s+(http://\S+)`)
	redisRe := regexp.MustCompile(`Redis\s+(redis://\S+)`)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-p.done:
			t.Fatalf("cmd/wagate exited before it was up (%v):\n%s", p.err, p.Output())
		default:
		}
		if m := apiRe.FindStringSubmatch(p.Output()); m != nil {
			api = m[1]
			if resp, err := http.Get(api + "/api/health"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("cmd/wagate did not come up within 2 minutes:\n%s", p.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m := redisRe.FindStringSubmatch(p.Output()); m != nil {
		redisURL = m[1]
	}
	return p, api, redisURL
}

// stopDevStack sends SIGINT, as Ctrl-C does, and checks a clean exit: status 0, every
// part stopped in order, and the redis-server child gone.
func stopDevStack(t *testing.T, p *Process, redisURL string) {
	t.Helper()
	if err := p.Cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(t, time.Minute); err != nil {
		t.Fatalf("cmd/wagate exited with %v after SIGINT, want status 0:\n%s", err, p.Output())
	}
	if out := p.Output(); !strings.Contains(out, `"msg":"stopped"`) && !strings.Contains(out, "msg=stopped") {
		t.Errorf("cmd/wagate did not log its ordered shutdown:\n%s", out)
	}
	if redisURL != "" && redisAnswers(redisURL) {
		t.Errorf("the dev stack's redis-server at %s still answers after the stack exited", redisURL)
	}
}

func redisAnswers(url string) bool {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return false
	}
	opts.DialTimeout = 500 * time.Millisecond
	opts.MaxRetries = -1
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return rdb.Ping(ctx).Err() == nil
}

// devStackSend sends one direct and one queued message through the dev stack at api
// and returns the queued task's id once it is SUCCESS.
func devStackSend(t *testing.T, api string) string {
	t.Helper()
	s := &Stack{API: api}
	status, resp := s.PostJSON(t, "/api/send-message", map[string]any{
		"phone": "573123456789", "message": "Hola, este es un mensaje de prueba", "use_queue": false,
	})
	if status != http.StatusOK || resp["success"] != true {
		t.Fatalf("direct send-message = %d %v, want 200 success", status, resp)
	}
	status, resp = s.PostJSON(t, "/api/send-message", map[string]any{
		"phone": "573123456789", "message": "Hola desde la cola", "use_queue": true,
	})
	id, _ := resp["task_id"].(string)
	if status != http.StatusOK || id == "" {
		t.Fatalf("queued send-message = %d %v, want 200 with a task_id", status, resp)
	}
	task := s.WaitTask(t, id, time.Minute)
	if res, _ := task["result"].(map[string]any); res["sent"] != float64(1) {
		t.Fatalf("queued send = %v, want 1 sent", task)
	}
	devStackMetrics(t, api)
	return id
}

// devStackMetrics checks the dev stack's one /metrics on the API port: it counts the
// API's requests, the direct send and the worker's queued one, and the worker's SDK
// metrics, all in the one process's registry.
func devStackMetrics(t *testing.T, api string) {
	t.Helper()
	m, err := metrics.Scrape(context.Background(), api+"/metrics")
	if err != nil {
		t.Fatalf("dev stack /metrics: %v", err)
	}
	if got := m.Value("wagate_sends_total", map[string]string{"outcome": "sent"}); got < 2 {
		t.Errorf("dev stack counted %v sends sent, want the direct and the queued one", got)
	}
	if got := m.Value("wagate_http_requests_total", map[string]string{"route": "/api/send-message", "status": "200"}); got < 2 {
		t.Errorf("dev stack counted %v POST /api/send-message, want 2", got)
	}
	if got := m.Value("temporal_activity_execution_latency_seconds_count", nil); got <= 0 {
		t.Errorf("dev stack /metrics has no activity executions of its worker (%v)", got)
	}
}

// occupy holds 127.0.0.1:port with a listener that accepts connections and never
// answers, as an unrelated program would; false when the port is already taken.
func occupy(t *testing.T, port int) bool {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	t.Cleanup(func() { ln.Close() })
	return true
}

// `make run` on a fresh machine: no Redis running, no REDIS_URL, the default relative
// data folder under a new working directory. It comes up, sends, stops cleanly on
// Ctrl-C, and a second run reuses the data, even with every port the dev stack would
// like taken by something else.
func TestMakeRunOnAFreshMachine(t *testing.T) {
	if redisAnswers("redis://localhost:6379/0") {
		t.Skip("a Redis answers on localhost:6379, so the dev stack would reuse it; this test needs a machine without one")
	}
	dir := t.TempDir()
	env := devStackEnv()
	if !portFreeAt(5000) {
		env = append(env, "HTTP_ADDR=127.0.0.1:0")
	}

	p, api, redisURL := startDevStack(t, dir, env)
	data := filepath.Join(dir, ".wagate")
	for _, want := range []string{filepath.Join(data, "redis"), filepath.Join(data, "temporal")} {
		if !strings.Contains(p.Output(), want) {
			t.Errorf("banner does not show the absolute data path %s:\n%s", want, p.Output())
		}
	}
	if redisURL == "" || !strings.Contains(p.Output(), "(redis-server, data in ") {
		t.Fatalf("the dev stack did not start its own redis-server:\n%s", p.Output())
	}
	// The banner names the docs page, and the page and its document are there.
	if !strings.Contains(p.Output(), api+"/docs") {
		t.Errorf("banner does not show the docs page %s/docs:\n%s", api, p.Output())
	}
	for path, ctype := range map[string]string{"/docs": "text/html", "/api/openapi.json": "application/json"} {
		res, err := http.Get(api + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), ctype) {
			t.Errorf("GET %s on the dev stack = %d %q, want 200 %s", path, res.StatusCode, res.Header.Get("Content-Type"), ctype)
		}
	}
	id := devStackSend(t, api)
	stopDevStack(t, p, redisURL)
	for _, f := range []string{filepath.Join(data, "temporal", "temporal.db"), filepath.Join(data, "redis", "appendonlydir")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("data file after the first run: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "redis", ".wagate")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the relative data folder was resolved twice: %s exists", filepath.Join(data, "redis", ".wagate"))
	}

	// Second run: every fixed port of the dev stack is held by something that is not
	// the part it expects; the stack takes free ones, says so, and finds its data.
	for _, port := range []int{6379, 7233, 8233, 8081, 8082} {
		if !occupy(t, port) {
			t.Logf("port %d was already taken", port)
		}
	}
	p, api, redisURL = startDevStack(t, dir, env)
	for _, want := range []string{"port 6379 is taken", "port 7233 is taken", "port 8233 is taken", "port 8081 is taken", "port 8082 is taken"} {
		if !strings.Contains(p.Output(), want) {
			t.Errorf("the dev stack did not say %q:\n%s", want, p.Output())
		}
	}
	s := &Stack{API: api}
	status, resp := s.Get(t, "/api/task-status/"+id)
	if status != http.StatusOK || resp["status"] != "SUCCESS" {
		t.Errorf("task-status of the first run's task = %d %v, want SUCCESS from the kept data", status, resp)
	}
	devStackSend(t, api)
	stopDevStack(t, p, redisURL)
}

// A data folder that cannot be used stops the dev stack at once with a message that
// names it, before anything is started.
func TestMakeRunRefusesAnUnusableDataFolder(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "not-a-folder")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(BuildBinary(t, "wagate"))
	cmd.Dir = dir
	cmd.Env = devStackEnv("WAGATE_DATA_DIR=not-a-folder", "HTTP_ADDR=127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("cmd/wagate with a file as data folder = %v, want exit status 1:\n%s", err, out)
	}
	if want := "data folder " + file + " is a file"; !strings.Contains(string(out), want) {
		t.Errorf("output does not say %q:\n%s", want, out)
	}
	if strings.Contains(string(out), "goroutine ") {
		t.Errorf("output is a stack trace:\n%s", out)
	}
}

func portFreeAt(port int) bool {
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
