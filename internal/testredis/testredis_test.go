package testredis

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestNewIsFreshAndWorks(t *testing.T) {
	ctx := context.Background()
	a, b := New(t), New(t)
	if err := a.Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatalf("SET on first server: %v", err)
	}
	if got, err := a.Get(ctx, "k").Result(); err != nil || got != "a" {
		t.Errorf("GET k = %q, %v; want %q", got, err, "a")
	}
	if n, err := b.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("second server DBSIZE = %d, %v; want an empty, separate server", n, err)
	}
	if got, err := a.ConfigGet(ctx, "appendonly").Result(); err != nil || got["appendonly"] != "no" {
		t.Errorf("appendonly = %v, %v; want persistence off", got, err)
	}
}

func TestURL(t *testing.T) {
	url := URL(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", url, err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if got, err := rdb.Ping(context.Background()).Result(); err != nil || got != "PONG" {
		t.Errorf("PING %s = %q, %v; want PONG", url, got, err)
	}
}
