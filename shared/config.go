package shared

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Config is every setting of wagate, read once from the environment. The variable
// names are part of the public contract (see README.md).
type Config struct {
	HTTPAddr string `env:"HTTP_ADDR" envDefault:":5000"`
	// MetricsAddr is where a process serves Prometheus's /metrics on a listener of its
	// own: the worker's only HTTP port (unset, the worker serves none, so that several
	// workers on one host never compete for a port); the API server and the dev stack
	// always serve /metrics on HTTP_ADDR and on MetricsAddr too when it is set.
	MetricsAddr string `env:"METRICS_ADDR"`

	WhatsAppAPIURL        string `env:"WHATSAPP_API_URL" envDefault:"https://graph.facebook.com"`
	WhatsAppAPIVersion    string `env:"WHATSAPP_API_VERSION" envDefault:"v23.0"`
	WhatsAppToken         string `env:"WHATSAPP_TOKEN"`
	WhatsAppPhoneNumberID string `env:"WHATSAPP_PHONE_NUMBER_ID"`
	WhatsAppAppSecret     string `env:"WHATSAPP_APP_SECRET"`
	// WhatsAppBusinessAccountID is the WhatsApp Business Account (WABA) whose template
	// registry template campaigns are checked against before they start; unset, they
	// are sent unchecked and Meta's refusals fail the recipients.
	WhatsAppBusinessAccountID string `env:"WHATSAPP_BUSINESS_ACCOUNT_ID"`
	// WhatsAppMaxMPS is the send rate allowed per business phone number, shared by every
	// task and every worker replica (Meta's default throughput is 80 messages/s).
	WhatsAppMaxMPS int `env:"WHATSAPP_MAX_MPS" envDefault:"80"`

	// MediaFetchAllowPrivate lets the worker download header media from loopback,
	// private and link-local addresses. Off by default, so that a client-given URL
	// cannot reach into the gateway's own network.
	MediaFetchAllowPrivate bool `env:"MEDIA_FETCH_ALLOW_PRIVATE" envDefault:"false"`

	WebhookVerifyToken string `env:"WEBHOOK_VERIFY_TOKEN"`
	WebSocketURL       string `env:"WEBSOCKET_URL"`

	RedisURL string `env:"REDIS_URL" envDefault:"redis://localhost:6379/0"`

	TemporalAddress   string `env:"TEMPORAL_ADDRESS" envDefault:"localhost:7233"`
	TemporalNamespace string `env:"TEMPORAL_NAMESPACE" envDefault:"default"`

	BulkMaxWorkers int `env:"BULK_MAX_WORKERS" envDefault:"10"`

	// APIKey and APIKeys are the accepted API keys (API_KEYS comma-separated), so that
	// a key rotates without downtime: add the new one, move the clients, drop the old.
	APIKey  string   `env:"API_KEY"`
	APIKeys []string `env:"API_KEYS" envSeparator:","`

	// WebhookAllowUnsigned lets the production apiserver start without
	// WHATSAPP_APP_SECRET and accept unsigned webhooks; with a secret it accepts an
	// unsigned webhook but still refuses a wrongly signed one (the dev stack).
	WebhookAllowUnsigned bool `env:"WEBHOOK_ALLOW_UNSIGNED" envDefault:"false"`

	// SummaryTTL is how long a finished task's summary is kept in Redis, so that
	// task-status still answers after Temporal's retention dropped the workflow.
	SummaryTTL time.Duration `env:"TASK_SUMMARY_TTL" envDefault:"720h"`

	// RelayStatuses also relays every status webhook item (sent, delivered, read,
	// failed) to WEBSOCKET_URL, in the relay's order, in the envelope of a relayed
	// message; off, only messages are relayed, as the contract says.
	RelayStatuses bool `env:"RELAY_STATUSES" envDefault:"false"`
}

// LoadConfig parses the environment into a Config and checks it.
func LoadConfig() (Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, cfg.Check()
}

// Check reports settings that cannot work.
func (c Config) Check() error {
	if c.BulkMaxWorkers < 1 || c.BulkMaxWorkers > MaxBulkWorkers {
		return fmt.Errorf("config: BULK_MAX_WORKERS must be between 1 and %d, got %d", MaxBulkWorkers, c.BulkMaxWorkers)
	}
	if c.WhatsAppMaxMPS < 1 {
		return fmt.Errorf("config: WHATSAPP_MAX_MPS must be at least 1, got %d", c.WhatsAppMaxMPS)
	}
	return nil
}

// SecurityWarnings are the settings an operator should know leave the API open:
// webhooks accepted without a signature, /api/* without a key.
func (c Config) SecurityWarnings() []string {
	var w []string
	if c.WhatsAppAppSecret == "" {
		w = append(w, "POST /webhook accepts unsigned bodies: WHATSAPP_APP_SECRET is not set (WEBHOOK_ALLOW_UNSIGNED=true)")
	} else if c.WebhookAllowUnsigned {
		w = append(w, "POST /webhook accepts unsigned bodies (WEBHOOK_ALLOW_UNSIGNED=true); signed ones are checked")
	}
	if len(c.Keys()) == 0 {
		w = append(w, "/api/* needs no key: neither API_KEY nor API_KEYS is set")
	}
	return w
}

// Keys returns the accepted API keys, API_KEY first, without blanks or repeats.
func (c Config) Keys() []string {
	var keys []string
	for _, k := range append([]string{c.APIKey}, c.APIKeys...) {
		k = strings.TrimSpace(k)
		if k != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// KeyFingerprint names an API key in logs without revealing it: the first 8 hex
// digits of its SHA-256.
func KeyFingerprint(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:4])
}

// Sandboxed reports whether no Meta credentials are configured, in which case the dev
// stack answers Graph API calls with its built-in sandbox.
func (c Config) Sandboxed() bool { return c.WhatsAppToken == "" }

// MaxBulkWorkers bounds BULK_MAX_WORKERS: beyond it a single task would exceed what one
// worker process sensibly holds open towards the Graph API.
const MaxBulkWorkers = 1000
