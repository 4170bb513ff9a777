package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"

	"github.com/gorilla/websocket"

	"github.com/wagate/wagate/internal/app"
	"github.com/wagate/wagate/shared"
)

const (
	sinkPort = 8082
	// devVerifyToken is the hub.verify_token of the contract's webhook curl; the dev
	// stack accepts it when WEBHOOK_VERIFY_TOKEN is unset.
	devVerifyToken = "hola"
	// maxLoggedFrame bounds how much of one relayed frame the sink logs.
	maxLoggedFrame = 2048
)

// startWebSocketSink gives the dev stack a downstream WebSocket when WEBSOCKET_URL is
// unset: it accepts the relay's connection and logs every frame, so inbound messages
// can be followed end to end without a consumer of one's own.
func startWebSocketSink(g *app.Group, cfg *shared.Config, logger *slog.Logger, b *banner) error {
	if cfg.WebSocketURL != "" {
		b.websocket = cfg.WebSocketURL
		return nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(sinkPort)))
	if err != nil {
		logger.Warn("port 8082 is taken; the WebSocket sink uses a free port", "err", err)
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
	}
	log := logger.With("component", "websocket-sink")
	upgrader := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			_, frame, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if len(frame) > maxLoggedFrame {
				frame = append(frame[:maxLoggedFrame:maxLoggedFrame], "…"...)
			}
			log.Info("inbound event relayed", "frame", string(frame))
		}
	})
	stop, failed := app.ServeHTTP(ln, mux)
	g.Add("websocket sink", func(ctx context.Context) error { return stop(ctx) }, failed)
	cfg.WebSocketURL = "ws://" + ln.Addr().String() + "/ws"
	b.websocket = cfg.WebSocketURL + " (dev sink: logs every relayed event)"
	return nil
}

// devWebhookSecret keeps the dev stack's webhooks both signed and open: with the
// sandbox and no WHATSAPP_APP_SECRET, a random secret is made for this run, the sandbox
// signs its status webhooks with it and a wrong signature is refused, while unsigned
// bodies (the contract's webhook curl) are accepted, as in development.
func devWebhookSecret(cfg *shared.Config, b *banner) error {
	switch {
	case cfg.WhatsAppAppSecret != "" && cfg.WebhookAllowUnsigned:
		b.webhooks = "signatures checked (WHATSAPP_APP_SECRET); unsigned accepted (WEBHOOK_ALLOW_UNSIGNED)"
	case cfg.WhatsAppAppSecret != "":
		b.webhooks = "signature required (WHATSAPP_APP_SECRET)"
	case cfg.Sandboxed():
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return fmt.Errorf("dev webhook secret: %w", err)
		}
		cfg.WhatsAppAppSecret = hex.EncodeToString(key)
		cfg.WebhookAllowUnsigned = true
		b.webhooks = "the sandbox signs with a secret made for this run; unsigned accepted (development)"
	default:
		cfg.WebhookAllowUnsigned = true
		b.webhooks = "UNSIGNED accepted: set WHATSAPP_APP_SECRET to your Meta app secret"
	}
	return nil
}

// devWebhookToken lets the contract's GET /webhook curl work as written when no
// WEBHOOK_VERIFY_TOKEN is configured.
func devWebhookToken(cfg *shared.Config, b *banner) {
	if cfg.WebhookVerifyToken == "" {
		cfg.WebhookVerifyToken = devVerifyToken
		b.verify = devVerifyToken + " (dev default; set WEBHOOK_VERIFY_TOKEN)"
		return
	}
	b.verify = "from WEBHOOK_VERIFY_TOKEN"
}
