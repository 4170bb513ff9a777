package apiserver

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/wagate/wagate/shared"
)

// recordingSignals stands in for Temporal's SignalWithStartWorkflow, slow enough that
// concurrent webhooks pile up behind a signal in flight, and records every signal.
type recordingSignals struct {
	client.Client
	mu       sync.Mutex
	inFlight int
	maxIn    int
	signals  [][]shared.InboundRef
}

func (r *recordingSignals) SignalWithStartWorkflow(_ context.Context, id, signal string, arg any,
	_ client.StartWorkflowOptions, _ any, _ ...any) (client.WorkflowRun, error) {
	r.mu.Lock()
	r.inFlight++
	r.maxIn = max(r.maxIn, r.inFlight)
	r.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight--
	if id != shared.RelayWorkflowID || signal != shared.InboundBatchSignal {
		return nil, fmt.Errorf("signal %s to %s", signal, id)
	}
	r.signals = append(r.signals, arg.(shared.InboundBatch).Refs)
	return nil, nil
}

// Concurrent webhooks share signals; every ref is signalled once, each webhook's refs
// together and in order, one signal in flight at a time.
func TestSignalRefsGroupsConcurrentWebhooks(t *testing.T) {
	rec := &recordingSignals{}
	s := &Server{Deps: Deps{Temporal: rec}}
	const senders, each = 16, 20
	var wg sync.WaitGroup
	for w := range senders {
		wg.Go(func() {
			for i := range each {
				refs := []shared.InboundRef{{ID: fmt.Sprintf("s%02d-%02d-a", w, i)}, {ID: fmt.Sprintf("s%02d-%02d-b", w, i)}}
				if err := s.signalRefs(context.Background(), refs); err != nil {
					t.Errorf("signalRefs: %v", err)
				}
			}
		})
	}
	wg.Wait()

	var all []string
	for _, sig := range rec.signals {
		for j, ref := range sig {
			all = append(all, ref.ID)
			if ref.ID[len(ref.ID)-1] == 'a' && (j+1 == len(sig) || sig[j+1].ID != ref.ID[:len(ref.ID)-1]+"b") {
				t.Errorf("the refs of webhook %s were split", ref.ID)
			}
		}
	}
	if len(all) != senders*each*2 {
		t.Fatalf("%d refs signalled; want %d", len(all), senders*each*2)
	}
	// Each sender's webhooks, one after the other, are signalled in its order.
	for w := range senders {
		var mine []string
		for _, id := range all {
			if id[:3] == fmt.Sprintf("s%02d", w) {
				mine = append(mine, id)
			}
		}
		if !slices.IsSorted(mine) || len(mine) != 2*each {
			t.Errorf("sender %d: refs signalled as %v; want all %d in order", w, mine, 2*each)
		}
	}
	if n := len(rec.signals); n >= senders*each/2 {
		t.Errorf("%d signals for %d webhooks; want concurrent webhooks grouped", n, senders*each)
	}
	if rec.maxIn != maxSignalsInFlight {
		t.Errorf("%d signals in flight at once; want %d", rec.maxIn, maxSignalsInFlight)
	}
}
