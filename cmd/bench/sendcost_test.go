package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseRedisInfo(t *testing.T) {
	info := "# CPU\r\nused_cpu_sys:0.488151\r\nused_cpu_user:3.954844\r\nused_cpu_sys_children:1.000000\r\n" +
		"used_cpu_user_main_thread:3.952993\r\n\r\n# Commandstats\r\n" +
		"cmdstat_hset:calls=121146,usec=273923,usec_per_call=2.26,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_evalsha:calls=90634,usec=3567197,usec_per_call=39.36,rejected_calls=0,failed_calls=11\r\n" +
		"cmdstat_eval:calls=11,usec=2032,usec_per_call=184.73,rejected_calls=0,failed_calls=0\r\n"
	cpu, scripts := parseRedisInfo(info)
	if math.Abs(cpu-4.442995) > 1e-9 {
		t.Errorf("cpu = %v, want used_cpu_user + used_cpu_sys = 4.442995 (children and threads apart)", cpu)
	}
	if math.Abs(scripts-3.569229) > 1e-9 {
		t.Errorf("scripts = %v, want EVALSHA's and EVAL's usec, 3.569229 s", scripts)
	}
}

func TestSendCostPerSendAndBound(t *testing.T) {
	var c sendCost
	c.add(10000, costSample{trips: 5, tripTime: 0.01, redisCPU: 1, scriptTime: 0.5},
		costSample{trips: 10005, tripTime: 20.01, redisCPU: 2.5, scriptTime: 1.7})
	c.add(10000, costSample{trips: 20000, tripTime: 40, redisCPU: 3, scriptTime: 2},
		costSample{trips: 30000, tripTime: 60, redisCPU: 4.5, scriptTime: 3.2})
	if got := c.trip(); got != 2*time.Millisecond {
		t.Errorf("mean round trip = %v, want 2ms", got)
	}
	if got := c.perSend(c.redisCPU); math.Abs(got-150) > 1e-6 {
		t.Errorf("Redis CPU per send = %v µs, want 150", got)
	}
	if got := c.perSend(c.scriptTime); math.Abs(got-120) > 1e-6 {
		t.Errorf("scripts per send = %v µs, want 120", got)
	}
	if got := bound(50*time.Millisecond, 2*time.Millisecond); math.Abs(got-50.0/52) > 1e-9 {
		t.Errorf("bound = %v, want 50/52", got)
	}
	rows := []row{{workers: 10, n: 100, poolRate: 195}, {workers: 100, n: 20000, poolRate: 2000, cost: c}}
	text := costText(rows)
	if strings.Contains(text, "| 10 |") {
		t.Errorf("a row without a measured cost is listed:\n%s", text)
	}
	if !strings.Contains(text, "| 100 | 2.00 ms | 150 µs | 120 µs | 50.0 ms | 0.962 |") {
		t.Errorf("cost table lacks the W=100 row's figures:\n%s", text)
	}
	if costText(rows[:1]) != "" {
		t.Error("a report without measured costs has a cost section")
	}
}
