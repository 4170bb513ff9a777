package activities

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/shared"
)

// A template Meta pauses mid-campaign (132015) makes the task wait, not fail: no
// recipient spends an attempt on it, one probe at a time asks Meta again, and once the
// template is active the rest goes out.
func TestSendRangeWaitsOutAPausedTemplate(t *testing.T) {
	const n, workers = 300, 10
	saved, savedMax := templateProbeFirst, templateProbeMax
	templateProbeFirst, templateProbeMax = 100*time.Millisecond, 400*time.Millisecond
	t.Cleanup(func() { templateProbeFirst, templateProbeMax = saved, savedMax })

	f := newFixture(t, sandbox.Options{Latency: 5 * time.Millisecond}, 100_000)
	msgs := make([]shared.Message, n)
	for i := range msgs {
		m, err := shared.BulkTemplateMessage("", phone(i), "hello_world", "es",
			shared.TemplateParts{Params: shared.TemplateParams{Positional: []string{fmt.Sprint("Cliente ", i), "XYZ"}}})
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = m
	}
	if err := f.acts.Store.StageMessages(context.Background(), "paused", msgs, time.Hour); err != nil {
		t.Fatal(err)
	}

	var pausedFor time.Duration
	go func() {
		for f.sb.Stats().Accepted < 100 {
			time.Sleep(2 * time.Millisecond)
		}
		f.sb.SetTemplateStatus("hello_world", "es", "PAUSED")
		began := time.Now()
		time.Sleep(1500 * time.Millisecond)
		pausedFor = time.Since(began)
		f.sb.SetTemplateStatus("hello_world", "es", "APPROVED")
	}()
	sent, failed, results := f.runTask(t, "paused", n, workers)
	if sent != n || failed != 0 {
		t.Fatalf("sent %d failed %d, want all %d sent and none failed for a paused template", sent, failed, n)
	}
	waited := false
	for _, r := range results {
		if r.Waiting == shared.WaitTemplatePaused && r.WaitingSince != nil {
			waited = true
		}
	}
	if !waited {
		t.Errorf("no SendRange reported waiting on %s: %+v", shared.WaitTemplatePaused, results)
	}
	st := f.sb.Stats()
	// What was in flight when the pause began, then one probe per spacing (100 ms
	// doubling to 400 ms over 1.5 s: at most 6), with a margin for a SendRange's return.
	if refused := st.ByCode[sandbox.CodeTemplatePaused]; refused == 0 || refused > workers+10 {
		t.Errorf("Meta refused %d sends as paused, want some and at most %d (the gate holds the rest)", refused, workers+10)
	}
	if st.Accepted != n || st.Duplicates != 0 {
		t.Errorf("sandbox accepted %d (%d duplicates), want %d once each", st.Accepted, st.Duplicates, n)
	}
	t.Logf("paused %v: %d sends refused as paused", pausedFor, st.ByCode[sandbox.CodeTemplatePaused])
}

// A range that starts with its template paused probes at once and resumes everything
// as soon as Meta takes the probe.
func TestSendRangeStartingPausedProbesFirst(t *testing.T) {
	f := newFixture(t, sandbox.Options{}, 100_000)
	m, _ := shared.BulkTemplateMessage("", phone(0), "hello_world", "es",
		shared.TemplateParts{Params: shared.TemplateParams{Positional: []string{"a", "b"}}})
	msgs := []shared.Message{m, m, m}
	for i := range msgs {
		msgs[i].To = phone(i)
	}
	if err := f.acts.Store.StageMessages(context.Background(), "resume", msgs, time.Hour); err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	res := f.sendRange(t, shared.RangeInput{TaskID: "resume", Offset: 0, End: 3, MaxWorkers: 10,
		Waiting: shared.WaitTemplatePaused, WaitingSince: &since})
	if res.Frontier != 3 || res.Sent != 3 || res.Waiting != "" {
		t.Errorf("SendRange = %+v, want all 3 sent and nothing to wait on", res)
	}
}
