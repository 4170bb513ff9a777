package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/testredis"
	"github.com/wagate/wagate/shared"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"redis://:s3cret@redis:6379/0", "redis://:xxxxx@redis:6379/0"},
		{"redis://user:s3cret@redis:6379/1", "redis://user:xxxxx@redis:6379/1"},
		{"redis://user@redis:6379/1", "redis://user@redis:6379/1"},
		{"not a url %%", "not a url %%"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(RedactURL(tt.in), "s3cret") {
			t.Errorf("RedactURL(%q) leaks the password", tt.in)
		}
	}
}

func TestGroupStopsInReverseOrderOnce(t *testing.T) {
	g := NewGroup(quiet())
	var mu sync.Mutex
	var order []string
	for _, name := range []string{"redis", "temporal", "client", "worker", "http"} {
		g.Add(name, func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, name)
			if name == "client" {
				return errors.New("boom")
			}
			return nil
		}, nil)
	}
	err := g.Stop()
	want := "http,worker,client,temporal,redis"
	if got := strings.Join(order, ","); got != want {
		t.Errorf("stop order = %s, want %s", got, want)
	}
	if err == nil || !strings.Contains(err.Error(), "stop client: boom") {
		t.Errorf("Stop() = %v, want the client's error", err)
	}
	if err2 := g.Stop(); err2 != err || len(order) != 5 {
		t.Errorf("second Stop() = %v after %d stops, want the same error and no new stops", err2, len(order))
	}
}

func TestGroupWait(t *testing.T) {
	t.Run("context ends", func(t *testing.T) {
		g := NewGroup(quiet())
		g.Add("idle", func(context.Context) error { return nil }, make(chan error))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := g.Wait(ctx); err != nil {
			t.Errorf("Wait() = %v, want nil when the context ends", err)
		}
	})
	t.Run("part fails", func(t *testing.T) {
		g := NewGroup(quiet())
		failed := make(chan error, 1)
		g.Add("http", func(context.Context) error { return nil }, failed)
		failed <- errors.New("listener closed")
		if err := g.Wait(context.Background()); err == nil || err.Error() != "http: listener closed" {
			t.Errorf("Wait() = %v, want %q", err, "http: listener closed")
		}
	})
	t.Run("closed failure channel is not a failure", func(t *testing.T) {
		g := NewGroup(quiet())
		failed := make(chan error)
		close(failed)
		g.Add("done", func(context.Context) error { return nil }, failed)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := g.Wait(ctx); err != nil {
			t.Errorf("Wait() = %v, want nil", err)
		}
	})
}

func TestServeHTTPGracefulStop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	release := make(chan struct{})
	stop, failed := ServeHTTP(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	}))

	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{string(b), err}
	}()
	<-entered

	stopped := make(chan error, 1)
	go func() { stopped <- stop(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("stop returned %v while a request was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if r := <-res; r.err != nil || r.body != "done" {
		t.Errorf("in-flight request got (%q, %v), want (\"done\", nil)", r.body, r.err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("stop() = %v, want nil", err)
	}
	if err, ok := <-failed; ok {
		t.Errorf("failed delivered %v after a graceful stop, want it closed", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Errorf("listener still accepts after stop")
	}
}

func TestServeHTTPReportsFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, failed := ServeHTTP(ln, http.NotFoundHandler())
	ln.Close()
	select {
	case err := <-failed:
		if err == nil {
			t.Errorf("failed delivered nil, want the serve error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no failure reported after the listener closed")
	}
}

func TestOpenRedis(t *testing.T) {
	ctx := context.Background()
	store, err := OpenRedis(ctx, shared.Config{RedisURL: testredis.URL(t)})
	if err != nil {
		t.Fatalf("OpenRedis(live server) = %v", err)
	}
	if err := store.Ping(ctx); err != nil {
		t.Errorf("Ping() = %v", err)
	}
	store.Close()

	// A port nobody listens on: the ping must fail and the password must not leak.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, err = OpenRedis(ctx, shared.Config{RedisURL: "redis://:hunter2@" + addr + "/0"})
	if err == nil {
		t.Fatal("OpenRedis(dead address) = nil, want an error")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q leaks the password", err)
	}
	if _, err := OpenRedis(ctx, shared.Config{RedisURL: "http://nope"}); err == nil {
		t.Error("OpenRedis(bad scheme) = nil, want an error")
	}
}

func TestDialTemporalGivesUpWithContext(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	c, err := DialTemporal(ctx, shared.Config{TemporalAddress: addr, TemporalNamespace: "default"}, quiet())
	if err == nil {
		c.Close()
		t.Fatal("DialTemporal(nothing listening) = nil error")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("DialTemporal took %v, want it to stop with the context (1 s)", took)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name the address %s", err, addr)
	}
}
