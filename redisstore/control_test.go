package redisstore

import (
	"context"
	"sync"
	"testing"
	"time"
)

// The control key is set with a TTL, read back and cleared.
func TestTaskControlKey(t *testing.T) {
	s := newTaskTestStore(t)
	ctx := context.Background()
	if v, err := s.TaskControl(ctx, "t1"); err != nil || v != "" {
		t.Fatalf("unset = %q, %v", v, err)
	}
	if err := s.SetTaskControl(ctx, "t1", "pause"); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.TaskControl(ctx, "t1"); v != "pause" {
		t.Errorf("set = %q", v)
	}
	if ttl := s.rdb.PTTL(ctx, s.controlKey("t1")).Val(); ttl <= 0 || ttl > controlTTL {
		t.Errorf("ttl = %v", ttl)
	}
	if err := s.SetTaskControl(ctx, "t1", ""); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.TaskControl(ctx, "t1"); v != "" {
		t.Errorf("cleared = %q", v)
	}
}

// Of many requests racing on one key exactly one begins; the others see its record,
// and then its stored answer.
func TestBeginIdempotentOnce(t *testing.T) {
	s := newTaskTestStore(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	began := 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec, err := s.BeginIdempotent(ctx, "k", "h1", time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if rec == nil {
				began++
			} else if rec.State != IdemAccepting || rec.BodyHash != "h1" {
				t.Errorf("record = %+v", rec)
			}
		}()
	}
	wg.Wait()
	if began != 1 {
		t.Fatalf("%d requests began, want 1", began)
	}
	if err := s.FinishIdempotent(ctx, "k", IdemRecord{BodyHash: "h1", Status: 200, Body: []byte(`{"ok":true}`)}, time.Hour); err != nil {
		t.Fatal(err)
	}
	rec, err := s.BeginIdempotent(ctx, "k", "h2", time.Minute)
	if err != nil || rec == nil || rec.State != IdemDone || rec.Status != 200 || string(rec.Body) != `{"ok":true}` || rec.BodyHash != "h1" {
		t.Errorf("after finish = %+v, %v", rec, err)
	}
	if err := s.DropIdempotent(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if rec, _ := s.BeginIdempotent(ctx, "k", "h2", time.Minute); rec != nil {
		t.Errorf("after drop = %+v, want a new begin", rec)
	}
}
