package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// control calls a /_sandbox route with a JSON body and decodes the answer into out.
func control(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	r := do(t, method, url, "", strings.NewReader(body), "application/json")
	if out != nil && r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, r.body)
		}
	}
	return r.status
}

func TestIncidentAnswers(t *testing.T) {
	s, ts := strict(t)
	s.StartIncident(time.Minute)
	upload := func() response {
		var b bytes.Buffer
		b.WriteString("--x\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n--x--\r\n")
		return do(t, http.MethodPost, ts.URL+"/v23.0/"+testPNID+"/media", testToken, &b, "multipart/form-data; boundary=x")
	}
	tests := []struct {
		name string
		call func() response
		send bool
	}{
		{"text send", func() response { return send(t, ts, textMsg(to, "hola")) }, true},
		{"invalid send is not validated", func() response { return send(t, ts, textMsg(to, "")) }, true},
		{"send with a wrong token", func() response {
			return do(t, http.MethodPost, ts.URL+"/v23.0/"+testPNID+"/messages", "nope", bytes.NewReader(encode(t, textMsg(to, "x"))), "")
		}, true},
		{"media upload", upload, false},
		{"phone number ping", func() response { return do(t, http.MethodGet, ts.URL+"/v23.0/"+testPNID, testToken, nil, "") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.call()
			e := wantError(t, r, http.StatusServiceUnavailable, CodeServiceUnavailable, "Temporary due to downtime")
			if e.Error.Message != "(#2) Service temporarily unavailable" || e.Error.Type != "OAuthException" {
				t.Errorf("message, type: got %q, %q", e.Error.Message, e.Error.Type)
			}
			var raw struct {
				Error map[string]any `json:"error"`
			}
			json.Unmarshal(r.body, &raw)
			if raw.Error["is_transient"] != true {
				t.Errorf("is_transient: got %v, want true (%s)", raw.Error["is_transient"], r.body)
			}
			if bytes.Contains(r.body, []byte("wamid")) {
				t.Errorf("an incident answer carries a wamid: %s", r.body)
			}
		})
	}
	st := s.Stats()
	if st.Accepted != 0 || s.Deliveries(to) != 0 {
		t.Errorf("accepted %d, deliveries %d during the incident, want 0", st.Accepted, s.Deliveries(to))
	}
	if st.Incident.Refused != 3 || st.ByCode[CodeServiceUnavailable] != 3 || st.Rejected != 3 {
		t.Errorf("refused %d, by_code[2] %d, rejected %d: want 3 sends each", st.Incident.Refused, st.ByCode[CodeServiceUnavailable], st.Rejected)
	}
	if !st.Incident.Active || st.Incident.RemainingSeconds <= 50 {
		t.Errorf("incident: got %+v, want active with about 60 s left", st.Incident)
	}
	// Control routes keep answering during an incident.
	if code := control(t, http.MethodGet, ts.URL+"/_sandbox/stats", "", nil); code != http.StatusOK {
		t.Errorf("GET /_sandbox/stats during an incident: %d", code)
	}
}

func TestIncidentWindow(t *testing.T) {
	s, ts := start(t, Options{Latency: 20 * time.Millisecond})
	var inc IncidentStatus
	if code := control(t, http.MethodPut, ts.URL+"/_sandbox/incident", `{"seconds": 0.4}`, &inc); code != http.StatusOK {
		t.Fatalf("PUT incident: %d", code)
	}
	if !inc.Active || inc.End.Sub(inc.Start) != 400*time.Millisecond {
		t.Fatalf("PUT incident answered %+v, want an active 400 ms window", inc)
	}
	// A send whose latency ends inside the window is refused, one answered after it is
	// accepted: the window is judged when Meta answers.
	var refused, accepted int
	var firstOK time.Time
	for i := 0; time.Since(inc.Start) < 700*time.Millisecond; i++ {
		r := send(t, ts, textMsg(fmt.Sprintf("+3491%07d", i), "x"))
		at := time.Now()
		switch r.status {
		case http.StatusServiceUnavailable:
			refused++
			if at.Sub(inc.End) > 50*time.Millisecond { // the answer was decided before it reached the client
				t.Errorf("refused %v after the window ended", at.Sub(inc.End))
			}
		case http.StatusOK:
			accepted++
			if firstOK.IsZero() {
				firstOK = at
			}
			if at.Before(inc.End) {
				t.Errorf("accepted %v before the window ended", inc.End.Sub(at))
			}
		default:
			t.Fatalf("got %d %s", r.status, r.body)
		}
	}
	if refused < 10 || accepted < 5 {
		t.Errorf("refused %d, accepted %d: want both", refused, accepted)
	}
	st := s.Stats()
	if st.Incident.Active || st.Incident.Refused != int64(refused) || st.Accepted != int64(accepted) {
		t.Errorf("stats: incident %+v, accepted %d; want inactive, refused %d, accepted %d", st.Incident, st.Accepted, refused, accepted)
	}
	if fa := st.Incident.FirstAcceptAfter; fa.Before(inc.End) || fa.After(firstOK) {
		t.Errorf("first_accept_after %v, want between the end %v and the client's first success %v", fa, inc.End, firstOK)
	}
	var tl struct{ Seconds []Second }
	control(t, http.MethodGet, ts.URL+"/_sandbox/timeline", "", &tl)
	var unavailable, ok int64
	for _, sec := range tl.Seconds {
		unavailable += sec.Unavailable
		ok += sec.Accepted
	}
	if unavailable != int64(refused) || ok != int64(accepted) {
		t.Errorf("timeline: %d unavailable, %d accepted; want %d, %d", unavailable, ok, refused, accepted)
	}

	// Ended early by DELETE, or by {"seconds": 0}.
	for _, end := range []func(){
		func() { control(t, http.MethodDelete, ts.URL+"/_sandbox/incident", "", &inc) },
		func() { control(t, http.MethodPut, ts.URL+"/_sandbox/incident", `{"seconds": 0}`, &inc) },
	} {
		s.StartIncident(time.Hour)
		wantError(t, send(t, ts, textMsg(to, "x")), http.StatusServiceUnavailable, CodeServiceUnavailable, "")
		end()
		if inc.Active {
			t.Errorf("still active after ending: %+v", inc)
		}
		wantSuccess(t, send(t, ts, textMsg(to, "x")))
	}
}

// A hanging incident answers nothing: a request made during the window waits until its
// client gives up and is not accepted; one made after the window is answered as usual.
func TestIncidentHang(t *testing.T) {
	s, ts := start(t, Options{Token: testToken, PhoneNumberID: testPNID, Latency: 10 * time.Millisecond})
	var inc IncidentStatus
	if code := control(t, http.MethodPut, ts.URL+"/_sandbox/incident", `{"seconds": 0.5, "mode": "hang"}`, &inc); code != http.StatusOK {
		t.Fatalf("PUT incident: %d", code)
	}
	if !inc.Active || inc.Mode != IncidentHang {
		t.Fatalf("PUT incident answered %+v, want an active hanging window", inc)
	}
	call := func(method, path string, body []byte, timeout time.Duration) (int, time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, ts.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		began := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, time.Since(began), err
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(began), nil
	}
	msg := encode(t, textMsg(to, "x"))
	for _, c := range []struct{ method, path string }{{http.MethodPost, "/v23.0/" + testPNID + "/messages"}, {http.MethodGet, "/v23.0/" + testPNID}} {
		code, took, err := call(c.method, c.path, msg, 200*time.Millisecond)
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || took < 200*time.Millisecond {
			t.Errorf("%s %s during a hanging incident: status %d after %v, err %v; want no answer until the client gives up",
				c.method, c.path, code, took, err)
		}
	}
	// A send made near the end of the window still hangs after the window ends: Meta
	// never answers it.
	time.Sleep(time.Until(inc.End.Add(-50 * time.Millisecond)))
	if code, took, err := call(http.MethodPost, "/v23.0/"+testPNID+"/messages", msg, 300*time.Millisecond); err == nil {
		t.Errorf("a send made just before the end was answered %d after %v", code, took)
	}
	if code, _, err := call(http.MethodPost, "/v23.0/"+testPNID+"/messages", msg, 2*time.Second); err != nil || code != http.StatusOK {
		t.Fatalf("a send after the window: status %d, err %v; want 200", code, err)
	}
	st := s.Stats()
	if st.Accepted != 1 || st.Incident.Refused != 2 || st.Incident.Mode != IncidentHang || st.Incident.FirstAcceptAfter.Before(inc.End) {
		t.Errorf("stats: accepted %d, incident %+v; want 1 accepted, 2 sends left hanging, the first accepted after the end",
			st.Accepted, st.Incident)
	}
}

func TestIncidentControlValidation(t *testing.T) {
	s, ts := strict(t)
	for _, body := range []string{``, `{}`, `{"seconds": -1}`, `{"seconds": "30"}`, `{"seconds": 100000}`, `{"secs": 3}`, `[1]`, `{"seconds": 3, "mode": "slow"}`} {
		if code := control(t, http.MethodPut, ts.URL+"/_sandbox/incident", body, nil); code != http.StatusBadRequest {
			t.Errorf("PUT incident %q: got %d, want 400", body, code)
		}
	}
	if s.Incident().Active {
		t.Error("a refused PUT started an incident")
	}
}

func TestSetMPSAtRunTime(t *testing.T) {
	s, ts := start(t, Options{MPS: 80})
	var lim Limits
	if code := control(t, http.MethodPut, ts.URL+"/_sandbox/limits", `{"mps": 5}`, &lim); code != http.StatusOK || lim.MPS != 5 {
		t.Fatalf("PUT limits: %d %+v", code, lim)
	}
	// 12 concurrent sends in one window: exactly 5 accepted, 7 answered 130429.
	var wg sync.WaitGroup
	codes := make([]int, 12)
	for i := range codes {
		wg.Go(func() {
			r := send(t, ts, textMsg(fmt.Sprintf("+3460%07d", i), "x"))
			codes[i] = r.status
			if r.status != http.StatusOK {
				e := wantError(t, r, http.StatusBadRequest, CodeRateLimit, "throughput has been reached")
				if e.Error.Message != "(#130429) Rate limit hit" || e.Error.ErrorSubcode != 2494055 || e.Error.Type != "OAuthException" {
					t.Errorf("message %q, subcode %d, type %q: want Meta's 130429 example", e.Error.Message, e.Error.ErrorSubcode, e.Error.Type)
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if st.Accepted != 5 || st.Throttled != 7 || st.ByCode[CodeRateLimit] != 7 || st.Limits.MPS != 5 {
		t.Errorf("accepted %d, throttled %d, by_code %d, limits %+v; want 5, 7, 7, mps 5", st.Accepted, st.Throttled, st.ByCode[CodeRateLimit], st.Limits)
	}

	// Lowering the limit counts the sends of the last second against the new one.
	s.Reset()
	time.Sleep(mpsWindow)
	s.SetMPS(10)
	for i := range 10 {
		wantSuccess(t, send(t, ts, textMsg(fmt.Sprintf("+3461%07d", i), "x")))
	}
	s.SetMPS(3)
	wantError(t, send(t, ts, textMsg("+34619999999", "x")), http.StatusBadRequest, CodeRateLimit, "")
	time.Sleep(mpsWindow)
	for i := range 3 {
		wantSuccess(t, send(t, ts, textMsg(fmt.Sprintf("+3462%07d", i), "x")))
	}
	wantError(t, send(t, ts, textMsg("+34629999999", "x")), http.StatusBadRequest, CodeRateLimit, "")

	// 0 lifts the limit.
	s.SetMPS(0)
	for i := range 20 {
		wantSuccess(t, send(t, ts, textMsg(fmt.Sprintf("+3463%07d", i), "x")))
	}
	if got := s.Limits(); got.MPS != 0 {
		t.Errorf("limits: %+v", got)
	}
}

// TestMPSAccountingExact floods the sandbox from 16 clients for 2.5 s at a limit of 20:
// no aligned second may hold more than 20 accepted sends, every refusal is a counted
// 130429, and the limit is reached (throttled sends consume no quota).
func TestMPSAccountingExact(t *testing.T) {
	const limit = 20
	s, ts := start(t, Options{MPS: 200})
	s.SetMPS(limit)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, throttled int64
	stop := time.Now().Add(2500 * time.Millisecond)
	for c := range 16 {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				r := send(t, ts, textMsg(fmt.Sprintf("+44%02d%07d", c, i), "x"))
				mu.Lock()
				switch r.status {
				case http.StatusOK:
					ok++
				case http.StatusBadRequest:
					throttled++
				default:
					t.Errorf("status %d", r.status)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if st.Accepted != ok || st.Throttled != throttled || st.ByCode[CodeRateLimit] != throttled {
		t.Errorf("stats accepted %d throttled %d by_code %d; clients saw %d and %d", st.Accepted, st.Throttled, st.ByCode[CodeRateLimit], ok, throttled)
	}
	// The sliding window allows at most limit per second, so at most 3*limit over a span
	// shorter than 3 s, and at least 2*limit once 2 s have been fully used.
	if ok < 2*limit || ok > 3*limit {
		t.Errorf("accepted %d in 2.5 s at %d mps", ok, limit)
	}
	var calls, acc, rl int64
	for _, sec := range s.Timeline() {
		if sec.Accepted > limit {
			t.Errorf("second %d: %d accepted, over the limit %d", sec.Unix, sec.Accepted, limit)
		}
		calls += sec.Calls
		acc += sec.Accepted
		rl += sec.RateLimited
	}
	if calls != ok+throttled || acc != ok || rl != throttled {
		t.Errorf("timeline: calls %d accepted %d rate_limited %d; want %d %d %d", calls, acc, rl, ok+throttled, ok, throttled)
	}
}

func TestLimitsControl(t *testing.T) {
	s, ts := start(t, Options{MPS: 80, PairBurst: 3})
	var lim Limits
	control(t, http.MethodGet, ts.URL+"/_sandbox/limits", "", &lim)
	if lim != (Limits{MPS: 80, PairBurst: 3, Counter: CounterSliding}) {
		t.Errorf("GET limits: %+v", lim)
	}
	// A field left out keeps its value.
	control(t, http.MethodPut, ts.URL+"/_sandbox/limits", `{"pair_burst": 1}`, &lim)
	if lim != (Limits{MPS: 80, PairBurst: 1, Counter: CounterSliding}) {
		t.Errorf("PUT pair_burst only: %+v", lim)
	}
	wantSuccess(t, send(t, ts, textMsg(to, "a")))
	wantError(t, send(t, ts, textMsg(to, "b")), http.StatusBadRequest, CodePairRateLimit, "")
	for _, body := range []string{``, `{"mps": -1}`, `{"mps": "20"}`, `{"pair_burst": -2}`, `{"rate": 3}`, `{"counter": "leaky"}`} {
		if code := control(t, http.MethodPut, ts.URL+"/_sandbox/limits", body, nil); code != http.StatusBadRequest {
			t.Errorf("PUT limits %q: got %d, want 400", body, code)
		}
	}
	if got := s.Limits(); got != (Limits{MPS: 80, PairBurst: 1, Counter: CounterSliding}) {
		t.Errorf("limits changed by refused PUTs: %+v", got)
	}
	control(t, http.MethodPut, ts.URL+"/_sandbox/limits", `{"counter": "bucket"}`, &lim)
	if lim != (Limits{MPS: 80, PairBurst: 1, Counter: CounterBucket}) {
		t.Errorf("PUT counter: %+v", lim)
	}
}

// The three ways of counting a throughput limit of 4 a second, on the same sends.
func TestMPSCounters(t *testing.T) {
	const ms = int64(time.Millisecond)
	type step struct {
		at   int64 // ms since the server started
		want bool  // accepted
	}
	for _, tc := range []struct {
		counter MPSCounter
		steps   []step
	}{
		// Any 1 s window holds at most 4: the fifth waits until the first is 1 s old.
		{CounterSliding, []step{{100, true}, {200, true}, {900, true}, {950, true}, {1050, false}, {1099, false}, {1100, true}, {1150, false}, {1200, true}}},
		// Each clock second holds 4, counted afresh: 4 at the end of one and 4 at the start
		// of the next pass.
		{CounterFixed, []step{{100, true}, {800, true}, {900, true}, {950, true}, {990, false}, {1000, true}, {1010, true}, {1020, true}, {1030, true}, {1040, false}, {2000, true}}},
		// A full bucket lets 4 through at once, then one every 250 ms.
		{CounterBucket, []step{{100, true}, {101, true}, {102, true}, {103, true}, {104, false}, {300, false}, {360, true}, {400, false}, {610, true}, {5000, true}, {5001, true}, {5002, true}, {5003, true}, {5004, false}}},
	} {
		l := newLimiter(tc.counter, 4)
		for i, st := range tc.steps {
			now := st.at * ms
			got := l.fits(now)
			if got {
				l.add(now)
			}
			if got != st.want {
				t.Errorf("%s: send %d at %d ms accepted = %v, want %v", tc.counter, i, st.at, got, st.want)
			}
		}
	}
	if !MPSCounter("").Valid() || MPSCounter("leaky").Valid() {
		t.Error(`Valid: "" is the default and unknown counters are not valid`)
	}
}

// recipientWith finds a recipient the mix gives fault k.
func recipientWith(t *testing.T, m *Mix, k MixFault) string {
	t.Helper()
	for i := range 1_000_000 {
		to := fmt.Sprintf("+57300%07d", i)
		if m.Fault(to) == k {
			return to
		}
	}
	t.Fatalf("no recipient with %q", k)
	return ""
}

func TestMixShares(t *testing.T) {
	m := &Mix{Seed: 1, ServerError: 0.02, PairRate: 0.01, Permanent: 0.005}
	const n = 200_000
	count := map[MixFault]int{}
	for i := range n {
		count[m.Fault(fmt.Sprintf("57%010d", i))]++
	}
	for k, share := range map[MixFault]float64{MixServerError: 0.02, MixPairRate: 0.01, MixPermanent: 0.005} {
		want := share * n
		if sd := math.Sqrt(want); math.Abs(float64(count[k])-want) > 5*sd {
			t.Errorf("%s: %d of %d recipients, want %.0f +- %.0f", k, count[k], n, want, 5*sd)
		}
	}
	// Deterministic: the same seed and recipient in any format give the same fault; another
	// seed gives another draw.
	other := &Mix{Seed: 2, ServerError: 0.02, PairRate: 0.01, Permanent: 0.005}
	same, differ := 0, 0
	for i := range 10_000 {
		digits := fmt.Sprintf("57%010d", i)
		if m.Fault(digits) != m.Fault("+"+digits[:2]+" "+digits[2:]) {
			t.Fatalf("%s: the format of the number changes the fault", digits)
		}
		if m.Fault(digits) != MixNone || other.Fault(digits) != MixNone {
			if m.Fault(digits) == other.Fault(digits) {
				same++
			} else {
				differ++
			}
		}
	}
	if differ < 10*same {
		t.Errorf("seeds 1 and 2 agree on %d faulty recipients and differ on %d", same, differ)
	}
	if (*Mix)(nil).Fault("573001234567") != MixNone {
		t.Error("a nil mix has faults")
	}
}

func TestMixAnswers(t *testing.T) {
	tests := []struct {
		name  string
		mix   Mix
		kind  MixFault
		steps []struct {
			wait   time.Duration
			status int
			code   int
		}
	}{
		{name: "server error twice, then success", mix: Mix{Seed: 7, ServerError: 0.5}, kind: MixServerError,
			steps: steps(0, 500, CodeGeneric, 0, 500, CodeGeneric, 0, 200, 0, 0, 200, 0)},
		{name: "server error times 1", mix: Mix{Seed: 7, ServerError: 0.5, ServerErrorTimes: 1}, kind: MixServerError,
			steps: steps(0, 500, CodeGeneric, 0, 200, 0)},
		{name: "pair rate held 1 s, then success", mix: Mix{Seed: 7, PairRate: 0.5}, kind: MixPairRate,
			steps: steps(0, 400, CodePairRateLimit, 200*time.Millisecond, 400, CodePairRateLimit, 850*time.Millisecond, 200, 0)},
		{name: "pair rate hold 300ms", mix: Mix{Seed: 7, PairRate: 0.5, PairRateHold: 300 * time.Millisecond}, kind: MixPairRate,
			steps: steps(0, 400, CodePairRateLimit, 320*time.Millisecond, 200, 0)},
		{name: "permanent 131026 every time", mix: Mix{Seed: 7, Permanent: 0.5}, kind: MixPermanent,
			steps: steps(0, 400, CodeUndeliverable, 0, 400, CodeUndeliverable, 0, 400, CodeUndeliverable)},
		{name: "permanent 131050", mix: Mix{Seed: 7, Permanent: 0.5, PermanentCode: CodeMarketingOptOut}, kind: MixPermanent,
			steps: steps(0, 400, CodeMarketingOptOut)},
		{name: "no fault", mix: Mix{Seed: 7, Permanent: 0.5}, kind: MixNone, steps: steps(0, 200, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := strict(t)
			s.SetFaults(Faults{Mix: &tt.mix})
			who := recipientWith(t, &tt.mix, tt.kind)
			for i, st := range tt.steps {
				time.Sleep(st.wait)
				r := send(t, ts, textMsg(who, fmt.Sprintf("attempt %d", i)))
				if st.status == 200 {
					wantSuccess(t, r)
				} else {
					wantError(t, r, st.status, st.code, "")
				}
			}
			// Each answer of the mix is counted under its code.
			if tt.kind != MixNone {
				if got := s.Stats().ByCode[tt.steps[0].code]; got == 0 {
					t.Errorf("by_code[%d] = 0", tt.steps[0].code)
				}
			}
		})
	}
}

type step = struct {
	wait   time.Duration
	status int
	code   int
}

// steps builds (wait, status, code) triples.
func steps(v ...any) []step {
	var out []step
	for i := 0; i < len(v); i += 3 {
		var d time.Duration
		switch w := v[i].(type) {
		case time.Duration:
			d = w
		case int:
			d = time.Duration(w)
		}
		out = append(out, step{wait: d, status: v[i+1].(int), code: v[i+2].(int)})
	}
	return out
}

func TestMixControlEndpoint(t *testing.T) {
	s, ts := strict(t)
	body := `{"server_error": 0.1, "mix": {"seed": 1, "server_error": 0.02, "pair_rate": 0.01, "pair_rate_hold": "4s", "permanent": 0.005, "permanent_code": 131026}}`
	var back Faults
	if code := control(t, http.MethodPut, ts.URL+"/_sandbox/faults", body, &back); code != http.StatusOK {
		t.Fatalf("PUT faults: %d", code)
	}
	got := s.faults.Load()
	want := Mix{Seed: 1, ServerError: 0.02, PairRate: 0.01, PairRateHold: 4 * time.Second, Permanent: 0.005, PermanentCode: 131026}
	if got.Mix == nil || *got.Mix != want || got.ServerError != 0.1 {
		t.Errorf("faults: got %+v mix %+v", got, got.Mix)
	}
	r := do(t, http.MethodGet, ts.URL+"/_sandbox/faults", "", nil, "")
	if !bytes.Contains(r.body, []byte(`"pair_rate_hold":"4s"`)) {
		t.Errorf("GET faults: %s", r.body)
	}
	for _, bad := range []string{
		`{"mix": {"server_error": 1.5}}`,
		`{"mix": {"server_error": 0.6, "permanent": 0.6}}`,
		`{"mix": {"permanent": 0.1, "permanent_code": 130429}}`,
		`{"mix": {"permanent": 0.1, "permanent_code": 2}}`,
		`{"mix": {"pair_rate_hold": "soon"}}`,
		`{"mix": {"server_error_times": -1}}`,
		`{"rate_limit": 2}`,
	} {
		if code := control(t, http.MethodPut, ts.URL+"/_sandbox/faults", bad, nil); code != http.StatusBadRequest {
			t.Errorf("PUT faults %s: got %d, want 400", bad, code)
		}
	}
	if s.faults.Load().Mix == nil {
		t.Error("a refused PUT replaced the faults")
	}
}

func TestRecipientsAndRepeats(t *testing.T) {
	s, ts := strict(t)
	for _, to := range []string{"+573001000001", "+573001000002", "+573001000001", "+57 300 1000001", "+573001000003"} {
		wantSuccess(t, send(t, ts, textMsg(to, "x")))
	}
	st := s.Stats()
	if st.Recipients != 3 || st.Repeats != 2 || st.Accepted != 5 {
		t.Errorf("recipients %d repeats %d accepted %d; want 3, 2, 5", st.Recipients, st.Repeats, st.Accepted)
	}
	s.Reset()
	if st := s.Stats(); st.Recipients != 0 || st.Repeats != 0 {
		t.Errorf("after Reset: %+v", st)
	}
}

func TestResetAndIncident(t *testing.T) {
	s, ts := strict(t)
	s.StartIncident(time.Hour)
	wantError(t, send(t, ts, textMsg(to, "x")), http.StatusServiceUnavailable, CodeServiceUnavailable, "")
	s.Reset()
	if inc := s.Incident(); !inc.Active || inc.Refused != 0 {
		t.Errorf("after Reset during an incident: %+v, want it open with its count zeroed", inc)
	}
	s.EndIncident()
	wantSuccess(t, send(t, ts, textMsg(to, "x")))
	if inc := s.Incident(); inc.FirstAcceptAfter.IsZero() {
		t.Errorf("first_accept_after not set: %+v", inc)
	}
	s.Reset()
	wantSuccess(t, send(t, ts, textMsg(to, "x")))
	if inc := s.Incident(); inc != (IncidentStatus{}) {
		t.Errorf("after Reset an ended window is forgotten: got %+v", inc)
	}
}
