// Command apiserver is wagate's production HTTP API on HTTP_ADDR: it validates requests
// and starts, queries, signals and updates workflows on the cluster at TEMPORAL_ADDRESS
// (the worker binary runs them), and forwards the inbound log of accepted webhooks to the
// relay workflow (one replica at a time, by a Redis lease). Configuration comes from the environment (see
// README.md); logs are JSON on stderr. SIGINT or SIGTERM stop accepting connections,
// let in-flight requests finish, then close the clients.
//
// `apiserver healthcheck` asks the server on HTTP_ADDR for /api/health and exits 0 only
// on 200: the container healthcheck, since the runtime image has no curl.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wagate/wagate/apiserver"
	"github.com/wagate/wagate/internal/app"
	"github.com/wagate/wagate/shared"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "apiserver:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) (err error) {
	logger := app.Logger(true)
	cfg, err := shared.LoadConfig()
	if err != nil {
		return err
	}
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		return healthcheck(ctx, cfg.HTTPAddr)
	}
	if err := checkSecurity(cfg); err != nil {
		return err
	}
	for _, w := range cfg.SecurityWarnings() {
		logger.Warn(w)
	}

	g := app.NewGroup(logger)
	defer func() { err = errors.Join(err, g.Stop()) }()

	store, err := app.OpenRedis(ctx, cfg)
	if err != nil {
		return err
	}
	g.Add("redis client", func(context.Context) error { return store.Close() }, nil)

	c, err := app.DialTemporal(ctx, cfg, logger)
	if err != nil {
		return err
	}
	g.Add("temporal client", func(context.Context) error { c.Close(); return nil }, nil)

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	// /metrics is on HTTP_ADDR; METRICS_ADDR adds a listener for a private network.
	if err := app.StartMetrics(g, cfg, logger); err != nil {
		ln.Close()
		return err
	}
	deps := apiserver.Deps{Config: cfg, Temporal: c, Graph: app.Graph(cfg), Store: store, Logger: logger}
	// Every replica runs a forwarder of the inbound log; a Redis lease keeps one active.
	g.Add("inbound forwarder", apiserver.StartForwarder(deps), nil)
	stopHTTP, failed := app.ServeHTTP(ln, apiserver.New(deps))
	g.Add("http", stopHTTP, failed)

	prints := make([]string, 0, len(cfg.Keys()))
	for _, k := range cfg.Keys() {
		prints = append(prints, shared.KeyFingerprint(k))
	}
	logger.Info("api listening", "addr", ln.Addr().String(), "temporal", cfg.TemporalAddress,
		"namespace", cfg.TemporalNamespace, "api_keys", prints, "webhook_signed", cfg.WhatsAppAppSecret != "")
	return g.Wait(ctx)
}

// checkSecurity refuses a production start that would accept forged webhooks: without
// WHATSAPP_APP_SECRET anyone who finds /webhook could inject inbound "messages" that
// reach the downstream WebSocket as if Meta had sent them.
func checkSecurity(cfg shared.Config) error {
	if cfg.WhatsAppAppSecret == "" && !cfg.WebhookAllowUnsigned {
		return errors.New("WHATSAPP_APP_SECRET is not set, so POST /webhook could not tell Meta's webhooks from forged ones: " +
			"set it to the app secret of your Meta app, or set WEBHOOK_ALLOW_UNSIGNED=true to accept unsigned webhooks knowingly")
	}
	return nil
}

// healthcheck GETs /api/health on the local server listening on addr.
func healthcheck(ctx context.Context, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("healthcheck: HTTP_ADDR %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort(host, port) + "/api/health"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d", url, resp.StatusCode)
	}
	return nil
}
