package main

import (
	"testing"
	"time"
)

// A short row runs three pairs and reports the pair of median ratio with every ratio;
// a long one runs one pair.
func TestMeasurePairs(t *testing.T) {
	stacks := []time.Duration{5500 * time.Millisecond, 5000 * time.Millisecond, 5200 * time.Millisecond}
	var runs []int
	r := row{n: 10000}
	err := measurePairs(&r, func(k int) (time.Duration, error) {
		runs = append(runs, k)
		return 5 * time.Second, nil
	}, func(k int) (time.Duration, error) { return stacks[k], nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 || len(r.ratios) != 3 {
		t.Fatalf("ran pools %v with ratios %v, want three pairs", runs, r.ratios)
	}
	if r.stackD != stacks[2] || r.poolDur != 5*time.Second || r.stack != 10000/stacks[2].Seconds() {
		t.Errorf("reported stack %v at %.1f/s, want the median pair's %v", r.stackD, r.stack, stacks[2])
	}
	if got, want := r.pairsNote(), " (median of 0.909, 1.000, 0.962)"; got != want {
		t.Errorf("note = %q, want %q", got, want)
	}

	long := row{n: 10000}
	pairs := 0
	err = measurePairs(&long, func(int) (time.Duration, error) { pairs++; return shortPair, nil },
		func(int) (time.Duration, error) { return shortPair, nil })
	if err != nil || pairs != 1 || long.ratios != nil || long.ratio() != 1 {
		t.Errorf("long row: %d pairs, ratios %v, ratio %.3f, %v; want one pair at 1.000", pairs, long.ratios, long.ratio(), err)
	}
	if pairsText([]row{long}) != "" {
		t.Error("a row of one pair is listed as measured three times")
	}
}
