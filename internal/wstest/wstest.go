// Package wstest gives tests a real WebSocket server standing in for WEBSOCKET_URL. It is
// imported only from _test.go files.
package wstest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Consumer is a gorilla WebSocket server that records every text frame it receives.
// Stop takes it down, closing its connections (which httptest does not track once
// hijacked), and Start brings it back on the same address, as a consumer that goes
// away and comes back would.
type Consumer struct {
	t    testing.TB
	addr string
	srv  *httptest.Server

	mu        sync.Mutex
	frames    []string
	dropAfter int // > 0: close the connection after reading this many more frames
	delay     time.Duration
	accepted  int                      // connections upgraded
	conns     map[*websocket.Conn]bool // open connections
}

// New starts a Consumer on a free loopback port; it is stopped in t.Cleanup.
func New(t testing.TB) *Consumer {
	c := &Consumer{t: t, conns: map[*websocket.Conn]bool{}}
	c.Start()
	t.Cleanup(c.Stop)
	return c
}

// URL is the ws:// address to relay to.
func (c *Consumer) URL() string { return "ws://" + c.addr + "/ws" }

// Start serves on the consumer's address (a free port the first time).
func (c *Consumer) Start() {
	addr := c.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 50 { // the port may linger briefly after Stop
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("websocket consumer: listen %s: %v", addr, err)
	}
	c.addr = ln.Addr().String()
	up := websocket.Upgrader{}
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c.mu.Lock()
		c.accepted++
		c.conns[ws] = true
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			delete(c.conns, ws)
			c.mu.Unlock()
			ws.Close()
		}()
		for {
			typ, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if typ == websocket.TextMessage {
				c.mu.Lock()
				c.frames = append(c.frames, string(msg))
				drop := false
				if c.dropAfter > 0 {
					c.dropAfter--
					drop = c.dropAfter == 0
				}
				delay := c.delay
				c.mu.Unlock()
				if drop {
					// Gone without a close frame and without answering the ping after
					// this frame, as a consumer that crashes.
					return
				}
				if delay > 0 {
					time.Sleep(delay)
				}
			}
		}
	}))
	c.srv.Listener = ln
	c.srv.Start()
}

// Stop closes every connection and stops serving; a no-op when stopped.
func (c *Consumer) Stop() {
	if c.srv == nil {
		return
	}
	c.mu.Lock()
	for ws := range c.conns {
		ws.Close()
	}
	c.mu.Unlock()
	c.srv.CloseClientConnections()
	c.srv.Close()
	c.srv = nil
}

// DropAfter makes the consumer close its connection abruptly right after it has read n
// more frames, before it answers the ping that follows the last one.
func (c *Consumer) DropAfter(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropAfter = n
}

// SetDelay makes the consumer pause d after reading each frame, as a slow consumer.
func (c *Consumer) SetDelay(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.delay = d
}

// Frames returns the text frames received so far, in order.
func (c *Consumer) Frames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.frames)
}

// Connections returns how many connections the consumer has accepted.
func (c *Consumer) Connections() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.accepted
}

// WaitFrames waits until at least n frames arrived and returns them all; the test
// fails after timeout.
func (c *Consumer) WaitFrames(t testing.TB, n int, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f := c.Frames()
		if len(f) >= n {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("websocket consumer has %d frames after %v; want %d", len(f), timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
