package sandbox

import (
	"testing"
	"time"
)

// secs builds a timeline from (calls, accepted, rate_limited) triples, one a second.
func secs(v ...int64) []Second {
	var out []Second
	for i := 0; i < len(v); i += 3 {
		out = append(out, Second{Unix: 1000 + int64(i/3), Calls: v[i], Accepted: v[i+1], RateLimited: v[i+2]})
	}
	return out
}

func TestConvergence(t *testing.T) {
	tests := []struct {
		name  string
		secs  []Second
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
			got, ok := Convergence(tt.secs, 20, tt.n)
			if got != tt.want || ok != tt.wantK {
				t.Errorf("got %v %v, want %v %v", got, ok, tt.want, tt.wantK)
			}
		})
	}
}
