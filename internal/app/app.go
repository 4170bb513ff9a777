// Package app is the wiring shared by wagate's binaries: logging, the Temporal client,
// the Graph API client, Redis, and a Group that runs long-lived parts (HTTP servers,
// workers, embedded servers) and stops them in order. It must not import devserver, so
// that the production binaries stay free of the embedded Temporal server.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/internal/metrics"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

// Timeouts of the wiring.
const (
	// DialTimeout bounds DialTemporal's retries, long enough for a cluster that starts
	// alongside (docker compose) to come up.
	DialTimeout = 30 * time.Second
	// StopTimeout bounds each part's stop; workers wait for running activities up to
	// their WorkerStopTimeout (30 s), so this is a little longer.
	StopTimeout = 40 * time.Second
	// HTTPReadHeaderTimeout protects the API from clients that never finish headers.
	HTTPReadHeaderTimeout = 10 * time.Second
)

// Logger returns a logger on stderr at Info: JSON for production, text for the dev
// console.
func Logger(json bool) *slog.Logger {
	if json {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

// DialTemporal connects to cfg.TemporalAddress in cfg.TemporalNamespace, retrying for up
// to DialTimeout (or until ctx ends) while the server comes up. SDK logs go to logger;
// the SDK's metrics (of the client and of its workers) go to the metrics registry.
func DialTemporal(ctx context.Context, cfg shared.Config, logger *slog.Logger) (client.Client, error) {
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	opts := client.Options{
		HostPort:       cfg.TemporalAddress,
		Namespace:      cfg.TemporalNamespace,
		Logger:         sdklog.NewStructuredLogger(logger),
		MetricsHandler: metrics.TemporalHandler(),
	}
	backoff := 100 * time.Millisecond
	for {
		c, err := client.DialContext(ctx, opts)
		if err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("temporal: dial %s: %w", cfg.TemporalAddress, err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// Graph returns the Graph API client described by cfg.
func Graph(cfg shared.Config) *graphapi.Client {
	return graphapi.New(graphapi.Config{
		BaseURL:       cfg.WhatsAppAPIURL,
		Version:       cfg.WhatsAppAPIVersion,
		Token:         cfg.WhatsAppToken,
		PhoneNumberID: cfg.WhatsAppPhoneNumberID,

		AllowPrivateMedia: cfg.MediaFetchAllowPrivate,
	})
}

// OpenRedis opens the store at cfg.RedisURL and checks that it answers.
func OpenRedis(ctx context.Context, cfg shared.Config) (*redisstore.Store, error) {
	store, err := redisstore.Open(ctx, cfg.RedisURL, "")
	if err != nil {
		return nil, err
	}
	// Delivery tracking lasts as long as the task summaries it keeps moving.
	store.SetDeliveryTTL(cfg.SummaryTTL)
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := store.Ping(pingCtx); err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("redis: ping %s: %w", RedactURL(cfg.RedisURL), err)
	}
	return store, nil
}

// RedactURL hides the password of a URL (redis://:secret@host) so that it can be
// logged or printed; other strings are returned unchanged.
func RedactURL(u string) string {
	parsed, err := url.Parse(u)
	if err != nil || parsed.User == nil {
		return u
	}
	if _, ok := parsed.User.Password(); ok {
		parsed.User = url.UserPassword(parsed.User.Username(), "xxxxx")
	}
	return parsed.String()
}

// Group runs the long-lived parts of a process. Parts are added as they start; Stop
// stops them in reverse order, so a process that starts Redis, Temporal, the client,
// the worker and then HTTP stops HTTP first and Redis last.
type Group struct {
	logger *slog.Logger

	mu     sync.Mutex
	parts  []part
	failed chan error // the first part failure

	stopOnce sync.Once
	stopErr  error
}

type part struct {
	name string
	stop func(context.Context) error
}

// NewGroup returns an empty Group that logs stops to logger.
func NewGroup(logger *slog.Logger) *Group {
	if logger == nil {
		logger = slog.Default()
	}
	return &Group{logger: logger, failed: make(chan error, 1)}
}

// Add registers a started part. stop is called once, by Stop; failed, when not nil,
// delivers an error if the part dies on its own, which ends Wait.
func (g *Group) Add(name string, stop func(context.Context) error, failed <-chan error) {
	g.mu.Lock()
	g.parts = append(g.parts, part{name: name, stop: stop})
	g.mu.Unlock()
	if failed == nil {
		return
	}
	go func() {
		err, ok := <-failed
		if !ok || err == nil {
			return
		}
		select {
		case g.failed <- fmt.Errorf("%s: %w", name, err):
		default:
		}
	}()
}

// Wait blocks until ctx ends (nil) or a part fails (its error).
func (g *Group) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-g.failed:
		return err
	}
}

// Stop stops every part in reverse order of Add, each within StopTimeout, and returns
// their errors joined. Later calls return the first call's result.
func (g *Group) Stop() error {
	g.stopOnce.Do(func() {
		g.mu.Lock()
		parts := g.parts
		g.mu.Unlock()
		var errs []error
		for i := len(parts) - 1; i >= 0; i-- {
			p := parts[i]
			ctx, cancel := context.WithTimeout(context.Background(), StopTimeout)
			start := time.Now()
			err := p.stop(ctx)
			cancel()
			if err != nil {
				g.logger.Error("stop failed", "part", p.name, "err", err)
				errs = append(errs, fmt.Errorf("stop %s: %w", p.name, err))
				continue
			}
			g.logger.Debug("stopped", "part", p.name, "took", time.Since(start).Round(time.Millisecond))
		}
		g.stopErr = errors.Join(errs...)
	})
	return g.stopErr
}

// ServeHTTP serves h on ln in the background. stop shuts the server down gracefully
// (in-flight requests finish, bounded by its ctx); failed delivers an error if serving
// stops for any other reason.
func ServeHTTP(ln net.Listener, h http.Handler) (stop func(context.Context) error, failed <-chan error) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: HTTPReadHeaderTimeout}
	errc := make(chan error, 1)
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
		close(errc)
	}()
	return srv.Shutdown, errc
}

// RunWorker runs w in the background. stop stops polling and waits for running tasks
// (up to the worker's WorkerStopTimeout); failed delivers the worker's fatal error,
// for example a namespace that does not exist.
func RunWorker(w sdkworker.Worker) (stop func(context.Context) error, failed <-chan error) {
	interrupt := make(chan any)
	done := make(chan error, 1)
	errc := make(chan error, 1)
	var stopping sync.Once
	stopped := make(chan struct{})
	go func() {
		err := w.Run(interrupt)
		done <- err
		select {
		case <-stopped:
		default:
			if err == nil {
				err = errors.New("worker stopped")
			}
			errc <- err
		}
		close(errc)
	}()
	stop = func(ctx context.Context) error {
		var err error
		stopping.Do(func() {
			close(stopped)
			close(interrupt)
			select {
			case err = <-done:
			case <-ctx.Done():
				err = fmt.Errorf("worker did not stop: %w", ctx.Err())
			}
		})
		return err
	}
	return stop, errc
}

// StartMetrics serves the metrics registry at /metrics on cfg.MetricsAddr (METRICS_ADDR)
// as a part of g; nothing when it is unset. A busy address fails the start.
func StartMetrics(g *Group, cfg shared.Config, logger *slog.Logger) error {
	if cfg.MetricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("listen on METRICS_ADDR %s: %w", cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+metrics.Path, metrics.Handler())
	stop, failed := ServeHTTP(ln, mux)
	g.Add("metrics", stop, failed)
	if logger != nil {
		logger.Info("metrics listening", "addr", ln.Addr().String(), "path", metrics.Path)
	}
	return nil
}
