package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/wagate/wagate/internal/metrics"
	"github.com/wagate/wagate/shared"
)

// Relay timeouts; together they stay within the relay activity's 15 s StartToClose, and
// each step is shorter than its 10 s heartbeat timeout.
const (
	relayDialTimeout  = 4 * time.Second
	relayWriteTimeout = 4 * time.Second
	relayAckTimeout   = 5 * time.Second
)

// errNoWebSocketURL keeps inbound events queued while WEBSOCKET_URL is unset: the relay
// fails, retryably, until it is configured.
var errNoWebSocketURL = errors.New("WEBSOCKET_URL is not set: inbound events stay queued until it is configured")

// RelayInbound writes the stored inbound event ref.ID to WEBSOCKET_URL as one JSON text
// frame: the webhook JSON narrowed to that message plus "save_number" (true when the
// sender is not in the numbers cache) and "cached_info" (the cached record, or null),
// looked up now. It returns once the consumer has read the frame. A missing event (it
// expired) is a non-retryable shared.ErrTypeInboundMissing error; every other failure
// is retried by the workflow's policy.
func (a *Activities) RelayInbound(ctx context.Context, ref shared.InboundRef) error {
	if a.Config.WebSocketURL == "" || a.relay == nil {
		return errNoWebSocketURL
	}
	ev, err := a.Store.GetInboundEvent(ctx, ref.ID)
	if errors.Is(err, shared.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("inbound event %s is no longer stored", ref.ID), shared.ErrTypeInboundMissing, err)
	}
	if err != nil {
		return err
	}
	var cached *shared.Number
	if ev.From != "" {
		n, err := a.Store.GetNumber(ctx, ev.From)
		switch {
		case err == nil:
			cached = &n
		case !errors.Is(err, shared.ErrNotFound):
			return err
		}
	}
	frame, err := relayFrame(ev.Event, cached)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("inbound event %s is not a JSON object", ref.ID), "InboundInvalid", err)
	}
	beat := func() { activity.RecordHeartbeat(ctx) }
	beat()
	if err := a.relay.send(ctx, frame, beat); err != nil {
		return err
	}
	metrics.Relayed(ev.AcceptedAt, time.Now())
	return nil
}

// relayFrame appends save_number and cached_info to the event object, keeping the
// event's own bytes as they are.
func relayFrame(event json.RawMessage, cached *shared.Number) ([]byte, error) {
	body := bytes.TrimSpace(event)
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		return nil, errors.New("not a JSON object")
	}
	info := []byte("null")
	if cached != nil {
		var err error
		if info, err = json.Marshal(cached); err != nil {
			return nil, err
		}
	}
	var b bytes.Buffer
	b.Grow(len(body) + len(info) + 40)
	b.Write(body[:len(body)-1])
	if len(bytes.TrimSpace(body[1:len(body)-1])) > 0 {
		b.WriteByte(',')
	}
	fmt.Fprintf(&b, `"save_number":%t,"cached_info":%s}`, cached == nil, info)
	return b.Bytes(), nil
}

// SpillInbound stores a run of queued refs the relay workflow moves out of its state.
func (a *Activities) SpillInbound(ctx context.Context, in shared.SpillInput) error {
	return a.Store.PutRelaySpill(ctx, in.Key, in.Refs, shared.InboundEventTTL)
}

// LoadInboundSpill returns a spilled run of refs; a missing one is a non-retryable
// shared.ErrTypeInboundMissing error.
func (a *Activities) LoadInboundSpill(ctx context.Context, key string) ([]shared.InboundRef, error) {
	refs, err := a.Store.GetRelaySpill(ctx, key)
	if errors.Is(err, shared.ErrNotFound) {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("spilled inbound refs %s are no longer stored", key), shared.ErrTypeInboundMissing, err)
	}
	return refs, err
}

// DropInboundSpill deletes a spilled run of refs once the workflow holds them again.
func (a *Activities) DropInboundSpill(ctx context.Context, key string) error {
	return a.Store.DeleteRelaySpill(ctx, key)
}

// relaySocket is the worker's one persistent connection to WEBSOCKET_URL. It dials on
// first use and again after any failure. Each frame is confirmed by a ping the consumer
// answers only after reading it, because a write to a connection the peer already
// closed can succeed locally and the frame would be lost.
type relaySocket struct {
	url string

	mu   sync.Mutex // one frame at a time, in order
	conn *relayConn
	seq  uint64
}

// relayConn is one dialled connection and what its reader reports.
type relayConn struct {
	ws     *websocket.Conn
	pongs  chan string
	closed chan struct{} // closed by the reader when the connection fails
}

func newRelaySocket(url string) *relaySocket {
	return &relaySocket{url: url}
}

// send writes frame and waits until the consumer has read it.
func (s *relaySocket) send(ctx context.Context, frame []byte, beat func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.connect(ctx)
	if err != nil {
		return err
	}
	beat()
	if err := s.deliver(ctx, c, frame); err != nil {
		s.drop()
		return err
	}
	return nil
}

func (s *relaySocket) connect(ctx context.Context) (*relayConn, error) {
	if s.conn != nil {
		select {
		case <-s.conn.closed:
			s.drop()
		default:
			return s.conn, nil
		}
	}
	dctx, cancel := context.WithTimeout(ctx, relayDialTimeout)
	defer cancel()
	dialer := websocket.Dialer{HandshakeTimeout: relayDialTimeout}
	ws, resp, err := dialer.DialContext(dctx, s.url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("websocket %s: dial: %w", s.url, err)
	}
	// Room for the pongs of a whole window (sendFrames) and a few stale ones.
	c := &relayConn{ws: ws, pongs: make(chan string, 4*shared.RelayWindow), closed: make(chan struct{})}
	ws.SetPongHandler(func(data string) error {
		select {
		case c.pongs <- data:
		default:
		}
		return nil
	})
	go func() {
		defer close(c.closed)
		for {
			// Frames from the consumer are not part of the contract: read and discard,
			// which also processes its pings, pongs and close.
			if _, _, err := ws.NextReader(); err != nil {
				return
			}
		}
	}()
	s.conn = c
	return c, nil
}

func (s *relaySocket) deliver(ctx context.Context, c *relayConn, frame []byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(relayWriteTimeout))
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		return fmt.Errorf("websocket %s: write: %w", s.url, err)
	}
	s.seq++
	token := strconv.FormatUint(s.seq, 10)
	if err := c.ws.WriteControl(websocket.PingMessage, []byte(token), time.Now().Add(relayWriteTimeout)); err != nil {
		return fmt.Errorf("websocket %s: ping: %w", s.url, err)
	}
	timer := time.NewTimer(relayAckTimeout)
	defer timer.Stop()
	for {
		select {
		case got := <-c.pongs:
			if got == token {
				return nil
			}
			// A pong to an earlier, timed-out ping: keep waiting for ours.
		case <-c.closed:
			return fmt.Errorf("websocket %s: connection closed before the consumer read the event", s.url)
		case <-timer.C:
			return fmt.Errorf("websocket %s: the consumer did not confirm the event within %v", s.url, relayAckTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// drop closes the current connection; the next send dials again.
func (s *relaySocket) drop() {
	if s.conn != nil {
		_ = s.conn.ws.Close()
		s.conn = nil
	}
}
