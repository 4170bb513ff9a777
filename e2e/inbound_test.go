package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/internal/wstest"
	"github.com/wagate/wagate/shared"
)

const (
	inboundSecret = "e2e-app-secret"
	inboundVerify = "hola"
)

// relayedFrame is what the tests read back from a frame.
type relayedFrame struct {
	ID, From, Body string
	SaveNumber     bool
	CachedInfo     map[string]any
	Raw            map[string]any
}

func parseFrame(t *testing.T, frame string) relayedFrame {
	t.Helper()
	var f struct {
		Entry []struct {
			Changes []struct {
				Value struct {
					Messages []struct {
						ID, From string
						Text     struct{ Body string }
					}
				}
			}
		}
		SaveNumber *bool          `json:"save_number"`
		CachedInfo map[string]any `json:"cached_info"`
	}
	if err := json.Unmarshal([]byte(frame), &f); err != nil {
		t.Fatalf("frame is not JSON: %v\n%s", err, frame)
	}
	if len(f.Entry) != 1 || len(f.Entry[0].Changes) != 1 || len(f.Entry[0].Changes[0].Value.Messages) != 1 || f.SaveNumber == nil {
		t.Fatalf("frame is not one narrowed webhook event with save_number: %s", frame)
	}
	m := f.Entry[0].Changes[0].Value.Messages[0]
	var raw map[string]any
	_ = json.Unmarshal([]byte(frame), &raw)
	return relayedFrame{ID: m.ID, From: m.From, Body: m.Text.Body, SaveNumber: *f.SaveNumber, CachedInfo: f.CachedInfo, Raw: raw}
}

func frameIDs(t *testing.T, frames []string) []string {
	t.Helper()
	ids := make([]string, len(frames))
	for i, f := range frames {
		ids[i] = parseFrame(t, f).ID
	}
	return ids
}

// textWebhook is Meta's webhook for one text message.
func textWebhook(id, from, body string) []byte {
	return []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"value":{`+
		`"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550559999","phone_number_id":%q},`+
		`"contacts":[{"profile":{"name":"Cliente %s"},"wa_id":%q}],`+
		`"messages":[{"from":%q,"id":%q,"timestamp":"1705491000","text":{"body":%q},"type":"text"}]},"field":"messages"}]}]}`,
		SandboxPhoneNumberID, from, from, from, id, body))
}

// signWebhook signs body as Meta (and the sandbox) does with the stacks' app secret.
func signWebhook(body []byte) string { return sandbox.Sign([]byte(inboundSecret), body) }

// postTexts posts signed text messages from one sender with ids prefix000.. for
// indexes [from, to), and returns their ids in order.
func postTexts(t *testing.T, s *Stack, prefix, sender string, from, to int) []string {
	t.Helper()
	var ids []string
	for i := from; i < to; i++ {
		id := fmt.Sprintf("wamid.%s%03d", prefix, i)
		postSigned(t, s, textWebhook(id, sender, fmt.Sprintf("%s%d", strings.ToLower(prefix), i)))
		ids = append(ids, id)
	}
	return ids
}

// postWebhook posts body to /webhook with the given X-Hub-Signature-256 ("" for none).
func postWebhook(t *testing.T, s *Stack, body []byte, sig string) (int, map[string]any) {
	t.Helper()
	h := map[string]string{}
	if sig != "" {
		h["X-Hub-Signature-256"] = sig
	}
	return postRaw(t, s.API+"/webhook", string(body), h)
}

func postSigned(t *testing.T, s *Stack, body []byte) {
	t.Helper()
	if code, out := postWebhook(t, s, body, signWebhook(body)); code != http.StatusOK || out["success"] != true {
		t.Fatalf("POST /webhook = %d %v; want 200 {success:true}", code, out)
	}
}

func newInboundStack(t *testing.T, sink *wstest.Consumer) *Stack {
	return NewStack(t, StackOptions{WebSocketURL: sink.URL(), AppSecret: inboundSecret, VerifyToken: inboundVerify})
}

func wantOrderedOnce(t *testing.T, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("event %s relayed %d times; want once", id, n)
			break
		}
	}
	i := 0
	for i < min(len(got), len(want)) && got[i] == want[i] {
		i++
	}
	t.Fatalf("relayed %d events, first difference at %d; want %d, in order, once each", len(got), i, len(want))
}

func TestInboundRelaysSignedEventsInOrderExactlyOnce(t *testing.T) {
	sink := wstest.New(t)
	s := newInboundStack(t, sink)
	if code, out := s.PostJSON(t, "/api/numbers", map[string]any{"phone": "573000000001", "name": "Cacheado",
		"data": map[string]any{"tier": "gold"}}); code != http.StatusCreated {
		t.Fatalf("POST /api/numbers = %d %v", code, out)
	}

	const n = 1000
	var want []string
	var prev []byte
	for i := range n {
		id := fmt.Sprintf("wamid.E2E%04d", i)
		from := fmt.Sprintf("57300000000%d", i%5)
		body := textWebhook(id, from, fmt.Sprintf("mensaje %d", i))
		postSigned(t, s, body)
		want = append(want, id)
		switch {
		case i%7 == 3: // Meta redelivers the previous webhook
			postSigned(t, s, prev)
		case i%50 == 10: // a forged delivery
			forged := textWebhook(fmt.Sprintf("wamid.FORGED%d", i), from, "falso")
			if code, out := postWebhook(t, s, forged, signWebhook(textWebhook("other", from, "x"))); code != http.StatusUnauthorized || out["success"] != false {
				t.Fatalf("forged webhook = %d %v; want 401", code, out)
			}
			if code, _ := postWebhook(t, s, forged, ""); code != http.StatusUnauthorized {
				t.Fatalf("unsigned webhook = %d; want 401", code)
			}
		}
		prev = body
	}

	waitRelayed(t, s, sink, want, 3*time.Minute)
	time.Sleep(time.Second) // anything extra (a repeat) would show up now
	frames := sink.Frames()
	wantOrderedOnce(t, frameIDs(t, frames), want)
	for i, raw := range frames[:10] {
		f := parseFrame(t, raw)
		cached := f.From == "573000000001"
		if f.SaveNumber == cached || (f.CachedInfo != nil) != cached {
			t.Errorf("frame %d from %s: save_number %v, cached_info %v; want save_number %v", i, f.From, f.SaveNumber, f.CachedInfo, !cached)
		}
		if cached && (f.CachedInfo["name"] != "Cacheado" || f.CachedInfo["phone"] != "573000000001") {
			t.Errorf("frame %d cached_info = %v; want the cached record", i, f.CachedInfo)
		}
	}
	if code, out := s.Get(t, "/api/queue/lengths"); code != http.StatusOK || out["queue_lengths"].(map[string]any)["pending"] != 0.0 {
		t.Errorf("GET /api/queue/lengths after the relay = %d %v; want pending 0", code, out)
	}
	// Continue-as-new and spill under a long backlog: TestInboundBacklogSpillsAndContinuesAsNew.
}

// waitRelayed waits until the consumer has len(want) frames; on timeout it reports
// which events are missing and what the relay says about itself.
func waitRelayed(t *testing.T, s *Stack, sink *wstest.Consumer, want []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(sink.Frames()) < len(want) {
		if time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		got := map[string]bool{}
		for _, id := range frameIDs(t, sink.Frames()) {
			got[id] = true
		}
		var missing []string
		for _, id := range want {
			if !got[id] {
				missing = append(missing, id)
			}
		}
		_, status := s.Get(t, "/api/queue/status")
		desc, err := s.Temporal.DescribeWorkflowExecution(context.Background(), shared.RelayWorkflowID, "")
		var pending any = err
		if err == nil {
			pending = desc.GetPendingActivities()
		}
		if len(missing) > 0 {
			traceRelay(t, s, missing[0])
		}
		t.Fatalf("consumer has %d of %d frames after %v; missing %v; queue status %v; pending activities %v",
			len(got), len(want), timeout, missing, status, pending)
	}
}

// traceRelay logs, run by run back along the relay's continue-as-new chain, where the
// event id was signalled, scheduled, spilled or carried, and every failed workflow task.
func traceRelay(t *testing.T, s *Stack, id string) {
	t.Helper()
	ctx := context.Background()
	dc := converter.GetDefaultDataConverter()
	ref := shared.InboundRef{ID: id}
	carriedIn := func(st shared.RelayState) string {
		return fmt.Sprintf("queue %d (has %v), spilled %v, tail %d (has %v), recent has %v", len(st.Queue),
			slices.Contains(st.Queue, ref), st.Spilled, len(st.Tail), slices.Contains(st.Tail, ref), slices.Contains(st.Recent, id))
	}
	runID := ""
	for range 20 {
		it := s.Temporal.GetWorkflowHistory(ctx, shared.RelayWorkflowID, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		prev := ""
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Logf("history of run %q: %v", runID, err)
				return
			}
			var got shared.InboundRef
			switch ev.GetEventType() {
			case enums.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
				a := ev.GetWorkflowExecutionStartedEventAttributes()
				prev = a.GetContinuedExecutionRunId()
				var st shared.RelayState
				_ = dc.FromPayloads(a.GetInput(), &st)
				t.Logf("run %q started: %s", runID, carriedIn(st))
			case enums.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
				if dc.FromPayloads(ev.GetWorkflowExecutionSignaledEventAttributes().GetInput(), &got) == nil && got == ref {
					t.Logf("run %q event %d: signalled", runID, ev.GetEventId())
				}
			case enums.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				a := ev.GetActivityTaskScheduledEventAttributes()
				var in shared.SpillInput
				switch {
				case a.GetActivityType().GetName() == shared.RelayInboundActivity && dc.FromPayloads(a.GetInput(), &got) == nil && got == ref:
					t.Logf("run %q event %d: relay scheduled", runID, ev.GetEventId())
				case a.GetActivityType().GetName() == shared.SpillInboundActivity && dc.FromPayloads(a.GetInput(), &in) == nil:
					t.Logf("run %q event %d: spill %s of %d refs (has %v)", runID, ev.GetEventId(), in.Key, len(in.Refs), slices.Contains(in.Refs, ref))
				}
			case enums.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
				var st shared.RelayState
				_ = dc.FromPayloads(ev.GetWorkflowExecutionContinuedAsNewEventAttributes().GetInput(), &st)
				t.Logf("run %q event %d: continued as new with %s", runID, ev.GetEventId(), carriedIn(st))
			case enums.EVENT_TYPE_WORKFLOW_TASK_FAILED:
				t.Logf("run %q event %d: workflow task failed: %v", runID, ev.GetEventId(), ev.GetWorkflowTaskFailedEventAttributes().GetCause())
			}
		}
		if prev == "" {
			return
		}
		runID = prev
	}
}

func queuePending(t *testing.T, s *Stack) int {
	t.Helper()
	code, out := s.Get(t, "/api/queue/lengths")
	if code != http.StatusOK {
		t.Fatalf("GET /api/queue/lengths = %d %v", code, out)
	}
	return int(out["queue_lengths"].(map[string]any)["pending"].(float64))
}

func waitPending(t *testing.T, s *Stack, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := queuePending(t, s)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending = %d; want %d", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestInboundConsumerOutageClearAndQueueTest(t *testing.T) {
	sink := wstest.New(t)
	s := newInboundStack(t, sink)
	var want []string
	post := func(from, to int) { want = append(want, postTexts(t, s, "OUT", "573111111111", from, to)...) }
	post(0, 3)
	sink.WaitFrames(t, 3, time.Minute)

	// The consumer goes away for more than 10 s: events wait, in order.
	sink.Stop()
	post(3, 23)
	time.Sleep(12 * time.Second)
	if got := len(sink.Frames()); got != 3 {
		t.Fatalf("%d frames while the consumer was down; want still 3", got)
	}
	waitPending(t, s, 20)
	code, out := s.Get(t, "/api/queue/status")
	wantStatus := map[string]any{"websocket_available": false, "processor_running": true, "processor_thread_alive": true, "queue_healthy": false}
	if code != http.StatusOK || !sameMap(out["status"], wantStatus) || out["queue_lengths"].(map[string]any)["pending"] != 20.0 {
		t.Errorf("GET /api/queue/status during the outage = %d %v; want %v and pending 20", code, out, wantStatus)
	}
	if code, out := s.Get(t, "/api/status"); code != http.StatusServiceUnavailable || out["status"] != "degraded" ||
		out["services"].(map[string]any)["websocket_service"] != false {
		t.Errorf("GET /api/status during the outage = %d %v; want 503 degraded, websocket_service false", code, out)
	}

	sink.Start()
	wantOrderedOnce(t, frameIDs(t, sink.WaitFrames(t, 23, time.Minute)), want)
	waitPending(t, s, 0)
	code, out = s.Get(t, "/api/queue/status")
	wantStatus = map[string]any{"websocket_available": true, "processor_running": true, "processor_thread_alive": true, "queue_healthy": true}
	if code != http.StatusOK || !sameMap(out["status"], wantStatus) {
		t.Errorf("GET /api/queue/status after the outage = %d %v; want %v", code, out, wantStatus)
	}

	// Clear while the head is failing: what was queued is dropped, what follows is relayed.
	sink.Stop()
	for i := range 5 {
		postSigned(t, s, textWebhook(fmt.Sprintf("wamid.CLR%d", i), "573111111111", "borrar"))
	}
	waitPending(t, s, 5)
	code, out = s.do(t, http.MethodDelete, "/api/queue/clear", nil)
	if code != http.StatusOK || !sameMap(out, map[string]any{"success": true, "result": map[string]any{"cleared": 5.0}}) {
		t.Errorf("DELETE /api/queue/clear = %d %v; want {success:true, result:{cleared:5}}", code, out)
	}
	code, out = s.PostJSON(t, "/api/queue/test", nil)
	if code != http.StatusOK || out["success"] != true || !sameMap(out["result"], map[string]any{"success": true, "method": "fifo_queue"}) {
		t.Fatalf("POST /api/queue/test = %d %v", code, out)
	}
	tm := out["test_message"].(map[string]any)
	if tm["from"] != "test_user" || tm["type"] != "text" || tm["text"] != "Mensaje de prueba del sistema de colas" || tm["timestamp"] == "" {
		t.Errorf("test_message = %v; want the contract's", tm)
	}
	postSigned(t, s, textWebhook("wamid.AFTER", "573111111111", "después"))
	sink.Start()
	frames := sink.WaitFrames(t, 25, time.Minute)
	time.Sleep(500 * time.Millisecond)
	frames = sink.Frames()
	if len(frames) != 25 {
		t.Fatalf("%d frames; want 25 (the cleared events never relayed)", len(frames))
	}
	test, after := parseFrame(t, frames[23]), parseFrame(t, frames[24])
	if test.From != "test_user" || test.Body != "Mensaje de prueba del sistema de colas" || !strings.HasPrefix(test.ID, "test-") || !test.SaveNumber {
		t.Errorf("test frame = %+v; want the queue test message from test_user", test)
	}
	if after.ID != "wamid.AFTER" {
		t.Errorf("last frame %s; want wamid.AFTER", after.ID)
	}

	recordRelayHistory(t, s, "relay_v2.json", "")
}

// recordRelayHistory writes the history of one relay run (runID; "" for the current
// one, which is cancelled first so that the history is complete) to file in the
// directory named by WAGATE_RECORD_RELAY_HISTORY, for the replay tests in
// workflows/testdata. Unset in normal runs.
func recordRelayHistory(t *testing.T, s *Stack, file, runID string) {
	t.Helper()
	dir := os.Getenv("WAGATE_RECORD_RELAY_HISTORY")
	if dir == "" {
		return
	}
	ctx := context.Background()
	if runID == "" {
		if err := s.Temporal.CancelWorkflow(ctx, shared.RelayWorkflowID, ""); err != nil {
			t.Fatalf("cancel relay: %v", err)
		}
		_ = s.Temporal.GetWorkflow(ctx, shared.RelayWorkflowID, "").Get(ctx, nil)
	}
	h := s.History(t, shared.RelayWorkflowID, runID)
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(file, ".gz") { // long histories: compact and compressed
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		if b, err = protojson.Marshal(h); err == nil {
			_, err = zw.Write(b)
		}
		if err != nil || zw.Close() != nil {
			t.Fatalf("compress history: %v", err)
		}
		b = z.Bytes()
	}
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("relay history (%d events) written to %s", len(h.Events), path)
}

func sameMap(got any, want map[string]any) bool {
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	return string(g) == string(w)
}

func TestInboundSurvivesWorkerRestartMidQueue(t *testing.T) {
	sink := wstest.New(t)
	s := newInboundStack(t, sink)
	var want []string
	post := func(from, to int) { want = append(want, postTexts(t, s, "W", "573222222222", from, to)...) }
	post(0, 200)
	sink.WaitFrames(t, 30, time.Minute)
	s.StopWorker()
	stoppedAt := len(sink.Frames())
	post(200, 300) // the webhook keeps accepting while no worker runs
	time.Sleep(2 * time.Second)
	if got := len(sink.Frames()); got != stoppedAt {
		t.Fatalf("%d frames relayed with no worker running (was %d)", got, stoppedAt)
	}
	if stoppedAt >= 300 {
		t.Fatalf("the whole queue was relayed before the worker stopped; the test proves nothing")
	}
	s.StartWorker(t)
	sink.WaitFrames(t, 300, 2*time.Minute)
	time.Sleep(500 * time.Millisecond)
	wantOrderedOnce(t, frameIDs(t, sink.Frames()), want)
}

// A worker killed mid-queue loses nothing: the next worker resumes after the last
// frame it recorded as confirmed. The frames in flight at the kill, at most one window
// of them, may be written twice (documented), nothing else.
func TestInboundSurvivesWorkerCrash(t *testing.T) {
	sink := wstest.New(t)
	s := NewStack(t, StackOptions{WebSocketURL: sink.URL(), AppSecret: inboundSecret, NoWorker: true})
	w := s.StartBinary(t, "worker")
	var want []string
	post := func(from, to int) { want = append(want, postTexts(t, s, "K", "573333333333", from, to)...) }
	sink.SetDelay(10 * time.Millisecond) // the webhooks answer at once: keep the relay busy until the kill
	post(0, 150)
	sink.WaitFrames(t, 20, time.Minute)
	w.Kill()
	sink.SetDelay(0)
	if len(sink.Frames()) >= 150 {
		t.Fatal("the whole queue was relayed before the kill; the test proves nothing")
	}
	post(150, 200)
	s.StartBinary(t, "worker")

	deadline := time.Now().Add(2 * time.Minute)
	for {
		ids := frameIDs(t, sink.Frames())
		var first []string
		seen := map[string]bool{}
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				first = append(first, id)
			}
		}
		if len(first) == len(want) {
			if repeats := len(ids) - len(first); repeats > shared.RelayWindow {
				t.Errorf("%d frames written twice; want at most the window in flight at the kill (%d)", repeats, shared.RelayWindow)
			}
			wantOrderedOnce(t, first, want)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events relayed after the restart", len(first), len(want))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestInboundContractShapes(t *testing.T) {
	sink := wstest.New(t)
	s := newInboundStack(t, sink)

	// GET /webhook, the contract's curl.
	res, err := http.Get(s.API + "/webhook?hub.mode=subscribe&hub.verify_token=hola&hub.challenge=123456")
	if err != nil {
		t.Fatal(err)
	}
	challenge, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK || string(challenge) != "123456" {
		t.Errorf("GET /webhook verify = %d %q, %v; want 200 123456", res.StatusCode, challenge, err)
	}

	// The cache curls.
	steps := []struct {
		method, path, body string
		wantCode           int
		want               string
	}{
		{"POST", "/api/numbers", `{"phone":"573123456789","name":"Juan Pérez","data":{"email":"juan@example.com","company":"Empresa XYZ","department":"Ventas"}}`,
			201, `{"success":true,"message":"Number 573123456789 added successfully"}`},
		{"GET", "/api/numbers/579999999999", "", 404, `{"success":false,"message":"Number not found"}`},
		{"DELETE", "/api/numbers/579999999999", "", 404, `{"success":false,"message":"Number not found"}`},
	}
	for _, st := range steps {
		var code int
		var out map[string]any
		if st.method == "POST" {
			code, out = s.PostJSON(t, st.path, st.body)
		} else {
			code, out = s.do(t, st.method, st.path, nil)
		}
		var want map[string]any
		_ = json.Unmarshal([]byte(st.want), &want)
		if code != st.wantCode || !sameMap(out, want) {
			t.Errorf("%s %s = %d %v; want %d %s", st.method, st.path, code, out, st.wantCode, st.want)
		}
	}
	code, out := s.Get(t, "/api/numbers/573123456789")
	num, _ := out["number"].(map[string]any)
	if code != 200 || out["success"] != true || num["name"] != "Juan Pérez" || num["phone"] != "573123456789" ||
		!sameMap(num["data"], map[string]any{"email": "juan@example.com", "company": "Empresa XYZ", "department": "Ventas"}) {
		t.Errorf("GET /api/numbers/573123456789 = %d %v", code, out)
	}
	if ts, _ := num["created_at"].(string); !strings.HasSuffix(ts, "Z") || len(ts) != len("2025-01-16T10:00:00Z") {
		t.Errorf("created_at = %q; want RFC 3339 UTC to the second", ts)
	}
	code, out = s.Get(t, "/api/numbers")
	if code != 200 || out["total"] != 1.0 || len(out["numbers"].([]any)) != 1 {
		t.Errorf("GET /api/numbers = %d %v; want one number", code, out)
	}

	// The contract's webhook, from a cached sender.
	contract := `{"object":"whatsapp_business_account","entry":[{"id":"ENTRY_ID","changes":[{"value":{"messaging_product":"whatsapp",` +
		`"metadata":{"display_phone_number":"15550559999","phone_number_id":"PHONE_NUMBER_ID"},` +
		`"contacts":[{"profile":{"name":"Juan P\u00e9rez"},"wa_id":"573123456789"}],` +
		`"messages":[{"from":"573123456789","id":"wamid.ID","timestamp":"1705491000","text":{"body":"Hola mundo"},"type":"text"}]},"field":"messages"}]}]}`
	postSigned(t, s, []byte(contract))
	frame := parseFrame(t, sink.WaitFrames(t, 1, time.Minute)[0])
	var wantFrame map[string]any
	_ = json.Unmarshal([]byte(contract), &wantFrame)
	wantFrame["save_number"] = false
	wantFrame["cached_info"] = num
	if !sameMap(frame.Raw, wantFrame) {
		g, _ := json.Marshal(frame.Raw)
		w, _ := json.Marshal(wantFrame)
		t.Errorf("relayed frame\n got %s\nwant %s", g, w)
	}

	code, out = s.do(t, http.MethodDelete, "/api/numbers/573123456789", nil)
	if code != 200 || out["message"] != "Number 573123456789 deleted successfully" {
		t.Errorf("DELETE /api/numbers/573123456789 = %d %v", code, out)
	}
	for _, p := range []string{"573000000001", "573000000002"} {
		s.PostJSON(t, "/api/numbers", map[string]any{"phone": p})
	}
	code, out = s.PostJSON(t, "/api/numbers/clear", nil)
	if code != 200 || !sameMap(out, map[string]any{"success": true, "deleted": 2, "message": "Deleted 2 numbers"}) {
		t.Errorf("POST /api/numbers/clear = %d %v", code, out)
	}

	// Everything is up: healthy.
	code, out = s.Get(t, "/api/status")
	wantStatus := map[string]any{"status": "healthy", "services": map[string]any{
		"webhook": true, "whatsapp_service": true, "queue_service": true, "websocket_service": true}}
	// The send path's state is an addition to the contract's shape (see README).
	if send, _ := out["whatsapp_send"].(map[string]any); send["circuit"] != "closed" {
		t.Errorf("GET /api/status whatsapp_send = %v, want the closed circuit", out["whatsapp_send"])
	}
	delete(out, "whatsapp_send")
	// So are the operator's warnings: this stack is signed but has no API key.
	if w, _ := out["warnings"].([]any); len(w) != 1 || !strings.Contains(fmt.Sprint(w[0]), "API_KEY") {
		t.Errorf("GET /api/status warnings = %v, want the one about the missing API key", out["warnings"])
	}
	delete(out, "warnings")
	// And delivery tracking's totals (docs/delivery.md).
	if d, _ := out["delivery_tracking"].(map[string]any); d["relay_statuses"] != false {
		t.Errorf("GET /api/status delivery_tracking = %v, want relay_statuses false and the totals", out["delivery_tracking"])
	}
	delete(out, "delivery_tracking")
	if code != http.StatusOK || !sameMap(out, wantStatus) {
		t.Errorf("GET /api/status = %d %v; want 200 %v", code, out, wantStatus)
	}
}
