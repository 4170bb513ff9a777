package workflows

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/wagate/wagate/shared"
)

// relayConsumer stands in for the relay activities: a WebSocket consumer that can be
// down, and the Redis segments of spilled refs. It records every relay attempt.
type relayConsumer struct {
	mu       sync.Mutex
	down     bool
	missing  map[string]bool // ids whose stored event is gone
	relayed  []string
	attempts []relayAttempt
	segments map[string][]shared.InboundRef
	now      func() time.Time
	onSpill  func() // called, once, inside the first spill
	// The batch activity: batches records every batch attempt's refs; confirmOnly, when
	// >= 0, lets the next attempt confirm that many frames and then lose the connection
	// (it is reset to -1); onBatch, when set, runs (once) inside the next attempt after
	// it confirmed its frames.
	batches       [][]string
	confirmOnly   int
	downAfterDrop bool // the consumer stays down after the connection is lost
	onBatch       func()
}

type relayAttempt struct {
	id string
	at time.Time
	ok bool
}

func newRelayConsumer() *relayConsumer {
	return &relayConsumer{missing: map[string]bool{}, segments: map[string][]shared.InboundRef{}, confirmOnly: -1}
}

func (c *relayConsumer) setDown(down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = down
}

func (c *relayConsumer) relay(_ context.Context, ref shared.InboundRef) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.missing[ref.ID] {
		return temporal.NewNonRetryableApplicationError("gone", shared.ErrTypeInboundMissing, nil)
	}
	c.attempts = append(c.attempts, relayAttempt{id: ref.ID, at: c.now(), ok: !c.down})
	if c.down {
		return errors.New("dial ws://consumer: connection refused")
	}
	c.relayed = append(c.relayed, ref.ID)
	return nil
}

// relayBatch is RelayInboundBatch against the fake consumer: it confirms frames in
// order, drops missing events, and completes with how far it got; like the real one it
// fails (to be retried by the server) only when it confirmed nothing.
func (c *relayConsumer) relayBatch(_ context.Context, in shared.RelayBatchInput) (shared.RelayBatchResult, error) {
	c.mu.Lock()
	var res shared.RelayBatchResult
	c.batches = append(c.batches, refIDs(in.Refs))
	c.attempts = append(c.attempts, relayAttempt{id: in.Refs[0].ID, at: c.now(), ok: !c.down})
	if c.down {
		c.mu.Unlock()
		return res, errors.New("dial ws://consumer: connection refused")
	}
	limit := len(in.Refs)
	if c.confirmOnly >= 0 {
		limit, c.confirmOnly = min(limit, c.confirmOnly), -1
		c.down = c.downAfterDrop
	}
	for _, ref := range in.Refs {
		if c.missing[ref.ID] {
			res.Done++
			res.Dropped++
			continue
		}
		if res.Relayed == limit {
			res.Failure = "websocket ws://consumer: connection closed before the consumer read the frames"
			break
		}
		c.relayed = append(c.relayed, ref.ID)
		res.Done++
		res.Relayed++
	}
	hook := c.onBatch
	c.onBatch = nil
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
	if res.Done == 0 && res.Failure != "" {
		return res, errors.New(res.Failure)
	}
	return res, nil
}

func (c *relayConsumer) spill(_ context.Context, in shared.SpillInput) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.segments[in.Key] = slices.Clone(in.Refs)
	if f := c.onSpill; f != nil {
		c.onSpill = nil
		f()
	}
	return nil
}

func (c *relayConsumer) loadSpill(_ context.Context, key string) ([]shared.InboundRef, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	refs, ok := c.segments[key]
	if !ok {
		return nil, temporal.NewNonRetryableApplicationError("gone", shared.ErrTypeInboundMissing, nil)
	}
	return refs, nil
}

func (c *relayConsumer) dropSpill(_ context.Context, key string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.segments, key)
	return nil
}

func (c *relayConsumer) snapshot() (relayed []string, attempts []relayAttempt) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.relayed), slices.Clone(c.attempts)
}

// relayVersions are the relay's code paths: runs recorded before batching keep the
// one-event path (DefaultVersion), new runs take the batched one.
var relayVersions = []struct {
	name string
	v    workflow.Version
}{{"one-event", workflow.DefaultVersion}, {"batched", relayBatchVersion}}

// forEachRelayVersion runs test once per code path.
func forEachRelayVersion(t *testing.T, test func(t *testing.T, v workflow.Version)) {
	for _, rv := range relayVersions {
		t.Run(rv.name, func(t *testing.T) { test(t, rv.v) })
	}
}

// newRelayEnv is an environment running the batched relay.
func newRelayEnv(t *testing.T, c *relayConsumer) *testsuite.TestWorkflowEnvironment {
	return newRelayEnvAt(t, c, relayBatchVersion)
}

// newRelayEnvAt is an environment running the relay's code path v.
func newRelayEnvAt(t *testing.T, c *relayConsumer, v workflow.Version) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	c.now = env.Now
	env.RegisterWorkflowWithOptions(InboundRelay, workflow.RegisterOptions{Name: shared.RelayWorkflowName})
	env.RegisterActivityWithOptions(c.relay, activity.RegisterOptions{Name: shared.RelayInboundActivity})
	env.RegisterActivityWithOptions(c.relayBatch, activity.RegisterOptions{Name: shared.RelayInboundBatchActivity})
	env.RegisterActivityWithOptions(c.spill, activity.RegisterOptions{Name: shared.SpillInboundActivity})
	env.RegisterActivityWithOptions(c.loadSpill, activity.RegisterOptions{Name: shared.LoadInboundSpillActivity})
	env.RegisterActivityWithOptions(c.dropSpill, activity.RegisterOptions{Name: shared.DropInboundSpillActivity})
	if v == workflow.DefaultVersion {
		env.OnGetVersion(relayBatchChange, workflow.DefaultVersion, relayBatchVersion).Return(workflow.DefaultVersion)
	}
	return env
}

func signalIDs(env *testsuite.TestWorkflowEnvironment, ids ...string) {
	for _, id := range ids {
		env.SignalWorkflow(shared.InboundSignal, shared.InboundRef{ID: id})
	}
}

// signalAt signals ids, in order, at about d. The test environment deadlocks when one
// callback posts more than about a thousand signals, so they go in 1 ms steps of 200.
func signalAt(env *testsuite.TestWorkflowEnvironment, d time.Duration, ids ...string) {
	for i, batch := 0, 0; i < len(ids); i, batch = i+200, batch+1 {
		b := ids[i:min(i+200, len(ids))]
		env.RegisterDelayedCallback(func() { signalIDs(env, b...) }, d+time.Duration(batch)*time.Millisecond)
	}
}

func queryInfo(t *testing.T, env *testsuite.TestWorkflowEnvironment) shared.QueueInfo {
	t.Helper()
	v, err := env.QueryWorkflow(shared.PendingQuery)
	if err != nil {
		t.Fatalf("query %s: %v", shared.PendingQuery, err)
	}
	var info shared.QueueInfo
	if err := v.Get(&info); err != nil {
		t.Fatalf("decode QueueInfo: %v", err)
	}
	return info
}

// clearQueue sends the clear update; *cleared is set when it completes.
func clearQueue(t *testing.T, env *testsuite.TestWorkflowEnvironment, cleared *int) {
	t.Helper()
	env.UpdateWorkflow(shared.ClearUpdate, "clear-1", &testsuite.TestUpdateCallback{
		OnReject: func(err error) { t.Errorf("clear rejected: %v", err) },
		OnAccept: func() {},
		OnComplete: func(v any, err error) {
			if err != nil {
				t.Errorf("clear failed: %v", err)
				return
			}
			*cleared = v.(int)
		},
	})
}

// carried returns the state a run continued as new with.
func carried(t *testing.T, env *testsuite.TestWorkflowEnvironment) shared.RelayState {
	t.Helper()
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("workflow error = %v; want continue-as-new", err)
	}
	var st shared.RelayState
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &st); err != nil {
		t.Fatalf("decode carried state: %v", err)
	}
	return st
}

func ids(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", prefix, i)
	}
	return out
}

func refIDs(refs []shared.InboundRef) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.ID
	}
	return out
}

func wantCanceled(t *testing.T, env *testsuite.TestWorkflowEnvironment) {
	t.Helper()
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); !temporal.IsCanceledError(err) {
		t.Fatalf("workflow error = %v; want canceled (the relay only ends when cancelled)", err)
	}
}

func TestRelayDeliversManySignalsInArrivalOrder(t *testing.T) {
	forEachRelayVersion(t, func(t *testing.T, v workflow.Version) {
		c := newRelayConsumer()
		env := newRelayEnvAt(t, c, v)
		want := ids(600, "wamid.")
		// Bursts of signals at different times, some landing while a head is in flight.
		for i, chunk := 0, 0; i < len(want); i, chunk = i+50, chunk+1 {
			batch := want[i : i+50]
			env.RegisterDelayedCallback(func() { signalIDs(env, batch...) }, time.Duration(chunk)*time.Second)
		}
		var info shared.QueueInfo
		env.RegisterDelayedCallback(func() {
			info = queryInfo(t, env)
			env.CancelWorkflow()
		}, time.Hour)
		env.ExecuteWorkflow(shared.RelayWorkflowName, shared.RelayState{})

		wantCanceled(t, env)
		got, _ := c.snapshot()
		if !slices.Equal(got, want) {
			t.Errorf("relayed %d events, first difference at %d; want all %d in arrival order", len(got), firstDiff(got, want), len(want))
		}
		if info.Pending != 0 || info.Relayed != int64(len(want)) || info.HeadID != "" {
			t.Errorf("final QueueInfo = %+v; want pending 0, relayed %d, idle", info, len(want))
		}
	})
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestRelayFailingHeadHoldsEverythingBehindIt(t *testing.T) {
	forEachRelayVersion(t, func(t *testing.T, v workflow.Version) {
		c := newRelayConsumer()
		c.down = true
		env := newRelayEnvAt(t, c, v)
		start := env.Now()
		env.RegisterDelayedCallback(func() { signalIDs(env, "a", "b", "c") }, time.Second)
		var during shared.QueueInfo
		env.RegisterDelayedCallback(func() { during = queryInfo(t, env) }, 20*time.Second)
		env.RegisterDelayedCallback(func() { c.setDown(false) }, 33*time.Second)
		env.RegisterDelayedCallback(func() { signalIDs(env, "d") }, 40*time.Second)
		env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)
		env.ExecuteWorkflow(shared.RelayWorkflowName, shared.RelayState{})

		wantCanceled(t, env)
		relayed, attempts := c.snapshot()
		if want := []string{"a", "b", "c", "d"}; !slices.Equal(relayed, want) {
			t.Errorf("relayed %v; want %v", relayed, want)
		}
		if during.Pending != 3 || during.HeadID != "a" {
			t.Errorf("QueueInfo while the head fails = %+v; want pending 3 (head included), head a", during)
		}
		// Every attempt before the consumer came back is for the head, 5 s apart.
		var failed []relayAttempt
		for _, a := range attempts {
			if !a.ok {
				failed = append(failed, a)
			}
		}
		if len(failed) < 6 {
			t.Fatalf("%d failed attempts; want the head retried every 5 s for 32 s", len(failed))
		}
		for i, a := range failed {
			if a.id != "a" {
				t.Errorf("failed attempt %d was for %q; want only the head a", i, a.id)
			}
			if i > 0 {
				if gap := a.at.Sub(failed[i-1].at); gap < 5*time.Second || gap > 6*time.Second {
					t.Errorf("attempt %d came %v after the previous; want 5 s", i, gap)
				}
			}
		}
		if first := failed[0].at.Sub(start); first > 2*time.Second {
			t.Errorf("first attempt at +%v; want right after the signal", first)
		}
	})
}

func TestRelayClearDuringFailingHead(t *testing.T) {
	forEachRelayVersion(t, func(t *testing.T, v workflow.Version) {
		c := newRelayConsumer()
		c.down = true
		env := newRelayEnvAt(t, c, v)
		env.RegisterDelayedCallback(func() { signalIDs(env, "a", "b", "c") }, time.Second)
		cleared := -1
		var after shared.QueueInfo
		env.RegisterDelayedCallback(func() { clearQueue(t, env, &cleared) }, 12*time.Second)
		env.RegisterDelayedCallback(func() { after = queryInfo(t, env) }, 13*time.Second)
		env.RegisterDelayedCallback(func() { signalIDs(env, "d", "e") }, 14*time.Second)
		env.RegisterDelayedCallback(func() { c.setDown(false) }, 30*time.Second)
		env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)
		env.ExecuteWorkflow(shared.RelayWorkflowName, shared.RelayState{})

		wantCanceled(t, env)
		if cleared != 3 {
			t.Errorf("clear returned %d; want 3 (the failing head and the two behind it)", cleared)
		}
		if after.Pending != 0 {
			t.Errorf("pending after clear = %d; want 0", after.Pending)
		}
		relayed, _ := c.snapshot()
		if want := []string{"d", "e"}; !slices.Equal(relayed, want) {
			t.Errorf("relayed %v; want only the events signalled after the clear %v", relayed, want)
		}
	})
}

func TestRelayClearWhenIdle(t *testing.T) {
	forEachRelayVersion(t, func(t *testing.T, v workflow.Version) {
		c := newRelayConsumer()
		env := newRelayEnvAt(t, c, v)
		cleared := -1
		env.RegisterDelayedCallback(func() { clearQueue(t, env, &cleared) }, time.Second)
		env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)
		env.ExecuteWorkflow(shared.RelayWorkflowName, shared.RelayState{})
		wantCanceled(t, env)
		if cleared != 0 {
			t.Errorf("clear of an empty relay returned %d; want 0", cleared)
		}
	})
}

func TestRelayDedupeAndMissingEvents(t *testing.T) {
	forEachRelayVersion(t, func(t *testing.T, v workflow.Version) {
		c := newRelayConsumer()
		c.missing["gone"] = true
		env := newRelayEnvAt(t, c, v)
		env.RegisterDelayedCallback(func() { signalIDs(env, "a", "a", "gone", "b", "a", "old", "c") }, time.Second)
		env.RegisterDelayedCallback(func() { signalIDs(env, "b", "d") }, 10*time.Second)
		var info shared.QueueInfo
		env.RegisterDelayedCallback(func() {
			info = queryInfo(t, env)
			env.CancelWorkflow()
		}, time.Minute)
		// "old" was relayed by an earlier run: it is in the carried dedupe set.
		env.ExecuteWorkflow(shared.RelayWorkflowName, shared.RelayState{Recent: []string{"old"}, Relayed: 1})

		wantCanceled(t, env)
		relayed, _ := c.snapshot()
		if want := []string{"a", "b", "c", "d"}; !slices.Equal(relayed, want) {
			t.Errorf("relayed %v; want %v (each id once, the missing one dropped)", relayed, want)
		}
		if info.Relayed != 5 || info.Dropped != 1 {
			t.Errorf("QueueInfo = %+v; want relayed 5 (1 carried + 4), dropped 1", info)
		}
	})
}

func TestRelayRecentIDsAreBounded(t *testing.T) {
	forEachRelayVersion(t, func(t *testing.T, v workflow.Version) {
		c := newRelayConsumer()
		env := newRelayEnvAt(t, c, v)
		all := ids(shared.MaxRelayRecentIDs+10, "w")
		signalAt(env, time.Second, all...)
		env.RegisterDelayedCallback(func() {
			env.SetContinueAsNewSuggested(true)
			signalIDs(env, all[len(all)-1]) // a repeat, only to wake the workflow
		}, time.Hour)
		env.ExecuteWorkflow(shared.RelayWorkflowName, shared.RelayState{})

		st := carried(t, env)
		if len(st.Recent) != shared.MaxRelayRecentIDs || st.Recent[0] != all[10] || st.Recent[len(st.Recent)-1] != all[len(all)-1] {
			t.Errorf("carried %d recent ids from %q; want the last %d, from %q", len(st.Recent), st.Recent[0], shared.MaxRelayRecentIDs, all[10])
		}
	})
}

func TestRelayContinueAsNewBetweenEventsCarriesQueueAndLateSignals(t *testing.T) {
	forEachRelayVersion(t, func(t *testing.T, v workflow.Version) {
		c := newRelayConsumer()
		c.down = true
		env := newRelayEnvAt(t, c, v)
		env.RegisterDelayedCallback(func() { signalIDs(env, "a", "b", "c") }, time.Second)
		env.RegisterDelayedCallback(func() {
			env.SetContinueAsNewSuggested(true)
			signalIDs(env, "d")
		}, 10*time.Second)
		env.RegisterDelayedCallback(func() {
			// Buffered without a workflow task of their own: only the drain before
			// continue-as-new can pick them up.
			env.SignalWorkflowSkippingWorkflowTask(shared.InboundSignal, shared.InboundRef{ID: "e"})
			env.SignalWorkflowSkippingWorkflowTask(shared.InboundSignal, shared.InboundRef{ID: "f"})
			c.setDown(false)
		}, 22*time.Second)
		env.ExecuteWorkflow(shared.RelayWorkflowName, shared.RelayState{})

		// a is in flight alone on both paths: it started before b and c were signalled.
		inFlight := []string{"a"}
		st := carried(t, env)
		relayed, attempts := c.snapshot()
		if !slices.Equal(relayed, inFlight) {
			t.Errorf("relayed %v before continue-as-new; want only what was in flight %v", relayed, inFlight)
		}
		for _, a := range attempts {
			if a.id != "a" {
				t.Errorf("attempt for %q: after the suggestion no new head may start", a.id)
			}
		}
		if want := []string{"a", "b", "c", "d", "e", "f"}[len(inFlight):]; !slices.Equal(refIDs(st.Queue), want) {
			t.Errorf("carried queue %v; want %v", refIDs(st.Queue), want)
		}
		if want := []string{"a", "b", "c", "d", "e", "f"}; !slices.Equal(st.Recent, want) {
			t.Errorf("carried dedupe set %v; want %v", st.Recent, want)
		}
		if st.Relayed != int64(len(inFlight)) {
			t.Errorf("carried relayed = %d; want %d", st.Relayed, len(inFlight))
		}
	})
}

func TestRelayHistoryHardLimitCarriesFailingHeadFirst(t *testing.T) {
	forEachRelayVersion(t, func(t *testing.T, v workflow.Version) {
		c := newRelayConsumer()
		c.down = true
		env := newRelayEnvAt(t, c, v)
		env.RegisterDelayedCallback(func() { signalIDs(env, "a", "b") }, time.Second)
		env.RegisterDelayedCallback(func() {
			env.SetCurrentHistoryLength(relayHistoryHardLimit)
			signalIDs(env, "c")
		}, 12*time.Second)
		env.ExecuteWorkflow(shared.RelayWorkflowName, shared.RelayState{})

		st := carried(t, env)
		if want := []string{"a", "b", "c"}; !slices.Equal(refIDs(st.Queue), want) {
			t.Errorf("carried queue %v; want the failing head first %v", refIDs(st.Queue), want)
		}
		if relayed, _ := c.snapshot(); len(relayed) != 0 {
			t.Errorf("relayed %v; want nothing while the consumer is down", relayed)
		}
	})
}

// A backlog far beyond what the state may carry is spilled to Redis in order and
// relayed, in order, by the next run together with what arrives meanwhile.
func TestRelaySpillsBacklogAndRelaysItInOrder(t *testing.T) {
	forEachRelayVersion(t, func(t *testing.T, v workflow.Version) {
		c := newRelayConsumer()
		c.down = true
		backlog := ids(1700, "x")
		env := newRelayEnvAt(t, c, v)
		signalAt(env, time.Second, backlog...)
		env.RegisterDelayedCallback(func() {
			env.SetCurrentHistoryLength(relayHistoryHardLimit)
			signalIDs(env, backlog[len(backlog)-1]) // a repeat, only to wake the workflow
		}, 12*time.Second)
		env.ExecuteWorkflow(shared.RelayWorkflowName, shared.RelayState{})

		st := carried(t, env)
		limit := shared.MaxRelayCarriedRefs
		if !slices.Equal(refIDs(st.Queue), backlog[:limit]) || len(st.Tail) != 0 {
			t.Fatalf("carried queue of %d refs, tail of %d; want the first %d refs and no tail", len(st.Queue), len(st.Tail), limit)
		}
		var spilled []string
		for _, seg := range st.Spilled {
			if seg.Count > relaySpillChunk || seg.Count != len(c.segments[seg.Key]) {
				t.Errorf("segment %s counts %d refs, holds %d; want at most %d", seg.Key, seg.Count, len(c.segments[seg.Key]), relaySpillChunk)
			}
			spilled = append(spilled, refIDs(c.segments[seg.Key])...)
		}
		if !slices.Equal(spilled, backlog[limit:]) {
			t.Fatalf("spilled %d refs; want the %d after the carried ones, in order", len(spilled), len(backlog)-limit)
		}
		size, err := converter.GetDefaultDataConverter().ToPayloads(st)
		if err != nil {
			t.Fatal(err)
		}
		if n := size.Size(); n > 64<<10 {
			t.Errorf("carried state is %d bytes; want it small (under 64 KB)", n)
		}

		// The next run: the consumer is back; more events arrive while segments remain.
		c.setDown(false)
		c.mu.Lock()
		c.attempts = nil
		c.mu.Unlock()
		late := ids(3, "late")
		env2 := newRelayEnvAt(t, c, v)
		env2.RegisterDelayedCallback(func() { signalIDs(env2, late...) }, 0)
		env2.RegisterDelayedCallback(env2.CancelWorkflow, time.Hour)
		env2.ExecuteWorkflow(shared.RelayWorkflowName, st)

		wantCanceled(t, env2)
		relayed, _ := c.snapshot()
		want := append(slices.Clone(backlog), late...)
		if !slices.Equal(relayed, want) {
			t.Errorf("relayed %d events, first difference at %d; want %d in order (backlog, then late arrivals)",
				len(relayed), firstDiff(relayed, want), len(want))
		}
		if len(c.segments) != 0 {
			t.Errorf("%d spilled segments left in Redis; want every loaded one dropped", len(c.segments))
		}
	})
}

// A signal that lands in the same workflow task as the last activity before
// continue-as-new (here the spill) must be carried, not left with a coroutine that
// never runs again.
func TestRelaySignalArrivingWithTheLastSpillIsCarried(t *testing.T) {
	forEachRelayVersion(t, func(t *testing.T, v workflow.Version) {
		c := newRelayConsumer()
		c.down = true
		backlog := ids(shared.MaxRelayCarriedRefs+100, "x")
		env := newRelayEnvAt(t, c, v)
		c.onSpill = func() {
			env.SignalWorkflowSkippingWorkflowTask(shared.InboundSignal, shared.InboundRef{ID: "late"})
		}
		signalAt(env, time.Second, backlog...)
		env.RegisterDelayedCallback(func() {
			env.SetCurrentHistoryLength(relayHistoryHardLimit)
			signalIDs(env, backlog[len(backlog)-1]) // a repeat, only to wake the workflow
		}, 12*time.Second)
		env.ExecuteWorkflow(shared.RelayWorkflowName, shared.RelayState{})

		st := carried(t, env)
		var order []string
		order = append(order, refIDs(st.Queue)...)
		for _, seg := range st.Spilled {
			order = append(order, refIDs(c.segments[seg.Key])...)
		}
		order = append(order, refIDs(st.Tail)...)
		want := append(slices.Clone(backlog), "late")
		if !slices.Equal(order, want) {
			t.Errorf("carried %d refs (queue %d, spilled %v, tail %v); want the backlog then \"late\", %d in all",
				len(order), len(st.Queue), st.Spilled, refIDs(st.Tail), len(want))
		}
	})
}

// Histories recorded from real runs by the e2e tests (WAGATE_RECORD_RELAY_HISTORY set):
//
//   - relay_v1.json (TestInboundConsumerOutageClearAndQueueTest): signals, a head retried
//     while the consumer was down, a clear that cancelled it, the queue test message, and
//     the cancellation that ended the run;
//   - relay_can_v1.json.gz (TestInboundRelaysSignedEventsInOrderExactlyOnce): the first run
//     of a thousand events, with a backlog spilled to Redis, a continue-as-new rejected
//     once for a signal that arrived meanwhile, and the continue-as-new.
//
// Those two are the one-event relay (before relay-batch). The batched relay:
//
//   - relay_v2.json (TestInboundConsumerOutageClearAndQueueTest): the same story, with
//     batches, grouped signals, and a clear of a failing batch;
//   - relay_can_v2.json.gz (TestInboundBacklogSpillsAndContinuesAsNew): the first run of
//     a backlog built while the consumer was down, its failing batch cancelled at the
//     history hard limit, the backlog spilled to Redis, and the continue-as-new.
//
// Any change to InboundRelay that would break running relays fails here; such a change
// needs workflow.GetVersion and new recordings next to these.
func TestRelayReplaysRecordedHistories(t *testing.T) {
	tests := []string{"relay_v1.json", "relay_can_v1.json.gz", "relay_v2.json", "relay_can_v2.json.gz"}
	for _, file := range tests {
		t.Run(file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var r io.Reader = f
			if strings.HasSuffix(file, ".gz") {
				if r, err = gzip.NewReader(f); err != nil {
					t.Fatal(err)
				}
			}
			h, err := client.HistoryFromJSON(r, client.HistoryJSONOptions{})
			if err != nil {
				t.Fatalf("parse %s: %v", file, err)
			}
			rp := worker.NewWorkflowReplayer()
			rp.RegisterWorkflowWithOptions(InboundRelay, workflow.RegisterOptions{Name: shared.RelayWorkflowName})
			if err := rp.ReplayWorkflowHistory(nil, h); err != nil {
				t.Fatalf("replay of %s (%d events): %v", file, len(h.Events), err)
			}
		})
	}
}
