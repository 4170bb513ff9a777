package e2e

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	_ "modernc.org/sqlite"

	"github.com/wagate/wagate/devserver"
)

const devTaskQueue = "devserver-test"

// devGreet is a trivial workflow that answers at once.
func devGreet(ctx workflow.Context, name string) (string, error) {
	return "hola " + name, nil
}

// devNap sleeps on a durable timer, so it can outlive the server that started it.
func devNap(ctx workflow.Context, d time.Duration) (string, error) {
	if err := workflow.Sleep(ctx, d); err != nil {
		return "", err
	}
	return "woke", nil
}

func quietSDK() sdklog.Logger { return sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)) }

// devClient dials srv and starts a worker with the test workflows; both stop in
// the returned function.
func devClient(t *testing.T, srv *devserver.Server) (client.Client, func()) {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: srv.FrontendHostPort(), Namespace: srv.Namespace(), Logger: quietSDK()})
	if err != nil {
		t.Fatalf("dial %s: %v", srv.FrontendHostPort(), err)
	}
	w := sdkworker.New(c, devTaskQueue, sdkworker.Options{})
	w.RegisterWorkflow(devGreet)
	w.RegisterWorkflow(devNap)
	if err := w.Start(); err != nil {
		c.Close()
		t.Fatalf("start worker: %v", err)
	}
	return c, func() {
		w.Stop()
		c.Close()
	}
}

func startDev(t *testing.T, opts devserver.Options) *devserver.Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := devserver.Start(ctx, opts)
	if err != nil {
		t.Fatalf("devserver.Start(%+v): %v", opts, err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return srv
}

func TestDevServerServesUIAndRunsWorkflows(t *testing.T) {
	srv := startDev(t, devserver.Options{Namespace: "wagate-dev"})

	if got := srv.Namespace(); got != "wagate-dev" {
		t.Errorf("Namespace() = %q, want wagate-dev", got)
	}
	if host, _, err := net.SplitHostPort(srv.FrontendHostPort()); err != nil || host != "127.0.0.1" {
		t.Errorf("FrontendHostPort() = %q, want 127.0.0.1:port", srv.FrontendHostPort())
	}
	if !strings.HasPrefix(srv.UIURL(), "http://127.0.0.1:") {
		t.Fatalf("UIURL() = %q, want http://127.0.0.1:port", srv.UIURL())
	}
	resp, err := http.Get(srv.UIURL() + "/")
	if err != nil {
		t.Fatalf("GET %s/: %v", srv.UIURL(), err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(strings.ToLower(string(body)), "<html") {
		t.Errorf("GET %s/ = %d (%d bytes), want 200 with the UI's HTML", srv.UIURL(), resp.StatusCode, len(body))
	}

	c, stop := devClient(t, srv)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "greet", TaskQueue: devTaskQueue}, devGreet, "mundo")
	if err != nil {
		t.Fatalf("ExecuteWorkflow: %v", err)
	}
	var got string
	if err := run.Get(ctx, &got); err != nil || got != "hola mundo" {
		t.Errorf("workflow result = %q, %v; want %q", got, err, "hola mundo")
	}
}

func TestDevServerWithoutUIInMemory(t *testing.T) {
	// Two in-memory servers in one process must not share state.
	a := startDev(t, devserver.Options{UIPort: -1})
	b := startDev(t, devserver.Options{UIPort: -1})
	if a.UIURL() != "" {
		t.Errorf("UIURL() = %q with UIPort -1, want empty", a.UIURL())
	}
	if a.Namespace() != "default" {
		t.Errorf("Namespace() = %q, want default", a.Namespace())
	}
	ca, stopA := devClient(t, a)
	defer stopA()
	cb, stopB := devClient(t, b)
	defer stopB()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := ca.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "only-in-a", TaskQueue: devTaskQueue}, devGreet, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.DescribeWorkflowExecution(ctx, "only-in-a", ""); err == nil {
		t.Errorf("server b knows a workflow started on server a")
	}
}

func TestDevServerKeepsWorkflowsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// First life: one workflow finishes, one is left sleeping on a timer.
	first, err := devserver.Start(ctx, devserver.Options{DataDir: dir, UIPort: -1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	c, stop := devClient(t, first)
	done, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "finished", TaskQueue: devTaskQueue}, devGreet, "antes")
	if err != nil {
		t.Fatal(err)
	}
	if err := done.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "sleeping", TaskQueue: devTaskQueue}, devNap, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	// Let the first workflow task run so the timer is recorded before the stop.
	waitForEvent(t, ctx, c, "sleeping", enumspb.EVENT_TYPE_TIMER_STARTED)
	stop()
	if err := first.Stop(); err != nil {
		t.Fatalf("first Stop: %v", err)
	}

	// Second life on the same directory.
	second := startDev(t, devserver.Options{DataDir: dir, UIPort: -1})
	c, stop = devClient(t, second)
	defer stop()

	d, err := c.DescribeWorkflowExecution(ctx, "finished", "")
	if err != nil {
		t.Fatalf("finished workflow lost across restart: %v", err)
	}
	if got := d.WorkflowExecutionInfo.GetStatus(); got != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("finished workflow status = %v, want COMPLETED", got)
	}
	var got string
	if err := c.GetWorkflow(ctx, "finished", "").Get(ctx, &got); err != nil || got != "hola antes" {
		t.Errorf("finished workflow result = %q, %v; want %q", got, err, "hola antes")
	}

	got = ""
	if err := c.GetWorkflow(ctx, "sleeping", "").Get(ctx, &got); err != nil || got != "woke" {
		t.Errorf("workflow left running = %q, %v; want it to complete with %q", got, err, "woke")
	}
}

// waitForEvent waits until the workflow's history holds an event of type want.
func waitForEvent(t *testing.T, ctx context.Context, c client.Client, id string, want enumspb.EventType) {
	t.Helper()
	for {
		it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				break
			}
			if ev.GetEventType() == want {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("workflow %s never recorded %v", id, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestDevServerRefusesBusyPorts(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name string
		opts devserver.Options
		want string
	}{
		{"frontend", devserver.Options{FrontendPort: port, UIPort: -1}, "frontend port " + strconv.Itoa(port) + " is not free"},
		{"web UI", devserver.Options{UIPort: port}, "web UI port " + strconv.Itoa(port) + " is not free"},
		{"negative UI port", devserver.Options{UIPort: -2}, "invalid ports"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Logger = testLogger(t)
			srv, err := devserver.Start(context.Background(), tt.opts)
			if err == nil {
				srv.Stop()
				t.Fatalf("Start(%+v) = nil error, want %q", tt.opts, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start(%+v) = %v, want an error containing %q", tt.opts, err, tt.want)
			}
		})
	}
}

func TestDevServerStartHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	srv, err := devserver.Start(ctx, devserver.Options{UIPort: -1, Logger: testLogger(t)})
	if err == nil {
		srv.Stop()
		t.Fatal("Start(canceled ctx) = nil error")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Start(canceled ctx) = %v, want context.Canceled", err)
	}
}

// sqliteExec runs statements on the dev server's database file while no server has it
// open, the way an older release would have left it.
func sqliteExec(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "temporal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func sqliteSchemaVersion(t *testing.T, dir string) string {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "temporal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRow(`SELECT curr_version FROM schema_version WHERE version_partition = 0`).Scan(&v); err != nil {
		t.Fatalf("read schema version: %v", err)
	}
	return v
}

// A data folder left by an older release: a database from before versions were
// recorded, and one at an older schema (the table that schema 0.11 added is missing),
// are upgraded in place and keep their workflows; one from a newer server is refused
// with a message that says what to do.
func TestDevServerUpgradesOlderDataFolder(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	life := func(check func(c client.Client)) {
		t.Helper()
		srv, err := devserver.Start(ctx, devserver.Options{DataDir: dir, UIPort: -1, Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("Start on %s: %v", dir, err)
		}
		c, stop := devClient(t, srv)
		check(c)
		stop()
		if err := srv.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
	}

	life(func(c client.Client) {
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "kept", TaskQueue: devTaskQueue}, devGreet, "antes")
		if err != nil {
			t.Fatal(err)
		}
		if err := run.Get(ctx, nil); err != nil {
			t.Fatal(err)
		}
	})
	if got, want := sqliteSchemaVersion(t, dir), sqliteschema.Version; got != want {
		t.Fatalf("new database records schema %q, want %q", got, want)
	}
	kept := func(c client.Client) {
		t.Helper()
		var got string
		if err := c.GetWorkflow(ctx, "kept", "").Get(ctx, &got); err != nil || got != "hola antes" {
			t.Errorf("workflow of the older folder = %q, %v; want %q", got, err, "hola antes")
		}
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: devTaskQueue}, devGreet, "después")
		if err != nil {
			t.Fatal(err)
		}
		if err := run.Get(ctx, &got); err != nil || got != "hola después" {
			t.Errorf("new workflow on the upgraded folder = %q, %v", got, err)
		}
	}

	// Unversioned, as every release before this one left it.
	sqliteExec(t, dir, `DROP TABLE schema_version`, `DROP TABLE schema_update_history`)
	life(kept)
	if got, want := sqliteSchemaVersion(t, dir), sqliteschema.Version; got != want {
		t.Errorf("unversioned database now records schema %q, want %q", got, want)
	}

	// One schema step behind: the upgrade creates what the step adds.
	sqliteExec(t, dir, `DROP TABLE current_chasm_executions`, `UPDATE schema_version SET curr_version = '0.10'`)
	life(kept)
	if got, want := sqliteSchemaVersion(t, dir), sqliteschema.Version; got != want {
		t.Errorf("database at 0.10 now records schema %q, want %q", got, want)
	}
	sqliteExec(t, dir, `SELECT count(*) FROM current_chasm_executions`)

	// Written by a newer server.
	sqliteExec(t, dir, `UPDATE schema_version SET curr_version = '99.0'`)
	srv, err := devserver.Start(ctx, devserver.Options{DataDir: dir, UIPort: -1, Logger: testLogger(t)})
	if err == nil {
		srv.Stop()
		t.Fatal("Start on a database from a newer server succeeded, want a refusal")
	}
	for _, want := range []string{"newer Temporal server", "99.0", "move the data folder away"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
}
