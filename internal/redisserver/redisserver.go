// Package redisserver runs a real redis-server as a child process, for the dev stack
// (which must work with nothing installed beyond Go and a redis-server binary) and for
// tests that need a private Redis.
package redisserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled means no redis-server binary was found.
var ErrNotInstalled = errors.New("redis-server not found on PATH, in /usr/bin or in /usr/sbin: " +
	"run `make redis` to install it (or `apt-get install redis-server`), or set REDIS_URL to a Redis you run")

// Timeouts of Start and Stop.
const (
	readyTimeout = 10 * time.Second
	stopTimeout  = 5 * time.Second
)

// Config says how to run one redis-server.
type Config struct {
	// Dir holds the server's data files and is its working directory; it must exist.
	// A relative Dir is resolved against this process's working directory before the
	// server is started, so the child does not resolve it again from inside Dir.
	Dir string
	// Port is the loopback port to listen on; 0 picks a free one.
	Port int
	// Ephemeral turns persistence off (no AOF, no RDB snapshots): for tests, where
	// the data dies with the server anyway and fsyncs only cost time.
	Ephemeral bool
}

// Server is a running redis-server child process listening on loopback.
type Server struct {
	// Addr is the host:port the server listens on, always on 127.0.0.1.
	Addr string

	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // the exit status, valid after done is closed
	log  *tailBuffer

	stopOnce sync.Once
	stopErr  error
}

// Start launches redis-server on 127.0.0.1 at port (0 = a free port) with its data in
// dir (AOF with appendfsync everysec, so at most one second of writes is lost in a
// crash), and returns once the server answers PING (after at most 10 s). ctx bounds
// only the start: the server runs until Stop or Kill, or until this process dies
// (on Linux the child is signalled when its parent exits, so none is orphaned).
func Start(ctx context.Context, dir string, port int) (*Server, error) {
	return Config{Dir: dir, Port: port}.Start(ctx)
}

// Start launches the server c describes; see the package-level Start.
func (c Config) Start(ctx context.Context) (*Server, error) {
	bin, err := findBinary()
	if err != nil {
		return nil, err
	}
	if c.Dir == "" {
		return nil, errors.New("redisserver: no data directory")
	}
	if c.Dir, err = filepath.Abs(c.Dir); err != nil {
		return nil, fmt.Errorf("redisserver: data directory: %w", err)
	}
	// A free port found by listening can be taken by someone else before
	// redis-server binds it; then the server exits at once and another port is tried.
	attempts := 1
	if c.Port == 0 {
		attempts = 5
	}
	for i := 0; ; i++ {
		port := c.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		s, err := c.start(ctx, bin, port)
		if err == nil || i+1 >= attempts || ctx.Err() != nil || !errors.Is(err, errExited) {
			return s, err
		}
	}
}

// errExited marks a server that exited before answering PING.
var errExited = errors.New("redis-server exited")

func (c Config) start(ctx context.Context, bin string, port int) (*Server, error) {
	args := []string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--dir", c.Dir,
		"--daemonize", "no",
		"--logfile", "",
		"--save", "",
	}
	if c.Ephemeral {
		args = append(args, "--appendonly", "no")
	} else {
		args = append(args, "--appendonly", "yes", "--appendfsync", "everysec")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = c.Dir
	log := &tailBuffer{max: 8 << 10}
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redisserver: start %s: %w", bin, err)
	}
	s := &Server{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		cmd:  cmd,
		done: make(chan struct{}),
		log:  log,
	}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()

	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := s.waitReady(ctx); err != nil {
		_ = s.Kill()
		return nil, err
	}
	return s, nil
}

// waitReady polls PING until the server answers PONG. A server still loading its AOF
// answers -LOADING, which counts as not ready.
func (s *Server) waitReady(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := ping(ctx, s.Addr); err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("redisserver: %w on %s before answering (%v): %s", errExited, s.Addr, s.err, s.log.String())
		case <-ctx.Done():
			return fmt.Errorf("redisserver: %s did not answer PING: %w: %s", s.Addr, ctx.Err(), s.log.String())
		case <-tick.C:
		}
	}
}

func ping(ctx context.Context, addr string) error {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// URL returns the server's address as a redis:// URL on database 0.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Stop asks the server to shut down (SIGTERM, which makes it flush its AOF) and waits
// for it to exit, killing it when it has not exited after 5 s. It is safe to call
// more than once and after Kill.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		select {
		case <-s.done:
			return
		default:
		}
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			s.stopErr = fmt.Errorf("redisserver: stop: %w", err)
		}
		select {
		case <-s.done:
		case <-time.After(stopTimeout):
			_ = s.cmd.Process.Kill()
			<-s.done
			s.stopErr = fmt.Errorf("redisserver: %s did not stop within %s and was killed", s.Addr, stopTimeout)
		}
	})
	return s.stopErr
}

// Kill ends the server at once with SIGKILL, as a crash would, and waits until it has
// exited (so its port is free when Kill returns).
func (s *Server) Kill() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("redisserver: kill: %w", err)
	}
	<-s.done
	return nil
}

// Done is closed when the server process has exited, for whatever reason.
func (s *Server) Done() <-chan struct{} { return s.done }

// Log returns the last few kilobytes the server logged, for error messages.
func (s *Server) Log() string { return s.log.String() }

// fallbackPaths are where distribution packages install redis-server, tried when it is
// not on PATH (sbin is often missing from PATH for non-root users).
var fallbackPaths = []string{"/usr/bin/redis-server", "/usr/sbin/redis-server"}

func findBinary() (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	for _, p := range fallbackPaths {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", ErrNotInstalled
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redisserver: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
