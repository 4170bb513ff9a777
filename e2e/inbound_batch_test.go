package e2e

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	workflowpb "go.temporal.io/api/workflow/v1"

	"github.com/wagate/wagate/internal/wstest"
	"github.com/wagate/wagate/shared"
)

// backlog posts n events while the consumer is down, so that they go out as one batch
// when it comes back.
func backlog(t *testing.T, s *Stack, sink *wstest.Consumer, prefix string, n int) []string {
	t.Helper()
	sink.Stop()
	want := postTexts(t, s, prefix, "573444444444", 0, n)
	waitPending(t, s, n)
	return want
}

// The consumer drops the connection in the middle of a batch: the batch's unconfirmed
// rest is sent again on a new connection; the only frames the consumer sees twice are
// those it read just before it dropped, whose pongs never left it, never a confirmed
// one.
func TestInboundConsumerDropsMidBatch(t *testing.T) {
	sink := wstest.New(t)
	s := newInboundStack(t, sink)
	want := backlog(t, s, sink, "DROP", 300)
	const dropAt = 120
	sink.DropAfter(dropAt)
	sink.Start()

	deadline := time.Now().Add(2 * time.Minute)
	var got []string
	for {
		got = frameIDs(t, sink.Frames())
		first := firstOccurrences(got)
		if len(first) == len(want) {
			wantOrderedOnce(t, first, want)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events relayed after the drop", len(first), len(want))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // a repeat would show up now
	got = frameIDs(t, sink.Frames())
	repeats := len(got) - len(want)
	if repeats < 1 || repeats > shared.RelayWindow {
		t.Errorf("%d frames repeated; want between 1 (the frame read as the consumer dropped) and one window (%d)", repeats, shared.RelayWindow)
	}
	// The repeated frames are the last ones the first connection read, and the second
	// connection starts with them.
	for i := range repeats {
		if got[dropAt+i] != got[dropAt-repeats+i] {
			t.Errorf("frame %d after the drop is %s; want the unconfirmed %s again", i, got[dropAt+i], got[dropAt-repeats+i])
		}
	}
	if n := sink.Connections(); n != 2 {
		t.Errorf("%d connections; want 2", n)
	}
	waitPending(t, s, 0)
}

func firstOccurrences(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// A clear while a batch is being written to a slow consumer: it returns exactly the
// events that were not relayed, the frames read are a prefix of the queue, each once,
// and what is posted after the clear is relayed next.
func TestInboundClearWhileBatchInFlight(t *testing.T) {
	sink := wstest.New(t)
	s := newInboundStack(t, sink)
	const n = 400
	want := backlog(t, s, sink, "SLOW", n)
	sink.SetDelay(10 * time.Millisecond)
	sink.Start()
	sink.WaitFrames(t, 50, time.Minute)

	code, out := s.do(t, http.MethodDelete, "/api/queue/clear", nil)
	if code != http.StatusOK || out["success"] != true {
		t.Fatalf("DELETE /api/queue/clear = %d %v", code, out)
	}
	cleared := int(out["result"].(map[string]any)["cleared"].(float64))
	time.Sleep(2 * time.Second) // nothing of the cleared batch may arrive now
	got := frameIDs(t, sink.Frames())
	if len(got) > n {
		t.Fatalf("%d frames for %d events", len(got), n)
	}
	if len(got)+cleared != n || cleared == 0 {
		t.Errorf("clear returned %d with %d frames relayed; want the %d events split exactly between them", cleared, len(got), n)
	}
	wantOrderedOnce(t, got, want[:len(got)])
	waitPending(t, s, 0)

	sink.SetDelay(0)
	postSigned(t, s, textWebhook("wamid.AFTERCLEAR", "573444444444", "después"))
	frames := sink.WaitFrames(t, len(got)+1, time.Minute)
	if last := parseFrame(t, frames[len(frames)-1]).ID; last != "wamid.AFTERCLEAR" || len(frames) != len(got)+1 {
		t.Errorf("after the clear the consumer read %d more frames ending with %s; want only wamid.AFTERCLEAR", len(frames)-len(got), last)
	}
	if !slices.Equal(frameIDs(t, frames[:len(got)]), got) {
		t.Errorf("frames before the clear changed")
	}
}

// A backlog long enough that the history reaches its hard limit while the consumer is
// down: the relay carries the failing batch first into a new run, spills the overflow
// to Redis, and once the consumer is back relays everything in order, once.
func TestInboundBacklogSpillsAndContinuesAsNew(t *testing.T) {
	sink := wstest.New(t)
	s := newInboundStack(t, sink)
	sink.Stop()
	// Each webhook, forwarded alone, adds its signal and a share of a workflow task (two
	// to four events, depending on how many signals a task takes): post until the run
	// has passed relayHistoryHardLimit (10,000) and continued as new.
	var want []string
	var info *workflowpb.WorkflowExecutionInfo
	for {
		for range 100 {
			want = append(want, postTexts(t, s, "SPILL", "573555555555", len(want), len(want)+1)...)
			waitLogDrained(t, s)
		}
		desc, err := s.Temporal.DescribeWorkflowExecution(context.Background(), shared.RelayWorkflowID, "")
		if err != nil {
			t.Fatal(err)
		}
		info = desc.GetWorkflowExecutionInfo()
		if info.GetFirstRunId() != info.GetExecution().GetRunId() {
			break
		}
		if len(want) >= 6000 {
			t.Fatalf("the relay is still on its first run after %d events (%d history events); want continue-as-new exercised", len(want), info.GetHistoryLength())
		}
	}
	n := len(want)
	first, err := s.Temporal.DescribeWorkflowExecution(context.Background(), shared.RelayWorkflowID, info.GetFirstRunId())
	if err != nil {
		t.Fatal(err)
	}
	if h := first.GetWorkflowExecutionInfo().GetHistoryLength(); h > 11_000 {
		t.Errorf("the first run has %d history events; want it ended near the hard limit (10,000)", h)
	}
	waitPending(t, s, n)
	sink.Start()
	frames := sink.WaitFrames(t, n, 3*time.Minute)
	time.Sleep(time.Second) // a repeat would show up now
	frames = sink.Frames()
	wantOrderedOnce(t, frameIDs(t, frames), want)
	waitPending(t, s, 0)
	recordRelayHistory(t, s, "relay_can_v2.json.gz", info.GetFirstRunId())
}
