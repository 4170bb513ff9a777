package main

import (
	"strings"
	"testing"
	"time"

	"github.com/wagate/wagate/graphapi/sandbox"
)

// secs builds a timeline from (calls, accepted, rate_limited) triples, one a second.
func secs(v ...int64) []sandbox.Second {
	var out []sandbox.Second
	for i := 0; i < len(v); i += 3 {
		out = append(out, sandbox.Second{Unix: 1000 + int64(i/3), Calls: v[i], Accepted: v[i+1], RateLimited: v[i+2]})
	}
	return out
}

func TestConvergence(t *testing.T) {
	tests := []struct {
		name  string
		secs  []sandbox.Second
		n     int
		want  time.Duration
		wantK bool
	}{
		{"within from the start", secs(20, 20, 0, 20, 20, 0, 20, 20, 0, 20, 20, 0, 10, 10, 0), 90, 0, true},
		{"over for two seconds, then within", secs(40, 20, 20, 30, 20, 10, 20, 20, 0, 20, 20, 0, 20, 20, 0, 20, 20, 0), 120, 2 * time.Second, true},
		// A pause second (few calls, still refused) is not within.
		{"pause seconds are over", secs(40, 20, 20, 16, 6, 10, 40, 20, 20, 16, 6, 10), 200, 0, false},
		// The tail, with fewer than 2*limit left as it began, does not count.
		{"a quiet tail does not converge", secs(40, 20, 20, 40, 20, 20, 40, 20, 20, 10, 10, 0, 5, 5, 0), 75, 0, false},
		{"nothing loaded", secs(5, 5, 0), 5, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := convergence(tt.secs, 20, tt.n)
			if got != tt.want || ok != tt.wantK {
				t.Errorf("got %v %v, want %v %v", got, ok, tt.want, tt.wantK)
			}
		})
	}
}

func TestSpliceSection(t *testing.T) {
	sec := func(body string) string { return faultsBegin + "\n" + body + "\n" + faultsEnd + "\n" }
	tests := []struct{ name, report, section, want string }{
		{"into an empty file", "", sec("new"), sec("new")},
		{"appended after the report", "# Benchmarks\n\nrows\n", sec("new"), "# Benchmarks\n\nrows\n\n" + sec("new")},
		{"replacing the old section, keeping what follows", "# B\n\n" + sec("old") + "\n## Inbound\n", sec("new"), "# B\n\n" + sec("new") + "\n## Inbound\n"},
		{"nothing to splice", "# B\n", "", "# B\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := spliceSection(tt.report, tt.section); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
	if got := spliceSection(spliceSection("# B\n", sec("a")), sec("b")); strings.Count(got, faultsBegin) != 1 || !strings.Contains(got, "\nb\n") {
		t.Errorf("splicing twice: %q", got)
	}
}
