package redisstore

import (
	"context"
	"testing"
	"time"
)

// withHold sets governorHold for one test.
func withHold(t *testing.T, d time.Duration) {
	old := governorHold
	governorHold = d
	t.Cleanup(func() { governorHold = old })
}

func TestGovernorCutsOncePerWindowAndRecoversAdditively(t *testing.T) {
	// The additive increase above the refused rate, with no hold before it (see
	// TestGovernorHoldsJustUnderTheRefusedRate).
	withHold(t, 0)
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
		cut, _, err := g.Throttled(ctx, 0, 0)
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
	// The slots are spaced for the new rate: the next free slot (µs) moves one interval
	// a reservation, however long the calls take.
	ga.Reserve(ctx)
	t1, _ := a.Client().Get(ctx, ga.key).Int64()
	ga.Reserve(ctx)
	t2, _ := a.Client().Get(ctx, ga.key).Int64()
	if gap, want := time.Duration(t2-t1)*time.Microsecond, time.Duration(float64(time.Second)*governorMargin/56); gap < want-time.Millisecond || gap > want+time.Millisecond {
		t.Errorf("slot spacing %v, want %v", gap, want)
	}

	// A 130429 inside the window cuts nothing but restarts the clean second, so the
	// next window's cut starts from 56, not from a raised rate.
	time.Sleep(GovernorCutWindow / 2)
	if cut, _, _ := ga.Throttled(ctx, 0, 0); cut {
		t.Fatal("second cut within one window")
	}
	time.Sleep(GovernorCutWindow/2 + 50*time.Millisecond)
	// The next cut multiplies by 0.7, but not below 98% of what Meta accepted in the
	// last whole second (76 of 82 sends, as the reporter counted them) nor above 95% of
	// the refused rate: 53.2.
	if cut, rate, _ := gb.Throttled(ctx, 76, 0); !cut || rate < 53.19 || rate > 53.21 {
		t.Fatalf("cut in the next window = %v, rate %v; want 53.2", cut, rate)
	}
	// Clean seconds raise it additively, 1% of the ceiling a second above 95% of the
	// refused rate: 53.2 -> 54.0 -> 54.8.
	time.Sleep(2100 * time.Millisecond)
	_, r2, _ := ga.Reserve(ctx)
	if r2 < 54.79 || r2 > 54.81 {
		t.Errorf("rate after two clean seconds = %v, want 54.8", r2)
	}
	// The learned rate is Redis's: a new replica (or a restart) sees it.
	c := New(b.Client(), "")
	st, err = c.Governor("1065", 80).State(ctx)
	if err != nil || st.Rate < 54.79 || st.Rate > 54.81 {
		t.Errorf("a fresh store reads rate %v (%v), want the learned 54.8", st.Rate, err)
	}
	// A lower ceiling (WHATSAPP_MAX_MPS changed) caps it at once.
	if _, r, _ := c.Governor("1065", 20).Reserve(ctx); r != 20 {
		t.Errorf("rate under a ceiling of 20 = %v", r)
	}
}

func TestGovernorCutsDeepWhenMetaAcceptedLittle(t *testing.T) {
	a, _ := twoReplicas(t)
	ctx := context.Background()
	g := a.Governor("3", 80)
	for range 80 {
		g.Reserve(ctx)
	}
	g.Throttled(ctx, 0, 0) // 80 -> 56
	time.Sleep(GovernorCutWindow + 50*time.Millisecond)
	// A whole second in which every send was refused: the floor is 0, the cut is x0.7
	// of what was sent (40, which is a rate of 42 in the rate's units: the margin
	// stretches the spacing by 5%).
	for range 40 {
		g.Reserve(ctx)
	}
	for range 40 {
		g.Throttled(ctx, 0, 0)
	}
	time.Sleep(GovernorCutWindow + 50*time.Millisecond)
	if cut, rate, _ := g.Throttled(ctx, 0, 0); !cut || rate < 29.39 || rate > 29.41 {
		t.Errorf("cut after a refused second = %v, %v; want 0.7 x 42 = 29.4", cut, rate)
	}
}

// After a cut the rate climbs back to 95% of the refused rate within seconds and holds
// there for governorHold, so that a task that found Meta's limit sends just under it
// without refusals; only then does it probe above.
func TestGovernorHoldsJustUnderTheRefusedRate(t *testing.T) {
	withHold(t, 3500*time.Millisecond)
	a, _ := twoReplicas(t)
	ctx := context.Background()
	g := a.Governor("4", 80)
	for range 20 {
		g.Reserve(ctx)
	}
	time.Sleep(GovernorCutWindow + 50*time.Millisecond)
	// 20 sent in the last second, 20 of them accepted: the refused rate is 21 in the
	// rate's units, the cut 0.7 x 21 = 14.7 but not below 98% of the accepted (20.58),
	// capped at 95% of the refused rate: 19.95.
	cut, rate, err := g.Throttled(ctx, 20, 0)
	if err != nil || !cut || rate < 19.94 || rate > 19.96 {
		t.Fatalf("cut = %v, rate %v (%v); want 19.95", cut, rate, err)
	}
	// Clean seconds within the hold: the rate stays just under the refused one.
	time.Sleep(2100 * time.Millisecond)
	if _, r, _ := g.Reserve(ctx); r < 19.94 || r > 19.96 {
		t.Errorf("rate 2 s into the hold = %v, want 19.95", r)
	}
	// After the hold it probes above, 1% of the ceiling a second.
	time.Sleep(2500 * time.Millisecond)
	if _, r, _ := g.Reserve(ctx); r < 20.7 {
		t.Errorf("rate 1 s after the hold = %v, want above 20.7", r)
	}
}

// A deep cut (a second in which Meta accepted nothing) climbs back quickly, halving the
// distance to 95% of the refused rate every clean second, and not above it within the
// hold.
func TestGovernorRecoversToJustUnderTheRefusedRate(t *testing.T) {
	withHold(t, time.Minute)
	a, _ := twoReplicas(t)
	ctx := context.Background()
	g := a.Governor("5", 80)
	for range 40 {
		g.Reserve(ctx)
	}
	time.Sleep(GovernorCutWindow + 50*time.Millisecond)
	// 40 sent (42 in the rate's units), none accepted: 0.7 x 42 = 29.4.
	if cut, rate, _ := g.Throttled(ctx, 0, 0); !cut || rate < 29.39 || rate > 29.41 {
		t.Fatalf("cut = %v, rate %v; want 29.4", cut, rate)
	}
	// Three clean seconds: 29.4 -> 34.65 -> 37.28 -> 38.59, toward 0.95 x 42 = 39.9.
	time.Sleep(3100 * time.Millisecond)
	if _, r, _ := g.Reserve(ctx); r < 38.58 || r > 38.6 {
		t.Errorf("rate after three clean seconds = %v, want 38.59", r)
	}
	time.Sleep(5 * time.Second)
	if _, r, _ := g.Reserve(ctx); r < 39.5 || r > 39.91 {
		t.Errorf("rate after eight clean seconds = %v, want just under 39.9", r)
	}
}

// A refusal at the held rate, just under the one refused last (one send too many in
// Meta's window from timing jitter), lowers the refused rate by 2%, not to the rate that
// was refused: jitter does not ratchet the rate down for the whole hold.
func TestGovernorJitterRefusalLowersTheHeldRateALittle(t *testing.T) {
	withHold(t, time.Minute)
	a, _ := twoReplicas(t)
	ctx := context.Background()
	g := a.Governor("6", 80)
	for range 20 {
		g.Reserve(ctx)
	}
	time.Sleep(GovernorCutWindow + 50*time.Millisecond)
	// The limit found: refused rate 21, held at 19.95.
	if _, rate, _ := g.Throttled(ctx, 20, 0); rate < 19.94 || rate > 19.96 {
		t.Fatalf("first cut to %v, want 19.95", rate)
	}
	for range 19 {
		g.Reserve(ctx)
	}
	time.Sleep(GovernorCutWindow + 50*time.Millisecond)
	// 19 accepted in the second before the refusal: the refused rate becomes
	// max(19.95, 0.98 x 21) = 20.58, the rate 95% of it.
	if cut, rate, _ := g.Throttled(ctx, 19, 0); !cut || rate < 19.54 || rate > 19.56 {
		t.Errorf("cut at the held rate = %v, %v; want 0.95 x 20.58 = 19.55", cut, rate)
	}
}

// A refusal after 5 s in which Meta took about what it takes in a second (a token
// bucket whose burst made the first refused rate too high) makes the refused rate the
// rate just refused; a refusal after seconds of sending less (timing jitter at the held
// rate) keeps the 2% step.
func TestGovernorSustainedRefusalCapsTheRefusedRate(t *testing.T) {
	withHold(t, time.Minute)
	a, _ := twoReplicas(t)
	ctx := context.Background()
	for _, tc := range []struct {
		pnid                string
		accepted, sustained float64
		refused, rate       float64
	}{
		// The refused rate becomes the rate refused, 25.935, not max(25.935, 0.98 x 27.3)
		// = 26.754: the rate is 95% of it.
		{"7", 25, 24.8, 25.935, 0.95 * 25.935},
		// 20 a second over 5 s, under the 25 of the last second: not sustained.
		{"8", 25, 20, 26.754, 0.95 * 26.754},
		// A process that sent a fifth of the number's sends counts a fifth: the refused
		// rate is still the rate refused, not what this process saw accepted (and the
		// cut, 0.7 x 25.935, has no floor from so few).
		{"9", 5, 5, 25.935, 0.7 * 25.935},
	} {
		g := a.Governor(tc.pnid, 80)
		for range 26 {
			g.Reserve(ctx)
		}
		time.Sleep(GovernorCutWindow + 50*time.Millisecond)
		// 26 accepted: refused rate 27.3, held at 0.95 x 27.3 = 25.935.
		if _, rate, _ := g.Throttled(ctx, 26, 0); rate < 25.93 || rate > 25.94 {
			t.Fatalf("%s: first cut to %v, want 25.935", tc.pnid, rate)
		}
		for range 25 {
			g.Reserve(ctx)
		}
		time.Sleep(GovernorCutWindow + 50*time.Millisecond)
		cut, rate, _ := g.Throttled(ctx, int(tc.accepted), tc.sustained)
		if !cut || rate < tc.rate-0.01 || rate > tc.rate+0.01 {
			t.Errorf("%s: cut with %v then %v accepted = %v, %v; want rate %.3f", tc.pnid, tc.sustained, tc.accepted, cut, rate, tc.rate)
		}
		wmax, err := a.Client().HGet(ctx, g.rateKey, "wmax").Float64()
		if err != nil || wmax < tc.refused-0.01 || wmax > tc.refused+0.01 {
			t.Errorf("%s: refused rate %v (%v), want %.3f", tc.pnid, wmax, err, tc.refused)
		}
	}
}

// A refusal after sustained sending, seconds after the last one, makes the refused rate
// what Meta accepted in between when that is clearly less than the rate refused: a
// token bucket's burst made the first refused rate too high, and an empty bucket at
// both refusals let through only its rate in between. Every replica's accepted sends
// count, told with its admissions. When Meta accepted about the rate refused (a jitter
// refusal at a held rate), the rule does not apply.
func TestGovernorTakesWhatMetaAcceptedBetweenRefusals(t *testing.T) {
	withHold(t, time.Minute)
	for _, tc := range []struct {
		name       string
		pnid       string
		idle, busy time.Duration // after the first cut: idle, then sending
		sustained  float64       // the reporting replica's 5 s rate, against 12 in its last second
		lo, hi     float64       // the refused rate after the second cut
	}{
		// 50 accepted in about 3 s: 17.5 (x 1.05) against the 25.935 refused.
		{"bucket", "10", time.Second, 2 * time.Second, 12, 16.8, 17.6},
		// The same, but the reporting replica's last second was above its 5 s rate.
		{"not sustained", "11", time.Second, 2 * time.Second, 10, 26.75, 26.76},
		// 75 accepted in 3 s: 26.25, about the refused rate: the rate refused stays.
		{"jitter", "12", 0, 3 * time.Second, 12, 25.93, 25.94},
		// 50 accepted in 11 s: what was accepted over that long says little.
		{"long apart", "13", 9 * time.Second, 2 * time.Second, 12, 25.93, 25.94},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := twoReplicas(t)
			ctx := context.Background()
			ba, bb := a.Breaker(tc.pnid, 80, DefaultBreakerOptions), b.Breaker(tc.pnid, 80, DefaultBreakerOptions)
			for range 26 {
				if _, err := ba.Admit(ctx); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(GovernorCutWindow + 50*time.Millisecond)
			if _, rate, _ := ba.Governor().Throttled(ctx, 26, 0); rate < 25.93 || rate > 25.94 {
				t.Fatalf("first cut to %v, want 25.935", rate)
			}
			time.Sleep(tc.idle)
			// Both replicas send 12.5 a second each, Meta accepting all.
			end := time.Now().Add(tc.busy)
			for time.Now().Before(end) {
				for _, br := range []*Breaker{ba, bb} {
					br.Governor().Accepted()
					if _, err := br.Admit(ctx); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(80 * time.Millisecond)
			}
			cut, rate, err := ba.Governor().Throttled(ctx, 12, tc.sustained)
			if err != nil || !cut {
				t.Fatalf("second refusal: cut %v, %v", cut, err)
			}
			wmax, err := a.Client().HGet(ctx, ba.Governor().rateKey, "wmax").Float64()
			if err != nil || wmax < tc.lo || wmax > tc.hi {
				t.Errorf("refused rate %v (%v), want in [%v, %v]", wmax, err, tc.lo, tc.hi)
			}
			if rate > 0.95*wmax+0.01 {
				t.Errorf("rate %v above 95%% of the refused rate %v", rate, wmax)
			}
		})
	}
}
