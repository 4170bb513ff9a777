package main

import (
	"slices"
	"testing"
	"time"
)

func TestJudgeRelay(t *testing.T) {
	posted := []string{"a", "b", "c", "d"}
	cases := []struct {
		name     string
		got      []string
		missing  []string
		repeats  int
		outOfOrd int
		unknown  []string
	}{
		{name: "in order once", got: []string{"a", "b", "c", "d"}},
		// The frames in flight when a worker dies may be sent again.
		{name: "redelivered batch", got: []string{"a", "b", "c", "b", "c", "d"}, repeats: 2},
		{name: "lost", got: []string{"a", "c", "d"}, missing: []string{"b"}},
		{name: "reordered", got: []string{"b", "a", "c", "d"}, outOfOrd: 1},
		{name: "late", got: []string{"b", "c", "d", "a"}, outOfOrd: 1},
		{name: "foreign", got: []string{"a", "b", "x", "c", "d"}, unknown: []string{"x"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := judgeRelay(posted, tc.got)
			if !slices.Equal(v.missing, tc.missing) || v.repeats != tc.repeats || v.outOfOrd != tc.outOfOrd || !slices.Equal(v.unknown, tc.unknown) {
				t.Fatalf("judgeRelay(%v) = %+v; want missing %v, repeats %d, out of order %d, unknown %v",
					tc.got, v, tc.missing, tc.repeats, tc.outOfOrd, tc.unknown)
			}
		})
	}
}

func TestFrameID(t *testing.T) {
	id, err := frameID(textWebhook("wamid.X1", "573000000001", "hola"))
	if err != nil || id != "wamid.X1" {
		t.Fatalf("frameID = %q, %v; want wamid.X1", id, err)
	}
	if _, err := frameID([]byte(`{"entry":[]}`)); err == nil {
		t.Fatal("frameID of an envelope without a message succeeded")
	}
}

func TestInboundAcross(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	in := &inbound{
		first:    []time.Time{at(0), at(4), at(9), at(12)},
		accepted: []time.Time{at(1), at(11), at(10), at(13)},
	}
	// Outage from 5 to 10: the second webhook waited through it, the third was
	// tried during it.
	if n := in.across(at(5), at(10)); n != 2 {
		t.Fatalf("across = %d; want 2", n)
	}
	if d := in.slowest(); d != 7*time.Second {
		t.Fatalf("slowest = %v; want 7s", d)
	}
}
