// Package metrics defines every Prometheus metric of wagate's binaries, in one
// registry: the HTTP API, the send path (sends by outcome and Meta error code, the
// send-rate governor, the circuit breaker), the inbound path (webhook acknowledgement,
// the inbound log, the relay) and the Temporal SDK's own metrics (see TemporalHandler).
// Every name of ours starts with wagate_; the SDK's start with temporal_.
//
// The registry is the process's: the production binaries run one role each, and the
// dev stack, which runs both roles in one process, serves them together. Callers bind
// label values once (ForNumber, the package's pre-bound counters), so that counting
// costs an atomic add and no allocation on the send path.
package metrics

import (
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where both binaries serve the metrics.
const Path = "/metrics"

// registry holds every metric of the process: ours, the SDK's, Go's and the process's.
var registry = prometheus.NewRegistry()

// names are the metric names of ours that the registry serves, for Names.
var (
	namesMu sync.Mutex
	names   []string
)

// register registers c under name (the name PromQL uses, before any _bucket, _sum or
// _count suffix) and returns it.
func register[C prometheus.Collector](name string, c C) C {
	registry.MustRegister(c)
	namesMu.Lock()
	names = append(names, name)
	namesMu.Unlock()
	return c
}

// Names lists the names of wagate's own metrics (histograms by their base name), whether
// or not they have been used yet. The Go and process collectors' families (go_*,
// process_*) are always in a scrape; the SDK's (temporal_*) appear as the SDK first
// uses them.
func Names() []string {
	namesMu.Lock()
	defer namesMu.Unlock()
	out := slices.Clone(names)
	slices.Sort(out)
	return out
}

// Handler serves the registry in Prometheus's exposition formats.
func Handler() http.Handler {
	return promhttp.HandlerFor(registry, promhttp.HandlerOpts{
		// A failing scrape-time read (Redis down) drops that metric, not the scrape.
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// Gatherer is the registry, for tests that read it without HTTP.
func Gatherer() prometheus.Gatherer { return registry }

func init() {
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// Latency buckets: the HTTP API and the webhook answer in milliseconds; sends and
// relays may wait seconds for the governor or the consumer.
var (
	fastBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	slowBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	// tripBuckets: Redis round trips, from a tenth of a millisecond (an idle local
	// Redis) to a second.
	tripBuckets = []float64{.0001, .00025, .0005, .001, .0015, .002, .003, .005, .01, .025, .05, .1, .25, 1}
)

// HTTP API.
var (
	httpRequests = register("wagate_http_requests_total", prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wagate_http_requests_total",
		Help: "HTTP requests answered by the API, by method, chi route pattern and status code.",
	}, []string{"method", "route", "status"}))
	httpDuration = register("wagate_http_request_duration_seconds", prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wagate_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request of the API, by method and chi route pattern.",
		Buckets: fastBuckets,
	}, []string{"method", "route"}))
	httpInFlight = register("wagate_http_requests_in_flight", prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wagate_http_requests_in_flight",
		Help: "HTTP requests of the API being answered now.",
	}))
)

// httpKey names one bound series of the HTTP metrics.
type httpKey struct {
	method, route string
	status        int
}

type httpSeries struct {
	count prometheus.Counter
	dur   prometheus.Observer
}

var (
	httpMu    sync.RWMutex
	httpBound = map[httpKey]httpSeries{}
)

// knownMethods bounds the method label: a client may send any token as a method.
var knownMethods = map[string]string{
	http.MethodGet: http.MethodGet, http.MethodPost: http.MethodPost, http.MethodPut: http.MethodPut,
	http.MethodPatch: http.MethodPatch, http.MethodDelete: http.MethodDelete, http.MethodHead: http.MethodHead,
	http.MethodOptions: http.MethodOptions,
}

// maxHTTPSeries bounds the bound series; routes and statuses are few, so it is only
// reached by something unexpected, whose requests are then counted as route "other".
const maxHTTPSeries = 2000

// HTTPInFlight counts a request in (+1) or out (-1).
func HTTPInFlight(d float64) { httpInFlight.Add(d) }

// HTTPRequest counts one answered request. route is chi's route pattern ("" when no
// route matched: counted as "unmatched"), never the raw path, so the series stay few.
func HTTPRequest(method, route string, status int, took time.Duration) {
	if m, ok := knownMethods[method]; ok {
		method = m
	} else {
		method = "other"
	}
	if route == "" {
		route = "unmatched"
	}
	k := httpKey{method, route, status}
	httpMu.RLock()
	s, ok := httpBound[k]
	httpMu.RUnlock()
	if !ok {
		s = bindHTTP(k)
	}
	s.count.Inc()
	s.dur.Observe(took.Seconds())
}

func bindHTTP(k httpKey) httpSeries {
	httpMu.Lock()
	defer httpMu.Unlock()
	if s, ok := httpBound[k]; ok {
		return s
	}
	if len(httpBound) >= maxHTTPSeries {
		k.route = "other"
		if s, ok := httpBound[k]; ok {
			return s
		}
	}
	s := httpSeries{
		count: httpRequests.WithLabelValues(k.method, k.route, strconv.Itoa(k.status)),
		dur:   httpDuration.WithLabelValues(k.method, k.route),
	}
	httpBound[k] = s
	return s
}

// Inbound path: the webhook, the inbound log and its forwarder, the relay.
var (
	webhookAck = register("wagate_webhook_ack_seconds", prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "wagate_webhook_ack_seconds",
		Help:    "Time from a webhook POST's arrival to its 200 acknowledgement (its events and statuses held by Redis).",
		Buckets: fastBuckets,
	}))
	inboundEvents = register("wagate_inbound_events_total", prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wagate_inbound_events_total",
		Help: "Inbound messages received by webhook: accepted into the inbound log, or repeat (a redelivery already held).",
	}, []string{"result"}))
	inboundAccepted = inboundEvents.WithLabelValues("accepted")
	inboundRepeat   = inboundEvents.WithLabelValues("repeat")
	inboundStatuses = register("wagate_inbound_statuses_total", prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wagate_inbound_statuses_total",
		Help: "Delivery status items (sent, delivered, read, failed) received by webhook.",
	}))
	forwarded = register("wagate_inbound_forwarded_total", prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wagate_inbound_forwarded_total",
		Help: "Inbound events moved from the inbound log into the relay workflow by this API server's forwarder.",
	}))
	relayFrames = register("wagate_relay_frames_total", prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wagate_relay_frames_total",
		Help: "Inbound events finished by the relay: relayed (confirmed by the WebSocket consumer) or dropped (their stored event was gone or invalid).",
	}, []string{"result"}))
	relayRelayed = relayFrames.WithLabelValues("relayed")
	relayDropped = relayFrames.WithLabelValues("dropped")
	relayLag     = register("wagate_relay_delivery_lag_seconds", prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "wagate_relay_delivery_lag_seconds",
		Help:    "Time from a webhook's acceptance of an inbound event to the WebSocket consumer's confirmation of its frame.",
		Buckets: slowBuckets,
	}))
)

// logLength is the scrape-time reader of the inbound log's length; nil: not served.
var logLength atomic.Pointer[func() (int64, error)]

var _ = register("wagate_inbound_log_length", collectFunc(func(ch chan<- prometheus.Metric) {
	f := logLength.Load()
	if f == nil {
		return
	}
	n, err := (*f)()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(inboundLogDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(inboundLogDesc, prometheus.GaugeValue, float64(n))
}))

var inboundLogDesc = prometheus.NewDesc("wagate_inbound_log_length",
	"Inbound events accepted by the webhook and not yet forwarded to the relay workflow (the Redis inbound log), read at scrape time.", nil, nil)

// collectFunc is an unchecked collector of metrics read at scrape time.
type collectFunc func(chan<- prometheus.Metric)

func (collectFunc) Describe(chan<- *prometheus.Desc)      {}
func (f collectFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

// ServeInboundLogLength makes the registry read the inbound log's length with f at
// every scrape (the API server sets it; a later call replaces an earlier one).
func ServeInboundLogLength(f func() (int64, error)) { logLength.Store(&f) }

// WebhookAck observes the acknowledgement of a webhook that arrived at start.
func WebhookAck(start time.Time) { webhookAck.Observe(time.Since(start).Seconds()) }

// InboundAccepted counts the webhook's inbound events: accepted ones went into the
// inbound log, the others were repeats.
func InboundAccepted(accepted, repeats int) {
	inboundAccepted.Add(float64(accepted))
	inboundRepeat.Add(float64(repeats))
}

// InboundStatuses counts n delivery status items.
func InboundStatuses(n int) { inboundStatuses.Add(float64(n)) }

// Forwarded counts n events signalled into the relay workflow.
func Forwarded(n int) { forwarded.Add(float64(n)) }

// RelayDropped counts n events the relay dropped.
func RelayDropped(n int) { relayDropped.Add(float64(n)) }

// Relayed counts one frame the consumer confirmed, of an event the webhook accepted at
// acceptedMs (Unix milliseconds; 0 when unknown: an event stored before this metric
// existed, whose lag is not observed).
func Relayed(acceptedMs int64, now time.Time) {
	relayRelayed.Inc()
	if acceptedMs > 0 {
		relayLag.Observe(max(0, float64(now.UnixMilli()-acceptedMs)/1000))
	}
}
