package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// postgres is a PostgreSQL cluster in a temporary folder on a loopback port, run with
// the machine's (Debian's) binaries. initdb refuses to run as root, so as root every
// PostgreSQL command runs as the postgres system user through runuser.
type postgres struct {
	bin     string // folder with initdb, pg_ctl, postgres
	dataDir string
	sockDir string
	logFile string
	port    int
	user    string // the superuser the cluster is created with (Temporal's user)
	pass    string
	runAs   string // system user running the server; "" = this process's user
	ps      *procs
}

// findPostgresBin returns the folder holding pg_ctl: PG_BIN when set, else pg_ctl on
// PATH, else the newest /usr/lib/postgresql/<major>/bin (Debian's layout, which keeps
// them off PATH).
func findPostgresBin() (string, error) {
	if dir := os.Getenv("PG_BIN"); dir != "" {
		return dir, nil
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "initdb")); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL not found (no pg_ctl on PATH or in /usr/lib/postgresql/*/bin): " +
		"run `make postgresql` (apt-get install postgresql) or set PG_BIN")
}

func pgMajor(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// newPostgres prepares (but does not start) a cluster under dir.
func newPostgres(dir string, port int, ps *procs) (*postgres, error) {
	bin, err := findPostgresBin()
	if err != nil {
		return nil, err
	}
	pg := &postgres{
		bin: bin, dataDir: filepath.Join(dir, "pgdata"), sockDir: filepath.Join(dir, "pgsock"),
		logFile: filepath.Join(ps.logDir, "postgresql.log"), port: port,
		user: "temporal", pass: "temporal-prodcheck", ps: ps,
	}
	if os.Geteuid() == 0 {
		pg.runAs = "postgres"
		if _, err := user.Lookup(pg.runAs); err != nil {
			return nil, fmt.Errorf("running as root and there is no %q system user to run PostgreSQL as "+
				"(Debian's postgresql package creates it): %w", pg.runAs, err)
		}
	}
	for _, d := range []string{pg.dataDir, pg.sockDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if pg.runAs != "" {
		u, _ := user.Lookup(pg.runAs)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		// The server's user must reach its folders through the check's folder, and
		// write its log into the log folder.
		for _, d := range []string{dir, ps.logDir} {
			if err := os.Chmod(d, 0o755); err != nil {
				return nil, err
			}
		}
		if err := os.Chmod(ps.logDir, 0o777); err != nil {
			return nil, err
		}
		for _, d := range []string{pg.dataDir, pg.sockDir} {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	return pg, nil
}

// version is what the server binary says it is, e.g. "postgres (PostgreSQL) 15.18".
func (pg *postgres) version() string {
	out, err := exec.Command(filepath.Join(pg.bin, "postgres"), "--version").Output()
	if err != nil {
		return "postgres (version unknown: " + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

// cmd runs one PostgreSQL program to completion, as runAs when set.
func (pg *postgres) cmd(ctx context.Context, logName, prog string, args ...string) error {
	bin := filepath.Join(pg.bin, prog)
	if pg.runAs != "" {
		args = append([]string{"-u", pg.runAs, "--", bin}, args...)
		bin = "runuser"
	}
	return pg.ps.run(ctx, logName, nil, bin, args...)
}

// initdb creates the cluster with Temporal's user as superuser and password
// authentication on TCP, as the postgres image does with POSTGRES_USER and
// POSTGRES_PASSWORD.
func (pg *postgres) initdb(ctx context.Context) error {
	pwFile := filepath.Join(filepath.Dir(pg.dataDir), "pgpass")
	if err := os.WriteFile(pwFile, []byte(pg.pass+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(pwFile)
	return pg.cmd(ctx, "initdb", "initdb", "-D", pg.dataDir, "-U", pg.user, "--pwfile="+pwFile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C")
}

// start starts the server and waits until it accepts connections.
func (pg *postgres) start(ctx context.Context) error {
	opts := strings.Join([]string{
		"-p", strconv.Itoa(pg.port), "-k", pg.sockDir, "-c", "listen_addresses=127.0.0.1",
		// Temporal's default pools are 20 + 10 connections per server process.
		"-c", "max_connections=200",
	}, " ")
	return pg.cmd(ctx, "pg_ctl", "pg_ctl", "-D", pg.dataDir, "-l", pg.logFile, "-o", opts, "-w", "-t", "60", "start")
}

// restart stops the server with mode (fast: disconnect everyone, roll back open
// transactions; immediate: a crash, recovered from the WAL at start), keeps it down
// for down, and starts it again with the same options.
func (pg *postgres) restart(ctx context.Context, mode string, down time.Duration) error {
	if err := pg.cmd(ctx, "pg_ctl", "pg_ctl", "-D", pg.dataDir, "-m", mode, "-w", "-t", "60", "stop"); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(down):
	}
	return pg.start(ctx)
}

// stop stops the server if it runs; used at the end, whatever happened.
func (pg *postgres) stop() {
	if _, err := os.Stat(filepath.Join(pg.dataDir, "postmaster.pid")); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pg.cmd(ctx, "pg_ctl", "pg_ctl", "-D", pg.dataDir, "-m", "fast", "-w", "stop"); err != nil {
		fmt.Fprintln(os.Stderr, "prod-check: stopping PostgreSQL:", err)
	}
}
