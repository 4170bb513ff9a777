// Command sandbox runs the Graph API sandbox standalone: a local stand-in for Meta's
// WhatsApp Cloud API that wagate can point WHATSAPP_API_URL at.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/wagate/wagate/graphapi/sandbox"
)

// config is the sandbox's environment, parsed once.
type config struct {
	Addr      string        `env:"SANDBOX_ADDR" envDefault:":8081"`
	PublicURL string        `env:"SANDBOX_PUBLIC_URL"`
	Latency   time.Duration `env:"SANDBOX_LATENCY" envDefault:"50ms"`
	Jitter    time.Duration `env:"SANDBOX_JITTER"`
	MPS       int           `env:"SANDBOX_MPS" envDefault:"80"`
	// MPSCounter is how SANDBOX_MPS counts: sliding (any 1 s window), fixed (per clock
	// second) or bucket (a token bucket of SANDBOX_MPS).
	MPSCounter string `env:"SANDBOX_MPS_COUNTER" envDefault:"sliding"`
	PairBurst  int    `env:"SANDBOX_PAIR_BURST"`
	// Faults is the JSON of PUT /_sandbox/faults applied at start, for example a fault
	// mix: {"mix": {"seed": 1, "server_error": 0.02, "pair_rate": 0.01, "permanent": 0.005}}.
	Faults      string        `env:"SANDBOX_FAULTS"`
	StatusDelay time.Duration `env:"SANDBOX_STATUS_DELAY" envDefault:"200ms"`
	// Statuses is the JSON of PUT /_sandbox/statuses applied at start: per-status delays,
	// a share of later failures, a share of read messages, e.g.
	// {"delivered_delay": "1s", "failed": 0.05, "read": 0.6}.
	Statuses      string `env:"SANDBOX_STATUSES"`
	WebhookURL    string `env:"SANDBOX_WEBHOOK_URL"`
	AppSecret     string `env:"WHATSAPP_APP_SECRET"`
	Token         string `env:"WHATSAPP_TOKEN"`
	PhoneNumberID string `env:"WHATSAPP_PHONE_NUMBER_ID"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg config
	if err := env.Parse(&cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if !sandbox.MPSCounter(cfg.MPSCounter).Valid() {
		return fmt.Errorf("config: SANDBOX_MPS_COUNTER must be sliding, fixed or bucket, got %q", cfg.MPSCounter)
	}
	var faults sandbox.Faults
	if cfg.Faults != "" {
		if err := json.Unmarshal([]byte(cfg.Faults), &faults); err != nil {
			return fmt.Errorf("config: SANDBOX_FAULTS: %w", err)
		}
		if err := faults.Validate(); err != nil {
			return fmt.Errorf("config: SANDBOX_FAULTS: %w", err)
		}
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	sb := sandbox.New(sandbox.Options{
		PhoneNumberID: cfg.PhoneNumberID,
		Token:         cfg.Token,
		Latency:       cfg.Latency,
		Jitter:        cfg.Jitter,
		MPS:           cfg.MPS,
		MPSCounter:    sandbox.MPSCounter(cfg.MPSCounter),
		PairBurst:     cfg.PairBurst,
		PublicURL:     cfg.PublicURL,
		WebhookURL:    cfg.WebhookURL,
		AppSecret:     cfg.AppSecret,
		StatusDelay:   cfg.StatusDelay,
		Logger:        log,
	})
	defer sb.Close()
	sb.SetFaults(faults)
	if cfg.Statuses != "" {
		plan := sb.StatusPlan()
		if err := plan.UpdateJSON([]byte(cfg.Statuses)); err != nil {
			return fmt.Errorf("config: SANDBOX_STATUSES: %w", err)
		}
		if err := sb.SetStatusPlan(plan); err != nil {
			return fmt.Errorf("config: SANDBOX_STATUSES: %w", err)
		}
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: sb.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("graph api sandbox listening", "addr", ln.Addr().String(), "latency", cfg.Latency.String(),
		"mps", cfg.MPS, "webhook_url", cfg.WebhookURL, "signed", cfg.AppSecret != "")

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Requests still hanging (a Timeout fault) must not keep the process alive.
		srv.Close()
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("shutdown: %w", err)
		}
	}
	log.Info("graph api sandbox stopped")
	return nil
}
