package main

import (
	"strings"
	"testing"
)

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
