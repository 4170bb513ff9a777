package activities

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/sendpolicy"
	"github.com/wagate/wagate/shared"
)

// pairOnce answers Meta's 131056 (pair rate) to the first send to each of the given
// recipients, in front of the sandbox.
func pairOnce(h http.Handler, to map[string]bool) http.Handler {
	var mu sync.Mutex
	seen := map[string]bool{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		digits, ok := sentTo(r)
		if !ok {
			h.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		first := to[digits] && !seen[digits]
		seen[digits] = true
		mu.Unlock()
		if first {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"message":"(#131056) (Business Account, Consumer Account) pair rate limit hit",`+
				`"type":"OAuthException","code":131056,"error_data":{"messaging_product":"whatsapp",`+
				`"details":"Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time."},`+
				`"fbtrace_id":"AbCdEfGh123"}}`)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// faultMix is the everyday fault mix of issue 8: 1 recipient in 50 gets two HTTP 500s
// before it goes through, 1 in 100 a 131056 first, 1 in 200 a permanent 131026.
func faultMix(msgs []shared.Message) (sandbox.Faults, map[string]bool) {
	f := sandbox.Faults{FailFirst: map[string]int{}, PermanentTo: map[string]int{}}
	pair := map[string]bool{}
	for i, m := range msgs {
		switch {
		case i%200 == 199:
			f.PermanentTo[m.To] = 131026
		case i%100 == 49:
			pair[m.To] = true
		case i%50 == 24:
			f.FailFirst[m.To] = 2
		}
	}
	return f, pair
}

// plainPool sends msgs with w goroutines applying the same per-recipient policy in
// place (sleeping 1 s and 2 s between three tries of a retryable error, 1, 4, 16 s on
// 131056), as a hand-written sender would, and returns sends per second.
func plainPool(ctx context.Context, g *graphapi.Client, msgs []shared.Message, w int) (float64, int) {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range w {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(msgs) {
					return
				}
				retries, paired := 0, 0
				for {
					_, err := g.Send(ctx, msgs[i], "")
					if err == nil {
						break
					}
					var d time.Duration
					switch graphapi.Classify(err) {
					case graphapi.ClassRetryable:
						if retries++; retries >= 3 {
							failed.Add(1)
							d = -1
						} else {
							d = time.Duration(retries) * time.Second
						}
					case graphapi.ClassPairRateLimited:
						if paired >= 3 {
							failed.Add(1)
							d = -1
						} else {
							d = []time.Duration{time.Second, 4 * time.Second, 16 * time.Second}[paired]
							paired++
						}
					default:
						failed.Add(1)
						d = -1
					}
					if d < 0 {
						break
					}
					time.Sleep(d)
				}
			}
		})
	}
	wg.Wait()
	return float64(len(msgs)) / time.Since(start).Seconds(), int(failed.Load())
}

// The everyday fault mix (1/50 two HTTP 500s, 1/100 a 131056, 1/200 a permanent
// 131026): wagate's continuous dispatcher, whose backoffs hold no slot, against a plain
// pool of the same width that sleeps in place, one right after the other.
func TestSendRangeFaultMixBeatsAPoolThatSleepsInPlace(t *testing.T) {
	if testing.Short() {
		t.Skip("runs about 25 s")
	}
	const n, workers, latency = 1500, 10, 50 * time.Millisecond
	run := func(wagate bool) (float64, int, sandbox.Stats) {
		sb := sandbox.New(sandbox.Options{PhoneNumberID: pnid, Token: "test-token", Latency: latency})
		msgs := make([]shared.Message, n)
		for i := range msgs {
			msgs[i] = shared.Message{To: phone(i), Kind: shared.KindText, Body: fmt.Sprintf("hola %d", i)}
		}
		faults, pair := faultMix(msgs)
		sb.SetFaults(faults)
		srv := httptest.NewServer(pairOnce(sb.Handler(), pair))
		defer srv.Close()
		graph := graphapi.New(graphapi.Config{BaseURL: srv.URL, Version: "v23.0", Token: "test-token", PhoneNumberID: pnid})
		if !wagate {
			rate, failed := plainPool(context.Background(), graph, msgs, workers)
			return rate, failed, sb.Stats()
		}
		f := newFixture(t, sandbox.Options{}, 100_000)
		f.acts.Graph = graph
		f.policy(sendpolicy.Options{})
		if err := f.acts.Store.StageMessages(context.Background(), "mix", msgs, time.Hour); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		sent, failed, _ := f.runTask(t, "mix", n, workers)
		if sent+failed != n {
			t.Fatalf("wagate: %d sent + %d failed of %d", sent, failed, n)
		}
		return float64(n) / time.Since(start).Seconds(), failed, sb.Stats()
	}
	poolRate, poolFailed, _ := run(false)
	rate, failed, st := run(true)
	t.Logf("fault mix, N=%d, W=%d, %v latency: plain pool %.1f sends/s, wagate %.1f sends/s, ratio %.2f; failed %d vs %d",
		n, workers, latency, poolRate, rate, rate/poolRate, failed, poolFailed)
	if failed != poolFailed || failed != n/200 {
		t.Errorf("failed: wagate %d, pool %d; want the %d permanent ones only", failed, poolFailed, n/200)
	}
	if st.MaxInFlight > workers || st.Duplicates != 0 {
		t.Errorf("wagate: %d in flight at most, %d duplicates", st.MaxInFlight, st.Duplicates)
	}
	if rate < 1.5*poolRate {
		t.Errorf("wagate %.1f sends/s is %.2f of the pool's %.1f, want >= 1.5", rate, rate/poolRate, poolRate)
	}
}
