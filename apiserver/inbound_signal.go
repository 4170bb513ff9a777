package apiserver

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/wagate/wagate/shared"
)

// maxSignalsInFlight bounds the signals in flight at once. Signals in flight together
// carry webhooks that were all in progress together (none was answered before another
// was posted), which have no order between them, so more than one would keep the order
// the webhook promises; measured (cmd/bench), a second one made no webhook faster and
// split the groups, doubling the signals.
const maxSignalsInFlight = 1

// signalLinger is how long the next signal waits after one that carried several
// webhooks.
const signalLinger = 2 * time.Millisecond

// maxRefsPerSignal bounds the refs of one InboundBatchSignal (about 40 KB).
const maxRefsPerSignal = 1000

// relaySignaller groups the refs of concurrent webhooks into one SignalWithStart: while
// a signal is in flight, the webhooks that arrive wait and go together in the next one,
// in the order they arrived. One webhook alone is signalled at once, so grouping adds no
// latency; under load it turns a signal (a history event and a Temporal persistence
// write) per webhook into one per group. Its zero value is ready to use.
type relaySignaller struct {
	mu       sync.Mutex
	waiting  []*signalRequest
	flushers int // flushers running, at most maxSignalsInFlight
}

type signalRequest struct {
	refs []shared.InboundRef
	done chan error
}

// signalRefs signals refs into the relay workflow, in order and after the refs of
// webhooks that called it earlier, and returns once the signal carrying them is
// durable (or failed). It waits for that outcome even when ctx ends first, so that the
// caller knows whether to release the refs' claims.
func (s *Server) signalRefs(ctx context.Context, refs []shared.InboundRef) error {
	if len(refs) == 0 {
		return nil
	}
	if s.Temporal == nil {
		return errors.New("no Temporal client")
	}
	req := &signalRequest{refs: refs, done: make(chan error, 1)}
	g := &s.relaySig
	g.mu.Lock()
	g.waiting = append(g.waiting, req)
	if g.flushers < maxSignalsInFlight {
		g.flushers++
		go s.flushSignals(context.WithoutCancel(ctx))
	}
	g.mu.Unlock()
	return <-req.done
}

// flushSignals sends the waiting refs, one signal per group, until none wait.
func (s *Server) flushSignals(ctx context.Context) {
	g := &s.relaySig
	for {
		g.mu.Lock()
		n, count := 0, 0
		for n < len(g.waiting) && (n == 0 || count+len(g.waiting[n].refs) <= maxRefsPerSignal) {
			count += len(g.waiting[n].refs)
			n++
		}
		group := g.waiting[:n:n]
		g.waiting = g.waiting[n:]
		if n == 0 {
			g.waiting = nil
			g.flushers--
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		refs := make([]shared.InboundRef, 0, count)
		for _, r := range group {
			refs = append(refs, r.refs...)
		}
		err := s.signalBatch(ctx, refs)
		for _, r := range group {
			r.done <- err
		}
		if len(group) > 1 {
			// Under load the webhooks just answered come straight back with their next
			// events: waiting a moment for them keeps every signal as full as the load
			// allows, and fewer signals (and workflow tasks) make Temporal answer
			// faster. Measured (cmd/bench): about 1.5x the webhooks per second. A
			// webhook alone never waits.
			time.Sleep(signalLinger)
		}
	}
}

func (s *Server) signalBatch(ctx context.Context, refs []shared.InboundRef) error {
	ctx, cancel := context.WithTimeout(ctx, signalTimeout)
	defer cancel()
	_, err := s.Temporal.SignalWithStartWorkflow(ctx, shared.RelayWorkflowID, shared.InboundBatchSignal,
		shared.InboundBatch{Refs: refs}, relayStartOptions(), shared.RelayWorkflowName, shared.RelayState{})
	return err
}
