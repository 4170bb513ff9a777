package redisstore

import (
	"context"
	"testing"
	"time"
)

func TestGovernorCutsOncePerWindowAndRecoversAdditively(t *testing.T) {
	a, b := twoReplicas(t)
	ctx := context.Background()
	ga, gb := a.Governor("1065", 80), b.Governor("1065", 80)
	if _, rate, err := ga.Reserve(ctx); err != nil || rate != 80 {
		t.Fatalf("first rate = %v (%v), want the ceiling 80", rate, err)
	}
	// A second at the full rate, then a burst of 130429 from both replicas within a
	// window: one cut.
	for range 80 {
		if _, _, err := gb.Reserve(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cuts := 0
	for _, g := range []*Governor{ga, gb, ga, gb, ga} {
		cut, _, err := g.Throttled(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cut {
			cuts++
		}
	}
	if cuts != 1 {
		t.Fatalf("%d cuts in one window, want 1", cuts)
	}
	st, err := gb.State(ctx)
	if err != nil || st.Rate < 55.99 || st.Rate > 56.01 || st.LastCut.IsZero() {
		t.Fatalf("state after the cut = %+v (%v), want rate 56", st, err)
	}
	// The slots are spaced for the new rate.
	d1, _, _ := ga.Reserve(ctx)
	d2, _, _ := ga.Reserve(ctx)
	if gap, want := d2-d1, time.Duration(float64(time.Second)*governorMargin/56); gap < want-time.Millisecond || gap > want+time.Millisecond {
		t.Errorf("slot spacing %v, want %v", gap, want)
	}

	// A 130429 inside the window cuts nothing but restarts the clean second, so the
	// next window's cut starts from 56, not from a raised rate.
	time.Sleep(GovernorCutWindow / 2)
	if cut, _, _ := ga.Throttled(ctx); cut {
		t.Fatal("second cut within one window")
	}
	time.Sleep(GovernorCutWindow/2 + 50*time.Millisecond)
	if cut, rate, _ := gb.Throttled(ctx); !cut || rate < 39.19 || rate > 39.21 {
		t.Fatalf("cut in the next window = %v, rate %v; want 39.2", cut, rate)
	}
	// Clean seconds raise it: quickly toward 95% of the refused rate 56 (53.2).
	time.Sleep(2100 * time.Millisecond)
	_, r2, _ := ga.Reserve(ctx)
	// 39.2 -> 46.2 -> 49.7 after two clean seconds.
	if r2 < 49.6 || r2 > 49.8 {
		t.Errorf("rate after two clean seconds = %v, want 49.7", r2)
	}
	// The learned rate is Redis's: a new replica (or a restart) sees it.
	c := New(b.Client(), "")
	st, err = c.Governor("1065", 80).State(ctx)
	if err != nil || st.Rate < 49.6 || st.Rate > 49.8 {
		t.Errorf("a fresh store reads rate %v (%v), want the learned 49.7", st.Rate, err)
	}
	// A lower ceiling (WHATSAPP_MAX_MPS changed) caps it at once.
	if _, r, _ := c.Governor("1065", 20).Reserve(ctx); r != 20 {
		t.Errorf("rate under a ceiling of 20 = %v", r)
	}
}
