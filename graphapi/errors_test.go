package graphapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wagate/wagate/shared"
)

// metaError is Meta's error body for code, as in whatsapp-cloud-api.md §2.
func metaError(code string) string {
	return `{"error":{"message":"(#` + code + `) Something","type":"OAuthException","code":` + code +
		`,"error_data":{"messaging_product":"whatsapp","details":"More detail."},"error_subcode":2494055,"fbtrace_id":"Az8or2yhqkZfEZ"}}`
}

func TestClassifyMetaCodes(t *testing.T) {
	tests := []struct {
		code   int
		status int
		want   Class
	}{
		{130429, 400, ClassRateLimited},
		{4, 400, ClassRateLimited},
		{80007, 400, ClassRateLimited},
		{613, 400, ClassRateLimited},
		{131056, 400, ClassPairRateLimited},
		{131000, 500, ClassRetryable},
		{131000, 400, ClassRetryable},
		{1, 400, ClassRetryable},
		{2, 503, ClassRetryable},
		{131016, 503, ClassRetryable},
		{133004, 503, ClassRetryable},
		{131057, 400, ClassRetryable},
		{0, 401, ClassAuth},
		{190, 401, ClassAuth},
		{3, 400, ClassAuth},
		{10, 403, ClassAuth},
		{131005, 403, ClassAuth},
		{200, 403, ClassAuth},
		{230, 403, ClassAuth},
		{299, 403, ClassAuth},
		{368, 400, ClassAuth},
		{131031, 400, ClassAuth},
		{130497, 400, ClassAuth},
		{131042, 400, ClassAuth},
		{131026, 400, ClassPermanent},
		{131047, 400, ClassPermanent},
		{131050, 400, ClassPermanent},
		{131048, 400, ClassPermanent},
		{131049, 400, ClassPermanent},
		{132000, 400, ClassPermanent},
		{132001, 404, ClassPermanent},
		{132005, 400, ClassPermanent},
		{132007, 400, ClassPermanent},
		{132012, 400, ClassPermanent},
		{132015, 400, ClassPermanent},
		{132016, 400, ClassPermanent},
		{132018, 400, ClassPermanent},
		{100, 400, ClassPermanent},
		{131008, 400, ClassPermanent},
		{131009, 400, ClassPermanent},
		{131051, 400, ClassPermanent},
		{131053, 400, ClassPermanent},
		{131021, 400, ClassPermanent},
		{131030, 400, ClassPermanent},
		// The code decides, not the status.
		{131026, 500, ClassPermanent},
		{130429, 500, ClassRateLimited},
		// Unknown codes: 5xx retryable, 429 rate limited, other 4xx permanent.
		{999999, 500, ClassRetryable},
		{999999, 502, ClassRetryable},
		{999999, 400, ClassPermanent},
		{999999, 404, ClassPermanent},
		{999999, 429, ClassRateLimited},
		{300, 400, ClassPermanent},
		// Code 0 with a 5xx is a server failure, not an auth problem.
		{0, 500, ClassRetryable},
	}
	for _, tt := range tests {
		code := fmt.Sprint(tt.code)
		t.Run(fmt.Sprintf("%d_%d", tt.code, tt.status), func(t *testing.T) {
			err := parseError(tt.status, []byte(metaError(code)))
			if got := Classify(err); got != tt.want {
				t.Errorf("Classify(code %d, HTTP %d) = %v, want %v", tt.code, tt.status, got, tt.want)
			}
			if got := Code(err); got != tt.code {
				t.Errorf("Code = %d, want %d", got, tt.code)
			}
			// Callers wrap errors; the class must survive that.
			if got := Classify(fmt.Errorf("send to x: %w", err)); got != tt.want {
				t.Errorf("Classify(wrapped) = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   Error
		class  Class
		text   string
	}{
		{
			name: "meta", status: 400, body: metaError("131026"),
			want: Error{HTTPStatus: 400, Code: 131026, Subcode: 2494055, Message: "(#131026) Something",
				Type: "OAuthException", Details: "More detail.", FBTraceID: "Az8or2yhqkZfEZ"},
			class: ClassPermanent, text: "(#131026) Something: More detail. (fbtrace_id Az8or2yhqkZfEZ)",
		},
		{
			name: "string code", status: 400,
			body:  `{"error":{"message":"Rate limit hit","code":"130429","error_subcode":"2494055","fbtrace_id":"T"}}`,
			want:  Error{HTTPStatus: 400, Code: 130429, Subcode: 2494055, Message: "Rate limit hit", FBTraceID: "T"},
			class: ClassRateLimited, text: "(#130429) Rate limit hit (fbtrace_id T)",
		},
		{
			name: "code zero from meta", status: 401,
			body:  `{"error":{"message":"(#0) Invalid OAuth access token","type":"OAuthException","code":0}}`,
			want:  Error{HTTPStatus: 401, Code: 0, Message: "(#0) Invalid OAuth access token", Type: "OAuthException"},
			class: ClassAuth, text: "(#0) Invalid OAuth access token",
		},
		{
			name: "html 502", status: 502, body: "<html><body><h1>502 Bad Gateway</h1>\n</body></html>",
			want:  Error{HTTPStatus: 502, Message: "Bad Gateway: <html><body><h1>502 Bad Gateway</h1> </body></html>"},
			class: ClassRetryable, text: "graph api: HTTP 502: Bad Gateway: <html><body><h1>502 Bad Gateway</h1> </body></html>",
		},
		{
			name: "empty 503", status: 503, body: "",
			want:  Error{HTTPStatus: 503, Message: "Service Unavailable"},
			class: ClassRetryable, text: "graph api: HTTP 503: Service Unavailable",
		},
		{
			name: "html 404", status: 404, body: "<html>not here</html>",
			want:  Error{HTTPStatus: 404, Message: "Not Found: <html>not here</html>"},
			class: ClassPermanent, text: "graph api: HTTP 404: Not Found: <html>not here</html>",
		},
		{
			name: "plain 429", status: 429, body: "slow down",
			want:  Error{HTTPStatus: 429, Message: "Too Many Requests: slow down"},
			class: ClassRateLimited, text: "graph api: HTTP 429: Too Many Requests: slow down",
		},
		{
			name: "json without error object", status: 500, body: `{"ok":false}`,
			want:  Error{HTTPStatus: 500, Message: `Internal Server Error: {"ok":false}`},
			class: ClassRetryable, text: `graph api: HTTP 500: Internal Server Error: {"ok":false}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseError(tt.status, []byte(tt.body))
			cmp := *got
			cmp.fromMeta = false
			if cmp != tt.want {
				t.Errorf("parseError =\n %+v\nwant\n %+v", cmp, tt.want)
			}
			if c := Classify(got); c != tt.class {
				t.Errorf("Classify = %v, want %v", c, tt.class)
			}
			if s := got.Error(); s != tt.text {
				t.Errorf("Error() = %q, want %q", s, tt.text)
			}
		})
	}
}

func TestParseErrorLongBody(t *testing.T) {
	body := make([]byte, 10_000)
	for i := range body {
		body[i] = 'x'
	}
	e := parseError(502, body)
	if n := len(e.Message); n > maxErrorSnippet+64 {
		t.Errorf("Message is %d bytes, want it capped near %d", n, maxErrorSnippet)
	}
}

func TestClassifyTransport(t *testing.T) {
	// A port that was just free: connecting to it is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice the client hanging up.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()

	// A server that hangs up halfway through its answer.
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		_, _ = w.Write([]byte(`{"messages":`))
		hj, ok := w.(http.Hijacker)
		if !ok {
			return
		}
		conn, _, _ := hj.Hijack()
		conn.Close()
	}))
	defer cut.Close()

	msg := shared.Message{To: "5215512345678", Kind: shared.KindText, Body: "hi"}
	tests := []struct {
		name    string
		baseURL string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
		isErr   error
	}{
		{"connection refused", refused, time.Second, background, nil},
		{"client timeout", slow.URL, 50 * time.Millisecond, background, context.DeadlineExceeded},
		{"caller deadline", slow.URL, time.Minute, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cut answer", cut.URL, time.Second, background, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Config{BaseURL: tt.baseURL, Token: "T", PhoneNumberID: "1", Timeout: tt.timeout})
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			_, err := c.Send(ctx, msg, "")
			if err == nil {
				t.Fatal("Send succeeded, want an error")
			}
			if got := Classify(err); got != ClassRetryable {
				t.Errorf("Classify(%v) = %v, want retryable", err, got)
			}
			if got := Code(err); got != 0 {
				t.Errorf("Code = %d, want 0", got)
			}
			if tt.isErr != nil && !errors.Is(err, tt.isErr) {
				t.Errorf("error %v is not %v", err, tt.isErr)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Send took %v; the deadline did not stop it", d)
			}
		})
	}
}

func background() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

func TestClassifyOther(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"nil", nil, 0},
		{"plain error", errors.New("boom"), ClassPermanent},
		{"invalid input", shared.Invalidf("bad"), ClassPermanent},
		{"unavailable", shared.Wrap(shared.KindUnavailable, errors.New("down"), "down"), ClassRetryable},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), ClassRetryable},
		{"canceled", context.Canceled, ClassRetryable},
		{"constructed meta code", &Error{HTTPStatus: 400, Code: 131047}, ClassPermanent},
		{"constructed no code 500", &Error{HTTPStatus: 500}, ClassRetryable},
		{"constructed no code 401", &Error{HTTPStatus: 401}, ClassPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestClassString(t *testing.T) {
	tests := map[Class]string{
		0: "none", ClassRetryable: "retryable", ClassRateLimited: "rate_limited",
		ClassPairRateLimited: "pair_rate_limited", ClassPermanent: "permanent", ClassAuth: "auth", 42: "class(42)",
	}
	for c, want := range tests {
		if got := c.String(); got != want {
			t.Errorf("Class(%d).String() = %q, want %q", int(c), got, want)
		}
	}
}
