package e2e

import (
	"errors"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wagate/wagate/graphapi/sandbox"
	"github.com/wagate/wagate/shared"
)

// freeAddr is a loopback address nothing listens on yet.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitHealthy waits for /api/health on base.
func waitHealthy(t *testing.T, p *Process, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(base + "/api/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("apiserver never answered /api/health:\n%s", p.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The production apiserver refuses to start without WHATSAPP_APP_SECRET unless unsigned
// webhooks are allowed explicitly, and then says so at start and on /api/status.
func TestProductionRequiresSignedWebhooks(t *testing.T) {
	s := NewStack(t, StackOptions{NoWorker: true})
	env := append(s.Env(), "HTTP_ADDR="+freeAddr(t))
	cmd := exec.Command(BuildBinary(t, "apiserver"))
	cmd.Env = append(env, "WHATSAPP_APP_SECRET=", "WEBHOOK_ALLOW_UNSIGNED=false")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("apiserver without a secret = %v, want exit status 1:\n%s", err, out)
	}
	for _, want := range []string{"WHATSAPP_APP_SECRET is not set", "WEBHOOK_ALLOW_UNSIGNED=true"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("refusal does not say %q:\n%s", want, out)
		}
	}

	addr := freeAddr(t)
	p := s.StartBinary(t, "apiserver", "HTTP_ADDR="+addr, "WHATSAPP_APP_SECRET=", "WEBHOOK_ALLOW_UNSIGNED=true")
	waitHealthy(t, p, "http://"+addr)
	if !strings.Contains(p.Output(), "POST /webhook accepts unsigned bodies") {
		t.Errorf("no warning at start:\n%s", p.Output())
	}
	api := &Stack{API: "http://" + addr}
	_, st := api.Get(t, "/api/status")
	warnings, _ := st["warnings"].([]any)
	if len(warnings) == 0 || !strings.Contains(warnings[0].(string), "unsigned") {
		t.Errorf("/api/status = %v, want a warning about unsigned webhooks", st)
	}
	if _, ok := st["services"].(map[string]any); !ok {
		t.Errorf("/api/status lost the contract's services: %v", st)
	}
}

// With the secret set, unsigned and forged webhooks are refused and Meta's signed ones
// accepted.
func TestSignedWebhooksOnly(t *testing.T) {
	s := NewStack(t, StackOptions{AppSecret: "s3cret-de-la-app"})
	body := textWebhook("wamid.SEC1", "573001234567", "hola")
	if status, _ := postWebhook(t, s, body, ""); status != http.StatusUnauthorized {
		t.Errorf("unsigned webhook = %d, want 401", status)
	}
	if status, _ := postWebhook(t, s, body, sandbox.Sign([]byte("otra-clave"), body)); status != http.StatusUnauthorized {
		t.Errorf("webhook signed with another secret = %d, want 401", status)
	}
	if status, _ := postWebhook(t, s, body, sandbox.Sign([]byte("s3cret-de-la-app"), body)); status != http.StatusOK {
		t.Errorf("webhook signed with the app secret = %d, want 200", status)
	}
}

// Two keys at once let clients move from the old key to the new one without a refused
// request; the logs name keys by fingerprint only.
func TestAPIKeyRotation(t *testing.T) {
	s := NewStack(t, StackOptions{NoWorker: true})
	const oldKey, newKey = "clave-vieja-0123456789", "clave-nueva-9876543210"
	addr := freeAddr(t)
	p := s.StartBinary(t, "apiserver", "HTTP_ADDR="+addr, "API_KEY="+oldKey, "API_KEYS=,"+newKey+" ,")
	base := "http://" + addr
	waitHealthy(t, p, base)
	get := func(key string) int {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/numbers", nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for key, want := range map[string]int{oldKey: 200, newKey: 200, "": 401, "otra": 401} {
		if got := get(key); got != want {
			t.Errorf("GET /api/numbers with key %q = %d, want %d", key, got, want)
		}
	}
	logs := p.Output()
	for _, k := range []string{oldKey, newKey} {
		if strings.Contains(logs, k) {
			t.Errorf("the logs hold the key %q in clear", k)
		}
		if !strings.Contains(logs, shared.KeyFingerprint(k)) {
			t.Errorf("the logs do not name key %s by its fingerprint %s:\n%s", k, shared.KeyFingerprint(k), logs)
		}
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(t, 30*time.Second); err != nil {
		t.Fatalf("apiserver exit: %v", err)
	}

	// The rotation ends: only the new key is configured.
	p = s.StartBinary(t, "apiserver", "HTTP_ADDR="+addr, "API_KEY=", "API_KEYS="+newKey)
	waitHealthy(t, p, base)
	if got := get(oldKey); got != http.StatusUnauthorized {
		t.Errorf("the old key after the rotation = %d, want 401", got)
	}
	if got := get(newKey); got != http.StatusOK {
		t.Errorf("the new key after the rotation = %d, want 200", got)
	}
}

// Hostile inputs never make an error body quote more than 64 characters of them.
func TestErrorsQuoteBoundedInput(t *testing.T) {
	s := NewStack(t, StackOptions{})
	long := strings.Repeat("5", 5000)
	emoji := strings.Repeat("😀", 3000)
	for _, c := range []struct{ path, body string }{
		{"/api/send-message", `{"phone":"` + long + `","message":"hola"}`},
		{"/api/send-message", `{"phone":"` + emoji + `","message":"hola"}`},
		{"/api/send-interactive", `{"phone":"573123456789","header_type":"` + long + `","body_text":"b"}`},
		{"/api/send-bulk", `{"recipients":[{"phone":"` + emoji + `","message":"x"}]}`},
		{"/api/send-bulk-template", `{"template_name":"` + long + `","recipients":[{"phone":"573123456789"}]}`},
		{"/api/send-bulk-template", `{"template_name":"pedido_listo","recipients":[{"phone":"573123456789","parameters":{"` + long + `":"x"}}]}`},
		{"/api/send-list", `{"phone":"573123456789","header_text":"h","body_text":"b","footer_text":"f","button_text":"v","sections":[{"title":"s","rows":[{"id":"` + long[:150] + `","title":"a"},{"id":"` + long[:150] + `","title":"b"}]}]}`},
	} {
		status, resp := postRaw(t, s.API+c.path, c.body, nil)
		msg, _ := resp["error"].(string)
		if status != http.StatusBadRequest || resp["success"] != false {
			t.Errorf("POST %s = %d %v, want 400", c.path, status, resp)
		}
		if strings.Count(msg, "5") > 80 || strings.Count(msg, "😀") > shared.MaxEcho || len(msg) > 700 {
			t.Errorf("POST %s: error of %d bytes quotes too much: %.160q", c.path, len(msg), msg)
		}
	}
	status, resp := s.Get(t, "/api/task-status/"+long)
	if msg, _ := resp["error"].(string); status != http.StatusNotFound || len(msg) > 300 {
		t.Errorf("task-status of a 5000-character id = %d, %d-byte error", status, len(msg))
	}
}
