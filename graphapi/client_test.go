package graphapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wagate/wagate/shared"
)

const (
	testToken = "EAAG-test-token"
	testPNID  = "106540352242922"
	sendOK    = `{"messaging_product":"whatsapp","contacts":[{"input":"+16505551234","wa_id":"16505551234"}],"messages":[{"id":"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5","message_status":"accepted"}]}`
)

// fakeMeta is an httptest server that checks each request against what Meta requires
// and answers with Meta's shapes. Handlers report protocol violations with t.Errorf.
type fakeMeta struct {
	t      *testing.T
	srv    *httptest.Server
	mux    *http.ServeMux
	conns  atomic.Int64
	mu     sync.Mutex
	bodies [][]byte
}

func newFakeMeta(t *testing.T) *fakeMeta {
	t.Helper()
	f := &fakeMeta{t: t, mux: http.NewServeMux()}
	f.srv = httptest.NewUnstartedServer(f.mux)
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeMeta) client() *Client {
	// A trailing slash in the base URL must not double up in paths.
	return New(Config{BaseURL: f.srv.URL + "/", Version: "v23.0", Token: testToken, PhoneNumberID: testPNID})
}

// handle registers h for pattern after checking the bearer token.
func (f *fakeMeta) handle(pattern string, h http.HandlerFunc) {
	f.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if got, want := r.Header.Get("Authorization"), "Bearer "+testToken; got != want {
			f.t.Errorf("%s %s: Authorization = %q, want %q", r.Method, r.URL.Path, got, want)
		}
		h(w, r)
	})
}

func answer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func TestSend(t *testing.T) {
	f := newFakeMeta(t)
	f.handle("POST /v23.0/"+testPNID+"/messages", func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", ct)
		}
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.bodies = append(f.bodies, body)
		f.mu.Unlock()
		var p struct {
			To     string `json:"to"`
			Opaque string `json:"biz_opaque_callback_data"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("body is not JSON: %v", err)
		}
		switch p.To {
		case "+16505551234":
			answer(w, 200, sendOK)
		case "+10000000000":
			answer(w, 400, `{"error":{"message":"(#131026) Message undeliverable","type":"OAuthException","code":131026,"error_data":{"messaging_product":"whatsapp","details":"Receiver is incapable of receiving this message"},"fbtrace_id":"AbC"}}`)
		case "+19999999999":
			answer(w, 200, `{"messaging_product":"whatsapp","contacts":[]}`)
		default:
			t.Errorf("unexpected recipient %q", p.To)
			answer(w, 500, `{}`)
		}
	})
	c := f.client()
	ctx := context.Background()
	msg := shared.Message{To: "16505551234", Kind: shared.KindText, Body: "hola"}

	t.Run("accepted", func(t *testing.T) {
		res, err := c.Send(ctx, msg, "task-9:3")
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		if got, want := res.WAMID, "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5"; got != want {
			t.Errorf("WAMID = %q, want %q", got, want)
		}
		if got := string(res.Raw); got != sendOK {
			t.Errorf("Raw = %s, want Meta's exact body %s", got, sendOK)
		}
		want, _ := BuildPayload(msg, "task-9:3")
		f.mu.Lock()
		got := f.bodies[len(f.bodies)-1]
		f.mu.Unlock()
		if !bytes.Equal(got, want) {
			t.Errorf("posted body = %s, want BuildPayload's %s", got, want)
		}
	})
	t.Run("meta error", func(t *testing.T) {
		_, err := c.Send(ctx, shared.Message{To: "10000000000", Kind: shared.KindText, Body: "x"}, "")
		var ge *Error
		if !errors.As(err, &ge) {
			t.Fatalf("Send error %v is not an *Error", err)
		}
		want := Error{HTTPStatus: 400, Code: 131026, Message: "(#131026) Message undeliverable", Type: "OAuthException",
			Details: "Receiver is incapable of receiving this message", FBTraceID: "AbC", fromMeta: true}
		if *ge != want {
			t.Errorf("error = %+v, want %+v", *ge, want)
		}
		if c := Classify(err); c != ClassPermanent {
			t.Errorf("Classify = %v, want permanent", c)
		}
		if !strings.Contains(err.Error(), "(#131026) Message undeliverable: Receiver is incapable") {
			t.Errorf("error text %q lacks Meta's message and details", err)
		}
	})
	t.Run("accepted without wamid", func(t *testing.T) {
		res, err := c.Send(ctx, shared.Message{To: "19999999999", Kind: shared.KindText, Body: "x"}, "")
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		if res.WAMID != "" || len(res.Raw) == 0 {
			t.Errorf("result = %+v, want empty WAMID and the raw body", res)
		}
	})
	t.Run("invalid message is not sent", func(t *testing.T) {
		f.mu.Lock()
		before := len(f.bodies)
		f.mu.Unlock()
		_, err := c.Send(ctx, shared.Message{To: "16505551234", Kind: "bogus"}, "")
		if shared.KindOf(err) != shared.KindInvalid {
			t.Errorf("Send error %v, want KindInvalid", err)
		}
		f.mu.Lock()
		after := len(f.bodies)
		f.mu.Unlock()
		if after != before {
			t.Errorf("an invalid message reached the server")
		}
	})
}

// TestSendReusesConnections guards the throughput: every answer body must be drained
// and closed so that sequential and concurrent sends share a few connections.
func TestSendReusesConnections(t *testing.T) {
	f := newFakeMeta(t)
	f.handle("POST /v23.0/"+testPNID+"/messages", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if strings.Contains(r.URL.RawQuery, "fail") {
			answer(w, 400, metaError("131047"))
			return
		}
		answer(w, 200, sendOK)
	})
	c := f.client()
	msg := shared.Message{To: "16505551234", Kind: shared.KindText, Body: "hi"}
	for i := range 50 {
		if _, err := c.Send(context.Background(), msg, ""); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if got := f.conns.Load(); got != 1 {
		t.Errorf("50 sequential sends opened %d connections, want 1", got)
	}
	// Error answers must give their connection back too.
	c.messagesURL += "?fail"
	for i := range 20 {
		if _, err := c.Send(context.Background(), msg, ""); Code(err) != 131047 {
			t.Fatalf("send %d: error %v, want code 131047", i, err)
		}
	}
	if got := f.conns.Load(); got != 1 {
		t.Errorf("20 sequential failed sends opened %d connections in all, want 1", got)
	}
	c.messagesURL = strings.TrimSuffix(c.messagesURL, "?fail")

	const workers, each = 20, 10
	before := f.conns.Load()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				if _, err := c.Send(context.Background(), msg, ""); err != nil {
					t.Errorf("send: %v", err)
				}
			}
		})
	}
	wg.Wait()
	// The transport may dial a spare connection when a request races a returning
	// idle one, so the bound is loose; without reuse it would be one per request.
	if got := f.conns.Load() - before; got > 2*workers {
		t.Errorf("%d sends from %d goroutines opened %d connections, want at most %d", workers*each, workers, got, 2*workers)
	}
}

func TestDefaultTransport(t *testing.T) {
	c := New(Config{Token: "x", PhoneNumberID: "1"})
	tr, ok := c.http.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("default transport is %T, want *http.Transport", c.http.Transport)
	}
	if tr.MaxIdleConnsPerHost < 256 {
		t.Errorf("MaxIdleConnsPerHost = %d, want >= 256", tr.MaxIdleConnsPerHost)
	}
	if c.http.Timeout != 0 {
		t.Errorf("client Timeout = %v, want none (uploads are long; each call has its own deadline)", c.http.Timeout)
	}
	if c.timeout != DefaultTimeout {
		t.Errorf("timeout = %v, want %v", c.timeout, DefaultTimeout)
	}
	if got, want := c.messagesURL, "https://graph.facebook.com/v23.0/1/messages"; got != want {
		t.Errorf("messages URL = %q, want %q", got, want)
	}
	if got := c.PhoneNumberID(); got != "1" {
		t.Errorf("PhoneNumberID = %q, want 1", got)
	}
}

func TestUploadMedia(t *testing.T) {
	f := newFakeMeta(t)
	content := []byte("\x89PNG\r\n\x1a\nfake image bytes")
	f.handle("POST /v23.0/"+testPNID+"/media", func(w http.ResponseWriter, r *http.Request) {
		mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/form-data" {
			t.Errorf("Content-Type = %q, want multipart/form-data", r.Header.Get("Content-Type"))
			answer(w, 400, metaError("100"))
			return
		}
		mr := multipart.NewReader(r.Body, params["boundary"])
		fields := map[string]string{}
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("multipart: %v", err)
				break
			}
			data, _ := io.ReadAll(p)
			switch p.FormName() {
			case "file":
				if got := p.FileName(); got != `banner "1".png` {
					t.Errorf("file name = %q, want %q", got, `banner "1".png`)
				}
				if got := p.Header.Get("Content-Type"); got != "image/png" {
					t.Errorf("file part Content-Type = %q, want image/png", got)
				}
				if !bytes.Equal(data, content) {
					t.Errorf("file content = %q, want %q", data, content)
				}
				fields["file"] = "present"
			default:
				fields[p.FormName()] = string(data)
			}
		}
		want := map[string]string{"messaging_product": "whatsapp", "type": "image/png", "file": "present"}
		for k, v := range want {
			if fields[k] != v {
				t.Errorf("multipart field %s = %q, want %q", k, fields[k], v)
			}
		}
		answer(w, 200, `{"id":"1037543291543636"}`)
	})
	id, err := f.client().UploadMedia(context.Background(), content, "image/png", `banner "1".png`)
	if err != nil {
		t.Fatalf("UploadMedia: %v", err)
	}
	if id != "1037543291543636" {
		t.Errorf("media id = %q, want 1037543291543636", id)
	}
}

func TestUploadMediaErrors(t *testing.T) {
	f := newFakeMeta(t)
	f.handle("POST /v23.0/"+testPNID+"/media", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Query().Get("case") == "noid" {
			answer(w, 200, `{}`)
			return
		}
		answer(w, 400, metaError("131053"))
	})
	c := f.client()
	_, err := c.UploadMedia(context.Background(), []byte("x"), "image/webp", "a.webp")
	if got := Code(err); got != 131053 {
		t.Errorf("Code = %d, want 131053 (err %v)", got, err)
	}
	if got := Classify(err); got != ClassPermanent {
		t.Errorf("Classify = %v, want permanent", got)
	}

	c.mediaURL += "?case=noid"
	if _, err := c.UploadMedia(context.Background(), []byte("x"), "image/png", "a.png"); err == nil {
		t.Error("UploadMedia succeeded on an answer without id")
	}
}

func TestGetMedia(t *testing.T) {
	f := newFakeMeta(t)
	f.handle("GET /v23.0/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("id") {
		case "111":
			answer(w, 200, `{"messaging_product":"whatsapp","url":"https://lookaside.fbsbx.com/x?a=1","mime_type":"image/jpeg","sha256":"abc","file_size":"303833","id":"111"}`)
		case "222":
			answer(w, 200, `{"messaging_product":"whatsapp","url":"https://lookaside.fbsbx.com/y","mime_type":"video/mp4","sha256":"def","file_size":1048576,"id":"222"}`)
		case testPNID: // the Ping route shares this pattern
			if got := r.URL.Query().Get("fields"); got != "id" {
				t.Errorf("ping fields = %q, want id", got)
			}
			answer(w, 200, `{"id":"`+testPNID+`"}`)
		default:
			answer(w, 400, `{"error":{"message":"(#100) Unsupported get request.","type":"GraphMethodException","code":100,"error_subcode":33,"fbtrace_id":"Q"}}`)
		}
	})
	c := f.client()
	tests := []struct {
		id   string
		want MediaInfo
	}{
		{"111", MediaInfo{URL: "https://lookaside.fbsbx.com/x?a=1", MimeType: "image/jpeg", SHA256: "abc", FileSize: 303833, ID: "111"}},
		{"222", MediaInfo{URL: "https://lookaside.fbsbx.com/y", MimeType: "video/mp4", SHA256: "def", FileSize: 1048576, ID: "222"}},
	}
	for _, tt := range tests {
		got, err := c.GetMedia(context.Background(), tt.id)
		if err != nil {
			t.Fatalf("GetMedia(%s): %v", tt.id, err)
		}
		if got != tt.want {
			t.Errorf("GetMedia(%s) = %+v, want %+v", tt.id, got, tt.want)
		}
	}
	_, err := c.GetMedia(context.Background(), "999")
	if Code(err) != 100 || Classify(err) != ClassPermanent {
		t.Errorf("GetMedia(unknown) error %v: code %d class %v, want 100 permanent", err, Code(err), Classify(err))
	}
	if _, err := c.GetMedia(context.Background(), ""); shared.KindOf(err) != shared.KindInvalid {
		t.Errorf("GetMedia(\"\") error %v, want KindInvalid", err)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestPingFailures(t *testing.T) {
	f := newFakeMeta(t)
	f.mux.HandleFunc("GET /v23.0/{id}", func(w http.ResponseWriter, r *http.Request) {
		answer(w, 401, `{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"Z"}}`)
	})
	err := f.client().Ping(context.Background())
	if err == nil {
		t.Fatal("Ping succeeded on a 401")
	}
	if Classify(err) != ClassAuth || Code(err) != 190 {
		t.Errorf("Ping error %v: class %v code %d, want auth 190", err, Classify(err), Code(err))
	}
}

func TestFetchURL(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR rest of the image")
	pdf := []byte("%PDF-1.4 a document")
	var sawAuth atomic.Bool
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			sawAuth.Store(true)
		}
		switch r.URL.Path {
		case "/typed.jpg":
			w.Header().Set("Content-Type", "image/jpeg; charset=binary")
			_, _ = w.Write([]byte("jpeg bytes"))
		case "/sniffed":
			w.Header()["Content-Type"] = nil // no header: net/http would otherwise sniff one itself
			_, _ = w.Write(png)
		case "/octet.pdf":
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(pdf)
		case "/data.csv":
			w.Header()["Content-Type"] = nil
			_, _ = w.Write([]byte("a,b\n1,2\n"))
		case "/big":
			w.Header().Set("Content-Type", "video/mp4")
			_, _ = w.Write(bytes.Repeat([]byte("v"), 2048))
		case "/bigchunked":
			w.Header().Set("Content-Type", "video/mp4")
			for range 4 {
				_, _ = w.Write(bytes.Repeat([]byte("v"), 512))
				w.(http.Flusher).Flush()
			}
		case "/gone":
			http.Error(w, "no such file", http.StatusNotFound)
		case "/broken":
			http.Error(w, "upstream down", http.StatusBadGateway)
		}
	})
	c := New(Config{BaseURL: "http://127.0.0.1:1", Token: testToken, PhoneNumberID: testPNID, AllowPrivateMedia: true})
	c.maxFetch = 1024

	ok := []struct {
		path     string
		wantData []byte
		wantMime string
	}{
		{"/typed.jpg", []byte("jpeg bytes"), "image/jpeg"},
		{"/sniffed", png, "image/png"},
		{"/octet.pdf", pdf, "application/pdf"},
		{"/data.csv", []byte("a,b\n1,2\n"), "text/csv"},
	}
	for _, tt := range ok {
		data, mt, err := c.FetchURL(context.Background(), srv.URL+tt.path+"?sig=secret")
		if err != nil {
			t.Errorf("FetchURL(%s): %v", tt.path, err)
			continue
		}
		if !bytes.Equal(data, tt.wantData) {
			t.Errorf("FetchURL(%s) data = %q, want %q", tt.path, data, tt.wantData)
		}
		if mt != tt.wantMime {
			t.Errorf("FetchURL(%s) mime = %q, want %q", tt.path, mt, tt.wantMime)
		}
	}
	if sawAuth.Load() {
		t.Error("FetchURL sent the bearer token to a client-given URL")
	}

	fail := []struct {
		path string
		want Class
	}{
		{"/big", ClassPermanent},
		{"/bigchunked", ClassPermanent},
		{"/gone", ClassPermanent},
		{"/broken", ClassRetryable},
	}
	for _, tt := range fail {
		_, _, err := c.FetchURL(context.Background(), srv.URL+tt.path+"?sig=secret")
		if err == nil {
			t.Errorf("FetchURL(%s) succeeded, want an error", tt.path)
			continue
		}
		if got := Classify(err); got != tt.want {
			t.Errorf("FetchURL(%s): Classify(%v) = %v, want %v", tt.path, err, got, tt.want)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("FetchURL(%s) error %q leaks the URL's query", tt.path, err)
		}
	}
	for _, bad := range []string{"", "ftp://x/y", "not a url", "http://"} {
		if _, _, err := c.FetchURL(context.Background(), bad); shared.KindOf(err) != shared.KindInvalid {
			t.Errorf("FetchURL(%q) error %v, want KindInvalid", bad, err)
		}
	}
}

func TestFetchURLRefusesPrivateAddresses(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		_, _ = w.Write([]byte("\xff\xd8\xff"))
	}))
	t.Cleanup(srv.Close)
	c := New(Config{Token: testToken, PhoneNumberID: testPNID})
	for _, link := range []string{srv.URL + "/a.jpg", "http://localhost:" + srv.URL[strings.LastIndex(srv.URL, ":")+1:] + "/a.jpg"} {
		_, _, err := c.FetchURL(context.Background(), link)
		if shared.KindOf(err) != shared.KindInvalid || Classify(err) != ClassPermanent || !strings.Contains(err.Error(), "privada") {
			t.Errorf("FetchURL(%s) = %v, want a permanent invalid-input error about a private address", link, err)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the private server was reached %d times", hits.Load())
	}
	allowed := New(Config{Token: testToken, PhoneNumberID: testPNID, AllowPrivateMedia: true})
	if _, _, err := allowed.FetchURL(context.Background(), srv.URL+"/a.jpg"); err != nil {
		t.Errorf("with AllowPrivateMedia: %v", err)
	}

	for _, tt := range []struct {
		ip     string
		public bool
	}{
		{"8.8.8.8", true}, {"2606:4700:4700::1111", true},
		{"127.0.0.1", false}, {"::1", false}, {"10.1.2.3", false}, {"172.16.0.1", false}, {"192.168.1.1", false},
		{"169.254.169.254", false}, {"fe80::1", false}, {"fd00::1", false}, {"100.64.0.1", false},
		{"0.0.0.0", false}, {"::ffff:127.0.0.1", false}, {"224.0.0.1", false},
	} {
		if got := publicAddr(netip.MustParseAddr(tt.ip)); got != tt.public {
			t.Errorf("publicAddr(%s) = %v, want %v", tt.ip, got, tt.public)
		}
	}
}
