package apiserver

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/wagate/wagate/internal/metrics"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

// Forwarding: the webhook answers once Redis holds its events and their ids are in the
// inbound log; the forwarder moves the ids from the head of the log into the relay
// workflow, in order, many per signal. Every API server runs one; a Redis lease makes
// one of them active at a time, so that the order of the log is the order of the
// signals.
const (
	// forwardLeaseTTL is how long the lease lasts after each renewal. It is renewed
	// right before every signal and exceeds forwardSignalTimeout by far, so a forwarder
	// whose lease lapsed can never still be signalling when another one starts.
	forwardLeaseTTL = 10 * time.Second
	// forwardSignalTimeout bounds one SignalWithStart of a batch.
	forwardSignalTimeout = 3 * time.Second
	// forwardStandby is how often a forwarder without the lease tries to take it.
	forwardStandby = time.Second
	// forwardIdleWait bounds one wait on an empty log; the lease is renewed after it.
	forwardIdleWait = time.Second
	// maxForwardRefs and maxForwardBytes bound one signal: its refs are appended to the
	// workflow's history, and the workflow's dedupe set (shared.MaxRelayRecentIDs) must
	// cover a batch sent again after a crash between the signal and the trim.
	maxForwardRefs  = 500
	maxForwardBytes = 128 << 10
	// forwardRetryMax caps the wait between failed signals (Temporal down): the log
	// keeps the events meanwhile, and they go in one signal when Temporal is back.
	forwardRetryMax = 2 * time.Second
)

// Forwarder moves refs from the inbound log to the relay workflow. Start it with
// StartForwarder; every API server process runs one.
type Forwarder struct {
	s     *Server
	token string
}

// StartForwarder runs the forwarder of d's API server in the background until stop is
// called; stop gives the lease up, so that another API server takes over at once.
func StartForwarder(d Deps) (stop func(context.Context) error) {
	f := &Forwarder{s: newServer(d), token: uuid.NewString()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	return func(sctx context.Context) error {
		cancel()
		select {
		case <-done:
		case <-sctx.Done():
			return sctx.Err()
		}
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(sctx), 2*time.Second)
		defer rcancel()
		return f.s.Store.ReleaseForwarder(rctx, f.token)
	}
}

// Run forwards until ctx ends: it waits for the lease, then forwards batches while it
// holds it, and goes back to waiting when it loses it.
func (f *Forwarder) Run(ctx context.Context) {
	log := f.s.Logger.With("component", "inbound-forwarder")
	for ctx.Err() == nil {
		ok, err := f.s.Store.AcquireForwarder(ctx, f.token, forwardLeaseTTL)
		if err != nil && ctx.Err() == nil {
			log.Warn("forwarder lease unavailable", "err", err)
		}
		if !ok {
			sleep(ctx, forwardStandby)
			continue
		}
		log.Info("forwarding inbound events to the relay workflow")
		f.forward(ctx, log)
	}
}

// forward runs while f holds the lease.
func (f *Forwarder) forward(ctx context.Context, log *slog.Logger) {
	retry := 50 * time.Millisecond
	for ctx.Err() == nil {
		ids, err := f.s.Store.NextForwardBatch(ctx, f.token, forwardLeaseTTL, maxForwardRefs)
		switch {
		case errors.Is(err, redisstore.ErrLeaseLost):
			log.Warn("forwarder lease lost; standing by")
			return
		case errors.Is(err, redisstore.ErrForwardPaused):
			sleep(ctx, 5*time.Millisecond)
			continue
		case err != nil:
			if ctx.Err() == nil {
				log.Warn("inbound log unavailable", "err", err)
			}
			sleep(ctx, forwardRetryMax)
			continue
		case len(ids) == 0:
			if err := f.s.Store.WaitInbound(ctx, forwardIdleWait); err != nil && ctx.Err() == nil {
				sleep(ctx, forwardStandby)
			}
			continue
		}
		refs := make([]shared.InboundRef, 0, len(ids))
		size := 0
		for _, id := range ids {
			if size += len(id) + 16; len(refs) > 0 && size > maxForwardBytes {
				break
			}
			refs = append(refs, shared.InboundRef{ID: id})
		}
		// The request must not die with ctx halfway: a stop waits for this one signal.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), forwardSignalTimeout)
		err = f.s.signalBatch(sctx, refs)
		cancel()
		n := len(refs)
		if err != nil {
			n = 0 // nothing forwarded: the step ends, the ids stay at the head
		}
		metrics.Forwarded(n)
		ectx, ecancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		endErr := f.s.Store.EndForwardStep(ectx, f.token, n)
		ecancel()
		if errors.Is(endErr, redisstore.ErrLeaseLost) {
			log.Warn("forwarder lease lost; standing by")
			return
		}
		if endErr != nil {
			// The step stays marked until it expires; the ids are forwarded again
			// and dropped by the workflow as repeats.
			log.Warn("inbound log not trimmed", "err", endErr)
		}
		if err != nil {
			log.Warn("relay signal failed; the events wait in Redis", "refs", len(refs), "retry_in", retry, "err", err)
			sleep(ctx, retry)
			retry = min(2*retry, forwardRetryMax)
			continue
		}
		retry = 50 * time.Millisecond
	}
}

// signalBatch signals refs into the relay workflow in one inbound-batch signal,
// starting the workflow when none runs.
func (s *Server) signalBatch(ctx context.Context, refs []shared.InboundRef) error {
	if s.Temporal == nil {
		return errors.New("no Temporal client")
	}
	_, err := s.Temporal.SignalWithStartWorkflow(ctx, shared.RelayWorkflowID, shared.InboundBatchSignal,
		shared.InboundBatch{Refs: refs}, relayStartOptions(), shared.RelayWorkflowName, shared.RelayState{})
	return err
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
