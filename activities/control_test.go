package activities

import (
	"context"
	"testing"
	"time"

	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

// A pause written to the control key stops a running SendRange: no claim starts after
// it, the sends in flight finish and are recorded (nothing is left claimed), and the
// activity returns halted. Cleared, the next SendRange sends the rest exactly once, and
// CountLedger counts what the halted one sent above its frontier.
func TestSendRangeHaltsOnTheControlKeyAndResumes(t *testing.T) {
	const n, workers, latency = 3000, 10, 10 * time.Millisecond
	f := newFixture(t, sandbox.Options{Latency: latency}, 100_000)
	f.stage(t, "ctl", n)
	ctx := context.Background()

	done := make(chan shared.RangeResult, 1)
	go func() {
		done <- f.sendRange(t, shared.RangeInput{TaskID: "ctl", Offset: 0, End: n, MaxWorkers: workers, Control: true})
	}()
	for f.sb.Stats().Accepted < 200 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := f.acts.Store.SetTaskControl(ctx, "ctl", shared.ActionPause); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	atPause := f.sb.Stats().Accepted
	var res shared.RangeResult
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("SendRange did not stop for the pause")
	}
	stopped := time.Since(written)
	afterStop := f.sb.Stats().Accepted
	time.Sleep(200 * time.Millisecond)
	if got := f.sb.Stats().Accepted; got != afterStop {
		t.Errorf("the sandbox accepted %d sends after SendRange returned", got-afterStop)
	}
	if !res.Halted || res.Frontier >= n || res.Frontier < 200 {
		t.Fatalf("result = %+v, want halted with a frontier in (200, %d)", res, n)
	}
	// At most a poll interval of sends, plus those in flight, after the key was written.
	if limit := int64(controlPoll/latency+2) * workers; afterStop-atPause > limit {
		t.Errorf("%d sends after the pause was written (stopped after %v), want at most %d", afterStop-atPause, stopped, limit)
	}
	entries, err := f.acts.Store.Ledger(ctx, "ctl", 0, n)
	if err != nil {
		t.Fatal(err)
	}
	final := 0
	for i, e := range entries {
		if e.State == redisstore.LedgerClaimed {
			t.Fatalf("recipient %d left claimed", i)
		}
		if e.State.Final() {
			final++
		}
	}
	if int64(final) != afterStop {
		t.Errorf("%d recipients final in the ledger, the sandbox accepted %d", final, afterStop)
	}
	above, err := f.env.ExecuteActivity(shared.CountLedgerActivity, shared.CountLedgerInput{TaskID: "ctl", From: res.Frontier, To: n})
	if err != nil {
		t.Fatal(err)
	}
	var counted shared.ChunkResult
	if err := above.Get(&counted); err != nil {
		t.Fatal(err)
	}
	if res.Sent+counted.Sent != final || counted.Failed != 0 {
		t.Errorf("below the frontier %d, above it %+v; the ledger has %d final", res.Sent, counted, final)
	}

	// A SendRange started while the key is set stops before claiming anything.
	again := f.sendRange(t, shared.RangeInput{TaskID: "ctl", Offset: res.Frontier, End: n, MaxWorkers: workers, Seq: 1, Control: true})
	if !again.Halted || f.sb.Stats().Accepted != afterStop {
		t.Errorf("with the key set: %+v and %d more sent, want halted with none", again, f.sb.Stats().Accepted-afterStop)
	}

	if err := f.acts.Store.SetTaskControl(ctx, "ctl", ""); err != nil {
		t.Fatal(err)
	}
	cursor, sent := again.Frontier, res.Sent+again.Sent
	for seq := 2; cursor < n; seq++ {
		r := f.sendRange(t, shared.RangeInput{TaskID: "ctl", Offset: cursor, End: n, MaxWorkers: workers, Seq: seq, Control: true})
		if r.Halted {
			t.Fatalf("halted with the key cleared: %+v", r)
		}
		cursor, sent = r.Frontier, sent+r.Sent
	}
	if st := f.sb.Stats(); sent != n || st.Accepted != n || st.Duplicates != 0 {
		t.Errorf("sent %d, sandbox accepted %d with %d duplicates; want %d once each", sent, st.Accepted, st.Duplicates, n)
	}
}
