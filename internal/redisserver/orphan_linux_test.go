package redisserver

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary act as a parent process that starts a server, reports
// its address and then waits to be killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("REDISSERVER_TEST_PARENT"); dir != "" {
		s, err := Start(context.Background(), dir, 0)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("addr", s.Addr)
		select {}
	}
	os.Exit(m.Run())
}

func TestNoOrphanWhenParentDies(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "REDISSERVER_TEST_PARENT="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "addr ")
	if err != nil || !ok {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("parent said %q, %v; want its server address", line, err)
	}
	if err := ping(context.Background(), addr); err != nil {
		t.Fatalf("PING %s while the parent lives: %v", addr, err)
	}

	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return // the server died with its parent
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("server at %s still answers 5s after its parent was killed", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
