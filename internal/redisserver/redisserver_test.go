package redisserver

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func start(t *testing.T, c Config) *Server {
	t.Helper()
	s, err := c.Start(context.Background())
	if errors.Is(err, ErrNotInstalled) {
		t.Fatalf("redis-server is not installed: run `make redis`: %v", err)
	}
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Kill() })
	return s
}

func client(t *testing.T, s *Server) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", s.URL(), err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestStartPingStop(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Start(ctx, dir, 0)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Kill() })

	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil || host != "127.0.0.1" {
		t.Errorf("Addr = %q, want 127.0.0.1:<port>", s.Addr)
	}
	if got, want := s.URL(), "redis://"+s.Addr+"/0"; got != want {
		t.Errorf("URL() = %q, want %q", got, want)
	}
	rdb := client(t, s)
	if got, err := rdb.Ping(ctx).Result(); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v; want PONG", got, err)
	}
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("dial %s after Stop succeeded, want refused", s.Addr)
	}
	// The default configuration persists to an AOF in dir.
	if m, _ := filepath.Glob(filepath.Join(dir, "appendonly*")); len(m) == 0 {
		entries, _ := os.ReadDir(dir)
		t.Errorf("no appendonly file in data dir after Stop; dir holds %v", entries)
	}
}

func TestDataSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := start(t, Config{Dir: dir})
	if err := client(t, s).Set(ctx, "greeting", "hola", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	_, port, _ := net.SplitHostPort(s.Addr)
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("port of %q: %v", s.Addr, err)
	}
	s2 := start(t, Config{Dir: dir, Port: p})
	if s2.Addr != s.Addr {
		t.Errorf("restart Addr = %q, want %q", s2.Addr, s.Addr)
	}
	if got, err := client(t, s2).Get(ctx, "greeting").Result(); err != nil || got != "hola" {
		t.Errorf("GET after restart = %q, %v; want %q", got, err, "hola")
	}
}

func TestKillFreesPort(t *testing.T) {
	s := start(t, Config{Dir: t.TempDir(), Ephemeral: true})
	if err := s.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if err := s.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("Stop after Kill: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("dial %s after Kill succeeded, want refused", s.Addr)
	}
	l, err := net.Listen("tcp", s.Addr)
	if err != nil {
		t.Fatalf("listen on %s after Kill: %v; want the port free", s.Addr, err)
	}
	l.Close()
}

func TestStartErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name string
		cfg  Config
	}{
		{"no dir", Config{}},
		{"missing dir", Config{Dir: filepath.Join(t.TempDir(), "nope")}},
		{"port taken", Config{Dir: t.TempDir(), Port: busyPort, Ephemeral: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.cfg.Start(context.Background())
			if err == nil {
				s.Kill()
				t.Fatalf("Start(%+v) = nil error, want one", tt.cfg)
			}
		})
	}
}

func TestNotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	saved := fallbackPaths
	fallbackPaths = []string{filepath.Join(t.TempDir(), "redis-server")}
	t.Cleanup(func() { fallbackPaths = saved })

	_, err := Start(context.Background(), t.TempDir(), 0)
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Start without redis-server = %v, want ErrNotInstalled", err)
	}
	for _, hint := range []string{"make redis", "apt-get install redis-server"} {
		if !strings.Contains(err.Error(), hint) {
			t.Errorf("error %q does not mention %q", err, hint)
		}
	}
}

// A relative data directory, as the dev stack's default .wagate/redis, is the child's
// working directory and its --dir at once: it must be resolved before the child starts,
// not again from inside itself.
func TestStartWithRelativeDir(t *testing.T) {
	root := t.TempDir()
	t.Chdir(root)
	rel := filepath.Join(".wagate", "redis")
	if err := os.MkdirAll(rel, 0o755); err != nil {
		t.Fatal(err)
	}
	s := start(t, Config{Dir: rel})
	rdb := client(t, s)
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// The append-only file is where the relative path points from this process.
	entries, err := os.ReadDir(filepath.Join(root, rel))
	if err != nil || len(entries) == 0 {
		t.Fatalf("data dir %s holds %v (%v), want the append-only files", filepath.Join(root, rel), entries, err)
	}
	if _, err := os.Stat(filepath.Join(root, rel, rel)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists: the relative dir was resolved twice", filepath.Join(root, rel, rel))
	}

	again := start(t, Config{Dir: rel})
	if got, err := client(t, again).Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Errorf("after restart GET k = %q, %v; want v", got, err)
	}
}
