package workflows

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/wagate/wagate/shared"
)

// signalBatches signals ids at about d as the API server does, in InboundBatchSignals
// of size refs each.
func signalBatches(env *testsuite.TestWorkflowEnvironment, d time.Duration, size int, ids ...string) {
	for i, step := 0, 0; i < len(ids); i, step = i+size, step+1 {
		b := ids[i:min(i+size, len(ids))]
		env.RegisterDelayedCallback(func() {
			refs := make([]shared.InboundRef, len(b))
			for j, id := range b {
				refs[j] = shared.InboundRef{ID: id}
			}
			env.SignalWorkflow(shared.InboundBatchSignal, shared.InboundBatch{Refs: refs})
		}, d+time.Duration(step)*time.Millisecond)
	}
}

func TestRelayBatchesInOrderOnceAcrossBatchBoundaries(t *testing.T) {
	c := newRelayConsumer()
	c.missing["m0700"] = true
	env := newRelayEnv(t, c)
	var all []string
	for i := range 1700 {
		p := "w"
		if i == 700 {
			p = "m"
		}
		all = append(all, fmt.Sprintf("%s%04d", p, i))
	}
	// Most arrive while the consumer is down, so the queue outgrows one batch; the rest
	// while batches run. Repeats and single signals are mixed in.
	c.down = true
	signalBatches(env, time.Second, 100, all[:1200]...)
	env.RegisterDelayedCallback(func() {
		signalIDs(env, all[1100], all[1200]) // a repeat, then a single signal
		c.setDown(false)
	}, 8*time.Second)
	signalBatches(env, 8*time.Second+500*time.Millisecond, 37, all[1201:]...)
	var info shared.QueueInfo
	env.RegisterDelayedCallback(func() {
		info = queryInfo(t, env)
		env.CancelWorkflow()
	}, time.Hour)
	env.ExecuteWorkflow(shared.RelayWorkflowName, shared.RelayState{})

	wantCanceled(t, env)
	want := slices.DeleteFunc(slices.Clone(all), func(id string) bool { return id == "m0700" })
	got, _ := c.snapshot()
	if !slices.Equal(got, want) {
		t.Fatalf("relayed %d events, first difference at %d; want %d in arrival order, once each", len(got), firstDiff(got, want), len(want))
	}
	if info.Pending != 0 || info.Relayed != int64(len(want)) || info.Dropped != 1 {
		t.Errorf("final QueueInfo = %+v; want pending 0, relayed %d, dropped 1", info, len(want))
	}
	// Every successful batch starts where the previous one ended and holds at most
	// MaxRelayBatch refs; the backlog went in full batches.
	var next int
	var largest int
	for _, b := range c.batches {
		if len(b) > shared.MaxRelayBatch {
			t.Errorf("a batch of %d refs; want at most %d", len(b), shared.MaxRelayBatch)
		}
		largest = max(largest, len(b))
		if i := slices.Index(all, b[0]); i != next && i != 0 {
			t.Errorf("a batch starts at event %d; want %d (where the previous ended)", i, next)
		}
		next = slices.Index(all, b[len(b)-1]) + 1
	}
	if largest != shared.MaxRelayBatch {
		t.Errorf("largest batch %d refs; want the backlog relayed in batches of %d", largest, shared.MaxRelayBatch)
	}
	if n := len(c.batches); n > 40 {
		t.Errorf("%d batch attempts for %d events; want the events batched", n, len(all))
	}
}

// The connection drops after the consumer confirmed part of a batch and stays down:
// the confirmed events are popped, the first unconfirmed one is retried every 5 s with
// nothing behind it moving, and once the consumer is back the rest follows, each
// event relayed once.
func TestRelayBatchLostConnectionResumesAtFirstUnconfirmed(t *testing.T) {
	c := newRelayConsumer()
	env := newRelayEnv(t, c)
	batch := ids(10, "e")
	c.confirmOnly, c.downAfterDrop = 4, true
	signalBatches(env, time.Second, 10, batch...)
	var during shared.QueueInfo
	env.RegisterDelayedCallback(func() { signalIDs(env, "late") }, 14*time.Second)
	env.RegisterDelayedCallback(func() { during = queryInfo(t, env) }, 15*time.Second)
	env.RegisterDelayedCallback(func() { c.setDown(false) }, 24*time.Second)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Hour)
	env.ExecuteWorkflow(shared.RelayWorkflowName, shared.RelayState{})

	wantCanceled(t, env)
	relayed, attempts := c.snapshot()
	if want := append(slices.Clone(batch), "late"); !slices.Equal(relayed, want) {
		t.Errorf("relayed %v; want %v (each once, in order)", relayed, want)
	}
	if during.Pending != 7 || during.Relayed != 4 {
		t.Errorf("QueueInfo while the consumer is down = %+v; want pending 7 (6 of the batch and late), relayed 4", during)
	}
	if len(attempts) < 4 {
		t.Fatalf("%d attempts; want the drop, retries while down, and the success", len(attempts))
	}
	if attempts[0].id != "e0000" || !attempts[0].ok {
		t.Errorf("first attempt %+v; want the whole batch from e0000", attempts[0])
	}
	for i, a := range attempts[1:] {
		if a.id != "e0004" {
			t.Errorf("attempt %d starts at %q; want every retry at the first unconfirmed event e0004", i+1, a.id)
		}
		if gap := a.at.Sub(attempts[i].at); gap < 5*time.Second || gap > 6*time.Second {
			t.Errorf("attempt %d came %v after the previous; want 5 s", i+1, gap)
		}
		if a.ok {
			break
		}
	}
}

// A clear while a batch is being written cancels its attempt, waits until it has
// stopped, and drops the queue and the batch's unconfirmed rest, returning exactly that
// many. (The test environment resolves a cancelled activity at once, so the attempt here
// confirms nothing; e2e/inbound_batch_test.go clears a batch that confirmed part of
// itself on a real server.)
func TestRelayClearWhileBatchInFlight(t *testing.T) {
	c := newRelayConsumer()
	env := newRelayEnv(t, c)
	cleared := -1
	c.confirmOnly = 0
	c.onBatch = func() {
		signalIDs(env, ids(5, "q")...)
		clearQueue(t, env, &cleared)
	}
	signalBatches(env, time.Second, 10, ids(10, "c")...)
	var after shared.QueueInfo
	env.RegisterDelayedCallback(func() {
		after = queryInfo(t, env)
		signalIDs(env, "after")
	}, time.Minute)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Hour)
	env.ExecuteWorkflow(shared.RelayWorkflowName, shared.RelayState{})

	wantCanceled(t, env)
	if cleared != 15 {
		t.Errorf("clear returned %d; want 15 (the 10 of the batch, 5 queued behind it)", cleared)
	}
	if after.Pending != 0 || after.Relayed != 0 {
		t.Errorf("QueueInfo after the clear = %+v; want pending 0, relayed 0", after)
	}
	relayed, _ := c.snapshot()
	if want := []string{"after"}; !slices.Equal(relayed, want) {
		t.Errorf("relayed %v; want %v", relayed, want)
	}
}

// Continue-as-new waits for the batch in flight and carries exactly its unconfirmed
// rest, first, then what arrived meanwhile.
func TestRelayContinueAsNewWithBatchInFlight(t *testing.T) {
	c := newRelayConsumer()
	env := newRelayEnv(t, c)
	c.confirmOnly = 2
	c.onBatch = func() {
		env.SetContinueAsNewSuggested(true)
		env.SignalWorkflow(shared.InboundBatchSignal, shared.InboundBatch{Refs: []shared.InboundRef{{ID: "g"}}})
	}
	signalBatches(env, time.Second, 6, "a", "b", "c", "d", "e", "f")
	env.ExecuteWorkflow(shared.RelayWorkflowName, shared.RelayState{})

	st := carried(t, env)
	relayed, _ := c.snapshot()
	if want := []string{"a", "b"}; !slices.Equal(relayed, want) {
		t.Errorf("relayed %v; want the confirmed %v", relayed, want)
	}
	if want := []string{"c", "d", "e", "f", "g"}; !slices.Equal(refIDs(st.Queue), want) {
		t.Errorf("carried queue %v; want %v", refIDs(st.Queue), want)
	}
	if st.Relayed != 2 {
		t.Errorf("carried relayed = %d; want 2", st.Relayed)
	}
}

// A run still on the one-event path (started before the upgrade) relays the grouped
// signals of upgraded API servers too, in order, mixed with old single-ref signals.
func TestRelayOneEventPathReadsGroupedSignals(t *testing.T) {
	c := newRelayConsumer()
	env := newRelayEnvAt(t, c, workflow.DefaultVersion)
	signalBatches(env, time.Second, 3, "a", "b", "c", "d", "e")
	env.RegisterDelayedCallback(func() { signalIDs(env, "f", "c") }, 2*time.Second)
	signalBatches(env, 3*time.Second, 2, "g", "f", "h")
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Hour)
	env.ExecuteWorkflow(shared.RelayWorkflowName, shared.RelayState{})

	wantCanceled(t, env)
	relayed, _ := c.snapshot()
	if want := []string{"a", "b", "c", "d", "e", "f", "g", "h"}; !slices.Equal(relayed, want) {
		t.Errorf("relayed %v; want %v (each once, in order)", relayed, want)
	}
	if len(c.batches) != 0 {
		t.Errorf("%d batch activities on the one-event path; want none", len(c.batches))
	}
}
