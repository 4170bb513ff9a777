package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/wagate/wagate/internal/metrics"
)

// checkMetrics scrapes /metrics on both apiservers (their API port) and on every
// worker still running (its METRICS_ADDR) once the task is done, and checks that the
// counters of what just happened moved: requests, webhooks and Temporal calls on the
// apiservers; sends, governor waits and the SDK's metrics on the workers. A killed
// worker's counts died with it, so the workers' sends are checked together.
func (c *check) checkMetrics(ctx context.Context) error {
	var failures []string
	fail := func(format string, args ...any) { failures = append(failures, fmt.Sprintf(format, args...)) }
	var requests, acks float64
	for i, api := range c.apis {
		m, err := metrics.Scrape(ctx, api+"/metrics")
		if err != nil {
			fail("apiserver-%d: %v", i+1, err)
			continue
		}
		r, a, tr := m.Value("wagate_http_requests_total", nil), m.Value("wagate_webhook_ack_seconds_count", nil), m.Value("temporal_request_total", nil)
		if r == 0 || a == 0 || tr == 0 {
			fail("apiserver-%d /metrics: %v HTTP requests, %v webhook acks, %v Temporal requests; want all counted", i+1, r, a, tr)
		}
		if i == 0 && m.Value("wagate_http_requests_total", map[string]string{"route": "/api/send-bulk", "status": "200"}) == 0 {
			fail("apiserver-1 /metrics did not count the task's POST /api/send-bulk")
		}
		requests += r
		acks += a
	}
	var sent, failed, abandoned, waits, relayed float64
	scraped := 0
	for _, w := range c.workers {
		url := c.metricsURL[w]
		if w.exited() || url == "" {
			continue
		}
		m, err := metrics.Scrape(ctx, url)
		if err != nil {
			fail("%s: %v", w.name, err)
			continue
		}
		scraped++
		s, a := m.Value("wagate_sends_total", map[string]string{"outcome": "sent"}), m.Value("wagate_sends_total", map[string]string{"outcome": "abandoned"})
		sent += s
		abandoned += a
		failed += m.Value("wagate_sends_total", nil) - s - a
		waits += m.Value("wagate_governor_wait_seconds_count", nil)
		relayed += m.Value("wagate_relay_frames_total", map[string]string{"result": "relayed"})
		for _, name := range metrics.SDKNames {
			if _, ok := m[name]; !ok && name != "temporal_activity_execution_latency_seconds" {
				fail("%s /metrics lacks the SDK metric %s", w.name, name)
			}
		}
	}
	if scraped == 0 {
		fail("no running worker could be scraped")
	}
	if sent == 0 || waits < sent {
		fail("the running workers counted %v sends sent and %v governor waits; want sends, each after a wait", sent, waits)
	}
	c.say("metrics: apiservers counted %.0f HTTP requests and %.0f webhook acks; the %d running workers %.0f sends sent, %.0f failed, %.0f abandoned, %.0f governor waits, %.0f frames relayed (the killed worker's counts went with it)",
		requests, acks, scraped, sent, failed, abandoned, waits, relayed)
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "; "))
	}
	return nil
}
