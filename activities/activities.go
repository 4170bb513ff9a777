// Package activities holds every piece of wagate's workflow I/O: Graph API calls, Redis
// reads and writes, and the WebSocket relay. Activities are methods on one struct that
// carries their dependencies.
package activities

import (
	"log/slog"
	"time"

	"github.com/wagate/wagate/graphapi"
	"github.com/wagate/wagate/redisstore"
	"github.com/wagate/wagate/sendpolicy"
	"github.com/wagate/wagate/shared"
)

// Activities are wagate's activity implementations.
type Activities struct {
	Graph  *graphapi.Client
	Store  *redisstore.Store
	Config shared.Config
	Logger *slog.Logger
	// SendPolicy paces, breaks and schedules retries of every send (see sendpolicy);
	// New builds it for the configured phone number and WHATSAPP_MAX_MPS.
	SendPolicy *sendpolicy.Policy
	// RangeMinTime is how long a SendRange runs at least before its moved frontier
	// makes it return to the workflow: the Web UI memo's refresh. 0 means
	// DefaultRangeMinTime; a negative value returns at every chunk.
	RangeMinTime time.Duration

	relay *relaySocket // the connection to WEBSOCKET_URL, see relay.go
}

// New returns the activities over their dependencies.
func New(cfg shared.Config, graph *graphapi.Client, store *redisstore.Store, logger *slog.Logger) *Activities {
	if logger == nil {
		logger = slog.Default()
	}
	a := &Activities{Graph: graph, Store: store, Config: cfg, Logger: logger, relay: newRelaySocket(cfg.WebSocketURL)}
	if store != nil && graph != nil {
		a.SendPolicy = sendpolicy.New(store, graph.PhoneNumberID(), cfg.WhatsAppMaxMPS, sendpolicy.Options{}, logger)
	}
	return a
}

func (a *Activities) rangeMinTime() time.Duration {
	if a.RangeMinTime == 0 {
		return DefaultRangeMinTime
	}
	return max(a.RangeMinTime, 0)
}
