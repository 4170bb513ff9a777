// Package testredis gives each test its own real redis-server. It is imported only
// from _test.go files.
package testredis

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wagate/wagate/internal/redisserver"
)

// New starts a fresh redis-server for the test (data in t.TempDir(), persistence off)
// and returns a client to it. Client and server are closed in t.Cleanup. When
// redis-server is not installed the test fails, saying to run `make redis`: Redis
// tests are never silently skipped.
func New(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(URL(t))
	if err != nil {
		t.Fatalf("testredis: %v", err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// URL is New returning the server's redis:// URL instead of a client.
func URL(t testing.TB) string {
	t.Helper()
	s, err := redisserver.Config{Dir: t.TempDir(), Ephemeral: true}.Start(context.Background())
	if errors.Is(err, redisserver.ErrNotInstalled) {
		t.Fatalf("testredis: redis-server is not installed; run `make redis` (%v)", err)
	}
	if err != nil {
		t.Fatalf("testredis: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("testredis: %v", err)
		}
	})
	return s.URL()
}
