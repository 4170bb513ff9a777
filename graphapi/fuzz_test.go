package graphapi

import (
	"testing"
	"unicode/utf8"
)

// The Graph API error parser takes any answer: it never panics, always yields a failure
// of a known class with a message, and keeps Meta's code when the body carries one.
func FuzzParseError(f *testing.F) {
	f.Add(400, []byte(`{"error":{"message":"(#131026) Message undeliverable","type":"OAuthException","code":131026,"error_data":{"messaging_product":"whatsapp","details":"Message Undeliverable."},"fbtrace_id":"A"}}`))
	f.Add(400, []byte(`{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":"130429","error_subcode":2494055}}`))
	f.Add(503, []byte(`{"error":{"message":"(#2) Service temporarily unavailable","type":"OAuthException","code":2}}`))
	f.Add(401, []byte(`{"error":{"message":"Invalid OAuth access token","type":"OAuthException","code":190,"fbtrace_id":"B"}}`))
	f.Add(502, []byte("<html><body><h1>502 Bad Gateway</h1></body></html>"))
	f.Add(500, []byte(""))
	f.Add(418, []byte(`{"error":null}`))
	f.Add(400, []byte(`{"error":{"code":1e400}}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := parseError(status, body)
		if e == nil {
			t.Fatal("parseError returned nil")
		}
		if e.Error() == "" {
			t.Fatalf("error of %d %q has no text", status, body)
		}
		if !utf8.ValidString(e.Message) && utf8.Valid(body) {
			t.Fatalf("message %q is not UTF-8 though the body is", e.Message)
		}
		switch c := Classify(e); c {
		case ClassRetryable, ClassRateLimited, ClassPairRateLimited, ClassPermanent, ClassAuth:
		default:
			t.Fatalf("Classify(%d %q) = %v, want a known class", status, body, c)
		}
		if len(e.Message) > maxErrorSnippet+64 && !e.fromMeta && e.Message != "" && e.Type == "" && e.Code == 0 {
			t.Fatalf("a non-Meta body of %d bytes became a %d-byte message", len(body), len(e.Message))
		}
	})
}
