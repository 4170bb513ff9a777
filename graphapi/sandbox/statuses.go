package sandbox

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"sync"
	"time"
)

// DefaultFailedCodes are the codes of the failed statuses a StatusPlan draws from when it
// names none: Meta's usual failures after it accepted a message.
var DefaultFailedCodes = []int{CodeUndeliverable, CodeReEngagement, CodeEcosystem, CodeExperiment}

// StatusPlan says which status webhooks the sandbox posts for each message it accepts,
// and when. A message's fate is drawn from Seed and its recipient's digits, so a re-run
// to the same recipients meets the same fates: a Failed share gets sent and then failed
// (with one of FailedCodes, also drawn per recipient); of the rest, a Read share gets
// sent, delivered and read, the others sent and delivered only.
type StatusPlan struct {
	// SentDelay is the wait from acceptance to the sent status, DeliveredDelay from sent to
	// delivered (or failed), ReadDelay from delivered to read.
	SentDelay      time.Duration `json:"-"`
	DeliveredDelay time.Duration `json:"-"`
	ReadDelay      time.Duration `json:"-"`
	// Failed is the share of accepted messages that fail after they were sent.
	Failed      float64 `json:"failed"`
	FailedCodes []int   `json:"failed_codes,omitempty"`
	// Read is the share of delivered messages that are read; nil means all of them.
	Read *float64 `json:"read,omitempty"`
	Seed uint64   `json:"seed"`
}

type planWire struct {
	Failed         *float64 `json:"failed,omitempty"`
	FailedCodes    []int    `json:"failed_codes,omitempty"`
	Read           *float64 `json:"read,omitempty"`
	Seed           *uint64  `json:"seed,omitempty"`
	SentDelay      any      `json:"sent_delay,omitempty"`
	DeliveredDelay any      `json:"delivered_delay,omitempty"`
	ReadDelay      any      `json:"read_delay,omitempty"`
}

// MarshalJSON writes the delays as Go duration strings.
func (p StatusPlan) MarshalJSON() ([]byte, error) {
	read := p.readShare()
	return json.Marshal(map[string]any{
		"sent_delay": p.SentDelay.String(), "delivered_delay": p.DeliveredDelay.String(), "read_delay": p.ReadDelay.String(),
		"failed": p.Failed, "failed_codes": p.codes(), "read": read, "seed": p.Seed,
	})
}

// UpdateJSON applies the fields present in the JSON of PUT /_sandbox/statuses (delays as
// "200ms" or nanoseconds); the others keep their values.
func (p *StatusPlan) UpdateJSON(b []byte) error {
	var w planWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		v    any
		dst  *time.Duration
	}{{"sent_delay", w.SentDelay, &p.SentDelay}, {"delivered_delay", w.DeliveredDelay, &p.DeliveredDelay}, {"read_delay", w.ReadDelay, &p.ReadDelay}} {
		if d.v == nil {
			continue
		}
		v, err := wireDuration(d.name, d.v)
		if err != nil {
			return err
		}
		*d.dst = v
	}
	if w.Failed != nil {
		p.Failed = *w.Failed
	}
	if w.FailedCodes != nil {
		p.FailedCodes = w.FailedCodes
	}
	if w.Read != nil {
		p.Read = w.Read
	}
	if w.Seed != nil {
		p.Seed = *w.Seed
	}
	return p.Validate()
}

// Validate reports shares outside [0, 1], negative delays and codes that are not failures
// Meta reports after accepting a message.
func (p *StatusPlan) Validate() error {
	if p.Failed < 0 || p.Failed > 1 {
		return fmt.Errorf("failed: %v is not a share in [0, 1]", p.Failed)
	}
	if r := p.readShare(); r < 0 || r > 1 {
		return fmt.Errorf("read: %v is not a share in [0, 1]", r)
	}
	if p.SentDelay < 0 || p.DeliveredDelay < 0 || p.ReadDelay < 0 {
		return fmt.Errorf("delays must not be negative")
	}
	for _, c := range p.FailedCodes {
		if c < 100 || retryableCode(c) {
			return fmt.Errorf("failed_codes: %d is not a permanent WhatsApp error code", c)
		}
	}
	return nil
}

func (p *StatusPlan) readShare() float64 {
	if p.Read == nil {
		return 1
	}
	return *p.Read
}

func (p *StatusPlan) codes() []int {
	if len(p.FailedCodes) == 0 {
		return DefaultFailedCodes
	}
	return p.FailedCodes
}

// Fate tells what the plan makes of a message to `to`: "read", "delivered" (never read)
// or "failed", with its code.
func (p *StatusPlan) Fate(to string) (string, int) {
	f, code := p.fate(onlyDigits(to))
	switch f {
	case fateFailed:
		return "failed", code
	case fateDelivered:
		return "delivered", 0
	}
	return "read", 0
}

func (p *StatusPlan) fate(digits string) (fate, int) {
	if u := planDraw(p.Seed, 1, digits); u < p.Failed {
		codes := p.codes()
		return fateFailed, codes[int(planDraw(p.Seed, 2, digits)*float64(len(codes)))%len(codes)]
	}
	if planDraw(p.Seed, 3, digits) < p.readShare() {
		return fateRead, 0
	}
	return fateDelivered, 0
}

// delay is how long the status at ev.step waits after the previous one.
func (p *StatusPlan) delay(ev statusEvent) time.Duration {
	switch ev.step {
	case 0:
		return p.SentDelay
	case 1:
		return p.DeliveredDelay
	}
	return p.ReadDelay
}

// planDraw maps (seed, salt, digits) to [0, 1) uniformly, like Mix's draw.
func planDraw(seed, salt uint64, digits string) float64 {
	h := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], seed)
	binary.LittleEndian.PutUint64(b[8:], salt)
	h.Write(b[:])
	h.Write([]byte(digits))
	return unit(h.Sum64())
}

func failedDetails(code int) string {
	switch code {
	case CodeEcosystem:
		return "Message failed to send to maintain healthy ecosystem engagement."
	case CodeExperiment:
		return "Failed to send message because this user's phone number is part of an experiment."
	}
	if d := defaultDetails[code]; d != "" {
		return d
	}
	return titles[code]
}

// maxPosted bounds the wamids whose posted statuses are remembered; past it the log
// starts over.
const maxPosted = 1_000_000

// postedLog remembers which statuses were posted (and answered 200) per wamid.
type postedLog struct {
	mu     sync.Mutex
	byID   map[string][]string
	counts map[string]int64
	codes  map[int]int64
}

func (l *postedLog) reset() {
	l.mu.Lock()
	l.byID, l.counts, l.codes = map[string][]string{}, map[string]int64{}, map[int]int64{}
	l.mu.Unlock()
}

func (l *postedLog) note(wamid, status string, code int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.byID) >= maxPosted {
		l.byID = map[string][]string{}
	}
	l.byID[wamid] = append(l.byID[wamid], status)
	l.counts[status]++
	if status == "failed" {
		l.codes[code]++
	}
}

// PostedStatuses counts the status webhooks the sandbox posted and had answered 200,
// per status and per failed code, since it started or was last Reset.
type PostedStatuses struct {
	ByStatus map[string]int64 `json:"by_status"`
	ByCode   map[int]int64    `json:"failed_by_code"`
}

// StatusPlan returns the plan in force; without a webhook URL, the zero plan.
func (s *Server) StatusPlan() StatusPlan {
	if s.hooks == nil {
		return StatusPlan{}
	}
	return *s.hooks.plan.Load()
}

// SetStatusPlan replaces the plan for the messages accepted from now on (and the delays
// of statuses queued from now on). It does nothing without a webhook URL.
func (s *Server) SetStatusPlan(p StatusPlan) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if s.hooks != nil {
		s.hooks.plan.Store(&p)
	}
	return nil
}

// Posted returns the statuses posted for one wamid, in order, and the totals.
func (s *Server) Posted(wamid string) ([]string, PostedStatuses) {
	out := PostedStatuses{ByStatus: map[string]int64{}, ByCode: map[int]int64{}}
	if s.hooks == nil {
		return nil, out
	}
	l := &s.hooks.posted
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, v := range l.counts {
		out.ByStatus[k] = v
	}
	for k, v := range l.codes {
		out.ByCode[k] = v
	}
	return append([]string(nil), l.byID[wamid]...), out
}

// serveStatuses answers GET and PUT /_sandbox/statuses: the plan and what was posted
// (?wamid= adds that message's statuses); PUT changes the fields it names.
func (s *Server) serveStatuses(w http.ResponseWriter, r *http.Request) {
	if s.hooks == nil {
		writeJSON(w, http.StatusConflict, map[string]string{"error": "no webhook URL: the sandbox posts no statuses"})
		return
	}
	if r.Method == http.MethodPut {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		p := s.StatusPlan()
		if err == nil {
			err = p.UpdateJSON(body)
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid status plan: " + err.Error()})
			return
		}
		_ = s.SetStatusPlan(p)
	}
	wamid := r.URL.Query().Get("wamid")
	statuses, totals := s.Posted(wamid)
	out := map[string]any{"plan": s.StatusPlan(), "posted": totals}
	if wamid != "" {
		if statuses == nil {
			statuses = []string{}
		}
		out["wamid"], out["statuses"] = wamid, statuses
	}
	writeJSON(w, http.StatusOK, out)
}
