package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/wagate/wagate/internal/testredis"
	"github.com/wagate/wagate/internal/wstest"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

type relayFixture struct {
	acts *Activities
	env  *testsuite.TestActivityEnvironment
}

func newRelayFixture(t *testing.T, wsURL string) *relayFixture {
	t.Helper()
	store := redisstore.New(testredis.New(t), "")
	acts := New(shared.Config{WebSocketURL: wsURL}, nil, store, nil)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return &relayFixture{acts: acts, env: env}
}

// store queues an inbound event the way the webhook does.
func (f *relayFixture) store(t *testing.T, id, from, event string) {
	t.Helper()
	ok, err := f.acts.Store.ClaimInbound(context.Background(),
		shared.InboundEvent{ID: id, From: from, Event: json.RawMessage(event)}, time.Hour, time.Hour)
	if err != nil || !ok {
		t.Fatalf("ClaimInbound(%s) = %v, %v", id, ok, err)
	}
}

func (f *relayFixture) relay(id string) error {
	_, err := f.env.ExecuteActivity(shared.RelayInboundActivity, shared.InboundRef{ID: id})
	return err
}

func TestRelayInboundAddsCacheInfo(t *testing.T) {
	consumer := wstest.New(t)
	f := newRelayFixture(t, consumer.URL())
	created := time.Date(2025, 1, 16, 10, 0, 0, 0, time.UTC)
	if _, err := f.acts.Store.PutNumber(context.Background(), shared.Number{Phone: "573123456789", Name: "Juan Pérez",
		Data: json.RawMessage(`{"company":"Empresa XYZ"}`)}, created); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id, from, event string
		want            string
	}{
		{"wamid.1", "573123456789", `{"object":"whatsapp_business_account","entry":[]}`,
			`{"object":"whatsapp_business_account","entry":[],"save_number":false,"cached_info":{"phone":"573123456789","name":"Juan Pérez","data":{"company":"Empresa XYZ"},"created_at":"2025-01-16T10:00:00Z","updated_at":"2025-01-16T10:00:00Z"}}`},
		{"wamid.2", "573000000000", `{"object":"whatsapp_business_account"}`,
			`{"object":"whatsapp_business_account","save_number":true,"cached_info":null}`},
		{"wamid.3", "", ` { } `, `{"save_number":true,"cached_info":null}`},
	}
	for _, tt := range tests {
		f.store(t, tt.id, tt.from, tt.event)
		if err := f.relay(tt.id); err != nil {
			t.Fatalf("RelayInbound(%s): %v", tt.id, err)
		}
	}
	frames := consumer.Frames()
	if len(frames) != len(tests) {
		t.Fatalf("consumer read %d frames; want %d", len(frames), len(tests))
	}
	for i, tt := range tests {
		if frames[i] != tt.want {
			t.Errorf("frame for %s\n got %s\nwant %s", tt.id, frames[i], tt.want)
		}
		if !json.Valid([]byte(frames[i])) {
			t.Errorf("frame for %s is not valid JSON", tt.id)
		}
	}
}

func TestRelayInboundKeepsOneConnectionAndOrder(t *testing.T) {
	consumer := wstest.New(t)
	f := newRelayFixture(t, consumer.URL())
	var want []string
	for i := range 100 {
		id := fmt.Sprintf("wamid.%03d", i)
		f.store(t, id, "573123456789", fmt.Sprintf(`{"n":%d}`, i))
		want = append(want, fmt.Sprintf(`{"n":%d,"save_number":true,"cached_info":null}`, i))
	}
	for i := range 100 {
		if err := f.relay(fmt.Sprintf("wamid.%03d", i)); err != nil {
			t.Fatalf("RelayInbound #%d: %v", i, err)
		}
	}
	// Every frame was confirmed before RelayInbound returned, so all are there now.
	frames, conns := consumer.Frames(), consumer.Connections()
	if !slices.Equal(frames, want) {
		t.Errorf("consumer read %d frames; want %d in order", len(frames), len(want))
	}
	if conns != 1 {
		t.Errorf("%d connections; want one persistent connection", conns)
	}
}

func TestRelayInboundReconnectsAfterConsumerOutage(t *testing.T) {
	consumer := wstest.New(t)
	f := newRelayFixture(t, consumer.URL())
	for _, id := range []string{"a", "b", "c"} {
		f.store(t, id, "1", fmt.Sprintf(`{"id":%q}`, id))
	}
	if err := f.relay("a"); err != nil {
		t.Fatalf("RelayInbound(a): %v", err)
	}

	consumer.Stop()
	for range 2 {
		if err := f.relay("b"); err == nil {
			t.Fatal("RelayInbound(b) with the consumer down succeeded; want an error so it is retried")
		} else if !strings.Contains(err.Error(), "websocket") {
			t.Errorf("error %q does not say what failed", err)
		}
	}

	consumer.Start()
	for _, id := range []string{"b", "c"} {
		if err := f.relay(id); err != nil {
			t.Fatalf("RelayInbound(%s) after the consumer is back: %v", id, err)
		}
	}
	frames, conns := consumer.Frames(), consumer.Connections()
	want := []string{
		`{"id":"a","save_number":true,"cached_info":null}`,
		`{"id":"b","save_number":true,"cached_info":null}`,
		`{"id":"c","save_number":true,"cached_info":null}`,
	}
	if !slices.Equal(frames, want) {
		t.Errorf("consumer read %v; want each event once, in order: %v", frames, want)
	}
	if conns != 2 {
		t.Errorf("%d connections; want 2 (one before, one after the outage)", conns)
	}
}

func TestRelayInboundFailures(t *testing.T) {
	consumer := wstest.New(t)
	tests := []struct {
		name          string
		url           string
		id            string
		wantType      string // ApplicationError type, "" for a plain retryable error
		wantRetryable bool
		wantText      string
	}{
		{"event expired", consumer.URL(), "wamid.gone", shared.ErrTypeInboundMissing, false, "no longer stored"},
		{"no WEBSOCKET_URL", "", "wamid.x", "", true, "WEBSOCKET_URL is not set"},
		{"nothing listening", "ws://127.0.0.1:1/ws", "wamid.x", "", true, "dial"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRelayFixture(t, tt.url)
			f.store(t, "wamid.x", "1", `{}`)
			err := f.relay(tt.id)
			if err == nil {
				t.Fatal("RelayInbound succeeded; want an error")
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q; want it to mention %q", err, tt.wantText)
			}
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) {
				t.Fatalf("error %v is not an ApplicationError", err)
			}
			if tt.wantType != "" && appErr.Type() != tt.wantType {
				t.Errorf("error type %q; want %q", appErr.Type(), tt.wantType)
			}
			if appErr.NonRetryable() == tt.wantRetryable {
				t.Errorf("non-retryable = %v; want retryable = %v", appErr.NonRetryable(), tt.wantRetryable)
			}
		})
	}
	if frames := consumer.Frames(); len(frames) != 0 {
		t.Errorf("consumer read %v; want nothing", frames)
	}
}

func TestInboundSpillActivities(t *testing.T) {
	f := newRelayFixture(t, "")
	refs := []shared.InboundRef{{ID: "a"}, {ID: "b"}}
	if _, err := f.env.ExecuteActivity(shared.SpillInboundActivity, shared.SpillInput{Key: "k1", Refs: refs}); err != nil {
		t.Fatalf("SpillInbound: %v", err)
	}
	v, err := f.env.ExecuteActivity(shared.LoadInboundSpillActivity, "k1")
	if err != nil {
		t.Fatalf("LoadInboundSpill: %v", err)
	}
	var got []shared.InboundRef
	if err := v.Get(&got); err != nil || !slices.Equal(got, refs) {
		t.Errorf("LoadInboundSpill = %v, %v; want %v", got, err, refs)
	}
	if _, err := f.env.ExecuteActivity(shared.DropInboundSpillActivity, "k1"); err != nil {
		t.Fatalf("DropInboundSpill: %v", err)
	}
	_, err = f.env.ExecuteActivity(shared.LoadInboundSpillActivity, "k1")
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != shared.ErrTypeInboundMissing || !appErr.NonRetryable() {
		t.Errorf("LoadInboundSpill of a dropped key = %v; want a non-retryable %s error", err, shared.ErrTypeInboundMissing)
	}
}
