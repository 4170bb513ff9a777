package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/wagate/wagate/shared"
)

func TestAcceptInboundsClaimsEachIDOnceInOneCall(t *testing.T) {
	ctx := context.Background()
	s := newCacheTestStore(t)
	ev := func(id string) shared.InboundEvent {
		return shared.InboundEvent{ID: id, From: "1", Event: json.RawMessage(`{"id":"` + id + `"}`)}
	}
	if ok, err := s.ClaimInbound(ctx, ev("old"), time.Hour, time.Hour); err != nil || !ok {
		t.Fatalf("ClaimInbound(old) = %v, %v", ok, err)
	}
	// A webhook with a new id, an id already claimed, the same new id twice, another.
	got, err := s.AcceptInbounds(ctx, []shared.InboundEvent{ev("a"), ev("old"), ev("a"), ev("b")}, time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false, false, true}; !slices.Equal(got, want) {
		t.Errorf("AcceptInbounds = %v; want %v", got, want)
	}
	stored, err := s.GetInboundEvents(ctx, []string{"b", "gone", "a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 3 || !stored[0].Found || stored[0].Event.ID != "b" || stored[1].Found || !stored[2].Found ||
		string(stored[2].Event.Event) != `{"id":"a"}` || stored[0].Invalid != nil {
		t.Errorf("GetInboundEvents = %+v; want b, not found, a", stored)
	}
}

func TestGetNumbersReturnsTheCachedOnes(t *testing.T) {
	ctx := context.Background()
	s := newCacheTestStore(t)
	now := time.Date(2025, 1, 16, 10, 0, 0, 0, time.UTC)
	if _, err := s.PutNumber(ctx, shared.Number{Phone: "573", Name: "Juan"}, now); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetNumbers(ctx, []string{"573", "574"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["573"].Name != "Juan" || !got["573"].CreatedAt.Equal(now) {
		t.Errorf("GetNumbers = %+v; want only 573", got)
	}
}

func TestRelayProgressRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newCacheTestStore(t)
	if _, err := s.GetRelayProgress(ctx, "run"); !errors.Is(err, shared.ErrNotFound) {
		t.Fatalf("GetRelayProgress before any = %v; want ErrNotFound", err)
	}
	p := shared.RelayProgress{ActivityID: "7", RelayBatchResult: shared.RelayBatchResult{Done: 40, Relayed: 39, Dropped: 1}}
	if err := s.PutRelayProgress(ctx, "run", p, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetRelayProgress(ctx, "run"); err != nil || got != p {
		t.Errorf("GetRelayProgress = %+v, %v; want %+v", got, err, p)
	}
}
