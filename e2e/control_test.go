package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/wagate/wagate/devserver"
	"github.com/wagate/wagate/shared"
)

// call sends method base+path with body (JSON, nil for none) and headers, and decodes
// the JSON answer.
func call(t *testing.T, base, method, path string, body any, headers map[string]string) (int, http.Header, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %s", method, path, res.StatusCode, raw)
	}
	return res.StatusCode, res.Header, out
}

func bulkBody(n int, prefix string) map[string]any {
	recipients := make([]map[string]string, n)
	for i := range recipients {
		recipients[i] = map[string]string{"phone": fmt.Sprintf("%s%08d", prefix, i), "message": fmt.Sprint("hola ", i)}
	}
	return map[string]any{"recipients": recipients, "use_queue": true}
}

// countBulkWorkflows counts the BulkSend executions Temporal knows (continued runs
// excluded), waiting for visibility to catch up with want.
func countBulkWorkflows(t *testing.T, s *Stack, want int) int {
	t.Helper()
	var n int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err := s.Temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: s.Config.TemporalNamespace,
			Query:     "WorkflowType = 'BulkSend' AND ExecutionStatus != 'ContinuedAsNew'",
		})
		if err != nil {
			t.Fatal(err)
		}
		n = len(resp.GetExecutions())
		if n == want || time.Now().After(deadline) {
			return n
		}
	}
}

// The same bulk request, posted concurrently with one Idempotency-Key to two apiserver
// processes, starts one task: every answer is that task_id or a 409 while the first
// is being accepted; later repeats answer it again; another body with the key is a
// 422; the key under another API key is another task; a direct send repeated with a
// key answers Meta's first response and sends once. With the Redis record lost, the
// task id derived from the key still starts nothing twice.
func TestIdempotencyAcrossTwoAPIServers(t *testing.T) {
	s := NewStack(t, StackOptions{APIKey: "clave-a"})
	var bases []string
	for range 2 {
		addr := freeAddr(t)
		p := s.StartBinary(t, "apiserver", "HTTP_ADDR="+addr, "API_KEYS=clave-b")
		waitHealthy(t, p, "http://"+addr)
		bases = append(bases, "http://"+addr)
	}
	const n = 300
	body := bulkBody(n, "5735")
	keyA := map[string]string{"X-API-Key": "clave-a", "Idempotency-Key": "campana-2025-01-16"}

	type answer struct {
		status int
		id     string
	}
	answers := make([]answer, 8)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			status, _, resp := call(t, bases[i%2], http.MethodPost, "/api/send-bulk", body, keyA)
			id, _ := resp["task_id"].(string)
			if status != http.StatusOK && resp["success"] != false {
				t.Errorf("answer %d: %d %v, not the contract's error shape", i, status, resp)
			}
			answers[i] = answer{status, id}
		}()
	}
	close(start)
	wg.Wait()
	var id string
	for i, a := range answers {
		switch a.status {
		case http.StatusOK:
			if id == "" {
				id = a.id
			}
			if a.id != id {
				t.Errorf("answer %d: task %s, another answer had %s", i, a.id, id)
			}
		case http.StatusConflict:
		default:
			t.Errorf("answer %d: status %d, want 200 or 409", i, a.status)
		}
	}
	if id == "" {
		t.Fatalf("no answer had a task_id: %v", answers)
	}
	for _, base := range bases {
		status, hdr, resp := call(t, base, http.MethodPost, "/api/send-bulk", body, keyA)
		if status != http.StatusOK || resp["task_id"] != id || hdr.Get("Idempotent-Replayed") != "true" {
			t.Errorf("repeat on %s = %d %v (replayed %q), want the first answer", base, status, resp, hdr.Get("Idempotent-Replayed"))
		}
	}
	if task := s.WaitTask(t, id, 2*time.Minute); task["status"] != shared.StatusSuccess {
		t.Fatalf("task = %v", task)
	}
	if got := s.Sandbox.Stats().Accepted; got != n {
		t.Errorf("the sandbox accepted %d sends, want %d: one campaign", got, n)
	}
	if got := countBulkWorkflows(t, s, 1); got != 1 {
		t.Errorf("%d BulkSend workflows, want 1", got)
	}

	// Another body with the key.
	other := bulkBody(n+1, "5735")
	if status, _, resp := call(t, bases[1], http.MethodPost, "/api/send-bulk", other, keyA); status != http.StatusUnprocessableEntity || resp["success"] != false {
		t.Errorf("another body with the key = %d %v, want 422", status, resp)
	}
	// The Redis record lost (a failover): the id derived from the key finds the task.
	ctx := context.Background()
	keys, err := s.Store.Client().Keys(ctx, "wagate:idem:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("idempotency records: %v %v", keys, err)
	}
	s.Store.Client().Del(ctx, keys...)
	if status, _, resp := call(t, bases[0], http.MethodPost, "/api/send-bulk", body, keyA); status != http.StatusOK || resp["task_id"] != id {
		t.Errorf("repeat after the record was lost = %d %v, want task %s", status, resp, id)
	}
	time.Sleep(500 * time.Millisecond)
	if got := s.Sandbox.Stats().Accepted; got != n {
		t.Errorf("the sandbox accepted %d sends after the repeat, want %d", got, n)
	}

	// Keys are scoped to the API key: the same key under clave-b is another request.
	keyB := map[string]string{"X-API-Key": "clave-b", "Idempotency-Key": "campana-2025-01-16"}
	status, _, resp := call(t, bases[1], http.MethodPost, "/api/send-bulk", body, keyB)
	idB, _ := resp["task_id"].(string)
	if status != http.StatusOK || idB == "" || idB == id {
		t.Fatalf("the key under another API key = %d %v, want a new task", status, resp)
	}
	s.WaitTask(t, idB, 2*time.Minute)
	if got := s.Sandbox.Stats().Accepted; got != 2*n {
		t.Errorf("the sandbox accepted %d, want %d", got, 2*n)
	}

	// A direct send: Meta's first response, once.
	direct := map[string]any{"phone": "573123456789", "message": "una vez", "use_queue": false}
	keyD := map[string]string{"X-API-Key": "clave-a", "Idempotency-Key": "directo-1"}
	status, _, first := call(t, bases[0], http.MethodPost, "/api/send-message", direct, keyD)
	status2, _, second := call(t, bases[1], http.MethodPost, "/api/send-message", direct, keyD)
	if status != http.StatusOK || status2 != http.StatusOK || fmt.Sprint(first["data"]) != fmt.Sprint(second["data"]) || first["data"] == nil {
		t.Errorf("direct send twice = %d %v, %d %v; want Meta's first response twice", status, first, status2, second)
	}
	if got := s.Sandbox.Stats().Accepted; got != 2*n+1 {
		t.Errorf("the sandbox accepted %d, want %d (the direct send once)", got, 2*n+1)
	}
	// A malformed key is refused.
	if status, _, _ := call(t, bases[0], http.MethodPost, "/api/send-message", direct,
		map[string]string{"X-API-Key": "clave-a", "Idempotency-Key": strings.Repeat("k", 300)}); status != http.StatusBadRequest {
		t.Errorf("a 300-character key = %d, want 400", status)
	}
}

// slowStack sends about 250 messages a second (10 in flight, 40 ms each), so that a
// 5,000-recipient task runs for about 20 s.
func slowStack(t *testing.T) *Stack {
	return NewStack(t, StackOptions{MaxWorkers: 10, SandboxLatency: 40 * time.Millisecond})
}

// A cancel in the middle of a 5,000-recipient task answers once the sends in flight
// have finished: nothing is sent after the answer, task-status says REVOKED with the
// counts at that moment, and a second cancel is a 409.
func TestCancelDuringA5000RecipientTask(t *testing.T) {
	s := slowStack(t)
	const n = 5000
	id := queueBulk(t, s, n)
	waitAccepted(t, s, 1000, time.Minute)

	before := s.Sandbox.Stats().Accepted
	asked := time.Now()
	status, resp := s.PostJSON(t, "/api/task-cancel/"+id, nil)
	took := time.Since(asked)
	atAnswer := s.Sandbox.Stats().Accepted
	if status != http.StatusOK || resp["success"] != true || resp["status"] != shared.StatusRevoked {
		t.Fatalf("cancel = %d %v, want 200 REVOKED", status, resp)
	}
	t.Logf("cancel answered in %v; %d sends accepted between the request and the answer", took, atAnswer-before)
	time.Sleep(3 * time.Second)
	if got := s.Sandbox.Stats().Accepted; got != atAnswer {
		t.Errorf("the sandbox accepted %d sends after the cancel answered", got-atAnswer)
	}
	// What went out after the request: one poll of the control key and the sends in
	// flight, at 250 a second.
	if atAnswer-before > 150 {
		t.Errorf("%d sends after the cancel was asked, want at most 150", atAnswer-before)
	}
	res, _ := resp["result"].(map[string]any)
	if res["sent"] != float64(atAnswer) || res["total"] != float64(n) {
		t.Errorf("cancel result = %v, want %d sent of %d", res, atAnswer, n)
	}
	_, st := s.Get(t, "/api/task-status/"+id)
	if st["status"] != shared.StatusRevoked || st["result"].(map[string]any)["sent"] != float64(atAnswer) || st["completed_at"] == nil {
		t.Errorf("task-status = %v, want REVOKED with %d sent", st, atAnswer)
	}
	if stats := s.Sandbox.Stats(); stats.Duplicates != 0 {
		t.Errorf("%d duplicate sends", stats.Duplicates)
	}

	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/api/task-cancel/" + id},
		{http.MethodDelete, "/api/task-status/" + id},
		{http.MethodPost, "/api/task-pause/" + id},
	} {
		status, _, resp := call(t, s.API, c.method, c.path, nil, nil)
		if status != http.StatusConflict || resp["success"] != false || resp["error"] == nil {
			t.Errorf("%s %s of a cancelled task = %d %v, want 409 in the contract's shape", c.method, c.path, status, resp)
		}
	}
	for _, path := range []string{"/api/task-cancel/0f6c7a52-0000-4a43-9d5b-6a1e2f9c0b11", "/api/task-pause/not-a-task"} {
		if status, resp := s.PostJSON(t, path, nil); status != http.StatusNotFound || resp["success"] != false {
			t.Errorf("%s = %d %v, want 404", path, status, resp)
		}
	}
}

// A pause in the middle of a 5,000-recipient task stops it (nothing sent after the
// answer, PAUSED in task-status) across a restart of the worker; the resume goes on
// where it stopped and every recipient is sent exactly once.
func TestPauseAndResumeDuringA5000RecipientTask(t *testing.T) {
	s := slowStack(t)
	const n = 5000
	id := queueBulk(t, s, n)
	waitAccepted(t, s, 1000, time.Minute)

	before := s.Sandbox.Stats().Accepted
	status, resp := s.PostJSON(t, "/api/task-pause/"+id, nil)
	atAnswer := s.Sandbox.Stats().Accepted
	if status != http.StatusOK || resp["status"] != shared.StatusPaused || resp["waiting"] != shared.WaitPausedByClient {
		t.Fatalf("pause = %d %v, want 200 PAUSED (paused_by_client)", status, resp)
	}
	if atAnswer-before > 150 {
		t.Errorf("%d sends after the pause was asked, want at most 150", atAnswer-before)
	}
	s.StopWorker()
	s.StartWorker(t)
	time.Sleep(3 * time.Second)
	if got := s.Sandbox.Stats().Accepted; got != atAnswer {
		t.Errorf("the sandbox accepted %d sends while paused", got-atAnswer)
	}
	_, st := s.Get(t, "/api/task-status/"+id)
	if st["status"] != shared.StatusPaused || st["waiting"] != shared.WaitPausedByClient || st["waiting_since"] == nil {
		t.Errorf("task-status while paused = %v", st)
	}
	if sent := st["result"].(map[string]any)["sent"]; sent != float64(atAnswer) {
		t.Errorf("task-status sent = %v while paused, the sandbox accepted %d", sent, atAnswer)
	}
	// A second pause changes nothing.
	if status, resp := s.PostJSON(t, "/api/task-pause/"+id, nil); status != http.StatusOK || resp["status"] != shared.StatusPaused {
		t.Errorf("second pause = %d %v", status, resp)
	}

	status, resp = s.PostJSON(t, "/api/task-resume/"+id, nil)
	if status != http.StatusOK || resp["status"] == shared.StatusPaused {
		t.Fatalf("resume = %d %v", status, resp)
	}
	task := s.WaitTask(t, id, 2*time.Minute)
	checkAllSent(t, s, task, n)
	if stats := s.Sandbox.Stats(); stats.Accepted != n || stats.Duplicates != 0 {
		t.Errorf("the sandbox accepted %d with %d duplicates, want %d exactly once", stats.Accepted, stats.Duplicates, n)
	}
	if status, resp := s.PostJSON(t, "/api/task-resume/"+id, nil); status != http.StatusConflict || resp["success"] != false {
		t.Errorf("resume of a finished task = %d %v, want 409", status, resp)
	}
}

// send_at: PENDING until then and cancellable; in the past it sends now; more than 35
// days ahead, or not RFC 3339, is a 400; a scheduled task must be queued.
func TestSendAtValidationAndCancel(t *testing.T) {
	s := NewStack(t, StackOptions{})
	body := bulkBody(3, "5736")
	for _, bad := range []any{time.Now().Add(36 * 24 * time.Hour).Format(time.RFC3339), "mañana", "2025-01-16 10:30", 12} {
		body["send_at"] = bad
		if status, resp := s.PostJSON(t, "/api/send-bulk", body); status != http.StatusBadRequest || resp["success"] != false {
			t.Errorf("send_at %v = %d %v, want 400", bad, status, resp)
		}
	}
	body["send_at"] = time.Now().Add(time.Hour).Format(time.RFC3339)
	body["use_queue"] = false
	if status, _ := s.PostJSON(t, "/api/send-bulk", body); status != http.StatusBadRequest {
		t.Errorf("send_at without a queue = %d, want 400", status)
	}

	body["use_queue"] = true
	body["send_at"] = time.Now().Add(-time.Hour).Format(time.RFC3339)
	_, resp := s.PostJSON(t, "/api/send-bulk", body)
	past, _ := resp["task_id"].(string)
	if task := s.WaitTask(t, past, time.Minute); task["status"] != shared.StatusSuccess {
		t.Errorf("send_at in the past: %v, want sent now", task)
	}

	later := time.Now().Add(2 * time.Hour).In(time.FixedZone("COT", -5*3600)).Truncate(time.Second)
	body["send_at"] = later.Format(time.RFC3339)
	_, resp = s.PostJSON(t, "/api/send-broadcast-interactive", map[string]any{
		"phones": []string{"573000000001", "573000000002"}, "header_type": "text", "header_content": "Hola",
		"body_text": "Programado", "button_text": "Ver", "button_url": "https://mi-app.com/x",
		"send_at": later.Format(time.RFC3339),
	})
	id, _ := resp["task_id"].(string)
	time.Sleep(time.Second)
	_, st := s.Get(t, "/api/task-status/"+id)
	if st["status"] != shared.StatusPending || st["send_at"] != later.UTC().Format(time.RFC3339) {
		t.Errorf("scheduled task-status = %v, want PENDING with send_at %s", st, later.UTC().Format(time.RFC3339))
	}
	ttl, err := s.Store.Client().PTTL(context.Background(), "wagate:task:"+id+":msgs").Result()
	if err != nil || ttl < 30*24*time.Hour+time.Hour {
		t.Errorf("staged recipients expire in %v (%v), want beyond send_at + 30 days", ttl, err)
	}
	status, resp := s.PostJSON(t, "/api/task-cancel/"+id, nil)
	if status != http.StatusOK || resp["status"] != shared.StatusRevoked || resp["result"].(map[string]any)["sent"] != float64(0) {
		t.Errorf("cancel of the scheduled task = %d %v, want REVOKED with nothing sent", status, resp)
	}
	if got := s.Sandbox.Stats().Accepted; got != 3 {
		t.Errorf("the sandbox accepted %d, want the 3 of the task sent now", got)
	}
}

// GET /api/tasks lists tasks from Temporal's visibility, newest first, filtered by
// status, kind and creation time, a page at a time.
func TestTaskListing(t *testing.T) {
	s := NewStack(t, StackOptions{})
	var ids []string // oldest first
	for i := range 5 {
		_, resp := s.PostJSON(t, "/api/send-bulk", bulkBody(2, fmt.Sprintf("573%d", 70+i)))
		ids = append(ids, resp["task_id"].(string))
		time.Sleep(1100 * time.Millisecond) // creation times are to the second
	}
	for _, id := range ids {
		s.WaitTask(t, id, time.Minute)
	}
	mid := time.Now().UTC()
	time.Sleep(1100 * time.Millisecond)
	_, resp := s.PostJSON(t, "/api/send-message", map[string]any{"phone": "573123456789", "message": "cola", "use_queue": true})
	queued := resp["task_id"].(string)
	s.WaitTask(t, queued, time.Minute)
	time.Sleep(100 * time.Millisecond)
	sendAt := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	body := bulkBody(2, "5738")
	body["send_at"] = sendAt.Format(time.RFC3339)
	_, resp = s.PostJSON(t, "/api/send-bulk", body)
	scheduled := resp["task_id"].(string)

	list := func(query string) (tasks []map[string]any, next string) {
		t.Helper()
		status, resp := s.Get(t, "/api/tasks?"+query)
		if status != http.StatusOK || resp["success"] != true {
			t.Fatalf("GET /api/tasks?%s = %d %v", query, status, resp)
		}
		for _, v := range resp["tasks"].([]any) {
			tasks = append(tasks, v.(map[string]any))
		}
		next, _ = resp["next_page_token"].(string)
		return tasks, next
	}
	idsOf := func(tasks []map[string]any) []string {
		var out []string
		for _, t := range tasks {
			out = append(out, t["task_id"].(string))
		}
		return out
	}
	want := append([]string{scheduled, queued}, reverse(ids)...)
	// Visibility follows a moment behind.
	var all []map[string]any
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		all, _ = list("")
		if fmt.Sprint(idsOf(all)) == fmt.Sprint(want) && all[0]["status"] == shared.StatusPending && all[1]["status"] == shared.StatusSuccess {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks = %v, want %v newest first", all, want)
		}
	}
	if all[0]["send_at"] != sendAt.Format(time.RFC3339) || all[0]["kind"] != "send-bulk" || all[1]["kind"] != "send-message" {
		t.Errorf("first tasks = %v", all[:2])
	}
	if r := all[2]["result"].(map[string]any); r["sent"] != float64(2) || r["total"] != float64(2) || all[2]["completed_at"] == nil {
		t.Errorf("a finished task = %v, want 2 of 2 sent and completed_at", all[2])
	}

	// Pages of two, following the token, give the same order without repeats.
	var paged []string
	token := ""
	for page := 0; ; page++ {
		q := "limit=2"
		if token != "" {
			q += "&page_token=" + url.QueryEscape(token)
		}
		tasks, next := list(q)
		if len(tasks) > 2 {
			t.Fatalf("page of %d", len(tasks))
		}
		paged = append(paged, idsOf(tasks)...)
		if next == "" || page > 10 {
			break
		}
		token = next
	}
	if fmt.Sprint(paged) != fmt.Sprint(want) {
		t.Errorf("paged = %v, want %v", paged, want)
	}

	if tasks, _ := list("status=PENDING"); fmt.Sprint(idsOf(tasks)) != fmt.Sprint([]string{scheduled}) {
		t.Errorf("status=PENDING = %v", idsOf(tasks))
	}
	if tasks, _ := list("kind=send-message"); fmt.Sprint(idsOf(tasks)) != fmt.Sprint([]string{queued}) {
		t.Errorf("kind=send-message = %v", idsOf(tasks))
	}
	if tasks, _ := list("status=SUCCESS&kind=send-bulk&created_to=" + url.QueryEscape(mid.Format(time.RFC3339))); fmt.Sprint(idsOf(tasks)) != fmt.Sprint(reverse(ids)) {
		t.Errorf("finished bulk tasks created before %v = %v, want %v", mid, idsOf(tasks), reverse(ids))
	}
	if tasks, _ := list("created_from=" + url.QueryEscape(mid.Format(time.RFC3339))); fmt.Sprint(idsOf(tasks)) != fmt.Sprint([]string{scheduled, queued}) {
		t.Errorf("created from %v = %v", mid, idsOf(tasks))
	}
	s.PostJSON(t, "/api/task-cancel/"+scheduled, nil)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		if tasks, _ := list("status=REVOKED"); fmt.Sprint(idsOf(tasks)) == fmt.Sprint([]string{scheduled}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cancelled task is not listed as REVOKED")
		}
	}
	for _, q := range []string{"status=DONE", "kind=sms", "created_from=ayer", "limit=0", "limit=500", "page_token=nope"} {
		if status, resp := s.Get(t, "/api/tasks?"+q); status != http.StatusBadRequest || resp["success"] != false {
			t.Errorf("GET /api/tasks?%s = %d %v, want 400", q, status, resp)
		}
	}
}

func reverse(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

// A task scheduled ahead survives a restart of the whole dev stack (cmd/wagate on the
// same data folder): PENDING with nothing sent before the restart, sent after its
// send_at by the restarted stack.
func TestScheduledTaskSurvivesADevStackRestart(t *testing.T) {
	dir := t.TempDir()
	env := devStackEnv("HTTP_ADDR=127.0.0.1:0")
	p, api, redisURL := startDevStack(t, dir, env)
	s := &Stack{API: api}
	sendAt := time.Now().Add(30 * time.Second).UTC().Truncate(time.Second)
	body := bulkBody(3, "5739")
	body["send_at"] = sendAt.Format(time.RFC3339)
	status, resp := s.PostJSON(t, "/api/send-bulk", body)
	id, _ := resp["task_id"].(string)
	if status != http.StatusOK || id == "" {
		t.Fatalf("scheduled send-bulk = %d %v", status, resp)
	}
	_, st := s.Get(t, "/api/task-status/"+id)
	if st["status"] != shared.StatusPending || st["send_at"] != sendAt.Format(time.RFC3339) {
		t.Fatalf("before the restart: %v, want PENDING until %s", st, sendAt.Format(time.RFC3339))
	}
	stopDevStack(t, p, redisURL)

	p, api, redisURL = startDevStack(t, dir, env)
	s = &Stack{API: api}
	_, st = s.Get(t, "/api/task-status/"+id)
	if time.Now().Before(sendAt) && (st["status"] != shared.StatusPending || st["result"].(map[string]any)["sent"] != float64(0)) {
		t.Errorf("after the restart, before send_at: %v, want PENDING with nothing sent", st)
	}
	task := s.WaitTask(t, id, 2*time.Minute)
	res, _ := task["result"].(map[string]any)
	done, _ := time.Parse(time.RFC3339, fmt.Sprint(task["completed_at"]))
	if task["status"] != shared.StatusSuccess || res["sent"] != float64(3) || done.Before(sendAt) {
		t.Errorf("task = %v, want SUCCESS with 3 sent at or after %s", task, sendAt.Format(time.RFC3339))
	}
	stopDevStack(t, p, redisURL)
}

// A namespace registered by an older wagate, without the search attributes, gets them
// on the next start of the dev server on its data folder.
func TestDevServerAddsSearchAttributesToAnOlderNamespace(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	attrs := func(srv *devserver.Server) map[string]enumspb.IndexedValueType {
		t.Helper()
		c, stop := devClient(t, srv)
		defer stop()
		resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: srv.Namespace()})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetCustomAttributes()
	}
	first := startDev(t, devserver.Options{DataDir: dir, UIPort: -1})
	have := attrs(first)
	var names []string
	for name, typ := range shared.SearchAttributes() {
		if have[name] != typ {
			t.Errorf("fresh namespace: %s is %v, want %v", name, have[name], typ)
		}
		names = append(names, name)
	}
	c, stop := devClient(t, first)
	if _, err := c.OperatorService().RemoveSearchAttributes(ctx, &operatorservice.RemoveSearchAttributesRequest{
		Namespace: first.Namespace(), SearchAttributes: names,
	}); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	second := startDev(t, devserver.Options{DataDir: dir, UIPort: -1})
	have = attrs(second)
	for name, typ := range shared.SearchAttributes() {
		if have[name] != typ {
			t.Errorf("after the restart: %s is %v, want %v", name, have[name], typ)
		}
	}
}
