package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/testredis"
	"github.com/wagate/wagate/shared"
)

func newCacheTestStore(t *testing.T) *Store {
	t.Helper()
	return New(testredis.New(t), "")
}

func TestPutNumberCreateThenUpdateKeepsCreatedAt(t *testing.T) {
	ctx := context.Background()
	s := newCacheTestStore(t)
	t0 := time.Date(2025, 1, 16, 10, 0, 0, 123456789, time.FixedZone("COT", -5*3600))
	t1 := t0.Add(90 * time.Minute)

	created, err := s.PutNumber(ctx, shared.Number{Phone: "573123456789", Name: "Juan Pérez",
		Data: json.RawMessage(`{"email":"juan@example.com"}`)}, t0)
	if err != nil || !created {
		t.Fatalf("first PutNumber = %v, %v; want created", created, err)
	}
	created, err = s.PutNumber(ctx, shared.Number{Phone: "573123456789", Name: "Juan P."}, t1)
	if err != nil || created {
		t.Fatalf("second PutNumber = %v, %v; want an update", created, err)
	}

	got, err := s.GetNumber(ctx, "573123456789")
	if err != nil {
		t.Fatalf("GetNumber: %v", err)
	}
	body, _ := json.Marshal(got)
	want := `{"phone":"573123456789","name":"Juan P.","data":{},"created_at":"2025-01-16T15:00:00Z","updated_at":"2025-01-16T16:30:00Z"}`
	if string(body) != want {
		t.Errorf("GetNumber JSON\n got %s\nwant %s", body, want)
	}
}

func TestGetNumberMissing(t *testing.T) {
	s := newCacheTestStore(t)
	_, err := s.GetNumber(context.Background(), "573000000000")
	if !errors.Is(err, shared.ErrNotFound) {
		t.Errorf("GetNumber of a missing phone = %v; want shared.ErrNotFound", err)
	}
}

func TestListDeleteClearNumbers(t *testing.T) {
	ctx := context.Background()
	s := newCacheTestStore(t)
	now := time.Date(2025, 1, 16, 10, 0, 0, 0, time.UTC)
	const n = 2500 // more than one pipeline batch
	for i := range n {
		phone := fmt.Sprintf("57300%07d", n-i) // inserted in descending order
		if _, err := s.PutNumber(ctx, shared.Number{Phone: phone, Name: "n", Data: json.RawMessage(`{"i":1}`)}, now); err != nil {
			t.Fatalf("PutNumber %s: %v", phone, err)
		}
	}
	// A key that shares the prefix but is not a number must not be listed.
	if err := s.Client().Set(ctx, s.key("numbers-other"), "x", 0).Err(); err != nil {
		t.Fatal(err)
	}

	list, err := s.ListNumbers(ctx)
	if err != nil {
		t.Fatalf("ListNumbers: %v", err)
	}
	if len(list) != n {
		t.Fatalf("ListNumbers returned %d numbers; want %d", len(list), n)
	}
	for i := 1; i < len(list); i++ {
		if list[i-1].Phone >= list[i].Phone {
			t.Fatalf("ListNumbers not ordered by phone at %d: %s then %s", i, list[i-1].Phone, list[i].Phone)
		}
	}
	if got, want := string(list[0].Data), `{"i":1}`; got != want {
		t.Errorf("listed data = %s; want %s", got, want)
	}

	tests := []struct {
		phone   string
		wantErr error
	}{
		{"573000000001", nil},
		{"573000000001", shared.ErrNotFound}, // already deleted
		{"579999999999", shared.ErrNotFound},
	}
	for _, tt := range tests {
		if err := s.DeleteNumber(ctx, tt.phone); !errors.Is(err, tt.wantErr) {
			t.Errorf("DeleteNumber(%s) = %v; want %v", tt.phone, err, tt.wantErr)
		}
	}

	deleted, err := s.ClearNumbers(ctx)
	if err != nil || deleted != n-1 {
		t.Fatalf("ClearNumbers = %d, %v; want %d", deleted, err, n-1)
	}
	list, err = s.ListNumbers(ctx)
	if err != nil || len(list) != 0 {
		t.Errorf("ListNumbers after clear = %d numbers, %v; want none", len(list), err)
	}
	if _, err := s.GetNumber(ctx, "573000000002"); !errors.Is(err, shared.ErrNotFound) {
		t.Errorf("GetNumber after clear = %v; want shared.ErrNotFound", err)
	}
	deleted, err = s.ClearNumbers(ctx)
	if err != nil || deleted != 0 {
		t.Errorf("ClearNumbers on an empty cache = %d, %v; want 0", deleted, err)
	}
	if v, err := s.Client().Get(ctx, s.key("numbers-other")).Result(); err != nil || v != "x" {
		t.Errorf("unrelated key after clear = %q, %v; want it untouched", v, err)
	}
}
