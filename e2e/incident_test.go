package e2e

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/shared"
)

// incident makes every send fail the way a Meta outage does (HTTP 500, code 1) until
// the returned func is called; that func returns when Meta recovered.
func incident(s *Stack) (recover func() time.Time) {
	s.Sandbox.SetFaults(sandbox.Faults{ServerError: 1})
	return func() time.Time {
		s.Sandbox.SetFaults(sandbox.Faults{})
		return time.Now()
	}
}

// waitWaiting polls task-status until it says the task waits on Meta, and returns it.
func waitWaiting(t *testing.T, s *Stack, id string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, task := s.Get(t, "/api/task-status/"+id)
		if task["waiting"] == string(redisstore.OutcomeUnavailable) {
			return task
		}
		if time.Now().After(deadline) {
			t.Fatalf("task-status never said the task waits on Meta; last %v", task)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// resumedWithin waits until the sandbox accepts a send after recovery and returns how
// long that took.
func resumedWithin(t *testing.T, s *Stack, recovered time.Time, before int64, timeout time.Duration) time.Duration {
	t.Helper()
	for s.Sandbox.Stats().Accepted <= before {
		if time.Since(recovered) > timeout {
			t.Fatalf("no send accepted %v after Meta recovered", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(recovered)
}

// incidentLength is how long TestIncidentMidTaskFailsNobody keeps Meta failing: 8 s, or
// WAGATE_INCIDENT_SECONDS (the measure is 30).
func incidentLength() time.Duration {
	if n, err := strconv.Atoi(os.Getenv("WAGATE_INCIDENT_SECONDS")); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return 8 * time.Second
}

// A Meta incident in the middle of a task (every send answered HTTP 500 for 8 s): the
// circuit opens after a few failures, nobody fails, task-status and /api/status say
// the task waits on Meta, only probes reach Meta during the incident, and the task
// resumes by itself within 5 s of the recovery (probes are at most 4 s apart) and
// succeeds.
func TestIncidentMidTaskFailsNobody(t *testing.T) {
	const n, workers = 2000, 10
	s := NewStack(t, StackOptions{MaxWorkers: workers, SandboxLatency: 20 * time.Millisecond})
	id := queueBulk(t, s, n)
	waitAccepted(t, s, n/4, 2*time.Minute)
	recover := incident(s)
	start := time.Now()

	task := waitWaiting(t, s, id, 10*time.Second)
	if task["status"] != shared.StatusStarted || task["waiting_since"] == nil {
		t.Errorf("task-status during the incident = %v, want STARTED, waiting since a time", task)
	}
	for _, k := range []string{"task_id", "kind", "status", "result", "created_at", "completed_at"} {
		if _, ok := task[k]; !ok {
			t.Errorf("task-status lost its contract field %q while waiting: %v", k, task)
		}
	}
	_, st := s.Get(t, "/api/status")
	if send, _ := st["whatsapp_send"].(map[string]any); send["circuit"] != "open" {
		t.Errorf("/api/status whatsapp_send = %v, want the circuit open", st["whatsapp_send"])
	}
	length := incidentLength()
	time.Sleep(length - time.Since(start))
	failing := s.Sandbox.Stats().Rejected
	before := s.Sandbox.Stats().Accepted
	recovered := recover()
	took := resumedWithin(t, s, recovered, before, 10*time.Second)
	t.Logf("incident of %v: %d calls failed at Meta, sending resumed %v after the recovery", length, failing, took.Round(time.Millisecond))
	// The threshold, what was in flight, and one probe per 1-4 s.
	if limit := int64(redisstore.DefaultBreakerOptions.Threshold+workers) + int64(length/time.Second); failing > limit {
		t.Errorf("%d failing calls reached Meta during the incident, want at most %d", failing, limit)
	}
	if took > 5*time.Second {
		t.Errorf("sending resumed %v after the recovery, want within 5 s", took)
	}

	task = s.WaitTask(t, id, 3*time.Minute)
	checkCrashOutcome(t, s, task, n, workers)
	if _, ok := task["waiting"]; ok {
		t.Errorf("finished task still says it waits: %v", task)
	}
}

// A worker killed with SIGKILL while the circuit is open: a new worker waits on the
// same (Redis) circuit, sends nothing but probes, and finishes the task after Meta
// recovers, with nobody failed or lost and at most the sends in flight repeated.
func TestWorkerSIGKILLWhileTheCircuitIsOpen(t *testing.T) {
	const n, workers = 2000, 10
	s := NewStack(t, StackOptions{NoWorker: true, MaxWorkers: workers, SandboxLatency: 20 * time.Millisecond})
	first := s.StartBinary(t, "worker")
	id := queueBulk(t, s, n)
	waitAccepted(t, s, n/4, 2*time.Minute)
	recover := incident(s)
	waitWaiting(t, s, id, 10*time.Second)

	first.Kill()
	t.Logf("worker killed with the circuit open after %d of %d sends", s.Sandbox.Stats().Accepted, n)
	// With no worker the task still says what it waits on.
	if _, task := s.Get(t, "/api/task-status/"+id); task["waiting"] != string(redisstore.OutcomeUnavailable) {
		t.Errorf("task-status with no worker = %v, want waiting on graph_api_unavailable", task)
	}
	s.StartBinary(t, "worker")
	time.Sleep(3 * time.Second)
	before := s.Sandbox.Stats().Accepted
	recovered := recover()
	// The new attempt starts after the heartbeat timeout of the killed one (10 s).
	took := resumedWithin(t, s, recovered, before, 45*time.Second)
	t.Logf("sending resumed %v after the recovery", took.Round(time.Millisecond))

	task := s.WaitTask(t, id, 3*time.Minute)
	checkCrashOutcome(t, s, task, n, workers)
}

// A Meta incident of hanging connections (no answer at all, for 45 s) in the middle
// of a task: the sends in flight wait out the Graph API deadline (30 s) and open the
// circuit; task-status says the task waits on Meta; a probe goes every 4 s although
// the earlier ones still hang, so the task resumes within 5 s of the recovery, not one
// deadline later, and succeeds with nobody failed or repeated (a send left hanging was
// not accepted, and is sent again).
func TestHangingIncidentMidTaskResumesWithinSeconds(t *testing.T) {
	const n, workers = 600, 10
	const length = 45 * time.Second
	s := NewStack(t, StackOptions{MaxWorkers: workers, SandboxLatency: 20 * time.Millisecond})
	id := queueBulk(t, s, n)
	waitAccepted(t, s, n/4, 2*time.Minute)
	s.Sandbox.StartIncidentMode(length, sandbox.IncidentHang)

	task := waitWaiting(t, s, id, 40*time.Second)
	if task["status"] != shared.StatusStarted || task["waiting_since"] == nil {
		t.Errorf("task-status during the incident = %v, want STARTED, waiting since a time", task)
	}
	task = s.WaitTask(t, id, 3*time.Minute)
	st := s.Sandbox.Stats()
	inc := st.Incident
	if inc.FirstAcceptAfter.IsZero() {
		t.Fatalf("no send accepted after the incident: %+v", inc)
	}
	took := inc.FirstAcceptAfter.Sub(inc.End)
	t.Logf("hanging incident of %v: %d sends left hanging, sending resumed %v after the recovery",
		length, inc.Refused, took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("sending resumed %v after the recovery, want within 5 s", took)
	}
	// The sends in flight when it began, and one probe every 4 s once the circuit opened.
	if limit := int64(workers) + int64(length/(4*time.Second)) + 1; inc.Refused > limit {
		t.Errorf("%d sends reached Meta during the incident, want at most %d", inc.Refused, limit)
	}
	if st.MaxInFlight > workers {
		t.Errorf("the sandbox saw %d sends at once, want at most BULK_MAX_WORKERS = %d", st.MaxInFlight, workers)
	}
	checkCrashOutcome(t, s, task, n, 0)
}
