package metrics

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wagate/wagate/graphapi"
)

// The send path: every Graph API send of a business phone number, classified where
// sendpolicy learns its answer, and the governor and breaker it passes through.
var (
	sends = register("wagate_sends_total", prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wagate_sends_total",
		Help: "Graph API sends by phone number, outcome (sent, or the failure's class: retryable, rate_limited, pair_rate_limited, permanent, auth; abandoned: admitted, then not made or its answer unknown because the caller gave up) and Meta's error code (http_<status> for an answer without Meta's error object, none without an answer).",
	}, []string{"phone_number_id", "outcome", "code"}))
	governorRate = register("wagate_governor_rate_mps", prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "wagate_governor_rate_mps",
		Help: "The send rate the governor admits for the phone number (messages per second), as of this process's latest admission or rate cut.",
	}, []string{"phone_number_id"}))
	governorCeiling = register("wagate_governor_ceiling_mps", prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "wagate_governor_ceiling_mps",
		Help: "WHATSAPP_MAX_MPS, the governor's ceiling for the phone number (0: no limit).",
	}, []string{"phone_number_id"}))
	governorWait = register("wagate_governor_wait_seconds", prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wagate_governor_wait_seconds",
		Help:    "Time an admitted send waited for its governor slot.",
		Buckets: slowBuckets,
	}, []string{"phone_number_id"}))
	// One Redis round trip comes before every send, and a send's slot waits for it:
	// with the Graph API's latency it bounds a task's throughput at about
	// BULK_MAX_WORKERS / (latency + round trip), so it is what to watch when sends are
	// slower than the workers allow.
	sendTrip = register("wagate_send_redis_round_trip_seconds", prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wagate_send_redis_round_trip_seconds",
		Help:    "Time of the Redis round trip before each send: the admission through the breaker and the governor, with a bulk recipient's claim and its slot's last outcome.",
		Buckets: tripBuckets,
	}, []string{"phone_number_id"}))
	governorCuts = register("wagate_governor_cuts_total", prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wagate_governor_cuts_total",
		Help: "Rate cuts this process made after Meta answered 130429.",
	}, []string{"phone_number_id"}))
	breakerOpen = register("wagate_breaker_open", prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "wagate_breaker_open",
		Help: "1 while the Graph API circuit breaker of the phone number is open, as this process last saw it (it sees it at every send), else 0.",
	}, []string{"phone_number_id"}))
	breakerTransitions = register("wagate_breaker_transitions_total", prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wagate_breaker_transitions_total",
		Help: "Breaker openings and closings caused by this process's sends (to: open, closed).",
	}, []string{"phone_number_id", "to"}))
)

// maxCodes bounds the distinct Meta error codes of a number's failure series; Meta's
// codes are a few dozen, so only something unexpected reaches it (then "other").
const maxCodes = 100

// Number is the send-path metrics of one business phone number, bound once. It is safe
// for concurrent use.
type Number struct {
	id        string
	sent      prometheus.Counter
	abandoned prometheus.Counter
	rate      prometheus.Gauge
	wait      prometheus.Observer
	trip      prometheus.Observer
	cuts      prometheus.Counter
	open      prometheus.Gauge
	opened    prometheus.Counter
	closed    prometheus.Counter

	mu       sync.RWMutex
	failures map[failureKey]prometheus.Counter
}

type failureKey struct {
	class graphapi.Class
	code  int  // Meta's error code; -1: none (a network failure, a time-out); -2: past maxCodes
	http  bool // code is the HTTP status of an answer without Meta's error object
}

var (
	numbersMu sync.Mutex
	numbers   = map[string]*Number{}
)

// ForNumber returns the metrics of phone number id with a governor ceiling of mps (<= 0:
// no limit); every caller for the same number shares them.
func ForNumber(id string, mps int) *Number {
	numbersMu.Lock()
	defer numbersMu.Unlock()
	governorCeiling.WithLabelValues(id).Set(float64(max(mps, 0)))
	if n, ok := numbers[id]; ok {
		return n
	}
	n := &Number{
		id:        id,
		sent:      sends.WithLabelValues(id, "sent", "none"),
		abandoned: sends.WithLabelValues(id, "abandoned", "none"),
		rate:      governorRate.WithLabelValues(id),
		wait:      governorWait.WithLabelValues(id),
		trip:      sendTrip.WithLabelValues(id),
		cuts:      governorCuts.WithLabelValues(id),
		open:      breakerOpen.WithLabelValues(id),
		opened:    breakerTransitions.WithLabelValues(id, "open"),
		closed:    breakerTransitions.WithLabelValues(id, "closed"),
		failures:  map[failureKey]prometheus.Counter{},
	}
	n.open.Set(0)
	numbers[id] = n
	return n
}

// Send counts one answered send: err nil is sent; otherwise the failure is counted by
// class (graphapi.Classify of err) and Meta's error code.
func (n *Number) Send(class graphapi.Class, err error) {
	if n == nil {
		return
	}
	if err == nil {
		n.sent.Inc()
		return
	}
	k := failureKey{class: class, code: -1}
	var ge *graphapi.Error
	switch {
	case errors.As(err, &ge) && (ge.Code != 0 || ge.Type != ""): // Meta's error object
		k.code = ge.Code
	case ge != nil: // an answer without one (a proxy's HTML 502): its HTTP status
		k.code, k.http = ge.HTTPStatus, true
	}
	n.mu.RLock()
	c, ok := n.failures[k]
	n.mu.RUnlock()
	if !ok {
		c = n.bindFailure(k)
	}
	c.Inc()
}

func (n *Number) bindFailure(k failureKey) prometheus.Counter {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c, ok := n.failures[k]; ok {
		return c
	}
	if k.code >= 0 && len(n.failures) >= maxCodes {
		// Past the bound every new code of the class shares one series, and the map
		// stops growing.
		k = failureKey{class: k.class, code: -2}
		if c, ok := n.failures[k]; ok {
			return c
		}
	}
	code := "none"
	switch {
	case k.code == -2:
		code = "other"
	case k.http:
		code = "http_" + strconv.Itoa(k.code)
	case k.code >= 0:
		code = strconv.Itoa(k.code)
	}
	c := sends.WithLabelValues(n.id, k.class.String(), code)
	n.failures[k] = c
	return c
}

// Abandoned counts an admitted send that was not made, or whose answer is unknown.
func (n *Number) Abandoned() {
	if n != nil {
		n.abandoned.Inc()
	}
}

// Admitted observes one admission's wait for its governor slot.
func (n *Number) Admitted(wait time.Duration) {
	if n != nil {
		n.wait.Observe(max(wait, 0).Seconds())
	}
}

// RedisTrip observes the Redis round trip of one send admission.
func (n *Number) RedisTrip(d time.Duration) {
	if n != nil {
		n.trip.Observe(max(d, 0).Seconds())
	}
}

// Rate records the governor's current rate (0 or less: unknown, ignored).
func (n *Number) Rate(rate float64) {
	if n != nil && rate > 0 {
		n.rate.Set(rate)
	}
}

// Cut counts a rate cut this process made.
func (n *Number) Cut() {
	if n != nil {
		n.cuts.Inc()
	}
}

// Breaker records the breaker's state as seen now.
func (n *Number) Breaker(open bool) {
	if n == nil {
		return
	}
	if open {
		n.open.Set(1)
	} else {
		n.open.Set(0)
	}
}

// BreakerOpened counts an opening this process's send caused.
func (n *Number) BreakerOpened() {
	if n != nil {
		n.opened.Inc()
		n.open.Set(1)
	}
}

// BreakerClosed counts a closing this process's probe caused.
func (n *Number) BreakerClosed() {
	if n != nil {
		n.closed.Inc()
		n.open.Set(0)
	}
}
