package metrics

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// The Temporal SDK reports its metrics (requests, polls, workflow and activity task
// latencies, slots, sticky cache...) through a client.MetricsHandler, tagging the same
// metric with different tag sets as it goes. Prometheus's vectors need one label set
// per name, so the handler keeps one series per name and tag set and the collector
// serves them all: counters as <name>_total, timers as <name>_seconds histograms,
// gauges as <name>, with the SDK's tags as labels.

// sdkBuckets cover the SDK's latencies, from a local RPC to a long poll.
var sdkBuckets = prometheus.ExponentialBuckets(0.001, 2, 17) // 1 ms .. 65 s

type sdkCollector struct {
	mu     sync.RWMutex
	series map[string]prometheus.Collector // by kind, name and tag set
}

var sdk = &sdkCollector{series: map[string]prometheus.Collector{}}

func init() { registry.MustRegister(sdk) }

// Describe sends nothing: the SDK's series are only known as it creates them, so the
// collector is unchecked.
func (c *sdkCollector) Describe(chan<- *prometheus.Desc) {}

func (c *sdkCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	all := make([]prometheus.Collector, 0, len(c.series))
	for _, s := range c.series {
		all = append(all, s)
	}
	c.mu.RUnlock()
	for _, s := range all {
		s.Collect(ch)
	}
}

// get returns the series of key, made by mk on first use.
func (c *sdkCollector) get(key string, mk func() prometheus.Collector) prometheus.Collector {
	c.mu.RLock()
	s, ok := c.series[key]
	c.mu.RUnlock()
	if ok {
		return s
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.series[key]; ok {
		return s
	}
	s = mk()
	c.series[key] = s
	return s
}

// sdkHandler is a client.MetricsHandler with a fixed tag set.
type sdkHandler struct {
	tags prometheus.Labels
	key  string // the tags, sorted, as part of a series key
}

// TemporalHandler returns the client.MetricsHandler that reports the Temporal SDK's
// metrics into the registry; app.DialTemporal sets it on every client (and so on its
// workers).
func TemporalHandler() client.MetricsHandler { return sdkHandler{tags: prometheus.Labels{}} }

func (h sdkHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(prometheus.Labels, len(h.tags)+len(tags))
	for k, v := range h.tags {
		merged[k] = v
	}
	for k, v := range tags {
		merged[sanitize(k)] = v
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(merged[k])
		b.WriteByte(0xff)
	}
	return sdkHandler{tags: merged, key: b.String()}
}

func (h sdkHandler) Counter(name string) client.MetricsCounter {
	name = sanitize(name) + "_total"
	return sdkCounter{h.series("c", name, func() prometheus.Collector {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: sdkHelp, ConstLabels: h.tags})
	}).(prometheus.Counter)}
}

func (h sdkHandler) Gauge(name string) client.MetricsGauge {
	name = sanitize(name)
	return sdkGauge{h.series("g", name, func() prometheus.Collector {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: sdkHelp, ConstLabels: h.tags})
	}).(prometheus.Gauge)}
}

func (h sdkHandler) Timer(name string) client.MetricsTimer {
	name = sanitize(name) + "_seconds"
	return sdkTimer{h.series("t", name, func() prometheus.Collector {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: sdkHelp, ConstLabels: h.tags, Buckets: sdkBuckets})
	}).(prometheus.Histogram)}
}

func (h sdkHandler) series(kind, name string, mk func() prometheus.Collector) prometheus.Collector {
	return sdk.get(kind+name+"\xff"+h.key, mk)
}

// sdkHelp is the help of every SDK series: one per name, as Prometheus requires.
const sdkHelp = "A metric of the Temporal Go SDK (see Temporal's SDK metrics reference)."

type sdkCounter struct{ c prometheus.Counter }

func (c sdkCounter) Inc(d int64) {
	if d > 0 {
		c.c.Add(float64(d))
	}
}

type sdkGauge struct{ g prometheus.Gauge }

func (g sdkGauge) Update(v float64) { g.g.Set(v) }

type sdkTimer struct{ h prometheus.Histogram }

func (t sdkTimer) Record(d time.Duration) { t.h.Observe(d.Seconds()) }

// sanitize makes s a valid Prometheus metric or label name.
func sanitize(s string) string {
	ok := true
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			ok = false
			break
		}
	}
	if ok && s != "" {
		return s
	}
	b := []rune(s)
	for i, r := range b {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// SDKNames are the Temporal SDK metrics that docs/grafana-dashboard.json uses, as
// served (counters with _total, timers as _seconds histograms). A worker that has run
// a task reports every one of them; the e2e metrics test checks that.
var SDKNames = []string{
	"temporal_request_total",
	"temporal_request_latency_seconds",
	"temporal_activity_execution_latency_seconds",
	"temporal_workflow_task_schedule_to_start_latency_seconds",
	"temporal_worker_task_slots_available",
}
