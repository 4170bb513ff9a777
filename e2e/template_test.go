package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wagate/wagate/graphapi/sandbox"
)

// A template campaign of 10,000 recipients: an image header uploaded to Meta once,
// common parameters for most recipients and their own for some, a URL-button suffix
// per recipient, every send checked by the sandbox against its template registry.
func TestTemplateCampaignOf10000(t *testing.T) {
	s := NewStack(t, StackOptions{MaxWorkers: 100})
	const n = 10_000
	recipients := make([]map[string]any, n)
	for i := range recipients {
		rc := map[string]any{"phone": fmt.Sprintf("5730%08d", i), "button_url_suffix": fmt.Sprintf("cliente-%d", i)}
		if i%10 == 0 {
			rc["parameters"] = []string{fmt.Sprintf("Cliente %d", i), "30%"}
		}
		recipients[i] = rc
	}
	status, resp := s.PostJSON(t, "/api/send-bulk-template", map[string]any{
		"template_name":  "order_update",
		"parameters":     []string{"Cliente", "#A-1"},
		"header_type":    "image",
		"header_content": s.SandboxURL + "/_sandbox/assets/sample.jpg",
		"recipients":     recipients,
	})
	id, _ := resp["task_id"].(string)
	if status != http.StatusOK || resp["success"] != true || resp["message"] != "Envío masivo de plantillas enviado a cola" || id == "" {
		t.Fatalf("POST /api/send-bulk-template = %d %v, want 200 queued with a task_id", status, resp)
	}
	st := s.WaitTask(t, id, 5*time.Minute)
	res, _ := st["result"].(map[string]any)
	if st["status"] != "SUCCESS" || res["sent"] != float64(n) || res["failed"] != float64(0) || res["total"] != float64(n) {
		t.Fatalf("task-status = %v, want SUCCESS with %d sent", st, n)
	}
	stats := s.Sandbox.Stats()
	if stats.Accepted != n || stats.ByType["template"] != n || stats.Rejected != 0 {
		t.Errorf("sandbox accepted %d (%d templates), rejected %d; want %d templates, 0 rejected (%v)", stats.Accepted, stats.ByType["template"], stats.Rejected, n, stats.ByCode)
	}
	if stats.Uploads != 1 {
		t.Errorf("sandbox got %d media uploads, want the header uploaded once", stats.Uploads)
	}
	for _, c := range []struct {
		i      int
		params []string
	}{{0, []string{"Cliente 0", "30%"}}, {7, []string{"Cliente", "#A-1"}}, {9990, []string{"Cliente 9990", "30%"}}} {
		msgs := s.Sandbox.Messages(fmt.Sprintf("5730%08d", c.i))
		if len(msgs) != 1 {
			t.Fatalf("recipient %d got %d messages, want 1", c.i, len(msgs))
		}
		var p struct {
			Template struct {
				Name       string                `json:"name"`
				Language   struct{ Code string } `json:"language"`
				Components []struct {
					Type, SubType, Index string
					Parameters           []struct {
						Type, Text string
						Image      *struct{ ID string } `json:"image"`
					}
				} `json:"components"`
			} `json:"template"`
		}
		if err := json.Unmarshal(msgs[0], &p); err != nil {
			t.Fatal(err)
		}
		comps := p.Template.Components
		if p.Template.Name != "order_update" || p.Template.Language.Code != "es" || len(comps) != 3 ||
			comps[0].Type != "header" || comps[0].Parameters[0].Image == nil || comps[0].Parameters[0].Image.ID == "" ||
			comps[1].Parameters[0].Text != c.params[0] || comps[1].Parameters[1].Text != c.params[1] ||
			comps[2].Type != "button" || comps[2].Parameters[0].Text != fmt.Sprintf("cliente-%d", c.i) {
			t.Errorf("recipient %d got %s, want order_update with the uploaded image id, parameters %v and its suffix", c.i, msgs[0], c.params)
		}
	}
}

// A campaign to the numbers cache, filtered by company, with a named template whose
// parameters come from each cached record; without a queue it answers the result.
func TestTemplateCampaignFromTheCache(t *testing.T) {
	s := NewStack(t, StackOptions{})
	for _, n := range []string{
		`{"phone":"573123456789","name":"Juan Pérez","data":{"company":"Empresa XYZ","pedido":"#123"}}`,
		`{"phone":"573987654321","name":"María","data":{"company":"Empresa XYZ","pedido":"#456"}}`,
		`{"phone":"573555666777","name":"Otro","data":{"company":"ABC","pedido":"#789"}}`,
	} {
		if status, resp := s.PostJSON(t, "/api/numbers", n); status != http.StatusOK && status != http.StatusCreated {
			t.Fatalf("POST /api/numbers = %d %v", status, resp)
		}
	}
	status, resp := s.PostJSON(t, "/api/send-bulk-template", `{
  "template_name": "pedido_listo",
  "parameters": {"nombre": "{{name}}", "pedido": "{{data.pedido}}"},
  "from_cache": {"filter": {"company": "Empresa XYZ"}},
  "use_queue": false
}`)
	res, _ := resp["result"].(map[string]any)
	if status != http.StatusOK || resp["message"] != "Envío masivo de plantillas procesado" || res["successful"] != float64(2) || res["total"] != float64(2) {
		t.Fatalf("from_cache campaign = %d %v, want 2 of 2 sent", status, resp)
	}
	for phone, want := range map[string][]string{
		"573123456789": {`"parameter_name":"nombre","text":"Juan Pérez"`, `"parameter_name":"pedido","text":"#123"`},
		"573987654321": {`"parameter_name":"nombre","text":"María"`, `"parameter_name":"pedido","text":"#456"`},
	} {
		msgs := s.Sandbox.Messages(phone)
		if len(msgs) != 1 {
			t.Fatalf("%s got %d messages, want 1", phone, len(msgs))
		}
		for _, w := range want {
			if !bytes.Contains(msgs[0], []byte(w)) {
				t.Errorf("%s got %s, want it to contain %s", phone, msgs[0], w)
			}
		}
	}
	if got := len(s.Sandbox.Messages("573555666777")); got != 0 {
		t.Errorf("the number outside the filter got %d messages", got)
	}

	// A mismatch is refused before anything is sent.
	before := s.Sandbox.Stats().Accepted
	status, resp = s.PostJSON(t, "/api/send-bulk-template", `{"template_name":"pedido_listo","parameters":["{{name}}"],"from_cache":{"filter":{}}}`)
	msg, _ := resp["error"].(string)
	if status != http.StatusBadRequest || resp["success"] != false || !strings.Contains(msg, "pedido_listo") {
		t.Errorf("mismatched campaign = %d %v, want 400 naming the template", status, resp)
	}
	if got := s.Sandbox.Stats().Accepted; got != before {
		t.Errorf("a refused campaign sent %d messages", got-before)
	}
}

// A template Meta pauses mid-campaign: the task says PAUSED with the reason instead of
// failing every remaining recipient, and goes on by itself once the template is active.
func TestTemplatePausedMidCampaign(t *testing.T) {
	s := NewStack(t, StackOptions{MaxWorkers: 5, SandboxLatency: 20 * time.Millisecond})
	const n = 400
	recipients := make([]map[string]any, n)
	for i := range recipients {
		recipients[i] = map[string]any{"phone": fmt.Sprintf("5731%08d", i)}
	}
	status, resp := s.PostJSON(t, "/api/send-bulk-template", map[string]any{
		"template_name": "hello_world", "parameters": []string{"Cliente", "Empresa XYZ"}, "recipients": recipients,
	})
	id, _ := resp["task_id"].(string)
	if status != http.StatusOK || id == "" {
		t.Fatalf("POST /api/send-bulk-template = %d %v", status, resp)
	}
	for s.Sandbox.Stats().Accepted < 100 {
		time.Sleep(5 * time.Millisecond)
	}
	s.Sandbox.SetTemplateStatus("hello_world", "es", "PAUSED")

	deadline := time.Now().Add(20 * time.Second)
	var st map[string]any
	for {
		_, st = s.Get(t, "/api/task-status/"+id)
		if st["status"] == "PAUSED" {
			break
		}
		if time.Now().After(deadline) || st["status"] == "SUCCESS" {
			t.Fatalf("task-status never said PAUSED while the template was paused; last %v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st["waiting"] != "template_paused" || st["waiting_since"] == nil {
		t.Errorf("paused task-status = %v, want waiting template_paused with waiting_since", st)
	}
	res, _ := st["result"].(map[string]any)
	if res["failed"] != float64(0) {
		t.Errorf("recipients failed while the template was paused: %v", st)
	}
	time.Sleep(2 * time.Second)
	refusedWhilePaused := s.Sandbox.Stats().ByCode[sandbox.CodeTemplatePaused]
	s.Sandbox.SetTemplateStatus("hello_world", "es", "APPROVED")

	done := s.WaitTask(t, id, 2*time.Minute)
	res, _ = done["result"].(map[string]any)
	if done["status"] != "SUCCESS" || res["sent"] != float64(n) || res["failed"] != float64(0) {
		t.Fatalf("task after the template is active again = %v, want SUCCESS with %d sent, none failed", done, n)
	}
	// What was in flight at the pause, plus one probe per spacing: far fewer than the
	// 300 recipients still to go.
	if refusedWhilePaused > 5+10 {
		t.Errorf("Meta refused %d sends as paused, want the in-flight ones and a few probes", refusedWhilePaused)
	}
	if st := s.Sandbox.Stats(); st.Accepted != n || st.Duplicates != 0 {
		t.Errorf("sandbox accepted %d (%d duplicates), want %d once each", st.Accepted, st.Duplicates, n)
	}
}
