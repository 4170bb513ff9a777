package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboardFile is the Grafana dashboard shipped in docs/.
const dashboardFile = "../../docs/grafana-dashboard.json"

// exprs collects every "expr" string anywhere in a decoded dashboard (panel targets,
// rows' nested panels, templating queries).
func exprs(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "expr" {
				*out = append(*out, s)
				continue
			}
			exprs(x, out)
		}
	case []any:
		for _, x := range v {
			exprs(x, out)
		}
	}
}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promVariable = regexp.MustCompile(`\$\{?\w+\}?`)
	promNumber   = regexp.MustCompile(`\b\d+(?:\.\d+)?(?:e[+-]?\d+)?[a-z]*`)
	promIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
		"group_left": true, "group_right": true}
)

// metricNames returns the metric names a PromQL expression selects: what is left once
// strings, label matchers, ranges, grouping clauses, dashboard variables and numbers are taken
// out, minus function and aggregation names (an identifier followed by "(") and
// keywords.
func metricNames(expr string) []string {
	e := promString.ReplaceAllString(expr, `""`)
	e = promMatchers.ReplaceAllString(e, " ")
	e = promRange.ReplaceAllString(e, " ")
	e = promGrouping.ReplaceAllString(e, " ")
	e = promVariable.ReplaceAllString(e, " ")
	e = promNumber.ReplaceAllString(e, " ")
	var names []string
	for _, m := range promIdent.FindAllString(e, -1) {
		if strings.HasSuffix(m, "(") || promKeywords[strings.ToLower(m)] {
			continue
		}
		names = append(names, m)
	}
	return names
}

func TestMetricNamesOfPromQL(t *testing.T) {
	got := metricNames(`histogram_quantile(0.95, sum by (le, route) (rate(wagate_http_request_duration_seconds_bucket{route!="x"}[$__rate_interval]))) / on(instance) group_left max(up) and bool go_goroutines offset 5m`)
	want := []string{"wagate_http_request_duration_seconds_bucket", "up", "go_goroutines"}
	if !slices.Equal(got, want) {
		t.Errorf("metricNames = %v, want %v", got, want)
	}
}

// Every metric the dashboard queries is one the binaries serve: one of ours (as
// registered, a histogram by its _bucket, _sum or _count series), Go's and the
// process's (always in a scrape), or one of the SDK's listed in SDKNames (which the e2e
// test finds in a worker's scrape).
func TestDashboardUsesOnlyServedMetrics(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardFile, err)
	}
	var all []string
	exprs(dash, &all)
	if len(all) < 10 {
		t.Fatalf("%s has %d expressions, want the whole dashboard", dashboardFile, len(all))
	}

	served := map[string]bool{}
	for _, n := range Names() {
		served[n] = true
	}
	for _, n := range SDKNames {
		served[n] = true
	}
	fams, err := Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if n := f.GetName(); strings.HasPrefix(n, "go_") || strings.HasPrefix(n, "process_") {
			served[n] = true
		}
	}
	used := map[string]bool{}
	for _, e := range all {
		names := metricNames(e)
		if len(names) == 0 {
			t.Errorf("expression %q selects no metric", e)
		}
		for _, n := range names {
			base := n
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(n, suffix); ok && served[b] {
					base = b
				}
			}
			if !served[base] {
				t.Errorf("the dashboard queries %s, which no binary serves (expression %q)", n, e)
			}
			used[base] = true
		}
	}
	// The dashboard shows every metric of ours, so a new one gets a panel.
	for _, n := range Names() {
		if !used[n] {
			t.Errorf("metric %s has no panel in %s", n, dashboardFile)
		}
	}
}
