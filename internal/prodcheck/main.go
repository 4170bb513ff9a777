// Command prodcheck runs wagate's production topology on this machine without Docker
// and checks that it works under failure: `make prod-check`, also run by CI.
//
// It starts what docker-compose.yml starts, from the same programs where they can run
// here: PostgreSQL (the machine's or Debian's binaries) in a temporary folder; the
// Temporal schema created and upgraded by deploy/temporal/setup-schema.sh (compose's
// admin-tools job) with temporal-sql-tool built from go.temporal.io/server; a Temporal
// server process (tools/temporal-server) configured from the environment as the
// temporalio/server image is; the namespace registered with a retention; Redis with
// an append-only file; two bin/apiserver and two bin/worker processes; and the Graph
// API sandbox (bin/sandbox) standing in for Meta, with a latency so the task takes a
// while. Then it sends a bulk task through the HTTP API, SIGKILLs a worker and
// restarts PostgreSQL while it runs, posts signed inbound webhooks through both
// apiservers, and checks at the sandbox and at a WebSocket consumer that nothing was
// lost, inbound events arrived in order, and repeats stayed within BULK_MAX_WORKERS.
//
// It prints a PASS or FAIL summary and exits non-zero on failure, showing the last
// lines of every process's log.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// options are the check's flags.
type options struct {
	binDir       string
	repoDir      string
	schemaDir    string
	recipients   int
	workers      int
	latency      time.Duration
	inboundEvery time.Duration
	restartMode  string
	pgDown       time.Duration
	timeout      time.Duration
	keep         bool
}

func main() {
	var o options
	flag.StringVar(&o.binDir, "bin", "bin", "folder with apiserver, worker, sandbox, temporal-server and temporal-sql-tool")
	flag.StringVar(&o.repoDir, "repo", ".", "the repository (for deploy/temporal)")
	flag.StringVar(&o.schemaDir, "schema-dir", "", "Temporal's schema folder (default: schema/ of go.temporal.io/server in the module cache)")
	flag.IntVar(&o.recipients, "n", 5000, "recipients of the bulk task")
	flag.IntVar(&o.workers, "workers", 10, "BULK_MAX_WORKERS (W): sends in flight per task, and the most repeats allowed")
	flag.DurationVar(&o.latency, "latency", 150*time.Millisecond, "the sandbox's latency per send")
	flag.DurationVar(&o.inboundEvery, "inbound-every", 250*time.Millisecond, "pause between signed inbound webhooks, posted for the whole task")
	flag.StringVar(&o.restartMode, "pg-stop-mode", "immediate", "pg_ctl stop mode mid-task: immediate (a crash, WAL recovery at start) or fast")
	flag.DurationVar(&o.pgDown, "pg-down", 3*time.Second, "how long PostgreSQL stays down mid-task")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "the whole check's time limit")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary folder (data and logs) even on success")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	os.Exit(run(ctx, o))
}

func run(ctx context.Context, o options) int {
	started := time.Now()
	dir, err := os.MkdirTemp("", "wagate-prodcheck-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "prod-check: FAIL:", err)
		return 1
	}
	ps := &procs{logDir: filepath.Join(dir, "logs")}
	if err := os.MkdirAll(ps.logDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "prod-check: FAIL:", err)
		return 1
	}
	c := &check{o: o, dir: dir, ps: ps, started: started}
	err = c.run(ctx)
	c.shutdown()

	fmt.Println()
	for _, l := range c.summary {
		fmt.Println("  " + l)
	}
	if err != nil {
		ps.dumpLogs(os.Stdout, 40)
		fmt.Printf("\nprod-check: FAIL after %s: %v\n  data and logs kept in %s\n", time.Since(started).Round(time.Second), err, dir)
		return 1
	}
	fmt.Printf("\nprod-check: PASS in %s\n", time.Since(started).Round(time.Second))
	if o.keep {
		fmt.Println("  data and logs kept in", dir)
	} else {
		_ = os.RemoveAll(dir)
	}
	return 0
}

// schemaDir finds Temporal's schema folder: the flag, else schema/ of the
// go.temporal.io/server module the tools were built from.
func schemaDir(o options) (string, error) {
	if o.schemaDir != "" {
		return o.schemaDir, nil
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.temporal.io/server").Output()
	if err != nil {
		return "", fmt.Errorf("locate go.temporal.io/server (pass -schema-dir): %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "schema"), nil
}

// logf prints a progress line with the time since the start.
func (c *check) logf(format string, args ...any) {
	fmt.Printf("[%6.1fs] %s\n", time.Since(c.started).Seconds(), fmt.Sprintf(format, args...))
}
