package e2e

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/wagate/wagate/devserver"
	"github.com/wagate/wagate/shared"
)

// waitAccepted waits until the sandbox has accepted at least n messages.
func waitAccepted(t *testing.T, s *Stack, n int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for s.Sandbox.Stats().Accepted < n {
		if time.Now().After(deadline) {
			t.Fatalf("the sandbox accepted %d messages in %v, want %d", s.Sandbox.Stats().Accepted, timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkCrashOutcome fails unless the task ended SUCCESS with every recipient sent,
// none lost, and at most maxDup repeated deliveries at the sandbox.
func checkCrashOutcome(t *testing.T, s *Stack, task map[string]any, n, maxDup int) {
	t.Helper()
	res, _ := task["result"].(map[string]any)
	if task["status"] != shared.StatusSuccess || res["sent"] != float64(n) || res["failed"] != float64(0) || res["total"] != float64(n) {
		t.Errorf("task = %v, want SUCCESS with all %d sent", task["status"], n)
		t.Logf("result: %v", res)
	}
	lost, repeated := 0, 0
	for i := range n {
		switch d := s.Sandbox.Deliveries(fmt.Sprintf("5731%08d", i)); {
		case d == 0:
			lost++
		case d > 1:
			repeated += d - 1
		}
	}
	st := s.Sandbox.Stats()
	t.Logf("sandbox: %d accepted, %d duplicates; %d recipients lost, %d repeated deliveries", st.Accepted, st.Duplicates, lost, repeated)
	if lost != 0 {
		t.Errorf("%d recipients never reached the sandbox", lost)
	}
	if repeated > maxDup || st.Duplicates > int64(maxDup) {
		t.Errorf("%d repeated deliveries (sandbox counts %d duplicates), want at most BULK_MAX_WORKERS = %d", repeated, st.Duplicates, maxDup)
	}
}

// A worker process killed with SIGKILL in the middle of a 5,000-recipient task: a new
// worker finishes it, nobody is lost, and only the sends in flight at the kill repeat.
func TestWorkerSIGKILLMidTask(t *testing.T) {
	const n, workers = 5000, 10
	s := NewStack(t, StackOptions{NoWorker: true, MaxWorkers: workers, SandboxLatency: 20 * time.Millisecond})
	first := s.StartBinary(t, "worker")
	id := queueBulk(t, s, n)

	waitAccepted(t, s, n/4, 2*time.Minute)
	first.Kill()
	killedAt := s.Sandbox.Stats().Accepted
	if killedAt >= n {
		t.Fatalf("the task finished (%d accepted) before the worker was killed", killedAt)
	}
	t.Logf("worker killed after %d of %d sends", killedAt, n)

	s.StartBinary(t, "worker")
	task := s.WaitTask(t, id, 3*time.Minute)
	checkCrashOutcome(t, s, task, n, workers)
}

// The embedded Temporal server of the dev stack stops in the middle of a task and
// starts again on the same SQLite file and port: the task completes with every
// recipient sent and at most the in-flight sends repeated.
func TestTemporalRestartMidTask(t *testing.T) {
	const n, workers = 3000, 10
	dir := t.TempDir()
	s := NewStack(t, StackOptions{DataDir: dir, MaxWorkers: workers, SandboxLatency: 20 * time.Millisecond})
	id := queueBulk(t, s, n)

	waitAccepted(t, s, n/4, 2*time.Minute)
	_, portText, err := net.SplitHostPort(s.Dev.FrontendHostPort())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portText)
	if err := s.Dev.Stop(); err != nil {
		t.Fatalf("stop temporal: %v", err)
	}
	t.Logf("temporal stopped after %d of %d sends", s.Sandbox.Stats().Accepted, n)
	time.Sleep(2 * time.Second)

	dev, err := devserver.Start(context.Background(), devserver.Options{
		DataDir: filepath.Join(dir, "temporal"), FrontendPort: port, UIPort: -1, Namespace: s.Config.TemporalNamespace,
		Logger: testLogger(t).With("component", "temporal"),
	})
	if err != nil {
		t.Fatalf("restart temporal: %v", err)
	}
	s.Dev = dev // the stack's ordered shutdown stops the restarted server

	task := s.WaitTask(t, id, 3*time.Minute)
	checkCrashOutcome(t, s, task, n, workers)
}
