package activities

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/internal/testredis"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/sendpolicy"
	"github.com/wagate/wagate/shared"
)

const pnid = "100000000000001"

type fixture struct {
	acts *Activities
	sb   *sandbox.Server
	url  string // the sandbox's base URL
	env  *testsuite.TestActivityEnvironment
}

func newFixture(t *testing.T, opts sandbox.Options, mps int) *fixture {
	t.Helper()
	return newFixtureWith(t, opts, mps, nil)
}

// newFixtureWith is newFixture with the sandbox's handler wrapped by wrap (nil: none).
func newFixtureWith(t *testing.T, opts sandbox.Options, mps int, wrap func(http.Handler) http.Handler) *fixture {
	t.Helper()
	opts.PhoneNumberID = pnid
	opts.Token = "test-token"
	sb := sandbox.New(opts)
	h := sb.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	sb.SetPublicURL(srv.URL)

	cfg := shared.Config{WhatsAppMaxMPS: mps, BulkMaxWorkers: 10, SummaryTTL: time.Hour}
	graph := graphapi.New(graphapi.Config{BaseURL: srv.URL, Version: "v23.0", Token: "test-token", PhoneNumberID: pnid,
		AllowPrivateMedia: true}) // the sandbox's sample media is on loopback
	store := redisstore.New(testredis.New(t), "")
	acts := New(cfg, graph, store, nil)

	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return &fixture{acts: acts, sb: sb, url: srv.URL, env: env}
}

func phone(i int) string { return fmt.Sprintf("5731%08d", i) }

func (f *fixture) stage(t *testing.T, taskID string, n int) []shared.Message {
	t.Helper()
	msgs := make([]shared.Message, n)
	for i := range msgs {
		msgs[i] = shared.Message{To: phone(i), Kind: shared.KindText, Body: fmt.Sprintf("hola %d", i)}
	}
	if err := f.acts.Store.StageMessages(context.Background(), taskID, msgs, time.Hour); err != nil {
		t.Fatal(err)
	}
	return msgs
}

func (f *fixture) sendChunk(t *testing.T, in shared.ChunkInput) shared.ChunkResult {
	t.Helper()
	v, err := f.env.ExecuteActivity(shared.SendChunkActivity, in)
	if err != nil {
		t.Fatalf("SendChunk: %v", err)
	}
	var res shared.ChunkResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	return res
}

// fastRetries shortens the per-recipient pauses and the breaker's probe spacing.
func (f *fixture) fastRetries() {
	f.policy(sendpolicy.Options{
		RetryBackoff: func(int) time.Duration { return 10 * time.Millisecond },
		PairBackoff:  []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond},
	})
}

// policy replaces the fixture's send policy (on the same Redis and number).
func (f *fixture) policy(o sendpolicy.Options) {
	f.acts.SendPolicy = sendpolicy.New(f.acts.Store, pnid, f.acts.Config.WhatsAppMaxMPS, o, nil)
}

func TestSendChunkSendsEveryRecipientOnceWithinTheWorkerBound(t *testing.T) {
	for _, workers := range []int{1, 5, 20} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			f := newFixture(t, sandbox.Options{Latency: 20 * time.Millisecond}, 100_000)
			const n = 200
			f.stage(t, "t1", n)
			res := f.sendChunk(t, shared.ChunkInput{TaskID: "t1", Offset: 0, Count: n, MaxWorkers: workers})
			if res.Sent != n || res.Failed != 0 {
				t.Fatalf("result = %+v, want %d sent", res, n)
			}
			st := f.sb.Stats()
			if st.MaxInFlight > int64(workers) {
				t.Errorf("sandbox saw %d concurrent sends, want at most %d", st.MaxInFlight, workers)
			}
			if workers > 1 && st.MaxInFlight < int64(workers)/2 {
				t.Errorf("sandbox saw at most %d concurrent sends, want close to %d", st.MaxInFlight, workers)
			}
			if st.Accepted != n || st.Duplicates != 0 {
				t.Errorf("sandbox accepted %d with %d duplicates, want %d and 0", st.Accepted, st.Duplicates, n)
			}
			sent, failed, err := f.acts.Store.Progress(context.Background(), "t1")
			if err != nil || sent != n || failed != 0 {
				t.Errorf("progress = %d sent %d failed (%v), want %d, 0", sent, failed, err, n)
			}
		})
	}
}

func TestSendChunkRetryPolicy(t *testing.T) {
	f := newFixture(t, sandbox.Options{}, 100_000)
	// The per-recipient schedule alone: five Meta-side failures in a row would open the
	// circuit, whose failures are not charged, and which five come in a row depends on
	// the order the four sends interleave.
	f.policy(sendpolicy.Options{
		RetryBackoff: func(int) time.Duration { return 10 * time.Millisecond },
		Breaker:      redisstore.BreakerOptions{Threshold: 100},
	})
	msgs := f.stage(t, "t2", 4)
	f.sb.SetFaults(sandbox.Faults{
		FailFirst:   map[string]int{msgs[0].To: 2, msgs[1].To: 3},
		PermanentTo: map[string]int{msgs[2].To: 131026},
	})
	res := f.sendChunk(t, shared.ChunkInput{TaskID: "t2", Offset: 0, Count: 4, MaxWorkers: 4})

	if res.Sent != 2 || res.Failed != 2 {
		t.Fatalf("result = %+v, want 2 sent (third attempt and untouched) and 2 failed", res)
	}
	codes := map[string]int{}
	for _, e := range res.Errors {
		codes[e.Phone] = e.Code
	}
	if codes[msgs[1].To] != 131000 || codes[msgs[2].To] != 131026 {
		t.Errorf("errors by phone = %v, want %s: 131000 (three retryable failures), %s: 131026", codes, msgs[1].To, msgs[2].To)
	}
	st := f.sb.Stats()
	// 3 calls for the one that succeeds at the third attempt, 3 for the one that never
	// does, 1 for the permanent error, 1 for the plain one.
	if calls := st.Accepted + st.Rejected; calls != 8 {
		t.Errorf("sandbox got %d calls, want 8 (accepted %d, rejected %d)", calls, st.Accepted, st.Rejected)
	}
}

func TestSendChunkPairRateBacksOffThatRecipientOnly(t *testing.T) {
	f := newFixture(t, sandbox.Options{PairBurst: 2}, 100_000)
	f.fastRetries()
	ctx := context.Background()
	msgs := []shared.Message{}
	for i := range 4 {
		msgs = append(msgs, shared.Message{To: "573111111111", Kind: shared.KindText, Body: fmt.Sprint("mismo ", i)})
	}
	msgs = append(msgs, shared.Message{To: "573222222222", Kind: shared.KindText, Body: "otro"})
	if err := f.acts.Store.StageMessages(ctx, "t3", msgs, time.Hour); err != nil {
		t.Fatal(err)
	}
	res := f.sendChunk(t, shared.ChunkInput{TaskID: "t3", Offset: 0, Count: len(msgs), MaxWorkers: 1})
	if res.Sent != 3 || res.Failed != 2 {
		t.Fatalf("result = %+v, want 3 sent and 2 failed on the pair rate", res)
	}
	for _, e := range res.Errors {
		if e.Code != 131056 || e.Phone != "573111111111" {
			t.Errorf("error %+v, want 131056 for 573111111111", e)
		}
	}
	// Each failing recipient was tried once and backed off three times.
	if got := f.sb.Stats().ByCode[131056]; got != 8 {
		t.Errorf("sandbox answered 131056 %d times, want 8 (2 recipients x 4 tries)", got)
	}
}

func TestSendChunkSlowsDownOnThroughputLimit(t *testing.T) {
	f := newFixture(t, sandbox.Options{MPS: 20}, 100_000)
	const n = 50
	f.stage(t, "t4", n)
	res := f.sendChunk(t, shared.ChunkInput{TaskID: "t4", Offset: 0, Count: n, MaxWorkers: 10})
	if res.Sent != n {
		t.Fatalf("result = %+v, want all %d sent despite 130429 answers", res, n)
	}
	st := f.sb.Stats()
	if st.ByCode[130429] == 0 {
		t.Errorf("sandbox never answered 130429; the test did not exercise the throughput limit")
	}
	if st.Accepted != n || st.Duplicates != 0 {
		t.Errorf("sandbox accepted %d (%d duplicates), want %d once each", st.Accepted, st.Duplicates, n)
	}
}

func TestSendChunkGovernorKeepsUnderMetaLimit(t *testing.T) {
	f := newFixture(t, sandbox.Options{MPS: 40}, 30)
	const n = 60
	f.stage(t, "t5", n)
	start := time.Now()
	res := f.sendChunk(t, shared.ChunkInput{TaskID: "t5", Offset: 0, Count: n, MaxWorkers: 20})
	if res.Sent != n {
		t.Fatalf("result = %+v, want %d sent", res, n)
	}
	if got := f.sb.Stats().ByCode[130429]; got != 0 {
		t.Errorf("sandbox answered 130429 %d times with the governor at 30/s under Meta's 40/s", got)
	}
	if el := time.Since(start); el < 1500*time.Millisecond {
		t.Errorf("%d sends at 30/s took %v, want about 2 s", n, el)
	}
}

func TestSendChunkResumesFromTheLedger(t *testing.T) {
	f := newFixture(t, sandbox.Options{}, 100_000)
	ctx := context.Background()
	const n = 100
	f.stage(t, "t6", n)
	// A previous attempt finished 0..39 and had 40..44 in flight when its worker died.
	for i := range 40 {
		if _, err := f.acts.Store.Record(ctx, "t6", i, redisstore.LedgerEntry{State: redisstore.LedgerSent, WAMID: "wamid.x"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 40; i < 45; i++ {
		if _, err := f.acts.Store.Claim(ctx, "t6", i, 1); err != nil {
			t.Fatal(err)
		}
	}
	res := f.sendChunk(t, shared.ChunkInput{TaskID: "t6", Offset: 0, Count: n, MaxWorkers: 5})
	if res.Sent != n {
		t.Fatalf("result = %+v, want all %d counted as sent", res, n)
	}
	if got := f.sb.Stats().Accepted; got != n-40 {
		t.Errorf("sandbox accepted %d, want %d: finished recipients must not be sent again", got, n-40)
	}
	if f.sb.Deliveries(phone(3)) != 0 || f.sb.Deliveries(phone(42)) != 1 || f.sb.Deliveries(phone(99)) != 1 {
		t.Errorf("deliveries: finished %d, in-flight %d, new %d; want 0, 1, 1",
			f.sb.Deliveries(phone(3)), f.sb.Deliveries(phone(42)), f.sb.Deliveries(phone(99)))
	}
}

func TestSendChunkUsesUploadedMediaID(t *testing.T) {
	f := newFixture(t, sandbox.Options{}, 100_000)
	ctx := context.Background()
	link := f.url + "/_sandbox/assets/sample.jpg" // the sandbox serves sample media
	ref := shared.MediaRef{Type: shared.HeaderImage, Link: link}

	var first, second shared.MediaRef
	for _, out := range []*shared.MediaRef{&first, &second} {
		v, err := f.env.ExecuteActivity(shared.UploadMediaActivity, shared.UploadMediaInput{TaskID: "t7", Media: ref})
		if err != nil {
			t.Fatalf("UploadMedia: %v", err)
		}
		if err := v.Get(out); err != nil {
			t.Fatal(err)
		}
	}
	if first.MediaID == "" || second.MediaID != first.MediaID {
		t.Fatalf("media ids %q then %q, want one id reused", first.MediaID, second.MediaID)
	}
	if got := f.sb.Stats().Uploads; got != 1 {
		t.Errorf("sandbox got %d uploads, want 1", got)
	}

	msg := shared.Message{To: phone(1), Kind: shared.KindCTAURL, Body: "oferta", Button: "Ver", URL: "https://example.com/o",
		Header: &shared.Header{Type: shared.HeaderImage, Link: link}}
	if err := f.acts.Store.StageMessages(ctx, "t7", []shared.Message{msg}, time.Hour); err != nil {
		t.Fatal(err)
	}
	res := f.sendChunk(t, shared.ChunkInput{TaskID: "t7", Count: 1, MaxWorkers: 1, Media: []shared.MediaRef{first}})
	if res.Sent != 1 {
		t.Fatalf("result = %+v", res)
	}
	sent := f.sb.Messages(phone(1))
	if len(sent) != 1 || !strings.Contains(string(sent[0]), `"id":"`+first.MediaID+`"`) || strings.Contains(string(sent[0]), `"link"`) {
		t.Errorf("sandbox got %s, want the header by media id %s and no link", sent, first.MediaID)
	}
}
