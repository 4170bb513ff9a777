package main

// What a send costs the stack, read around each measured stack run of a happy-path
// row: the Redis round trip each send waits for (the worker's
// wagate_send_redis_round_trip_seconds) and the Redis server's CPU (INFO). A slot
// spends the Graph API's latency and then that round trip on every send, so the pool's
// time per send and slot over the same time plus the round trip bounds the row's ratio
// before any other cost of the stack.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wagate/wagate/internal/metrics"
)

// sendCost sums what the stack runs of a row cost.
type sendCost struct {
	sends      int
	trips      float64 // admission round trips observed by the worker
	tripTime   float64 // their total time, in seconds
	redisCPU   float64 // the Redis server's CPU time (user and system), in seconds
	scriptTime float64 // of which inside EVALSHA and EVAL, in seconds
}

// costSample is one reading of the counters sendCost is made of.
type costSample struct {
	trips, tripTime, redisCPU, scriptTime float64
}

// sampleCost reads the worker's round-trip histogram at metricsURL and Redis's INFO.
func (b *bench) sampleCost(ctx context.Context, metricsURL string) (costSample, error) {
	var s costSample
	m, err := metrics.Scrape(ctx, metricsURL)
	if err != nil {
		return s, fmt.Errorf("worker metrics: %w", err)
	}
	num := map[string]string{"phone_number_id": phoneNumberID}
	s.trips = m.Value("wagate_send_redis_round_trip_seconds_count", num)
	s.tripTime = m.Value("wagate_send_redis_round_trip_seconds_sum", num)
	rdb, err := b.redisClient()
	if err != nil {
		return s, err
	}
	defer rdb.Close()
	info, err := rdb.Info(ctx, "cpu", "commandstats").Result()
	if err != nil {
		return s, fmt.Errorf("redis INFO: %w", err)
	}
	s.redisCPU, s.scriptTime = parseRedisInfo(info)
	return s, nil
}

// parseRedisInfo reads the server's CPU time (used_cpu_user + used_cpu_sys) and the
// time spent in scripts (EVALSHA and EVAL), in seconds, from INFO cpu and commandstats.
func parseRedisInfo(info string) (cpu, scripts float64) {
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "used_cpu_user", "used_cpu_sys":
			f, _ := strconv.ParseFloat(v, 64)
			cpu += f
		case "cmdstat_evalsha", "cmdstat_eval":
			for _, kv := range strings.Split(v, ",") {
				if usec, ok := strings.CutPrefix(kv, "usec="); ok {
					f, _ := strconv.ParseFloat(usec, 64)
					scripts += f / 1e6
				}
			}
		}
	}
	return cpu, scripts
}

// add counts one stack run of n sends between two samples.
func (c *sendCost) add(n int, before, after costSample) {
	c.sends += n
	c.trips += after.trips - before.trips
	c.tripTime += after.tripTime - before.tripTime
	c.redisCPU += after.redisCPU - before.redisCPU
	c.scriptTime += after.scriptTime - before.scriptTime
}

// trip is the mean admission round trip (0 when none was observed).
func (c sendCost) trip() time.Duration {
	if c.trips <= 0 {
		return 0
	}
	return time.Duration(c.tripTime / c.trips * float64(time.Second))
}

// perSend is a total in seconds as microseconds per send.
func (c sendCost) perSend(total float64) float64 {
	if c.sends == 0 {
		return 0
	}
	return total / float64(c.sends) * 1e6
}

// bound is the ratio a stack whose only cost is one round trip per send would reach
// against a pool that takes slot per send and slot: slot / (slot + round trip).
func bound(slot, trip time.Duration) float64 {
	if slot <= 0 {
		return 0
	}
	return slot.Seconds() / (slot + trip).Seconds()
}

// costText is the report's section on what a send costs, for the rows that measured it.
func costText(rows []row) string {
	var sb strings.Builder
	for _, r := range rows {
		if r.cost.sends == 0 || r.cost.trips == 0 {
			continue
		}
		if sb.Len() == 0 {
			sb.WriteString("\nWhat a send costs the stack, over the row's measured stack runs: the Redis round trip each send waits for\n")
			sb.WriteString("before its Graph API call (the worker's `wagate_send_redis_round_trip_seconds`), and the Redis server's CPU\n")
			sb.WriteString("(`INFO`: all of it while the runs lasted, divided by their sends). A pool slot takes W / (pool sends/s) per\n")
			sb.WriteString("send; a stack whose only cost was that round trip would reach slot / (slot + round trip): the last column.\n\n")
			sb.WriteString("| W | Redis round trip before each send (mean) | Redis CPU per send | of it, in scripts | pool time per send and slot | bound from the round trip alone |\n")
			sb.WriteString("|---|---|---|---|---|---|\n")
		}
		slot := time.Duration(float64(r.workers) / r.poolRate * float64(time.Second))
		fmt.Fprintf(&sb, "| %d | %.2f ms | %.0f µs | %.0f µs | %.1f ms | %.3f |\n", r.workers, ms(r.cost.trip()),
			r.cost.perSend(r.cost.redisCPU), r.cost.perSend(r.cost.scriptTime), ms(slot), bound(slot, r.cost.trip()))
	}
	return sb.String()
}
