package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one child process of the check, its output in logs/<name>.log.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // exit status, valid once done is closed
	killed  bool  // ended on purpose by kill
}

// procs starts and stops the children, and shows their logs when the check fails.
type procs struct {
	logDir string
	mu     sync.Mutex
	all    []*proc // in start order, including ended and replaced ones
}

// start runs bin with args and env (added to a minimal environment) and returns at
// once. The child is killed if this process dies (Pdeathsig), so none outlives a
// crashed check.
func (ps *procs) start(name, bin string, env []string, args ...string) (*proc, error) {
	logPath := filepath.Join(ps.logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(baseEnv(), env...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.all = append(ps.all, p)
	ps.mu.Unlock()
	return p, nil
}

// baseEnv is what every child inherits: enough to find binaries and a home, nothing
// of the caller's wagate or Temporal settings, so that the check sees only its own.
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill ends the process with SIGKILL, as a crash or an OOM kill would, and waits for it.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	p.killed = true
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop sends SIGTERM and waits up to grace before killing.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill()
	}
}

// stopAll stops every running child, the last started first.
func (ps *procs) stopAll(grace time.Duration) {
	ps.mu.Lock()
	all := append([]*proc(nil), ps.all...)
	ps.mu.Unlock()
	for i := len(all) - 1; i >= 0; i-- {
		all[i].stop(grace)
	}
}

// unexpectedExits names the children that ended without being asked to.
func (ps *procs) unexpectedExits() []string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []string
	for _, p := range ps.all {
		if p.exited() && !p.killed {
			out = append(out, fmt.Sprintf("%s (%v)", p.name, p.err))
		}
	}
	return out
}

// dumpLogs writes the last lines of every log in the log folder to w.
func (ps *procs) dumpLogs(w io.Writer, lines int) {
	entries, err := os.ReadDir(ps.logDir)
	if err != nil {
		fmt.Fprintln(w, "no logs:", err)
		return
	}
	for _, e := range entries {
		path := filepath.Join(ps.logDir, e.Name())
		fmt.Fprintf(w, "\n===== %s (last %d lines) =====\n", path, lines)
		fmt.Fprint(w, tail(path, lines))
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error() + "\n"
	}
	all := strings.SplitAfter(string(b), "\n")
	if len(all) > n {
		all = all[len(all)-n:]
	}
	for i, l := range all {
		// Temporal's errors carry stack traces on one line.
		if len(l) > 600 {
			all[i] = l[:600] + " ...\n"
		}
	}
	return strings.Join(all, "")
}

// waitLog waits until p's log contains needle, failing early when p exits.
func waitLog(ctx context.Context, p *proc, needle string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if b, err := os.ReadFile(p.logPath); err == nil && bytes.Contains(b, []byte(needle)) {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited (%v) before logging %q", p.name, p.err, needle)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not log %q within %v", p.name, needle, timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// run runs a command to completion with its output appended to logs/<name>.log and
// returns the error with the output's last lines.
func (ps *procs) run(ctx context.Context, name string, env []string, bin string, args ...string) error {
	logPath := filepath.Join(ps.logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(baseEnv(), env...)
	cmd.Stdout = io.MultiWriter(f, &buf)
	cmd.Stderr = io.MultiWriter(f, &buf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", bin, strings.Join(args, " "), err, lastLines(buf.String(), 30))
	}
	return nil
}

func lastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePorts returns n distinct free loopback ports. They are held open until all are
// chosen so that none is handed out twice; another process may still take one before
// its child binds it, which then fails to start and says so.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// freeLowPorts is freePorts below 32768: Temporal stores membership ports in a
// PostgreSQL smallint, and the kernel hands out ephemeral ports above it.
func freeLowPorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for try := 0; len(ports) < n; try++ {
		if try > 2000 {
			return nil, errors.New("no free ports between 20000 and 32767")
		}
		port := 20000 + rand.IntN(32767-20000)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		ports = append(ports, port)
	}
	return ports, nil
}

// waitTCP waits until addr accepts connections.
func waitTCP(ctx context.Context, addr string, timeout time.Duration, p *proc) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited (%v) before listening on %s", p.name, p.err, addr)
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("%s not listening within %v", addr, timeout), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
