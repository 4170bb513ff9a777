package sandbox

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"time"
)

// This file holds the parts of Meta's real world the sandbox can play at run time: an
// incident window (every Graph call answered 503 / code 2, or left without an answer),
// the per-number throughput limit and the pair burst changed while a task runs, a
// deterministic per-recipient fault mix, and a per-second timeline of what was answered.

// CodeServiceUnavailable is Graph's "Service temporarily unavailable" (HTTP 503), what
// every call gets while Meta has an incident.
const CodeServiceUnavailable = 2

// Defaults of a Mix whose fields are left zero.
const (
	DefaultMixServerErrorTimes = 2
	DefaultMixPairRateHold     = time.Second // Meta's first 131056 backoff, 4^0 s
	DefaultMixPermanentCode    = CodeUndeliverable
)

// timelineSize bounds the per-second timeline: the last hour.
const timelineSize = 3600

// incidentErr is Meta's answer during an incident: HTTP 503, code 2, is_transient.
func incidentErr() *apiError {
	return &apiError{
		status:    http.StatusServiceUnavailable,
		code:      CodeServiceUnavailable,
		typ:       "OAuthException",
		details:   "Temporary due to downtime or due to being overloaded. Please retry your request later.",
		transient: true,
	}
}

// IncidentMode is how Meta fails during an incident window.
type IncidentMode string

// Incident modes.
const (
	// IncidentError: every call is answered HTTP 503, code 2 (after the usual latency).
	IncidentError IncidentMode = "error"
	// IncidentHang: no call is answered. A request made during the window hangs until
	// its client gives up (at most HangLimit), as behind a load balancer that accepts
	// connections and forwards nothing; one made after the window is answered as usual.
	IncidentHang IncidentMode = "hang"
)

// HangLimit bounds how long a request of a hanging incident waits for its client to
// give up.
const HangLimit = 10 * time.Minute

// IncidentStatus describes the current or the last incident window.
type IncidentStatus struct {
	Active bool         `json:"active"`
	Mode   IncidentMode `json:"mode,omitempty"`
	// Start and End bound the current or last window (End is when it ends or ended).
	Start            time.Time `json:"start,omitzero"`
	End              time.Time `json:"end,omitzero"`
	RemainingSeconds float64   `json:"remaining_seconds"`
	// Refused counts sends answered 503, or left hanging, by incident windows since the
	// last Reset.
	Refused int64 `json:"refused"`
	// FirstAcceptAfter is when the first send was accepted after the last window ended:
	// FirstAcceptAfter - End is how long a client took to resume after Meta recovered.
	FirstAcceptAfter time.Time `json:"first_accept_after,omitzero"`
}

type incidentWindow struct {
	start, end time.Time
	mode       IncidentMode
}

// StartIncident makes every Graph API call (sends, media, the phone number) answer
// HTTP 503 with Meta's code 2 for d from now, replacing any current window. Sends
// answered so are not accepted. d <= 0 ends the current window, as EndIncident does.
func (s *Server) StartIncident(d time.Duration) { s.StartIncidentMode(d, IncidentError) }

// StartIncidentMode is StartIncident with the way Meta fails: IncidentError (503) or
// IncidentHang (no answer; nothing sent during the window is accepted).
func (s *Server) StartIncidentMode(d time.Duration, mode IncidentMode) {
	if mode != IncidentHang {
		mode = IncidentError
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		s.endIncidentLocked(now)
		return
	}
	s.incident = incidentWindow{start: now, end: now.Add(d), mode: mode}
	s.firstAfter = time.Time{}
}

// EndIncident ends the current incident window now; without one it does nothing.
func (s *Server) EndIncident() {
	s.mu.Lock()
	s.endIncidentLocked(time.Now())
	s.mu.Unlock()
}

func (s *Server) endIncidentLocked(now time.Time) {
	if !s.incident.end.IsZero() && now.Before(s.incident.end) {
		s.incident.end = now
	}
}

// Incident reports the current or last incident window.
func (s *Server) Incident() IncidentStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.incidentLocked(time.Now())
}

func (s *Server) incidentLocked(now time.Time) IncidentStatus {
	st := IncidentStatus{Start: s.incident.start, End: s.incident.end, Mode: s.incident.mode, Refused: s.incRefused,
		FirstAcceptAfter: s.firstAfter}
	if !s.incident.start.IsZero() && now.Before(s.incident.end) {
		st.Active = true
		st.RemainingSeconds = s.incident.end.Sub(now).Seconds()
	}
	return st
}

// inIncident answers the incident error when a window is open now, and counts it. In a
// hanging window it waits instead until the request's client gives up and returns
// errHung (nothing is to be answered), or drops the connection after HangLimit.
func (s *Server) inIncident(r *http.Request, send bool) *apiError {
	now := time.Now()
	s.mu.Lock()
	if s.incident.start.IsZero() || !now.Before(s.incident.end) {
		s.mu.Unlock()
		return nil
	}
	if send {
		s.incRefused++
	}
	hang := s.incident.mode == IncidentHang
	s.mu.Unlock()
	if hang {
		// net/http notices a client that hangs up only once the body is consumed.
		io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		if wait(r.Context(), HangLimit) == nil {
			// The client is still there after HangLimit: drop the connection, unanswered.
			panic(http.ErrAbortHandler)
		}
		return errHung
	}
	return incidentErr()
}

// errHung marks a request of a hanging incident: it gets no answer.
var errHung = &apiError{status: http.StatusGatewayTimeout, code: CodeServiceUnavailable}

// noteAccepted records the first acceptance after an incident; s.mu is held.
func (s *Server) noteAcceptedLocked(now time.Time) {
	if !s.incident.end.IsZero() && s.firstAfter.IsZero() && !now.Before(s.incident.end) {
		s.firstAfter = now
	}
}

// Limits are the enforced per-number throughput and per-recipient burst.
type Limits struct {
	// MPS: more than MPS accepted sends from one number in any 1 s window answer 130429.
	MPS int `json:"mps"`
	// PairBurst: more than PairBurst messages to one recipient within 6 s answer 131056.
	PairBurst int `json:"pair_burst"`
	// Counter is how MPS counts.
	Counter MPSCounter `json:"counter"`
}

// Limits returns the limits in force.
func (s *Server) Limits() Limits {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limitsLocked()
}

func (s *Server) limitsLocked() Limits {
	c := s.mpsCounter
	if c == "" {
		c = CounterSliding
	}
	return Limits{MPS: s.mpsLimit, PairBurst: s.pairBurst, Counter: c}
}

// SetMPSCounter changes how the per-number throughput limit counts, at run time; the
// counts so far start afresh. An unknown counter is taken as the default.
func (s *Server) SetMPSCounter(c MPSCounter) {
	if !c.Valid() {
		c = ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mpsCounter = c
	s.mps = make(map[string]limiter)
}

// SetMPS changes the per-number throughput limit at run time (0 = none), for a number
// Meta holds below what the client is configured for. The sends of the last second
// keep counting against the new limit.
func (s *Server) SetMPS(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mpsLimit = max(n, 0)
	for k, w := range s.mps {
		if s.mpsLimit == 0 {
			delete(s.mps, k)
		} else {
			s.mps[k] = w.resized(s.mpsLimit)
		}
	}
}

// SetPairBurst changes the per-recipient burst limit at run time (0 = none).
func (s *Server) SetPairBurst(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pairBurst = max(n, 0)
	for k, w := range s.pair {
		if s.pairBurst == 0 {
			delete(s.pair, k)
		} else {
			s.pair[k] = w.resized(s.pairBurst)
		}
	}
}

// resized keeps the newest n event times of w, oldest first, in a window of size n.
func (w *window) resized(n int) *window {
	nw := newWindow(n)
	for i := range len(w.ts) {
		if t := w.ts[(w.next+i)%len(w.ts)]; t != 0 {
			nw.add(t)
		}
	}
	return nw
}

// Mix is a fault mix by probability, drawn per recipient and deterministic: a
// recipient's share is a hash of Seed and its digits, so two clients sending to the same
// recipients (a baseline and wagate) meet the same faults, whatever the order or timing
// of their sends. The shares are disjoint: a recipient has at most one of the faults.
type Mix struct {
	Seed uint64 `json:"seed"`
	// ServerError is the share of recipients whose first ServerErrorTimes sends (default
	// 2) are answered HTTP 500, code 131000, before they succeed.
	ServerError      float64 `json:"server_error,omitempty"`
	ServerErrorTimes int     `json:"server_error_times,omitempty"`
	// PairRate is the share of recipients whose first send is answered 131056 (pair rate
	// limit, HTTP 400), and so is every send within PairRateHold (default 1 s, Meta's
	// first 4^0 s backoff) of that answer; later sends succeed.
	PairRate     float64       `json:"pair_rate,omitempty"`
	PairRateHold time.Duration `json:"-"` // in JSON: "pair_rate_hold" as "1s" or nanoseconds
	// Permanent is the share of recipients every send to whom is answered PermanentCode
	// (default 131026, HTTP 400).
	Permanent     float64 `json:"permanent,omitempty"`
	PermanentCode int     `json:"permanent_code,omitempty"`
}

// MixFault is what a Mix holds for one recipient.
type MixFault string

// The faults of a Mix; MixNone is a recipient the mix leaves alone.
const (
	MixNone        MixFault = ""
	MixServerError MixFault = "server_error"
	MixPairRate    MixFault = "pair_rate"
	MixPermanent   MixFault = "permanent"
)

// Fault tells which fault the mix holds for a recipient (any format; by digits).
func (m *Mix) Fault(to string) MixFault {
	if m == nil {
		return MixNone
	}
	u := m.draw(onlyDigits(to))
	switch {
	case u < m.Permanent:
		return MixPermanent
	case u < m.Permanent+m.ServerError:
		return MixServerError
	case u < m.Permanent+m.ServerError+m.PairRate:
		return MixPairRate
	}
	return MixNone
}

// draw maps (Seed, digits) to [0, 1) uniformly: FNV-1a, then a 64-bit finaliser so
// that neighbouring numbers land far apart.
func (m *Mix) draw(digits string) float64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], m.Seed)
	h.Write(b[:])
	h.Write([]byte(digits))
	return unit(h.Sum64())
}

// unit maps a hash to [0, 1) uniformly through a 64-bit finaliser (splitmix64's), so
// that neighbouring inputs land far apart.
func unit(x uint64) float64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

func (m *Mix) validate() error {
	for name, p := range map[string]float64{"server_error": m.ServerError, "pair_rate": m.PairRate, "permanent": m.Permanent} {
		if p < 0 || p > 1 {
			return fmt.Errorf("mix.%s: %v is not a share in [0, 1]", name, p)
		}
	}
	if m.ServerError+m.PairRate+m.Permanent > 1 {
		return fmt.Errorf("mix: the shares add up to more than 1")
	}
	if m.ServerErrorTimes < 0 || m.PairRateHold < 0 {
		return fmt.Errorf("mix: server_error_times and pair_rate_hold must not be negative")
	}
	if c := m.PermanentCode; c != 0 && (c < 100 || retryableCode(c)) {
		return fmt.Errorf("mix.permanent_code: %d is not a permanent WhatsApp error code", c)
	}
	return nil
}

// retryableCode reports the codes a client retries (throttles and Meta-side trouble),
// which a permanent fault must not use.
func retryableCode(code int) bool {
	switch code {
	case CodeRateLimit, CodePairRateLimit, CodeGeneric, CodeUnknown, CodeServiceUnavailable, 131016, 133004, 131057, 4, 80007, 613:
		return true
	}
	return false
}

type mixJSON Mix

type mixWire struct {
	mixJSON
	PairRateHold any `json:"pair_rate_hold,omitempty"`
}

// MarshalJSON writes PairRateHold as a Go duration string.
func (m Mix) MarshalJSON() ([]byte, error) {
	w := mixWire{mixJSON: mixJSON(m)}
	if m.PairRateHold != 0 {
		w.PairRateHold = m.PairRateHold.String()
	}
	return json.Marshal(w)
}

// UnmarshalJSON accepts pair_rate_hold as a duration string ("4s") or nanoseconds.
func (m *Mix) UnmarshalJSON(b []byte) error {
	var w mixWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*m = Mix(w.mixJSON)
	d, err := wireDuration("pair_rate_hold", w.PairRateHold)
	m.PairRateHold = d
	return err
}

func wireDuration(name string, v any) (time.Duration, error) {
	switch d := v.(type) {
	case nil:
		return 0, nil
	case string:
		v, err := time.ParseDuration(d)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		return v, nil
	case float64:
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("%s: want a duration string or nanoseconds", name)
}

// mixState is what the mix did to one recipient so far.
type mixState struct {
	served int   // fault answers given
	pairAt int64 // when the first 131056 was answered (server clock, ns)
}

// mixLocked answers the mix's fault for a send to digits, or nil to go on; s.mu is held.
func (s *Server) mixLocked(m *Mix, digits string, now int64) *apiError {
	kind := m.Fault(digits)
	if kind == MixNone {
		return nil
	}
	st := s.mixed[digits]
	if st == nil {
		st = &mixState{}
		s.mixed[digits] = st
	}
	switch kind {
	case MixPermanent:
		st.served++
		code := m.PermanentCode
		if code == 0 {
			code = DefaultMixPermanentCode
		}
		return metaErr(code, "")
	case MixServerError:
		times := m.ServerErrorTimes
		if times == 0 {
			times = DefaultMixServerErrorTimes
		}
		if st.served < times {
			st.served++
			return metaErr(CodeGeneric, "")
		}
	case MixPairRate:
		hold := m.PairRateHold
		if hold == 0 {
			hold = DefaultMixPairRateHold
		}
		if st.served == 0 {
			st.pairAt = now
		}
		if st.served == 0 || now-st.pairAt < int64(hold) {
			st.served++
			return metaErr(CodePairRateLimit, "")
		}
	}
	return nil
}

// Second counts the /messages answers of one wall-clock second.
type Second struct {
	Unix        int64 `json:"unix"`         // the second, in Unix time
	Calls       int64 `json:"calls"`        // sends answered (accepted or not)
	Accepted    int64 `json:"accepted"`     // sends answered 200
	RateLimited int64 `json:"rate_limited"` // sends answered 130429 (limit or fault)
	Unavailable int64 `json:"unavailable"`  // sends answered 503 by an incident
}

// Timeline returns the per-second counts of the last hour with any send, oldest first.
func (s *Server) Timeline() []Second {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.timeline)
	out := make([]Second, 0, n)
	start := 0
	if n == timelineSize {
		start = s.tlNext
	}
	for i := range n {
		out = append(out, s.timeline[(start+i)%n])
	}
	return out
}

// tickLocked counts one answer in the current second; s.mu is held.
func (s *Server) tickLocked(now time.Time, accepted bool, code int) {
	sec := now.Unix()
	var cur *Second
	if n := len(s.timeline); n > 0 {
		if last := (s.tlNext + n - 1) % n; s.timeline[last].Unix == sec {
			cur = &s.timeline[last]
		}
	}
	if cur == nil {
		if len(s.timeline) < timelineSize {
			s.timeline = append(s.timeline, Second{Unix: sec})
			cur = &s.timeline[len(s.timeline)-1]
		} else {
			s.timeline[s.tlNext] = Second{Unix: sec}
			cur = &s.timeline[s.tlNext]
			s.tlNext = (s.tlNext + 1) % timelineSize
		}
	}
	cur.Calls++
	switch {
	case accepted:
		cur.Accepted++
	case code == CodeRateLimit:
		cur.RateLimited++
	case code == CodeServiceUnavailable:
		cur.Unavailable++
	}
}

// Convergence reads a Timeline of a task of n recipients against a per-number limit:
// the time from the first second with a Graph call to the start of the first second
// after which every loaded second stays within the limit (calls <= limit + 5% and fewer
// than 5% of them answered 130429; a pause second, with few calls that still hit the
// sliding window, is not within). A second is loaded when at least 2*limit of the n
// recipients were still to be accepted as it began: the tail of a task, short of work,
// cannot go over the limit and says nothing about the sender's rate. ok is false when
// the last loaded second was over the limit.
func Convergence(secs []Second, limit, n int) (time.Duration, bool) {
	within := func(s Second) bool {
		return float64(s.Calls) <= float64(limit)*1.05 && float64(s.RateLimited) < 0.05*float64(s.Calls)
	}
	var loaded []Second
	left := int64(n)
	for _, s := range secs {
		if left < int64(2*limit) {
			break
		}
		loaded = append(loaded, s)
		left -= s.Accepted
	}
	k := len(loaded)
	for k > 0 && within(loaded[k-1]) {
		k--
	}
	if k == len(loaded) {
		return 0, false
	}
	return time.Duration(loaded[k].Unix-secs[0].Unix) * time.Second, true
}
