package main

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wagate/wagate/shared"
)

// consumer is the downstream WebSocket (WEBSOCKET_URL) the relay delivers to: it
// records the message id of every text frame, in arrival order. Reading also answers
// the relay's pings, which is how the relay knows a frame arrived.
type consumer struct {
	srv *http.Server
	url string

	mu  sync.Mutex
	ids []string
	bad []string // frames that are not one narrowed webhook message
}

func startConsumer() (*consumer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &consumer{url: "ws://" + ln.Addr().String() + "/ws"}
	up := websocket.Upgrader{}
	c.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			typ, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if typ != websocket.TextMessage {
				continue
			}
			id, err := frameID(msg)
			c.mu.Lock()
			if err != nil {
				c.bad = append(c.bad, fmt.Sprintf("%v: %.200s", err, msg))
			} else {
				c.ids = append(c.ids, id)
			}
			c.mu.Unlock()
		}
	})}
	go func() { _ = c.srv.Serve(ln) }()
	return c, nil
}

// frameID returns the message id of a relayed frame.
func frameID(frame []byte) (string, error) { return shared.RelayedMessageID(frame) }

// received returns the ids received so far and the malformed frames.
func (c *consumer) received() (ids, bad []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ids...), append([]string(nil), c.bad...)
}

func (c *consumer) close() { _ = c.srv.Close() }

// relayVerdict compares what the consumer received with what was posted: every
// posted id must arrive, the first arrivals in posting order, and anything else is a
// repeat of an id that already arrived.
type relayVerdict struct {
	missing  []string
	repeats  int
	outOfOrd int // first arrivals of ids posted before an id that arrived earlier
	unknown  []string
}

func judgeRelay(posted, got []string) relayVerdict {
	var v relayVerdict
	want := map[string]int{}
	for i, id := range posted {
		want[id] = i
	}
	seen := map[string]bool{}
	highest := -1
	for _, id := range got {
		i, ok := want[id]
		switch {
		case !ok:
			v.unknown = append(v.unknown, id)
		case seen[id]:
			v.repeats++
		default:
			seen[id] = true
			if i < highest {
				v.outOfOrd++
			}
			highest = max(highest, i)
		}
	}
	for _, id := range posted {
		if !seen[id] {
			v.missing = append(v.missing, id)
		}
	}
	return v
}
