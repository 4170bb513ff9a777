// Package sandbox is a stand-in for Meta's WhatsApp Cloud API (the Graph API endpoints
// wagate uses). It validates payloads against Meta's documented rules and limits,
// answers with Meta's success and error shapes and codes, enforces the per-number and
// per-recipient rate limits, keeps uploaded media, sends signed status webhooks, and can
// play Meta's real world: injected faults, a deterministic per-recipient fault mix,
// incident windows and a throughput limit changed at run time. It serves tests and
// benchmarks in process (Handler) and the dev stack as the cmd/sandbox binary. It never
// contacts anything but the configured webhook URL.
package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultStatusDelay spaces the sent, delivered and read webhooks of one message.
	DefaultStatusDelay = 200 * time.Millisecond
	// DefaultTimeoutDelay is how long a Timeout fault hangs when Faults.TimeoutDelay is 0.
	DefaultTimeoutDelay = 30 * time.Second

	pairWindow     = 6 * time.Second
	mpsWindow      = time.Second
	messageLogSize = 10_000
	// maxDuplicateHashes bounds duplicate detection memory (8 bytes a message plus map
	// overhead); past it the set starts over.
	maxDuplicateHashes = 4_000_000
	maxSendBody        = 1 << 20
)

// Options configures a Server. The zero value accepts any token and phone number id,
// answers at once, and enforces no rate limit.
type Options struct {
	PhoneNumberID string        // accepted phone-number-id; "" accepts any
	Token         string        // accepted bearer token; "" accepts any non-empty bearer
	Latency       time.Duration // added before answering /messages and /media
	Jitter        time.Duration // +- uniform jitter on Latency
	// MPS is Meta's per-number throughput limit: more than MPS accepted sends in any 1 s
	// window answer 130429; 0 = no limit.
	MPS int
	// MPSCounter is how MPS counts (CounterSliding when empty).
	MPSCounter MPSCounter
	// PairBurst bounds messages to one recipient: more than PairBurst within 6 s answer
	// 131056; 0 = off.
	PairBurst int
	// PublicURL is the base URL media download links point to; when empty, the request's
	// Host is used. It may be set later with SetPublicURL.
	PublicURL string
	// WebhookURL, when set, receives status webhooks (sent, delivered, read) for each
	// accepted message.
	WebhookURL string
	// AppSecret keys the X-Hub-Signature-256 header of those webhooks; unsigned when empty.
	AppSecret   string
	StatusDelay time.Duration // spacing between sent -> delivered -> read (default 200ms)
	// Statuses is the status plan: per-status delays (a zero delay is StatusDelay), a
	// share of later failures and a share of read messages (see StatusPlan); the zero
	// value posts sent, delivered and read for every message. SetStatusPlan and PUT
	// /_sandbox/statuses change it at run time.
	Statuses StatusPlan
	Logger   *slog.Logger
	// Templates is the message template registry that template sends are checked
	// against and GET /{waba-id}/message_templates lists; nil = DefaultTemplates().
	Templates []Template
	// BusinessAccountID is the accepted WhatsApp Business Account id of the template
	// routes; "" accepts any.
	BusinessAccountID string
}

// Faults are injected into POST /messages after a payload passed validation. A
// probability is in [0, 1]; 1 makes every send fail that way.
type Faults struct {
	// RateLimit is the probability of answering 130429 (HTTP 400, OAuthException).
	RateLimit float64 `json:"rate_limit,omitempty"`
	// ServerError is the probability of HTTP 500 with Meta's body, code 1.
	ServerError float64 `json:"server_error,omitempty"`
	// BadGateway is the probability of HTTP 502 with an HTML body and no Meta JSON.
	BadGateway float64 `json:"bad_gateway,omitempty"`
	// Timeout is the probability of accepting the message (it IS delivered) and then
	// hanging TimeoutDelay before answering: an ambiguous outcome for the client.
	Timeout      float64       `json:"timeout,omitempty"`
	TimeoutDelay time.Duration `json:"-"` // in JSON: "timeout_delay" as "30s" or nanoseconds
	// PermanentTo maps recipient digits to the Meta code answered to every send to them
	// (e.g. 131026, 131047, 131050, 100).
	PermanentTo map[string]int `json:"permanent_to,omitempty"`
	// FailFirst maps recipient digits to how many initial sends to them are answered with
	// a retryable 131000 (HTTP 500) before they succeed.
	FailFirst map[string]int `json:"fail_first,omitempty"`
	// Mix draws faults per recipient, deterministically from its seed (see Mix).
	Mix *Mix `json:"mix,omitempty"`
}

type faultsJSON Faults

type faultsWire struct {
	faultsJSON
	TimeoutDelay any `json:"timeout_delay,omitempty"`
}

// MarshalJSON writes TimeoutDelay as a Go duration string.
func (f Faults) MarshalJSON() ([]byte, error) {
	w := faultsWire{faultsJSON: faultsJSON(f)}
	if f.TimeoutDelay != 0 {
		w.TimeoutDelay = f.TimeoutDelay.String()
	}
	return json.Marshal(w)
}

// UnmarshalJSON accepts timeout_delay as a duration string ("2s") or as nanoseconds.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var w faultsWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*f = Faults(w.faultsJSON)
	d, err := wireDuration("timeout_delay", w.TimeoutDelay)
	f.TimeoutDelay = d
	return err
}

// Validate reports probabilities and shares outside [0, 1] and a mix that cannot be
// played (shares adding up past 1, a retryable code as the permanent one).
func (f *Faults) Validate() error {
	for name, p := range map[string]float64{"rate_limit": f.RateLimit, "server_error": f.ServerError,
		"bad_gateway": f.BadGateway, "timeout": f.Timeout} {
		if p < 0 || p > 1 {
			return fmt.Errorf("%s: %v is not a probability in [0, 1]", name, p)
		}
	}
	if f.Mix != nil {
		return f.Mix.validate()
	}
	return nil
}

// Stats counts what the sandbox did since it started or was last Reset.
type Stats struct {
	Accepted   int64 `json:"accepted"`   // sends answered 200 (duplicates included)
	Rejected   int64 `json:"rejected"`   // sends answered with an error
	Duplicates int64 `json:"duplicates"` // accepted sends identical to an earlier accepted one
	// Recipients counts distinct recipients with at least one accepted send; Repeats the
	// accepted sends to a recipient who already had one. For one message per recipient,
	// a lost recipient is one missing from Recipients and Repeats counts duplicates.
	Recipients int64 `json:"recipients"`
	Repeats    int64 `json:"repeats"`
	// Throttled counts the 130429 answers of the enforced per-number limit (Limits.MPS);
	// ByCode[130429] also has those of the rate_limit fault.
	Throttled      int64 `json:"throttled"`
	Uploads        int64 `json:"uploads"`         // media uploads stored
	MediaGets      int64 `json:"media_gets"`      // GET /{media-id} answered
	WebhooksSent   int64 `json:"webhooks_sent"`   // statuses posted and answered 200
	WebhooksFailed int64 `json:"webhooks_failed"` // statuses dropped or not answered 200
	// ByType counts accepted sends per type: text, template, interactive.cta_url,
	// interactive.list, interactive.button, image, video, document.
	ByType map[string]int64 `json:"by_type"`
	// ByCode counts rejected sends per Meta code; an HTML 502 counts under 502.
	ByCode map[int]int64 `json:"by_code"`
	// MaxInFlight is the highest number of concurrent /messages requests seen.
	MaxInFlight int64 `json:"max_in_flight"`
	// Limits in force, and the current or last incident window.
	Limits   Limits         `json:"limits"`
	Incident IncidentStatus `json:"incident"`
}

type logEntry struct {
	to      string
	payload json.RawMessage
}

// window remembers the last len(ts) event times (nanoseconds since the server started,
// 0 = empty): a new event fits when the oldest of them is older than the span.
type window struct {
	ts   []int64
	next int
}

// MPSCounter is how the per-number throughput limit counts accepted sends. Meta
// documents the limit (messages per second) but not how it counts them, so the sandbox
// plays the usual shapes, and a client must stay under the limit whichever Meta uses.
type MPSCounter string

// Throughput counters.
const (
	// CounterSliding: at most MPS in any 1 s window (the default).
	CounterSliding MPSCounter = "sliding"
	// CounterFixed: at most MPS per clock second, counted afresh each second, so up to
	// 2*MPS pass in the second across a boundary.
	CounterFixed MPSCounter = "fixed"
	// CounterBucket: a token bucket holding up to MPS sends, refilled at MPS a second: a
	// burst of MPS at once after a quiet second, then MPS a second.
	CounterBucket MPSCounter = "bucket"
)

// Valid reports whether c is a known counter ("" is the default).
func (c MPSCounter) Valid() bool {
	return c == "" || c == CounterSliding || c == CounterFixed || c == CounterBucket
}

// limiter is a per-number throughput limit of n sends a second; times are ns since
// the server started.
type limiter interface {
	fits(now int64) bool
	add(now int64)
	resized(n int) limiter
}

func newLimiter(c MPSCounter, n int) limiter {
	switch c {
	case CounterFixed:
		return &fixedLimit{n: int64(n), sec: -1}
	case CounterBucket:
		return &bucketLimit{n: float64(n), tokens: float64(n), last: -1}
	}
	return slidingLimit{newWindow(n)}
}

type slidingLimit struct{ w *window }

func (l slidingLimit) fits(now int64) bool   { return l.w.fits(now, int64(mpsWindow)) }
func (l slidingLimit) add(now int64)         { l.w.add(now) }
func (l slidingLimit) resized(n int) limiter { return slidingLimit{l.w.resized(n)} }

type fixedLimit struct{ n, sec, used int64 }

func (l *fixedLimit) fits(now int64) bool {
	return now/int64(mpsWindow) != l.sec || l.used < l.n
}

func (l *fixedLimit) add(now int64) {
	if sec := now / int64(mpsWindow); sec != l.sec {
		l.sec, l.used = sec, 0
	}
	l.used++
}

func (l *fixedLimit) resized(n int) limiter {
	return &fixedLimit{n: int64(n), sec: l.sec, used: l.used}
}

type bucketLimit struct {
	n, tokens float64
	last      int64
}

func (l *bucketLimit) refill(now int64) {
	if l.last >= 0 && now > l.last {
		l.tokens = min(l.n, l.tokens+float64(now-l.last)*l.n/float64(mpsWindow))
	}
	l.last = now
}

func (l *bucketLimit) fits(now int64) bool {
	l.refill(now)
	return l.tokens >= 1
}

func (l *bucketLimit) add(now int64) {
	l.refill(now)
	l.tokens--
}

func (l *bucketLimit) resized(n int) limiter {
	return &bucketLimit{n: float64(n), tokens: min(l.tokens, float64(n)), last: l.last}
}

func newWindow(n int) *window { return &window{ts: make([]int64, n)} }

func (w *window) fits(now, span int64) bool {
	oldest := w.ts[w.next]
	return oldest == 0 || now-oldest >= span
}

func (w *window) add(now int64) {
	w.ts[w.next] = now
	w.next = (w.next + 1) % len(w.ts)
}

func (w *window) newest() int64 { return w.ts[(w.next+len(w.ts)-1)%len(w.ts)] }

// Server is a Graph API sandbox. Its methods are safe for concurrent use.
type Server struct {
	opts      Options
	log       *slog.Logger
	start     time.Time
	publicURL atomic.Pointer[string]
	faults    atomic.Pointer[Faults]
	urlKey    []byte
	seed      maphash.Seed
	seq       atomic.Uint64
	media     *mediaStore
	templates *registry
	hooks     *webhooks

	inFlight    atomic.Int64
	maxInFlight atomic.Int64

	mu         sync.Mutex // guards everything below
	stats      Stats
	dups       map[uint64]struct{}
	deliveries map[string]int64
	msgLog     []logEntry // ring of the last messageLogSize accepted payloads
	logNext    int
	mps        map[string]limiter // per phone number id
	pair       map[string]*window // per recipient digits
	pairSwept  int64
	failed     map[string]int // FailFirst answers given per recipient
	mixed      map[string]*mixState
	mpsLimit   int
	mpsCounter MPSCounter
	pairBurst  int
	incident   incidentWindow
	incRefused int64
	firstAfter time.Time
	timeline   []Second // ring of the last timelineSize seconds with a send
	tlNext     int
}

// New builds a Server. When opts.WebhookURL is set it starts the webhook senders; Close
// stops them.
func New(opts Options) *Server {
	if opts.StatusDelay <= 0 {
		opts.StatusDelay = DefaultStatusDelay
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key := make([]byte, 32)
	rand.Read(key)
	s := &Server{
		opts:   opts,
		log:    log,
		start:  time.Now(),
		urlKey: key,
		seed:   maphash.MakeSeed(),
		media:  newMediaStore(maxMediaBytes),

		mpsLimit:   max(opts.MPS, 0),
		mpsCounter: opts.MPSCounter,
		pairBurst:  max(opts.PairBurst, 0),
	}
	s.templates = newRegistry(opts.Templates)
	s.SetPublicURL(opts.PublicURL)
	s.faults.Store(&Faults{})
	s.resetLocked()
	if opts.WebhookURL != "" {
		plan := opts.Statuses
		for _, d := range []*time.Duration{&plan.SentDelay, &plan.DeliveredDelay, &plan.ReadDelay} {
			if *d <= 0 {
				*d = opts.StatusDelay
			}
		}
		s.hooks = newWebhooks(opts.WebhookURL, opts.AppSecret, plan, log)
	}
	return s
}

// Close stops the webhook senders; statuses not yet posted are dropped. The handler
// keeps answering.
func (s *Server) Close() {
	if s.hooks != nil {
		s.hooks.close()
	}
}

// SetPublicURL sets the base URL used in media download links, for a server whose
// address is known only after it started listening.
func (s *Server) SetPublicURL(u string) {
	u = strings.TrimRight(u, "/")
	s.publicURL.Store(&u)
}

// SetFaults replaces the injected faults and restarts the FailFirst and Mix counts.
func (s *Server) SetFaults(f Faults) {
	s.faults.Store(&f)
	s.mu.Lock()
	s.failed = make(map[string]int)
	s.mixed = make(map[string]*mixState)
	s.mu.Unlock()
}

// Accepted is Stats().Accepted, without the copy: cheap enough to ask often.
func (s *Server) Accepted() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.Accepted
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := s.stats
	st.ByType = make(map[string]int64, len(s.stats.ByType))
	for k, v := range s.stats.ByType {
		st.ByType[k] = v
	}
	st.ByCode = make(map[int]int64, len(s.stats.ByCode))
	for k, v := range s.stats.ByCode {
		st.ByCode[k] = v
	}
	st.Recipients = int64(len(s.deliveries))
	st.Limits = s.limitsLocked()
	st.Incident = s.incidentLocked(time.Now())
	s.mu.Unlock()
	st.MaxInFlight = s.maxInFlight.Load()
	if s.hooks != nil {
		st.WebhooksSent = s.hooks.sent.Load()
		st.WebhooksFailed = s.hooks.failed.Load()
	}
	return st
}

// Reset zeroes the stats, the message log, duplicate detection, delivery counts, the
// rate-limit windows, the FailFirst and Mix counts, the timeline and an ended incident
// window. Faults, limits, an open incident window and media are kept.
func (s *Server) Reset() {
	s.mu.Lock()
	s.resetLocked()
	s.mu.Unlock()
	s.maxInFlight.Store(s.inFlight.Load())
	if s.hooks != nil {
		s.hooks.sent.Store(0)
		s.hooks.failed.Store(0)
		s.hooks.posted.reset()
	}
}

func (s *Server) resetLocked() {
	s.stats = Stats{ByType: make(map[string]int64), ByCode: make(map[int]int64)}
	s.dups = make(map[uint64]struct{})
	s.deliveries = make(map[string]int64)
	s.msgLog = make([]logEntry, 0, 64)
	s.logNext = 0
	s.mps = make(map[string]limiter)
	s.pair = make(map[string]*window)
	s.failed = make(map[string]int)
	s.mixed = make(map[string]*mixState)
	s.incRefused = 0
	s.firstAfter = time.Time{}
	if !time.Now().Before(s.incident.end) {
		s.incident = incidentWindow{} // an ended window is forgotten, an open one goes on
	}
	s.timeline = nil
	s.tlNext = 0
}

// Messages returns the accepted payloads for one recipient (any format; compared by
// digits), oldest first. Only the last 10,000 accepted messages overall are kept.
func (s *Server) Messages(to string) []json.RawMessage {
	digits := onlyDigits(to)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []json.RawMessage
	n := len(s.msgLog)
	start := 0
	if n == messageLogSize {
		start = s.logNext
	}
	for i := range n {
		e := s.msgLog[(start+i)%n]
		if e.to == digits {
			out = append(out, e.payload)
		}
	}
	return out
}

// Deliveries returns how many sends to `to` were accepted (duplicates included).
func (s *Server) Deliveries(to string) int {
	digits := onlyDigits(to)
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.deliveries[digits])
}

func onlyDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// Handler returns the HTTP handler serving the Graph API routes (with or without a
// /vNN.N prefix) and the /_sandbox control, download and asset routes.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if parts[0] == "_sandbox" {
		s.serveControl(w, r, parts[1:])
		return
	}
	if isVersion(parts[0]) {
		parts = parts[1:]
	}
	isSend := len(parts) == 2 && parts[1] == "messages" && r.Method == http.MethodPost
	if !isSend {
		// Meta is down for every Graph call; a send is answered after its latency.
		if e := s.inIncident(r, false); e == errHung {
			return
		} else if e != nil {
			writeError(w, e)
			return
		}
	}
	var e *apiError
	switch {
	case len(parts) == 2 && parts[1] == "messages":
		if r.Method != http.MethodPost {
			e = unsupported(strings.ToLower(r.Method), parts[0]+"/messages")
			break
		}
		e = s.handleSend(w, r, parts[0])
	case len(parts) == 2 && parts[1] == "message_templates":
		e = s.handleTemplates(w, r, parts[0])
	case len(parts) == 2 && parts[1] == "media":
		if r.Method != http.MethodPost {
			e = unsupported(strings.ToLower(r.Method), parts[0]+"/media")
			break
		}
		e = s.handleUpload(w, r, parts[0])
	case len(parts) == 1 && parts[0] != "":
		e = s.handleNode(w, r, parts[0])
	default:
		e = &apiError{status: http.StatusBadRequest, code: CodeUnknownPath, typ: "OAuthException",
			message: "Unknown path components: " + r.URL.Path, details: "Unknown path components: " + r.URL.Path}
	}
	if e != nil {
		writeError(w, e)
	}
}

// isVersion reports whether seg looks like "v23.0".
func isVersion(seg string) bool {
	major, minor, ok := strings.Cut(strings.TrimPrefix(seg, "v"), ".")
	return ok && len(seg) > 1 && seg[0] == 'v' && allDigits(major) && allDigits(minor)
}

func allDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// handleNode answers GET and DELETE on /{v}/{id}: an uploaded media id, or the phone
// number itself (the health ping).
func (s *Server) handleNode(w http.ResponseWriter, r *http.Request, id string) *apiError {
	if e := s.checkAuth(r); e != nil {
		return e
	}
	method := strings.ToLower(r.Method)
	if it := s.media.get(id); it != nil {
		switch r.Method {
		case http.MethodGet:
			return s.handleMediaGet(w, r, it)
		case http.MethodDelete:
			s.media.delete(id)
			writeJSON(w, http.StatusOK, map[string]bool{"success": true})
			return nil
		}
		return unsupported(method, id)
	}
	if r.Method != http.MethodGet || !allDigits(id) || (s.opts.PhoneNumberID != "" && id != s.opts.PhoneNumberID) {
		return unsupported(method, id)
	}
	return s.handlePhone(w, r, id)
}

func (s *Server) handlePhone(w http.ResponseWriter, r *http.Request, pnid string) *apiError {
	all := map[string]any{
		"id":                       pnid,
		"display_phone_number":     DisplayPhoneNumber,
		"verified_name":            "wagate sandbox",
		"quality_rating":           "GREEN",
		"platform_type":            "CLOUD_API",
		"code_verification_status": "VERIFIED",
		"name_status":              "APPROVED",
		"throughput":               map[string]string{"level": "STANDARD"},
		"whatsapp_business_manager_messaging_limit": "TIER_UNLIMITED",
	}
	fields := r.URL.Query().Get("fields")
	if fields == "" {
		writeJSON(w, http.StatusOK, map[string]any{
			"id": pnid, "display_phone_number": DisplayPhoneNumber,
			"verified_name": all["verified_name"], "quality_rating": all["quality_rating"],
			"throughput": all["throughput"],
		})
		return nil
	}
	out := map[string]any{"id": pnid}
	for _, f := range strings.Split(fields, ",") {
		f = strings.TrimSpace(f)
		v, ok := all[f]
		if !ok {
			return fieldErr(CodeInvalidParameter, "fields",
				fmt.Sprintf("Tried accessing nonexisting field (%s) on node type (WhatsAppBusinessPhoneNumber)", f))
		}
		out[f] = v
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// checkAuth accepts "Authorization: Bearer <token>" or Graph's access_token parameter.
func (s *Server) checkAuth(r *http.Request) *apiError {
	tok := ""
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		tok = strings.TrimSpace(h[7:])
	} else if !strings.HasPrefix(r.URL.Path, "/_sandbox/") {
		tok = r.URL.Query().Get("access_token")
	}
	if tok == "" || (s.opts.Token != "" && tok != s.opts.Token) {
		return authErr()
	}
	return nil
}

func (s *Server) checkPNID(pnid, method string) *apiError {
	if !allDigits(pnid) || (s.opts.PhoneNumberID != "" && pnid != s.opts.PhoneNumberID) {
		return unsupported(method, pnid)
	}
	return nil
}

func (s *Server) baseURL(r *http.Request) string {
	if u := *s.publicURL.Load(); u != "" {
		return u
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// sleep waits Latency +- Jitter, or until the client goes away.
func (s *Server) sleep(r *http.Request) error {
	d := s.opts.Latency
	if j := s.opts.Jitter; j > 0 {
		d += time.Duration(mrand.Int64N(int64(2*j)+1)) - j
	}
	return wait(r.Context(), d)
}

func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handleSend answers POST /{v}/{phone-number-id}/messages.
func (s *Server) handleSend(w http.ResponseWriter, r *http.Request, pnid string) *apiError {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for m := s.maxInFlight.Load(); n > m && !s.maxInFlight.CompareAndSwap(m, n); m = s.maxInFlight.Load() {
	}
	// The body is read before waiting: net/http notices a client that hangs up (and
	// cancels the request context) only once the body has been consumed.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSendBody))
	if err := s.sleep(r); err != nil {
		return nil // the client is gone: nothing was accepted, nothing to answer
	}
	var e *apiError
	if ie := s.inIncident(r, true); ie == errHung {
		return nil // never answered: nothing was accepted
	} else if ie != nil {
		e = ie
	} else if err != nil {
		e = fieldErr(CodeInvalidParameter, "body", "unreadable or larger than 1 MB")
	} else {
		e = s.send(w, r, pnid, body)
	}
	if e != nil {
		s.reject(e.code)
	}
	return e
}

func (s *Server) reject(code int) {
	s.mu.Lock()
	s.stats.Rejected++
	s.stats.ByCode[code]++
	s.tickLocked(time.Now(), false, code)
	s.mu.Unlock()
}

func (s *Server) send(w http.ResponseWriter, r *http.Request, pnid string, body []byte) *apiError {
	if e := s.checkAuth(r); e != nil {
		return e
	}
	if e := s.checkPNID(pnid, "post"); e != nil {
		return e
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m object
	if err := dec.Decode(&m); err != nil || m == nil {
		return fieldErr(CodeInvalidParameter, "body", "a JSON object is required")
	}
	if _, isStatus := m["status"]; isStatus {
		return markRead(w, m)
	}
	req, e := validateSend(m, s.media.known)
	if e != nil {
		return e
	}
	if req.typ == "template" {
		if e := s.templates.checkTemplateSend(req.content); e != nil {
			return e
		}
	}
	f := s.faults.Load()
	switch {
	case chance(f.BadGateway):
		s.reject(http.StatusBadGateway)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n")
		return nil
	case chance(f.ServerError):
		return metaErr(CodeUnknown, "")
	case chance(f.RateLimit):
		return metaErr(CodeRateLimit, "")
	}
	if code, ok := f.PermanentTo[req.digits]; ok {
		return metaErr(code, "")
	}
	if e := s.accept(req, pnid, body, f); e != nil {
		return e
	}
	wamid := s.newWAMID(req.digits)
	if s.hooks != nil {
		category := "service"
		if req.typ == "template" {
			category = "utility"
		}
		s.hooks.accepted(statusEvent{wamid: wamid, to: req.digits, pnid: pnid, opaque: req.opaque, category: category})
	}
	if chance(f.Timeout) {
		d := f.TimeoutDelay
		if d <= 0 {
			d = DefaultTimeoutDelay
		}
		if wait(r.Context(), d) != nil {
			return nil
		}
	}
	msg := sentMessage{ID: wamid}
	if req.typ == "template" {
		msg.MessageStatus = "accepted"
	}
	writeJSON(w, http.StatusOK, sendResponse{
		MessagingProduct: "whatsapp",
		Contacts:         []contact{{Input: req.to, WaID: req.digits}},
		Messages:         []sentMessage{msg},
	})
	return nil
}

// sendResponse is Meta's answer to an accepted send, fields in Meta's order.
type sendResponse struct {
	MessagingProduct string        `json:"messaging_product"`
	Contacts         []contact     `json:"contacts"`
	Messages         []sentMessage `json:"messages"`
}

type contact struct {
	Input string `json:"input"`
	WaID  string `json:"wa_id"`
}

type sentMessage struct {
	ID            string `json:"id"`
	MessageStatus string `json:"message_status,omitempty"`
}

// accept applies FailFirst, the fault mix and the rate limits, then records the
// message. All under one lock, and the clock is read under it so that the windows see
// times in order: a rejected send consumes no quota, and no more than the limit is ever
// accepted in any 1 s window.
func (s *Server) accept(req *sendRequest, pnid string, body []byte, f *Faults) *apiError {
	hash := s.hash(req)
	s.mu.Lock()
	defer s.mu.Unlock()
	wall := time.Now()
	now := int64(wall.Sub(s.start)) + 1
	if limit := f.FailFirst[req.digits]; s.failed[req.digits] < limit {
		s.failed[req.digits]++
		return metaErr(CodeGeneric, "")
	}
	if f.Mix != nil {
		if e := s.mixLocked(f.Mix, req.digits, now); e != nil {
			return e
		}
	}
	var pw *window
	var mw limiter
	if s.pairBurst > 0 {
		if pw = s.pair[req.digits]; pw == nil {
			s.sweepPairs(now)
			pw = newWindow(s.pairBurst)
			s.pair[req.digits] = pw
		}
		if !pw.fits(now, int64(pairWindow)) {
			return metaErr(CodePairRateLimit, "")
		}
	}
	if s.mpsLimit > 0 {
		if mw = s.mps[pnid]; mw == nil {
			mw = newLimiter(s.mpsCounter, s.mpsLimit)
			s.mps[pnid] = mw
		}
		if !mw.fits(now) {
			s.stats.Throttled++
			return metaErr(CodeRateLimit, "")
		}
	}
	if pw != nil {
		pw.add(now)
	}
	if mw != nil {
		mw.add(now)
	}
	s.stats.Accepted++
	s.stats.ByType[req.kind]++
	if _, dup := s.dups[hash]; dup {
		s.stats.Duplicates++
	} else {
		if len(s.dups) >= maxDuplicateHashes {
			s.dups = make(map[uint64]struct{})
		}
		s.dups[hash] = struct{}{}
	}
	if s.deliveries[req.digits] > 0 {
		s.stats.Repeats++
	}
	s.deliveries[req.digits]++
	s.noteAcceptedLocked(wall)
	s.tickLocked(wall, true, 0)
	e := logEntry{to: req.digits, payload: json.RawMessage(body)}
	if len(s.msgLog) < messageLogSize {
		s.msgLog = append(s.msgLog, e)
	} else {
		s.msgLog[s.logNext] = e
		s.logNext = (s.logNext + 1) % messageLogSize
	}
	return nil
}

// sweepPairs forgets recipients idle for a whole pair window, so memory follows the
// recipients of the last 6 seconds. It runs at most once a window.
func (s *Server) sweepPairs(now int64) {
	if len(s.pair) < 10_000 || now-s.pairSwept < int64(pairWindow) {
		return
	}
	s.pairSwept = now
	for k, w := range s.pair {
		if now-w.newest() >= int64(pairWindow) {
			delete(s.pair, k)
		}
	}
}

// hash is the canonical form of a send for duplicate detection: recipient, type, the
// type object re-encoded (map keys sorted, so key order and spacing do not matter) and
// the callback data.
func (s *Server) hash(req *sendRequest) uint64 {
	content, _ := json.Marshal(req.content)
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(req.digits)
	h.WriteByte(0)
	h.WriteString(req.typ)
	h.WriteByte(0)
	h.Write(content)
	h.WriteByte(0)
	h.WriteString(req.opaque)
	return h.Sum64()
}

// newWAMID builds an id shaped like Meta's: "wamid." and base64 of the recipient and a
// unique hex id.
func (s *Server) newWAMID(digits string) string {
	var b bytes.Buffer
	b.Write([]byte{0x1C, 0x18, byte(len(digits))})
	b.WriteString(digits)
	b.WriteString("\x15\x02\x00\x11\x18\x12")
	fmt.Fprintf(&b, "%08X%010X", s.seq.Add(1)&0xFFFFFFFF, mrand.Uint64()&0xFFFFFFFFFF)
	b.WriteByte(0)
	return "wamid." + base64.StdEncoding.EncodeToString(b.Bytes())
}

// markRead answers {"status":"read","message_id":...}, Meta's read receipt call.
func markRead(w http.ResponseWriter, m object) *apiError {
	if mp, _ := m["messaging_product"].(string); mp != "whatsapp" {
		return fieldErr(CodeInvalidParameter, "messaging_product", "must be 'whatsapp'")
	}
	if st, _ := m["status"].(string); st != "read" {
		return fieldErr(CodeInvalidParameter, "status", "must be 'read'")
	}
	if id, _ := m["message_id"].(string); id == "" {
		return missing("message_id")
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
	return nil
}

func chance(p float64) bool { return p > 0 && (p >= 1 || mrand.Float64() < p) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	w.Write(b)
}

// serveControl answers the /_sandbox routes: stats, reset, faults, messages, media
// downloads and sample assets. They need no token, except downloads (as on Meta).
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request, parts []string) {
	route := r.Method + " " + strings.Join(parts, "/")
	switch {
	case len(parts) == 2 && parts[0] == "download" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		s.handleDownload(w, r, parts[1])
	case len(parts) == 2 && parts[0] == "assets" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		serveAsset(w, r, parts[1])
	case len(parts) >= 1 && parts[0] == "templates" && s.serveTemplateControl(w, r, parts):
	case len(parts) == 1 && parts[0] == "statuses" && (r.Method == http.MethodGet || r.Method == http.MethodPut):
		s.serveStatuses(w, r)
	case route == "GET stats":
		writeJSON(w, http.StatusOK, s.Stats())
	case route == "POST reset":
		s.Reset()
		writeJSON(w, http.StatusOK, map[string]bool{"success": true})
	case route == "GET faults":
		writeJSON(w, http.StatusOK, s.faults.Load())
	case route == "PUT faults":
		var f Faults
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&f); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid faults JSON: " + err.Error()})
			return
		}
		if err := f.Validate(); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid faults: " + err.Error()})
			return
		}
		s.SetFaults(f)
		writeJSON(w, http.StatusOK, f)
	case route == "GET incident":
		writeJSON(w, http.StatusOK, s.Incident())
	case route == "PUT incident":
		s.putIncident(w, r)
	case route == "DELETE incident":
		s.EndIncident()
		writeJSON(w, http.StatusOK, s.Incident())
	case route == "GET limits":
		writeJSON(w, http.StatusOK, s.Limits())
	case route == "PUT limits":
		s.putLimits(w, r)
	case route == "GET timeline":
		writeJSON(w, http.StatusOK, map[string][]Second{"seconds": s.Timeline()})
	case route == "GET messages":
		to := r.URL.Query().Get("to")
		msgs := s.Messages(to)
		if msgs == nil {
			msgs = []json.RawMessage{}
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"to": onlyDigits(to), "deliveries": s.Deliveries(to), "messages": msgs,
		})
	default:
		http.NotFound(w, r)
	}
}

// putIncident answers PUT /_sandbox/incident {"seconds": 30, "mode": "hang"}: an
// incident window from now for that long (0 ends the current one); mode is "error"
// (503, the default) or "hang" (no answer).
func (s *Server) putIncident(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Seconds *float64     `json:"seconds"`
		Mode    IncidentMode `json:"mode"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || in.Seconds == nil || *in.Seconds < 0 || *in.Seconds > 86400 ||
		(in.Mode != "" && in.Mode != IncidentError && in.Mode != IncidentHang) {
		writeJSON(w, http.StatusBadRequest, map[string]string{
			"error": `want {"seconds": n, "mode": "error" or "hang"} with 0 <= n <= 86400`})
		return
	}
	s.StartIncidentMode(time.Duration(*in.Seconds*float64(time.Second)), in.Mode)
	writeJSON(w, http.StatusOK, s.Incident())
}

// putLimits answers PUT /_sandbox/limits {"mps": 20, "pair_burst": 45, "counter":
// "fixed"}; a field left out keeps its value, 0 lifts that limit.
func (s *Server) putLimits(w http.ResponseWriter, r *http.Request) {
	var in struct {
		MPS       *int        `json:"mps"`
		PairBurst *int        `json:"pair_burst"`
		Counter   *MPSCounter `json:"counter"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || (in.MPS != nil && (*in.MPS < 0 || *in.MPS > 1_000_000)) ||
		(in.PairBurst != nil && (*in.PairBurst < 0 || *in.PairBurst > 1_000_000)) || (in.Counter != nil && !in.Counter.Valid()) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"mps": n, "pair_burst": n, "counter": "sliding"|"fixed"|"bucket"} with 0 <= n <= 1000000`})
		return
	}
	if in.Counter != nil {
		s.SetMPSCounter(*in.Counter)
	}
	if in.MPS != nil {
		s.SetMPS(*in.MPS)
	}
	if in.PairBurst != nil {
		s.SetPairBurst(*in.PairBurst)
	}
	writeJSON(w, http.StatusOK, s.Limits())
}
