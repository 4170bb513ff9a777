// Command worker is wagate's production Temporal worker: it runs the bulk-send and
// inbound-relay workflows and their activities against the cluster at TEMPORAL_ADDRESS.
// Configuration comes from the environment (see README.md); logs are JSON on stderr.
// With METRICS_ADDR set it serves Prometheus's /metrics there.
// SIGINT or SIGTERM stop polling, let running activities finish (up to 30 s), then exit.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/wagate/wagate/activities"
	"github.com/wagate/wagate/internal/app"
	"github.com/wagate/wagate/shared"
	"github.com/wagate/wagate/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) (err error) {
	logger := app.Logger(true)
	cfg, err := shared.LoadConfig()
	if err != nil {
		return err
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

	// The worker has no other HTTP port: METRICS_ADDR is where Prometheus scrapes it.
	if err := app.StartMetrics(g, cfg, logger); err != nil {
		return err
	}

	acts := activities.New(cfg, app.Graph(cfg), store, logger)
	stopWorker, failed := app.RunWorker(worker.New(c, acts))
	g.Add("worker", stopWorker, failed)
	if err := worker.EnsureRelay(ctx, c); err != nil {
		logger.Warn("inbound relay not started; the first webhook starts it", "err", err)
	}

	logger.Info("worker running", "temporal", cfg.TemporalAddress, "namespace", cfg.TemporalNamespace,
		"task_queue", shared.TaskQueue, "graph_api", cfg.WhatsAppAPIURL)
	return g.Wait(ctx)
}
