// Package graphapi is wagate's client of Meta's WhatsApp Cloud API (the Graph API):
// it sends messages, uploads and looks up media, fetches client-given media URLs, and
// classifies Meta's errors into what a caller should do about them.
package graphapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/wagate/wagate/shared"
)

// Defaults of Config.
const (
	DefaultBaseURL = "https://graph.facebook.com"
	DefaultVersion = "v23.0"
	// DefaultTimeout bounds one message, media lookup or ping request.
	DefaultTimeout = 30 * time.Second
	// TransferTimeout bounds one media upload or download, which may move 100 MB.
	TransferTimeout = 5 * time.Minute
	// MaxFetchSize is the largest media FetchURL accepts: Meta's document limit.
	MaxFetchSize = 100 << 20
)

// maxAnswer bounds how much of a JSON answer is read; Meta's answers are a few hundred
// bytes, and a misbehaving server must not make the client buffer without end.
const maxAnswer = 4 << 20

// Config says where and as whom the client talks to the Graph API.
type Config struct {
	BaseURL       string        // WHATSAPP_API_URL; DefaultBaseURL when empty; a trailing slash is ignored
	Version       string        // WHATSAPP_API_VERSION, e.g. v23.0; DefaultVersion when empty
	Token         string        // bearer token sent on every Graph API call (never to FetchURL links)
	PhoneNumberID string        // the business phone number messages are sent from
	HTTPClient    *http.Client  // nil: a client that keeps up to 256 idle connections per host and has no global timeout
	Timeout       time.Duration // deadline of each message request; DefaultTimeout when zero (uploads and downloads: TransferTimeout)
	// AllowPrivateMedia lets FetchURL download from loopback, private and link-local
	// addresses. Off, a client-given header URL cannot make the worker reach into its
	// own network (cloud metadata, internal services); the dev stack turns it on for the
	// sandbox's sample media.
	AllowPrivateMedia bool
}

// Client talks to the Graph API. It is safe for concurrent use and reuses connections.
type Client struct {
	http          *http.Client
	fetch         *http.Client // for client-given media URLs: no token, public addresses only unless allowed
	auth          string       // "Bearer <token>", built once
	phoneNumberID string
	timeout       time.Duration
	maxFetch      int64

	messagesURL string
	mediaURL    string
	pingURL     string
	versionURL  string // base + "/" + version, for media ids
}

// New returns a client for cfg, filling in defaults.
func New(cfg Config) *Client {
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	version := strings.Trim(cfg.Version, "/")
	if version == "" {
		version = DefaultVersion
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: newTransport()}
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	versionURL := base + "/" + version
	pnid := url.PathEscape(cfg.PhoneNumberID)
	fetch := hc
	if !cfg.AllowPrivateMedia {
		fetch = &http.Client{Transport: publicOnlyTransport()}
	}
	return &Client{
		http:          hc,
		fetch:         fetch,
		auth:          "Bearer " + cfg.Token,
		phoneNumberID: cfg.PhoneNumberID,
		timeout:       timeout,
		maxFetch:      MaxFetchSize,
		messagesURL:   versionURL + "/" + pnid + "/messages",
		mediaURL:      versionURL + "/" + pnid + "/media",
		pingURL:       versionURL + "/" + pnid + "?fields=id",
		versionURL:    versionURL,
	}
}

// newTransport sizes the idle pool for thousands of sends per second from many
// goroutines: with the default of 2 idle connections per host, most requests would
// open a new connection and leave it in TIME_WAIT.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// publicOnlyTransport dials only public addresses. The check runs on the address
// actually dialed, after DNS resolution and on every redirect, so neither a hostname
// that resolves inward nor a redirect can get around it.
func publicOnlyTransport() *http.Transport {
	t := newTransport()
	t.Proxy = nil
	dialer := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return err
			}
			if !publicAddr(ip) {
				return errPrivateMedia
			}
			return nil
		},
	}
	t.DialContext = dialer.DialContext
	return t
}

// errPrivateMedia refuses a media URL that points into the gateway's own network.
var errPrivateMedia = errors.New("media URL resolves to a private or local address")

var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10") // carrier-grade NAT

// publicAddr reports whether ip is a globally routable unicast address.
func publicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() &&
		!sharedAddressSpace.Contains(ip)
}

// PhoneNumberID returns the business phone number id the client sends from.
func (c *Client) PhoneNumberID() string { return c.phoneNumberID }

// SendResult is Meta's answer to an accepted message.
type SendResult struct {
	Raw   json.RawMessage // Meta's exact body, returned to API clients as is
	WAMID string          // messages[0].id, the key of later status webhooks; empty if Meta gave none
}

type sendAnswer struct {
	Messages []struct {
		ID string `json:"id"`
	} `json:"messages"`
}

// Send posts m to /{version}/{phone-number-id}/messages. opaque, when not empty, is
// sent as biz_opaque_callback_data, which Meta echoes in status webhooks. Acceptance
// is not delivery: delivery comes later by webhook. On an error answer the error is an
// *Error; a timeout or network error leaves it unknown whether Meta accepted the
// message (see Classify).
func (c *Client) Send(ctx context.Context, m shared.Message, opaque string) (SendResult, error) {
	body, err := BuildPayload(m, opaque)
	if err != nil {
		return SendResult{}, err
	}
	raw, err := c.call(ctx, c.timeout, http.MethodPost, c.messagesURL, "application/json", body)
	if err != nil {
		return SendResult{}, fmt.Errorf("graphapi: send: %w", err)
	}
	var a sendAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		// Meta answered 2xx, so the message was most likely accepted: a malformed body
		// must not look retryable and send it twice.
		return SendResult{}, fmt.Errorf("graphapi: send: malformed success answer: %w", err)
	}
	res := SendResult{Raw: raw}
	if len(a.Messages) > 0 {
		res.WAMID = a.Messages[0].ID
	}
	return res, nil
}

// UploadMedia stores data with Meta (multipart POST /{version}/{phone-number-id}/media
// with messaging_product=whatsapp, file and type) and returns its media id, usable in
// messages for 30 days.
func (c *Client) UploadMedia(ctx context.Context, data []byte, mimeType, filename string) (string, error) {
	if mimeType == "" {
		mimeType = "application/octet-stream"
	}
	if filename == "" {
		filename = "file"
	}
	var buf bytes.Buffer
	buf.Grow(len(data) + 1024)
	w := multipart.NewWriter(&buf)
	_ = w.WriteField("messaging_product", "whatsapp")
	h := make(textproto.MIMEHeader, 2)
	h.Set("Content-Disposition", mime.FormatMediaType("form-data", map[string]string{"name": "file", "filename": filename}))
	h.Set("Content-Type", mimeType)
	part, err := w.CreatePart(h)
	if err != nil {
		return "", fmt.Errorf("graphapi: upload: %w", err)
	}
	_, _ = part.Write(data) // writes to a bytes.Buffer do not fail
	_ = w.WriteField("type", mimeType)
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("graphapi: upload: %w", err)
	}

	raw, err := c.call(ctx, TransferTimeout, http.MethodPost, c.mediaURL, w.FormDataContentType(), buf.Bytes())
	if err != nil {
		return "", fmt.Errorf("graphapi: upload: %w", err)
	}
	var a struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &a); err != nil || a.ID == "" {
		return "", fmt.Errorf("graphapi: upload: no media id in answer %.200q", raw)
	}
	return a.ID, nil
}

// MediaInfo is Meta's description of a stored media object. URL is valid for 5
// minutes and must be downloaded with the bearer token.
type MediaInfo struct {
	URL      string `json:"url"`
	MimeType string `json:"mime_type"`
	SHA256   string `json:"sha256"`
	FileSize int64  `json:"file_size"` // Meta sends a string or a number; both decode
	ID       string `json:"id"`
}

// UnmarshalJSON accepts file_size as a number or a string.
func (m *MediaInfo) UnmarshalJSON(b []byte) error {
	type plain MediaInfo // no methods, so no recursion
	var v struct {
		*plain
		FileSize flexInt `json:"file_size"`
	}
	v.plain = (*plain)(m)
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	m.FileSize = int64(v.FileSize)
	return nil
}

// GetMedia looks up a media id (GET /{version}/{media-id}).
func (c *Client) GetMedia(ctx context.Context, mediaID string) (MediaInfo, error) {
	if mediaID == "" {
		return MediaInfo{}, shared.Invalidf("Falta el id del medio")
	}
	raw, err := c.call(ctx, c.timeout, http.MethodGet, c.versionURL+"/"+url.PathEscape(mediaID), "", nil)
	if err != nil {
		return MediaInfo{}, fmt.Errorf("graphapi: get media: %w", err)
	}
	var info MediaInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return MediaInfo{}, fmt.Errorf("graphapi: get media: malformed answer: %w", err)
	}
	return info, nil
}

// Ping checks that the Graph API (or the sandbox) answers for the configured number and
// token (GET /{version}/{phone-number-id}?fields=id): nil on a 2xx answer.
func (c *Client) Ping(ctx context.Context) error {
	if _, err := c.call(ctx, c.timeout, http.MethodGet, c.pingURL, "", nil); err != nil {
		return fmt.Errorf("graphapi: ping: %w", err)
	}
	return nil
}

// FetchURL downloads a client-given media URL with a plain GET, without the bearer
// token, so the token never leaves for a third-party host. It refuses more than 100 MB
// (Meta's largest media). A non-2xx answer is an *Error with Code 0 (5xx retryable,
// others permanent). The MIME type is the Content-Type header's, else sniffed from the
// content or guessed from the URL's extension.
func (c *Client) FetchURL(ctx context.Context, link string) ([]byte, string, error) {
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", shared.Invalidf("URL de medio no válida: %s", shared.Echo(link))
	}
	ctx, cancel := context.WithTimeout(ctx, TransferTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		return nil, "", shared.Invalidf("URL de medio no válida: %s", shared.Echo(link))
	}
	resp, err := c.fetch.Do(req)
	if errors.Is(err, errPrivateMedia) {
		return nil, "", shared.Invalidf("La URL del medio %s apunta a una dirección privada o local; use una URL pública", redact(u))
	}
	if err != nil {
		return nil, "", fmt.Errorf("graphapi: fetch %s: %w", redact(u), err)
	}
	defer closeBody(resp)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorSnippet))
		return nil, "", &Error{HTTPStatus: resp.StatusCode, Message: "GET " + redact(u) + ": " + describeBody(resp.StatusCode, snippet)}
	}
	if resp.ContentLength > c.maxFetch {
		return nil, "", shared.Invalidf("El medio %s pesa %d bytes; el máximo es %d", redact(u), resp.ContentLength, c.maxFetch)
	}
	data, err := readAll(resp, c.maxFetch+1)
	if err != nil {
		return nil, "", fmt.Errorf("graphapi: fetch %s: %w", redact(u), err)
	}
	if int64(len(data)) > c.maxFetch {
		return nil, "", shared.Invalidf("El medio %s pesa más de %d bytes, el máximo", redact(u), c.maxFetch)
	}
	return data, mimeOf(resp.Header.Get("Content-Type"), data, u.Path), nil
}

// redact drops the query of a URL for messages: signed URLs carry credentials there.
func redact(u *url.URL) string {
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

const octetStream = "application/octet-stream"

func mimeOf(contentType string, data []byte, urlPath string) string {
	if mt, _, err := mime.ParseMediaType(contentType); err == nil && mt != octetStream {
		return mt
	}
	// Sniffing only recognises binary signatures well; for anything it calls plain text
	// or unknown, the URL's extension is the better guess.
	sniffed, _, _ := strings.Cut(http.DetectContentType(data), ";")
	if sniffed != octetStream && sniffed != "text/plain" {
		return sniffed
	}
	if ext := path.Ext(urlPath); ext != "" {
		if mt, _, err := mime.ParseMediaType(mime.TypeByExtension(ext)); err == nil {
			return mt
		}
	}
	return sniffed
}

// call performs one Graph API request with the bearer token under its own deadline and
// returns the body of a 2xx answer; any other answer becomes an *Error.
func (c *Client) call(ctx context.Context, timeout time.Duration, method, target, contentType string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp)
	raw, err := readAll(resp, maxAnswer)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, parseError(resp.StatusCode, raw)
	}
	return raw, nil
}

// readAll reads at most limit bytes of the body, sized by Content-Length when known to
// avoid the repeated growth of io.ReadAll.
func readAll(resp *http.Response, limit int64) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 && n < limit {
		// net/http never yields more than Content-Length bytes.
		buf := make([]byte, n)
		_, err := io.ReadFull(resp.Body, buf)
		return buf, err
	}
	return io.ReadAll(io.LimitReader(resp.Body, limit))
}

// closeBody drains what is left of a body before closing it, so the connection goes
// back to the idle pool instead of being torn down.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}
