package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wagate/wagate/shared"
)

func TestClaimInboundOnceUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	s := newCacheTestStore(t)
	ev := shared.InboundEvent{ID: "wamid.A", From: "573123456789", Event: json.RawMessage(`{"object":"whatsapp_business_account"}`)}

	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			ok, err := s.ClaimInbound(ctx, ev, time.Hour, time.Hour)
			if err != nil {
				t.Errorf("ClaimInbound: %v", err)
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Fatalf("%d of 20 concurrent claims of one id succeeded; want exactly 1", got)
	}

	got, err := s.GetInboundEvent(ctx, "wamid.A")
	if err != nil {
		t.Fatalf("GetInboundEvent: %v", err)
	}
	if got.From != ev.From || string(got.Event) != string(ev.Event) {
		t.Errorf("GetInboundEvent = %+v; want %+v", got, ev)
	}

	// Released (the signal failed): the redelivery is accepted again.
	if err := s.ReleaseInbound(ctx, "wamid.A"); err != nil {
		t.Fatalf("ReleaseInbound: %v", err)
	}
	if ok, err := s.ClaimInbound(ctx, ev, time.Hour, time.Hour); err != nil || !ok {
		t.Errorf("ClaimInbound after release = %v, %v; want true", ok, err)
	}
}

func TestClaimInboundTTLs(t *testing.T) {
	ctx := context.Background()
	s := newCacheTestStore(t)
	ev := shared.InboundEvent{ID: "wamid.T", From: "1", Event: json.RawMessage(`{}`)}
	if _, err := s.ClaimInbound(ctx, ev, shared.InboundDedupeTTL, shared.InboundEventTTL); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  string
		want time.Duration
	}{
		{s.inboundSeenKey(ev.ID), shared.InboundDedupeTTL},
		{s.inboundEventKey(ev.ID), shared.InboundEventTTL},
	}
	for _, tt := range tests {
		got, err := s.Client().PTTL(ctx, tt.key).Result()
		if err != nil || got <= tt.want-time.Minute || got > tt.want {
			t.Errorf("PTTL %s = %v, %v; want about %v", tt.key, got, err, tt.want)
		}
	}
}

func TestGetInboundEventMissing(t *testing.T) {
	s := newCacheTestStore(t)
	if _, err := s.GetInboundEvent(context.Background(), "wamid.none"); !errors.Is(err, shared.ErrNotFound) {
		t.Errorf("GetInboundEvent of a missing id = %v; want shared.ErrNotFound", err)
	}
}

func TestRelaySpillRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newCacheTestStore(t)
	refs := []shared.InboundRef{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	if err := s.PutRelaySpill(ctx, "run-1", refs, time.Hour); err != nil {
		t.Fatal(err)
	}
	// A retried spill replaces, never appends.
	if err := s.PutRelaySpill(ctx, "run-1", refs, time.Hour); err != nil {
		t.Fatal(err)
	}
	for range 2 { // loads do not consume
		got, err := s.GetRelaySpill(ctx, "run-1")
		if err != nil || len(got) != 3 || got[0].ID != "a" || got[2].ID != "c" {
			t.Fatalf("GetRelaySpill = %v, %v; want %v", got, err, refs)
		}
	}
	if err := s.DeleteRelaySpill(ctx, "run-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRelaySpill(ctx, "run-1"); err != nil {
		t.Errorf("second DeleteRelaySpill = %v; want nil", err)
	}
	if _, err := s.GetRelaySpill(ctx, "run-1"); !errors.Is(err, shared.ErrNotFound) {
		t.Errorf("GetRelaySpill after delete = %v; want shared.ErrNotFound", err)
	}
}

func TestApplyStatusIsMonotonic(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		sequence   []string
		wantStatus string
		wantApply  []bool
	}{
		{"in order", []string{"sent", "delivered", "read"}, "read", []bool{true, true, true}},
		{"late sent after read", []string{"read", "sent", "delivered"}, "read", []bool{true, false, false}},
		{"delivered skipped", []string{"sent", "read"}, "read", []bool{true, true}},
		{"repeat", []string{"delivered", "delivered"}, "delivered", []bool{true, false}},
		{"failed is terminal", []string{"sent", "failed", "delivered", "read"}, "failed", []bool{true, true, false, false}},
		{"failed after read", []string{"read", "failed"}, "failed", []bool{true, true}},
		{"unknown first then sent", []string{"deleted", "sent"}, "sent", []bool{true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newCacheTestStore(t)
			for i, status := range tt.sequence {
				st := shared.DeliveryStatus{ID: "wamid.S", Status: status, Timestamp: string(rune('1' + i)), RecipientID: "573123456789"}
				if status == "failed" {
					st.Errors = json.RawMessage(`[{"code":131047}]`)
					st.BizOpaqueCallbackData = "task:7"
				}
				applied, err := s.ApplyStatus(ctx, st)
				if err != nil {
					t.Fatalf("ApplyStatus(%s): %v", status, err)
				}
				if applied != tt.wantApply[i] {
					t.Errorf("ApplyStatus(%s) #%d applied = %v; want %v", status, i, applied, tt.wantApply[i])
				}
			}
			got, err := s.GetStatus(ctx, "wamid.S")
			if err != nil {
				t.Fatalf("GetStatus: %v", err)
			}
			if got.Status != tt.wantStatus {
				t.Errorf("status = %q; want %q", got.Status, tt.wantStatus)
			}
			if len(got.Seen) != distinctStatuses(tt.sequence) {
				t.Errorf("seen = %v; want every status of %v", got.Seen, tt.sequence)
			}
			if tt.wantStatus == "failed" && (string(got.Errors) != `[{"code":131047}]` || got.BizOpaqueCallbackData != "task:7") {
				t.Errorf("failed status lost its errors or opaque data: %+v", got)
			}
		})
	}
}

func distinctStatuses(xs []string) int {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return len(m)
}

func TestGetStatusMissing(t *testing.T) {
	s := newCacheTestStore(t)
	if _, err := s.GetStatus(context.Background(), "wamid.none"); !errors.Is(err, shared.ErrNotFound) {
		t.Errorf("GetStatus of a missing wamid = %v; want shared.ErrNotFound", err)
	}
}
