package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/wstest"
	"github.com/wagate/wagate/shared"
)

func (f *relayFixture) relayBatch(t *testing.T, ids []string) (shared.RelayBatchResult, error) {
	t.Helper()
	refs := make([]shared.InboundRef, len(ids))
	for i, id := range ids {
		refs[i] = shared.InboundRef{ID: id}
	}
	v, err := f.env.ExecuteActivity(shared.RelayInboundBatchActivity, shared.RelayBatchInput{Refs: refs})
	var res shared.RelayBatchResult
	if err == nil {
		if derr := v.Get(&res); derr != nil {
			t.Fatalf("decode RelayBatchResult: %v", derr)
		}
	}
	return res, err
}

// storeRun stores n events e000.. whose frames carry their index, and returns their ids
// and the frames the consumer should read for them.
func (f *relayFixture) storeRun(t *testing.T, n int, from string) (ids, frames []string) {
	for i := range n {
		id := fmt.Sprintf("e%03d", i)
		f.store(t, id, from, fmt.Sprintf(`{"n":%d}`, i))
		ids = append(ids, id)
		frames = append(frames, fmt.Sprintf(`{"n":%d,"save_number":true,"cached_info":null}`, i))
	}
	return ids, frames
}

func frameIndex(t *testing.T, frame string) int {
	t.Helper()
	var v struct{ N int }
	if err := json.Unmarshal([]byte(frame), &v); err != nil {
		t.Fatalf("frame %s: %v", frame, err)
	}
	return v.N
}

func TestRelayInboundBatchRelaysInOrderOverOneConnection(t *testing.T) {
	consumer := wstest.New(t)
	f := newRelayFixture(t, consumer.URL())
	created := time.Date(2025, 1, 16, 10, 0, 0, 0, time.UTC)
	if _, err := f.acts.Store.PutNumber(context.Background(), shared.Number{Phone: "573123456789", Name: "Juan"}, created); err != nil {
		t.Fatal(err)
	}
	ids, want := f.storeRun(t, 250, "573000000000")
	// One event expired, one from a cached sender, one stored body not an object.
	ids = slices.Insert(ids, 100, "wamid.gone")
	f.store(t, "wamid.cached", "573123456789", `{"n":-1}`)
	ids = slices.Insert(ids, 7, "wamid.cached")
	want = slices.Insert(want, 7, `{"n":-1,"save_number":false,"cached_info":{"phone":"573123456789","name":"Juan","data":{},"created_at":"2025-01-16T10:00:00Z","updated_at":"2025-01-16T10:00:00Z"}}`)
	f.store(t, "wamid.bad", "1", `[1]`)
	ids = append(ids, "wamid.bad")

	res, err := f.relayBatch(t, ids)
	if err != nil {
		t.Fatalf("RelayInboundBatch: %v", err)
	}
	if want := (shared.RelayBatchResult{Done: len(ids), Relayed: 251, Dropped: 2}); res != want {
		t.Errorf("result %+v; want %+v", res, want)
	}
	if got := consumer.Frames(); !slices.Equal(got, want) {
		t.Errorf("consumer read %d frames, first difference at %d; want %d in order", len(got), firstDiffStr(got, want), len(want))
	}
	if n := consumer.Connections(); n != 1 {
		t.Errorf("%d connections; want one", n)
	}
}

func firstDiffStr(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// A consumer that drops the connection in the middle of a batch: the attempt completes
// with exactly the frames confirmed before the drop; the retry from the first
// unconfirmed one re-sends only frames written and not confirmed, never a confirmed
// one.
func TestRelayInboundBatchConsumerDropsMidBatch(t *testing.T) {
	consumer := wstest.New(t)
	f := newRelayFixture(t, consumer.URL())
	ids, _ := f.storeRun(t, 200, "1")
	consumer.DropAfter(77)

	res, err := f.relayBatch(t, ids)
	if err != nil {
		t.Fatalf("RelayInboundBatch: %v; want a completion reporting the confirmed part", err)
	}
	if res.Failure == "" || !strings.Contains(res.Failure, "websocket") || res.Done >= 77 || res.Done != res.Relayed {
		t.Fatalf("result %+v; want fewer than the 77 frames read confirmed, and the failure", res)
	}
	read := len(consumer.Frames())
	if read != 77 {
		t.Fatalf("consumer read %d frames before dropping; want 77", read)
	}
	confirmed := res.Done

	rest, err := f.relayBatch(t, ids[confirmed:])
	if err != nil || rest.Done != len(ids)-confirmed || rest.Failure != "" {
		t.Fatalf("retry from the first unconfirmed event = %+v, %v; want the rest relayed", rest, err)
	}
	frames := consumer.Frames()
	count := map[int]int{}
	var order []int
	for _, fr := range frames {
		n := frameIndex(t, fr)
		if count[n] == 0 {
			order = append(order, n)
		}
		count[n]++
	}
	for n := range 200 {
		switch {
		case count[n] == 0:
			t.Errorf("event %d never relayed", n)
		case count[n] > 1 && n < confirmed:
			t.Errorf("event %d was confirmed and relayed %d times", n, count[n])
		case count[n] > 2:
			t.Errorf("event %d relayed %d times", n, count[n])
		}
	}
	if !slices.IsSorted(order) {
		t.Errorf("first deliveries out of order: %v", order)
	}
	if repeats := len(frames) - 200; repeats != 77-confirmed || repeats > shared.RelayWindow {
		t.Errorf("%d frames repeated; want the %d read but unconfirmed at the drop, at most a window (%d)", repeats, 77-confirmed, shared.RelayWindow)
	}
	if n := consumer.Connections(); n != 2 {
		t.Errorf("%d connections; want 2", n)
	}
}

// An attempt that confirmed nothing fails, so that the server retries it in 5 s.
func TestRelayInboundBatchConsumerDownFails(t *testing.T) {
	consumer := wstest.New(t)
	f := newRelayFixture(t, consumer.URL())
	ids, _ := f.storeRun(t, 5, "1")
	consumer.Stop()
	res, err := f.relayBatch(t, ids)
	if err == nil || !strings.Contains(err.Error(), "websocket") {
		t.Fatalf("RelayInboundBatch with the consumer down = %+v, %v; want a retryable error", res, err)
	}
	f2 := newRelayFixture(t, "")
	if _, err := f2.relayBatch(t, ids); err == nil || !strings.Contains(err.Error(), "WEBSOCKET_URL is not set") {
		t.Errorf("RelayInboundBatch without WEBSOCKET_URL = %v; want it to say so", err)
	}
}

// An attempt resumes after the progress its predecessor heartbeated.
func TestRelayInboundBatchResumesAfterHeartbeatedProgress(t *testing.T) {
	consumer := wstest.New(t)
	f := newRelayFixture(t, consumer.URL())
	ids, want := f.storeRun(t, 10, "1")
	f.env.SetHeartbeatDetails(shared.RelayBatchResult{Done: 4, Relayed: 3, Dropped: 1})
	res, err := f.relayBatch(t, ids)
	if err != nil {
		t.Fatal(err)
	}
	if want := (shared.RelayBatchResult{Done: 10, Relayed: 9, Dropped: 1}); res != want {
		t.Errorf("result %+v; want %+v (the previous counts carried)", res, want)
	}
	if got := consumer.Frames(); !slices.Equal(got, want[4:]) {
		t.Errorf("consumer read %v; want only the events after the heartbeated progress", got)
	}
}
