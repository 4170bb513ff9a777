package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/wagate/wagate/apiserver"
	"github.com/wagate/wagate/internal/wstest"
	"github.com/wagate/wagate/redisstore"
)

// With Temporal down the webhook still answers 200: the events are durable in Redis,
// and the forwarder relays them, in order and once, when Temporal is back (here: a
// stack restarted on the same data, as after an outage of the whole cluster).
func TestInboundTemporalDownAcksAndRelaysWhenBack(t *testing.T) {
	sink := wstest.New(t)
	opts := StackOptions{WebSocketURL: sink.URL(), AppSecret: inboundSecret, DataDir: t.TempDir()}
	s := NewStack(t, opts)
	var want []string
	post := func(s *Stack, from, to int) { want = append(want, postTexts(t, s, "TD", "573444444444", from, to)...) }
	post(s, 0, 10)
	sink.WaitFrames(t, 10, time.Minute)

	if err := s.Dev.Stop(); err != nil {
		t.Fatalf("stop temporal: %v", err)
	}
	start := time.Now()
	post(s, 10, 60) // postSigned asserts 200 {success:true}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("50 webhooks took %v with Temporal down; want answers without waiting for Temporal", el)
	}
	// A repeated delivery is still recognised.
	body := textWebhook("wamid.TD010", "573444444444", "td10")
	if code, out := postWebhook(t, s, body, signWebhook(body)); code != http.StatusOK || out["success"] != true {
		t.Fatalf("repeated delivery = %d %v; want 200", code, out)
	}
	if n, err := s.Store.InboundLogLen(context.Background()); err != nil || n != 50 {
		t.Fatalf("inbound log holds %d ids (%v); want the 50 events accepted while Temporal was down", n, err)
	}
	if got := len(sink.Frames()); got != 10 {
		t.Fatalf("%d frames while Temporal was down; want 10", got)
	}
	s.Stop()

	s = NewStack(t, opts)
	post(s, 60, 70)
	wantOrderedOnce(t, frameIDs(t, sink.WaitFrames(t, 70, 2*time.Minute)), want)
	time.Sleep(500 * time.Millisecond)
	wantOrderedOnce(t, frameIDs(t, sink.Frames()), want)
	waitPending(t, s, 0)
}

// The queue endpoints count and clear the events still in the inbound log as well as
// those in the relay workflow. A lease held elsewhere keeps the stack's forwarder
// standing by, so that events stay in the log.
func TestInboundQueueCountsAndClearsTheLog(t *testing.T) {
	sink := wstest.New(t)
	s := newInboundStack(t, sink)
	sink.Stop()
	for i := range 4 { // forwarded: in the workflow, the consumer down
		postSigned(t, s, textWebhook(fmt.Sprintf("wamid.QW%d", i), "573555555555", "w"))
	}
	ctx := context.Background()
	waitLogDrained(t, s) // forwarded and trimmed, so that taking the lease cuts no step
	waitPending(t, s, 4)
	leaseKey := redisstore.DefaultPrefix + "inbound:forwarder"
	if err := s.Store.Client().Set(ctx, leaseKey, "elsewhere", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the forwarder notices at its next step
	for i := range 3 {                  // logged, not forwarded
		postSigned(t, s, textWebhook(fmt.Sprintf("wamid.QL%d", i), "573555555555", "l"))
	}
	if n, err := s.Store.InboundLogLen(ctx); err != nil || n != 3 {
		t.Fatalf("inbound log = %d (%v); want 3", n, err)
	}
	if code, out := s.Get(t, "/api/queue/lengths"); code != http.StatusOK || out["queue_lengths"].(map[string]any)["pending"] != 7.0 {
		t.Errorf("GET /api/queue/lengths = %d %v; want pending 7 (4 in the workflow, 3 in the log)", code, out)
	}
	if code, out := s.Get(t, "/api/queue/status"); code != http.StatusOK || out["queue_lengths"].(map[string]any)["pending"] != 7.0 {
		t.Errorf("GET /api/queue/status = %d %v; want pending 7", code, out)
	}
	code, out := s.do(t, http.MethodDelete, "/api/queue/clear", nil)
	if code != http.StatusOK || !sameMap(out, map[string]any{"success": true, "result": map[string]any{"cleared": 7.0}}) {
		t.Errorf("DELETE /api/queue/clear = %d %v; want cleared 7", code, out)
	}
	waitPending(t, s, 0)
	if err := s.Store.Client().Del(ctx, leaseKey).Err(); err != nil {
		t.Fatal(err)
	}
	postSigned(t, s, textWebhook("wamid.QAFTER", "573555555555", "a"))
	sink.Start()
	sink.WaitFrames(t, 1, time.Minute)
	time.Sleep(time.Second)
	wantOrderedOnce(t, frameIDs(t, sink.Frames()), []string{"wamid.QAFTER"})
}

// waitLogDrained waits until the forwarder has forwarded every logged event and
// trimmed the log.
func waitLogDrained(t *testing.T, s *Stack) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := s.Store.InboundLogLen(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("inbound log still holds %d ids", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Two API servers' forwarders on one Redis, the lease taken away again and again while
// webhooks arrive (as if it expired): whichever forwarder holds it forwards, a batch
// whose trim was refused is forwarded again and dropped by the workflow as a repeat,
// and the consumer sees every event once, in order.
func TestInboundForwarderTakeoverKeepsOrderOnce(t *testing.T) {
	sink := wstest.New(t)
	s := newInboundStack(t, sink)
	stop2 := apiserver.StartForwarder(apiserver.Deps{Config: s.Config, Temporal: s.Temporal, Store: s.Store, Logger: s.logger.With("component", "api-2")})
	defer func() { _ = stop2(context.Background()) }()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		takeovers := 0
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				done <- takeovers
				return
			case <-tick.C:
				if s.Store.Client().Del(ctx, redisstore.DefaultPrefix+"inbound:forwarder").Val() == 1 {
					takeovers++
				}
			}
		}
	}()
	var want []string
	for i := range 6 {
		want = append(want, postTexts(t, s, "TK", "573666666666", i*100, (i+1)*100)...)
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	if n := <-done; n < 3 {
		t.Errorf("the lease was taken away %d times; want several takeovers", n)
	}
	sink.WaitFrames(t, len(want), 2*time.Minute)
	time.Sleep(time.Second)
	wantOrderedOnce(t, frameIDs(t, sink.Frames()), want)
}

// A clear racing with webhooks and the forwarder drops exactly what it counts: with
// the consumer down, every event posted is either counted by the clear or relayed
// afterwards, never both, never neither, and the relayed ones are those posted last,
// in order.
func TestInboundClearDuringForwardingCountsExactly(t *testing.T) {
	sink := wstest.New(t)
	s := newInboundStack(t, sink)
	sink.Stop()
	type answer struct {
		code    int
		cleared float64
		err     error
	}
	clearDone := make(chan answer, 1)
	var want []string
	for i := range 8 {
		want = append(want, postTexts(t, s, "CR", "573777777777", i*50, (i+1)*50)...)
		if i == 3 {
			go func() {
				req, _ := http.NewRequest(http.MethodDelete, s.API+"/api/queue/clear", nil)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					clearDone <- answer{err: err}
					return
				}
				defer res.Body.Close()
				var out struct {
					Result struct{ Cleared float64 } `json:"result"`
				}
				err = json.NewDecoder(res.Body).Decode(&out)
				clearDone <- answer{code: res.StatusCode, cleared: out.Result.Cleared, err: err}
			}()
		}
	}
	a := <-clearDone
	if a.err != nil || a.code != http.StatusOK || a.cleared < 1 {
		t.Fatalf("DELETE /api/queue/clear = %d, cleared %v, %v; want 200 and some events cleared", a.code, a.cleared, a.err)
	}
	rest := len(want) - int(a.cleared)
	if rest < 0 {
		t.Fatalf("cleared %v of %d posted", a.cleared, len(want))
	}
	waitPending(t, s, rest)
	sink.Start()
	if rest > 0 {
		sink.WaitFrames(t, rest, 2*time.Minute)
	}
	time.Sleep(time.Second)
	waitPending(t, s, 0)
	wantOrderedOnce(t, frameIDs(t, sink.Frames()), want[len(want)-rest:])
}
