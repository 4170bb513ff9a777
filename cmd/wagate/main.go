// Command wagate is the dev stack behind `make run`: one process that brings up
// everything wagate needs with nothing installed beyond Go and redis-server.
//
//   - Redis: REDIS_URL when set; else the one on localhost:6379 when it answers; else a
//     redis-server child with its data in <data>/redis.
//   - Temporal: the cluster at TEMPORAL_ADDRESS when set; else an embedded server with
//     its SQLite file in <data>/temporal (frontend 127.0.0.1:7233, Web UI :8233).
//   - Graph API: Meta when WHATSAPP_TOKEN is set; else a built-in sandbox on
//     127.0.0.1:8081 that answers like Meta and posts signed status webhooks back.
//   - Downstream WebSocket: WEBSOCKET_URL when set; else a sink on 127.0.0.1:8082 that
//     logs every relayed inbound event.
//   - Webhook verification: WEBHOOK_VERIFY_TOKEN when set; else the contract's "hola".
//   - The worker and the API server on HTTP_ADDR (:5000).
//
// <data> is WAGATE_DATA_DIR (.wagate by default); a restart reuses it, so tasks survive.
// Ctrl-C stops the parts in order: HTTP, worker, client, Temporal, WebSocket sink,
// sandbox, Redis.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wagate/wagate/activities"
	"github.com/wagate/wagate/apiserver"
	"github.com/wagate/wagate/devserver"
	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/internal/app"
	"github.com/wagate/wagate/internal/redisserver"
	"github.com/wagate/wagate/shared"
	"github.com/wagate/wagate/worker"
)

// Fixed parts of the dev stack.
const (
	defaultDataDir  = ".wagate"
	localRedisURL   = "redis://localhost:6379/0"
	redisPort       = 6379
	temporalPort    = 7233
	temporalUIPort  = 8233
	sandboxPort     = 8081
	sandboxToken    = "sandbox-token"
	sandboxPhoneID  = "100000000000001"
	sandboxWABAID   = "100000000000002"
	sandboxLatency  = 100 * time.Millisecond
	sandboxMPS      = 80
	sandboxBurst    = 45
	sampleMediaPath = "/_sandbox/assets/sample.jpg"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, stop, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "wagate:", err)
		os.Exit(1)
	}
}

// banner collects what the closing banner prints.
type banner struct {
	api, ui, temporal, graph, media, redis, data, websocket, verify, webhooks string
}

// run starts the stack, prints the banner to out and blocks until ctx ends or a part
// fails. release is called once shutdown begins, so a second Ctrl-C kills at once.
func run(ctx context.Context, release func(), out io.Writer) (err error) {
	logger := app.Logger(false)
	cfg, err := shared.LoadConfig()
	if err != nil {
		return err
	}
	dataDir, err := prepareDataDir(os.Getenv("WAGATE_DATA_DIR"))
	if err != nil {
		return err
	}
	b := banner{data: dataDir}

	g := app.NewGroup(logger)
	defer func() {
		release()
		logger.Info("stopping")
		err = errors.Join(err, g.Stop())
		logger.Info("stopped")
	}()

	// Listen first: a busy HTTP_ADDR should fail before anything slow starts, and the
	// sandbox needs the real port for its webhook URL.
	apiLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	served := false
	defer func() {
		if !served {
			apiLn.Close()
		}
	}()
	apiPort := apiLn.Addr().(*net.TCPAddr).Port
	b.api = "http://localhost:" + strconv.Itoa(apiPort)

	if err := startRedis(ctx, g, &cfg, dataDir, logger, &b); err != nil {
		return err
	}
	store, err := app.OpenRedis(ctx, cfg)
	if err != nil {
		return err
	}
	g.Add("redis client", func(context.Context) error { return store.Close() }, nil)

	if err := devWebhookSecret(&cfg, &b); err != nil {
		return err
	}
	if err := startSandbox(g, &cfg, apiPort, logger, &b); err != nil {
		return err
	}
	if err := startWebSocketSink(g, &cfg, logger, &b); err != nil {
		return err
	}
	devWebhookToken(&cfg, &b)
	if err := startTemporal(ctx, g, &cfg, dataDir, logger, &b); err != nil {
		return err
	}

	c, err := app.DialTemporal(ctx, cfg, logger)
	if err != nil {
		return err
	}
	g.Add("temporal client", func(context.Context) error { c.Close(); return nil }, nil)

	graph := app.Graph(cfg)
	stopWorker, workerFailed := app.RunWorker(worker.New(c, activities.New(cfg, graph, store, logger)))
	g.Add("worker", stopWorker, workerFailed)
	if err := worker.EnsureRelay(ctx, c); err != nil {
		logger.Warn("inbound relay not started; the first webhook starts it", "err", err)
	}

	// One process, one registry: /metrics on the API port serves the API's, the
	// worker's and the SDK's metrics together (and on METRICS_ADDR when set).
	if err := app.StartMetrics(g, cfg, logger); err != nil {
		return err
	}
	deps := apiserver.Deps{Config: cfg, Temporal: c, Graph: graph, Store: store, Logger: logger}
	g.Add("inbound forwarder", apiserver.StartForwarder(deps), nil)
	stopHTTP, httpFailed := app.ServeHTTP(apiLn, apiserver.New(deps))
	served = true
	g.Add("http", stopHTTP, httpFailed)

	printBanner(out, b)
	return g.Wait(ctx)
}

// prepareDataDir resolves the data folder (WAGATE_DATA_DIR, or .wagate under the
// working directory) to an absolute path and makes sure it is a writable folder. Every
// path the stack hands to a child process or library derives from it, so none depends
// on the child's own working directory.
func prepareDataDir(dir string) (string, error) {
	if dir == "" {
		dir = defaultDataDir
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("data folder %q: %w", dir, err)
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		return "", fmt.Errorf("data folder %s is a file, not a folder: move it away or set WAGATE_DATA_DIR", abs)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", fmt.Errorf("data folder: %w (set WAGATE_DATA_DIR to a writable folder)", err)
	}
	probe, err := os.CreateTemp(abs, ".write-test-")
	if err != nil {
		return "", fmt.Errorf("data folder %s is not writable: %w (set WAGATE_DATA_DIR to a writable folder)", abs, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return abs, nil
}

// startRedis points cfg at a Redis: REDIS_URL when set, the local default when it
// answers, else a redis-server child keeping its data in <data>/redis.
func startRedis(ctx context.Context, g *app.Group, cfg *shared.Config, dataDir string, logger *slog.Logger, b *banner) error {
	if _, set := os.LookupEnv("REDIS_URL"); set {
		b.redis = app.RedactURL(cfg.RedisURL)
		return nil
	}
	if pingRedis(ctx, localRedisURL) == nil {
		cfg.RedisURL = localRedisURL
		b.redis = localRedisURL + " (already running)"
		return nil
	}
	dir := filepath.Join(dataDir, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("redis data dir: %w", err)
	}
	port := redisPort
	if !portFree(port) {
		logger.Warn("port 6379 is taken by something that is not Redis; starting redis-server on a free port")
		port = 0
	}
	srv, err := redisserver.Start(ctx, dir, port)
	if err != nil {
		return err
	}
	died := make(chan error, 1)
	go func() {
		<-srv.Done()
		died <- errors.New("redis-server exited")
	}()
	g.Add("redis-server", func(context.Context) error { return srv.Stop() }, died)
	cfg.RedisURL = srv.URL()
	b.redis = srv.URL() + " (redis-server, data in " + dir + ")"
	return nil
}

// pingRedis reports whether a Redis answers at url.
func pingRedis(ctx context.Context, url string) error {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	// A bare dial first: the client logs every failed dial of its pool, and nothing
	// listening is the common case.
	conn, err := net.DialTimeout("tcp", opts.Addr, 500*time.Millisecond)
	if err != nil {
		return err
	}
	conn.Close()
	opts.DialTimeout = 500 * time.Millisecond
	opts.MaxRetries = -1
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return rdb.Ping(ctx).Err()
}

// startSandbox serves the Graph API sandbox and points cfg at it, unless Meta
// credentials are configured.
func startSandbox(g *app.Group, cfg *shared.Config, apiPort int, logger *slog.Logger, b *banner) error {
	if !cfg.Sandboxed() {
		b.graph = cfg.WhatsAppAPIURL + " (Meta, phone number id " + cfg.WhatsAppPhoneNumberID + ")"
		return nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(sandboxPort)))
	if err != nil {
		logger.Warn("sandbox port 8081 is taken; using a free port", "err", err)
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return fmt.Errorf("sandbox listen: %w", err)
		}
	}
	base := "http://" + ln.Addr().String()
	sb := sandbox.New(sandbox.Options{
		PhoneNumberID:     sandboxPhoneID,
		BusinessAccountID: sandboxWABAID,
		Token:             sandboxToken,
		Latency:           sandboxLatency,
		MPS:               sandboxMPS,
		PairBurst:         sandboxBurst,
		PublicURL:         base,
		WebhookURL:        "http://127.0.0.1:" + strconv.Itoa(apiPort) + "/webhook",
		AppSecret:         cfg.WhatsAppAppSecret,
		Logger:            logger.With("component", "sandbox"),
	})
	if js := os.Getenv("SANDBOX_STATUSES"); js != "" {
		// The sandbox's status plan (per-status delays, later failures, read share), as
		// PUT /_sandbox/statuses takes it.
		plan := sb.StatusPlan()
		if err := plan.UpdateJSON([]byte(js)); err != nil {
			sb.Close()
			return fmt.Errorf("SANDBOX_STATUSES: %w", err)
		}
		_ = sb.SetStatusPlan(plan)
	}
	stopHTTP, failed := app.ServeHTTP(ln, sb.Handler())
	g.Add("sandbox", func(ctx context.Context) error {
		err := stopHTTP(ctx)
		sb.Close()
		return err
	}, failed)

	cfg.WhatsAppAPIURL = base
	if _, set := os.LookupEnv("MEDIA_FETCH_ALLOW_PRIVATE"); !set {
		cfg.MediaFetchAllowPrivate = true // the sandbox serves its sample media on loopback
	}
	cfg.WhatsAppToken = sandboxToken
	cfg.WhatsAppPhoneNumberID = sandboxPhoneID
	// Template campaigns are checked against the sandbox's template registry, as they
	// would be against the business account's with Meta.
	cfg.WhatsAppBusinessAccountID = sandboxWABAID
	b.graph = base + " (sandbox: latency 100ms, 80 msg/s)"
	b.media = base + sampleMediaPath
	return nil
}

// startTemporal points cfg at a Temporal frontend: TEMPORAL_ADDRESS when set, else an
// embedded server whose SQLite file lives in <data>/temporal.
func startTemporal(ctx context.Context, g *app.Group, cfg *shared.Config, dataDir string, logger *slog.Logger, b *banner) error {
	if _, set := os.LookupEnv("TEMPORAL_ADDRESS"); set {
		b.temporal = cfg.TemporalAddress + " (namespace " + cfg.TemporalNamespace + ")"
		b.ui = "the cluster's own Web UI"
		return nil
	}
	opts := devserver.Options{
		DataDir:      filepath.Join(dataDir, "temporal"),
		Namespace:    cfg.TemporalNamespace,
		FrontendPort: temporalPort,
		UIPort:       temporalUIPort,
		Logger:       logger,
	}
	// Another Temporal (or wagate) may hold the usual ports; free ones beat refusing
	// to start, and the banner shows where everything ended up.
	if !portFree(temporalPort) {
		logger.Warn("port 7233 is taken; the embedded Temporal server uses a free port")
		opts.FrontendPort = 0
	}
	if !portFree(temporalUIPort) {
		logger.Warn("port 8233 is taken; the Temporal Web UI uses a free port")
		opts.UIPort = 0
	}
	logger.Info("starting the embedded Temporal server", "data", opts.DataDir)
	dev, err := devserver.Start(ctx, opts)
	if err != nil {
		return err
	}
	g.Add("temporal server", func(context.Context) error { return dev.Stop() }, nil)
	cfg.TemporalAddress = dev.FrontendHostPort()
	b.temporal = dev.FrontendHostPort() + " (embedded, namespace " + dev.Namespace() + ", data in " + opts.DataDir + ")"
	b.ui = strings.Replace(dev.UIURL(), "127.0.0.1", "localhost", 1)
	return nil
}

// portFree reports whether port can be bound on 127.0.0.1 right now.
func portFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func printBanner(out io.Writer, b banner) {
	media := b.media
	if media == "" {
		media = "(no sandbox: use any public https URL)"
	}
	fmt.Fprintf(out, `
  wagate dev stack is up
    API              %s   (curl %s/api/health)
    API docs         %s/docs   (document: %s/api/openapi.json)
    Temporal Web UI  %s
    Temporal         %s
    Graph API        %s
    Sample media     %s
    Redis            %s
    WebSocket        %s
    Webhook token    %s
    Webhooks         %s
    Data             %s   (kept across restarts)
  Ctrl-C stops everything.

`, b.api, b.api, b.api, b.api, b.ui, b.temporal, b.graph, media, b.redis, b.websocket, b.verify, b.webhooks, b.data)
}
