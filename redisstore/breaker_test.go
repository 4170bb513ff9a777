package redisstore

import (
	"context"
	"testing"
	"time"
)

// The default probe schedule after the breaker opens: 1 s, then 2 s, then never more
// than 4 s after a failed probe, however long Meta fails, so that sending resumes
// within 5 s of Meta's recovery whenever it comes.
func TestDefaultProbeSpacingBoundsTheResume(t *testing.T) {
	s := newTaskTestStore(t)
	ctx := context.Background()
	b := s.Breaker("79", 0, DefaultBreakerOptions)
	for range DefaultBreakerOptions.Threshold {
		if _, err := b.Report(ctx, OutcomeUnavailable, "", 2, "down"); err != nil {
			t.Fatal(err)
		}
	}
	wait := func() time.Duration {
		t.Helper()
		st, err := b.State(ctx)
		if err != nil || !st.Open {
			t.Fatalf("breaker = %+v (%v), want open", st, err)
		}
		return time.Until(st.NextProbe)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}
	for i, w := range want {
		if got := wait(); got > w || got < w-500*time.Millisecond {
			t.Fatalf("after %d failed probes the next one is due in %v, want %v", i, got, w)
		}
		// The probe's time has come (without waiting for it): one caller probes, and
		// Meta still fails.
		if err := s.Client().HSet(ctx, b.key, "probe_at", 0).Err(); err != nil {
			t.Fatal(err)
		}
		a, err := b.Admit(ctx)
		if err != nil || a.Verdict != AdmitProbe {
			t.Fatalf("admission when the probe is due = %+v (%v), want the probe", a, err)
		}
		if _, err := b.Report(ctx, OutcomeUnavailable, a.Token, 2, "still down"); err != nil {
			t.Fatal(err)
		}
	}
	if d := DefaultBreakerOptions.MaxProbeSpacing; d > 4*time.Second {
		t.Errorf("MaxProbeSpacing %v leaves no room within 5 s for the probe's call", d)
	}
	// A probe that hangs is followed by the next one after its lease: the same bound.
	if d := DefaultBreakerOptions.ProbeLease; d > 4*time.Second {
		t.Errorf("ProbeLease %v: a hanging incident would resume later than 5 s after the recovery", d)
	}
}
