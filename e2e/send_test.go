package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/common/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/wagate/wagate/graphapi/sandbox"
)

// The contract's single-send curls, as written in the seed document.
var contractSingles = []struct {
	name, path, body, message, wantType string
}{
	{"send-message", "/api/send-message", `{
  "phone": "573123456789",
  "message": "Hola, este es un mensaje de prueba",
  "use_queue": false
}`, "Mensaje enviado exitosamente", "text"},
	{"send-template", "/api/send-template", `{
  "phone": "573123456789",
  "template_name": "hello_world",
  "language": "es",
  "parameters": ["Juan", "Empresa XYZ"],
  "use_queue": false
}`, "Plantilla enviada exitosamente", "template"},
	{"send-interactive", "/api/send-interactive", `{
  "phone": "573123456789",
  "header_type": "text",
  "header_content": "¡Oferta Especial!",
  "body_text": "Aprovecha nuestra oferta del 50% en todos los productos",
  "button_text": "Ver Oferta",
  "button_url": "https://mi-tienda.com/ofertas",
  "footer_text": "Válido hasta el 31 de diciembre",
  "use_queue": false
}`, "Mensaje interactivo enviado exitosamente", "interactive"},
	{"send-list", "/api/send-list", `{
  "phone": "573123456789",
  "header_text": "Servicios disponibles",
  "body_text": "Selecciona el servicio que necesitas:",
  "footer_text": "ECOES - Atención al cliente",
  "button_text": "Ver servicios",
  "sections": [
    {"title": "Servicios técnicos", "rows": [
        {"id": "soporte_tecnico", "title": "Soporte técnico", "description": "Ayuda con problemas técnicos"},
        {"id": "mantenimiento", "title": "Mantenimiento", "description": "Solicitar mantenimiento preventivo"}]},
    {"title": "Servicios comerciales", "rows": [
        {"id": "ventas", "title": "Ventas", "description": "Información sobre productos"},
        {"id": "facturacion", "title": "Facturación", "description": "Consultas sobre facturas"}]}
  ]
}`, "Mensaje de lista enviado exitosamente", "interactive"},
}

func postRaw(t *testing.T, url, body string, header map[string]string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("POST %s: status %d, body is not JSON: %v", url, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

func TestContractSingleSendsAnswerMetasResponse(t *testing.T) {
	s := NewStack(t, StackOptions{})
	for _, c := range contractSingles {
		t.Run(c.name, func(t *testing.T) {
			before := len(s.Sandbox.Messages("573123456789"))
			status, resp := postRaw(t, s.API+c.path, c.body, nil)
			if status != http.StatusOK || resp["success"] != true || resp["message"] != c.message {
				t.Fatalf("got %d %v, want 200 success with message %q", status, resp, c.message)
			}
			data, _ := resp["data"].(map[string]any)
			contacts, _ := data["contacts"].([]any)
			messages, _ := data["messages"].([]any)
			if data["messaging_product"] != "whatsapp" || len(contacts) != 1 || len(messages) != 1 {
				t.Fatalf("data = %v, want Meta's response with one contact and one message", data)
			}
			if wa := contacts[0].(map[string]any)["wa_id"]; wa != "573123456789" {
				t.Errorf("wa_id = %v, want 573123456789", wa)
			}
			if id, _ := messages[0].(map[string]any)["id"].(string); !strings.HasPrefix(id, "wamid.") {
				t.Errorf("message id = %q, want a wamid", id)
			}
			got := s.Sandbox.Messages("573123456789")
			if len(got) != before+1 {
				t.Fatalf("sandbox has %d messages for the phone, want %d", len(got), before+1)
			}
			var payload map[string]any
			_ = json.Unmarshal(got[len(got)-1], &payload)
			if payload["type"] != c.wantType || payload["to"] != "+573123456789" || payload["messaging_product"] != "whatsapp" {
				t.Errorf("Meta received %s, want type %s to +573123456789", got[len(got)-1], c.wantType)
			}
		})
	}
}

func TestContractBulkSendsQueueAndComplete(t *testing.T) {
	s := NewStack(t, StackOptions{MaxWorkers: 4})
	media := s.SandboxURL + "/_sandbox/assets/sample.jpg"
	cases := []struct {
		path, body, message string
		total               int
	}{
		{"/api/send-bulk", `{"recipients":[{"phone":"573123456789","message":"Hola Juan, este es tu mensaje personalizado"},
			{"phone":"573987654321","message":"Hola María, este es tu mensaje personalizado"}],"use_queue":true}`,
			"Envío masivo enviado a cola", 2},
		{"/api/send-bulk-list", `{"header_text":"Selecciona una opción","footer_text":"Powered by WhatsApp","button_text":"Ver opciones",
			"sections":[{"title":"Servicios","rows":[{"id":"1","title":"Consulta","description":"Información general"},{"id":"2","title":"Soporte","description":"Ayuda técnica"}]},
			{"title":"Productos","rows":[{"id":"3","title":"Producto A","description":"Descripción del producto A"},{"id":"4","title":"Producto B","description":"Descripción del producto B"}]}],
			"recipients":[{"phone":"573123456789","body_text":"¿Qué te interesa, Juan?"},{"phone":"573987654321","body_text":"¿Qué te interesa, María?"}],"use_queue":true}`,
			"Envío masivo de listas enviado a cola", 2},
		{"/api/send-bulk-interactive", `{"recipients":[{"phone":"573123456789","header_type":"text","header_content":"Hola Juan","body_text":"Tu pedido está listo para recoger","button_text":"Ver Pedido","button_url":"https://mi-tienda.com/pedido/123"},
			{"phone":"573987654321","header_type":"text","header_content":"Hola María","body_text":"Tu pedido está listo para recoger","button_text":"Ver Pedido","button_url":"https://mi-tienda.com/pedido/456"}],"use_queue":true}`,
			"Envío masivo interactivo enviado a cola", 2},
		{"/api/send-broadcast-interactive", `{"phones":["573123456789","573987654321","573555666777"],"header_type":"text","header_content":"Notificación Important",
			"body_text":"Nueva actualización disponible en nuestra aplicación","button_text":"Actualizar Ahora","button_url":"https://mi-app.com/update","footer_text":"Equipo de Desarrollo","use_queue":true}`,
			"Mensaje broadcast enviado a cola", 3},
		{"/api/send-personalized-broadcast", `{"recipients":[{"phone":"573103391854","body_text":"Hola Juan, tu pedido #12345 está listo para recoger."},
			{"phone":"573103391854","body_text":"Hola María, tu pedido #67890 está listo para recoger."}],
			"header_type":"image","header_content":"` + media + `","button_text":"Ver Pedido","button_url":"https://mi-tienda.com/mis-pedidos",
			"footer_text":"Gracias por tu compra - Mi Tienda","use_queue":true}`,
			"Broadcast personalizado enviado a cola", 2},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			status, resp := postRaw(t, s.API+c.path, c.body, nil)
			id, _ := resp["task_id"].(string)
			if status != http.StatusOK || resp["success"] != true || resp["message"] != c.message || len(id) != 36 {
				t.Fatalf("got %d %v, want 200 with message %q and a task_id", status, resp, c.message)
			}
			st := s.WaitTask(t, id, time.Minute)
			res, _ := st["result"].(map[string]any)
			if st["status"] != "SUCCESS" || res["sent"] != float64(c.total) || res["failed"] != float64(0) || res["total"] != float64(c.total) {
				t.Fatalf("task-status = %v, want SUCCESS with %d sent", st, c.total)
			}
			for _, k := range []string{"created_at", "completed_at"} {
				if v, _ := st[k].(string); !strings.HasSuffix(v, "Z") {
					t.Errorf("%s = %v, want an RFC 3339 UTC time", k, st[k])
				}
			}
		})
	}
	// The personalized broadcast's image went to Meta once and both messages use its id.
	if got := s.Sandbox.Stats().Uploads; got != 1 {
		t.Errorf("sandbox got %d media uploads, want 1", got)
	}
	for _, m := range s.Sandbox.Messages("573103391854") {
		if !bytes.Contains(m, []byte(`"image":{"id":"`)) {
			t.Errorf("broadcast message %s does not use the uploaded media id", m)
		}
	}
}

func TestBulkWithoutQueueAnswersTheResult(t *testing.T) {
	s := NewStack(t, StackOptions{})
	s.Sandbox.SetFaults(sandbox.Faults{PermanentTo: map[string]int{"573555666777": 131026}})
	status, resp := postRaw(t, s.API+"/api/send-personalized-broadcast", `{"recipients":[
		{"phone":"573123456789","body_text":"Hola Juan, tu pedido #12345 está listo para recoger."},
		{"phone":"573555666777","body_text":"Hola Pedro, tu pedido #54321 está listo para recoger."},
		{"phone":"573987654321","body_text":"Hola María, tu pedido #67890 está listo para recoger."}],
		"header_type":"text","header_content":"Notificación de Pedido","button_text":"Ver Pedido",
		"button_url":"https://mi-tienda.com/mis-pedidos","footer_text":"Gracias por tu compra - Mi Tienda","use_queue":false}`, nil)
	if status != http.StatusOK || resp["message"] != "Broadcast personalizado procesado" {
		t.Fatalf("got %d %v", status, resp)
	}
	res, _ := resp["result"].(map[string]any)
	errs, _ := res["errors"].([]any)
	if res["total"] != float64(3) || res["successful"] != float64(2) || res["failed"] != float64(1) || len(errs) != 1 {
		t.Fatalf("result = %v, want total 3, successful 2, failed 1, one error", res)
	}
	e := errs[0].(map[string]any)
	if e["index"] != float64(1) || e["phone"] != "573555666777" || e["code"] != float64(131026) {
		t.Errorf("error = %v, want index 1, phone 573555666777, code 131026", e)
	}
	// A permanent error is not retried.
	if got := s.Sandbox.Stats().ByCode[131026]; got != 1 {
		t.Errorf("Meta was asked %d times for the undeliverable number, want once", got)
	}
}

func TestQueuedSingleSendAndProgress(t *testing.T) {
	s := NewStack(t, StackOptions{MaxWorkers: 5, SandboxLatency: 20 * time.Millisecond})
	status, resp := s.PostJSON(t, "/api/send-message", map[string]any{"phone": "573123456789", "message": "en cola", "use_queue": true})
	id, _ := resp["task_id"].(string)
	if status != http.StatusOK || resp["message"] != "Mensaje enviado a cola" || id == "" {
		t.Fatalf("got %d %v", status, resp)
	}
	if st := s.WaitTask(t, id, 30*time.Second); st["status"] != "SUCCESS" {
		t.Fatalf("task-status = %v", st)
	}

	// 1,000 recipients at 5 in flight and 20 ms take about 4 s: task-status moves meanwhile.
	recipients := make([]map[string]string, 1000)
	for i := range recipients {
		recipients[i] = map[string]string{"phone": fmt.Sprintf("5732%08d", i), "message": fmt.Sprint("mensaje ", i)}
	}
	_, resp = s.PostJSON(t, "/api/send-bulk", map[string]any{"recipients": recipients})
	id, _ = resp["task_id"].(string)
	var moving []float64
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		_, st := s.Get(t, "/api/task-status/"+id)
		res, _ := st["result"].(map[string]any)
		sent, _ := res["sent"].(float64)
		if st["status"] == "STARTED" && sent > 0 && sent < 1000 {
			moving = append(moving, sent)
		}
		if st["status"] == "SUCCESS" {
			if sent != 1000 {
				t.Fatalf("final status %v, want 1000 sent", st)
			}
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if len(moving) < 2 || moving[len(moving)-1] <= moving[0] {
		t.Errorf("task-status counts while running: %v, want at least two rising values", moving)
	}
}

func TestTaskStatusAfterRetentionAndUnknownTask(t *testing.T) {
	s := NewStack(t, StackOptions{})
	_, resp := s.PostJSON(t, "/api/send-bulk", map[string]any{"recipients": []map[string]string{{"phone": "573123456789", "message": "hola"}}})
	id, _ := resp["task_id"].(string)
	s.WaitTask(t, id, 30*time.Second)

	// Temporal drops the workflow (as retention would); the stored summary still answers.
	_, err := s.Temporal.WorkflowService().DeleteWorkflowExecution(context.Background(), &workflowservice.DeleteWorkflowExecutionRequest{
		Namespace: s.Config.TemporalNamespace, WorkflowExecution: &common.WorkflowExecution{WorkflowId: id},
	})
	if err != nil {
		t.Fatalf("delete workflow: %v", err)
	}
	start := time.Now()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := s.Temporal.DescribeWorkflowExecution(context.Background(), id, "")
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			t.Logf("workflow gone after %v", time.Since(start))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workflow is still described 60 s after its deletion: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	status, st := s.Get(t, "/api/task-status/"+id)
	res, _ := st["result"].(map[string]any)
	if status != http.StatusOK || st["status"] != "SUCCESS" || res["sent"] != float64(1) {
		t.Errorf("after deletion: %d %v, want the stored SUCCESS summary", status, st)
	}

	for _, id := range []string{"00000000-0000-0000-0000-000000000000", "wagate-inbound-relay", "no-es-un-id"} {
		status, st = s.Get(t, "/api/task-status/"+id)
		if status != http.StatusNotFound || st["success"] != false || st["error"] == nil {
			t.Errorf("task-status %s: %d %v, want 404 in the error shape", id, status, st)
		}
	}
}

func TestMediaLookup(t *testing.T) {
	s := NewStack(t, StackOptions{})
	_, resp := s.PostJSON(t, "/api/send-broadcast-interactive", map[string]any{
		"phones": []string{"573123456789"}, "header_type": "image", "header_content": s.SandboxURL + "/_sandbox/assets/sample.png",
		"body_text": "Nueva imagen", "button_text": "Ver", "button_url": "https://mi-app.com/x", "use_queue": false,
	})
	if resp["success"] != true {
		t.Fatalf("broadcast: %v", resp)
	}
	var payload struct {
		Interactive struct {
			Header struct {
				Image struct{ ID string } `json:"image"`
			} `json:"header"`
		} `json:"interactive"`
	}
	msgs := s.Sandbox.Messages("573123456789")
	if len(msgs) != 1 {
		t.Fatalf("sandbox has %d messages, want 1", len(msgs))
	}
	_ = json.Unmarshal(msgs[0], &payload)
	id := payload.Interactive.Header.Image.ID
	status, got := s.Get(t, "/api/media/"+id)
	if url, _ := got["media_url"].(string); status != http.StatusOK || got["success"] != true || !strings.Contains(url, id) {
		t.Errorf("media %s: %d %v, want success with its URL", id, status, got)
	}
	status, got = s.Get(t, "/api/media/999999999999999")
	if status != http.StatusNotFound || got["success"] != false {
		t.Errorf("unknown media: %d %v, want 404", status, got)
	}
}

func TestBadInputAnswers4xxInTheContractShape(t *testing.T) {
	s := NewStack(t, StackOptions{})
	long := strings.Repeat("é", 21)
	rows := make([]string, 11)
	for i := range rows {
		rows[i] = fmt.Sprintf(`{"id":"r%d","title":"Fila %d"}`, i, i)
	}
	cases := []struct{ path, body, want string }{
		{"/api/send-message", `{"phone": "573123456789", "message": `, "JSON inválido"},
		{"/api/send-message", `not json`, "JSON inválido"},
		{"/api/send-message", ``, "cuerpo JSON"},
		{"/api/send-message", `{"message":"hola"}`, "'phone'"},
		{"/api/send-message", `{"phone":"+57 312 345 6789","message":"hola"}`, "'phone'"},
		{"/api/send-message", `{"phone":"1234567","message":"hola"}`, "'phone'"},
		{"/api/send-message", `{"phone":"573123456789"}`, "'message'"},
		{"/api/send-message", `{"phone":573123456789,"message":"hola"}`, "'phone'"},
		{"/api/send-template", `{"phone":"573123456789"}`, "'template_name'"},
		{"/api/send-template", `{"phone":"573123456789","template_name":"t","parameters":["a\nb"]}`, "parameters[0]"},
		{"/api/send-interactive", `{"phone":"573123456789","body_text":"b","button_text":"` + long + `","button_url":"https://x.co"}`, "'button_text' tiene 21 caracteres"},
		{"/api/send-interactive", `{"phone":"573123456789","header_type":"gif","header_content":"x","body_text":"b","button_text":"v","button_url":"https://x.co"}`, "'header_type'"},
		{"/api/send-interactive", `{"phone":"573123456789","body_text":"b","button_text":"v","button_url":"ftp://x"}`, "'button_url'"},
		{"/api/send-list", `{"phone":"573123456789","header_text":"h","body_text":"b","footer_text":"f","button_text":"v","sections":[{"title":"s","rows":[` + strings.Join(rows, ",") + `]}]}`, "11 filas"},
		{"/api/send-list", `{"phone":"573123456789","header_text":"h","body_text":"b","footer_text":"f","button_text":"v","sections":[{"title":"s","rows":[{"id":"a","title":"` + strings.Repeat("x", 25) + `"}]}]}`, "sections[0].rows[0].title"},
		{"/api/send-list", `{"phone":"573123456789","header_text":"h","body_text":"b","footer_text":"f","button_text":"v","sections":[{"title":"s","rows":[{"id":"a","title":"t"},{"id":"a","title":"u"}]}]}`, "repetido"},
		{"/api/send-bulk", `{"recipients":[]}`, "'recipients'"},
		{"/api/send-bulk", `{"recipients":[{"phone":"573123456789","message":"ok"},{"phone":"57abc","message":"x"}]}`, "recipients[1].phone"},
		{"/api/send-bulk-interactive", `{"recipients":[{"phone":"573123456789","body_text":"b","button_text":"v","button_url":"https://x.co","header_type":"video","header_content":"no-url"}]}`, "recipients[0].header_content"},
		{"/api/send-broadcast-interactive", `{"phones":["573123456789","5"],"body_text":"b","button_text":"v","button_url":"https://x.co"}`, "phones[1]"},
	}
	for _, c := range cases {
		status, resp := postRaw(t, s.API+c.path, c.body, nil)
		msg, _ := resp["error"].(string)
		if status != http.StatusBadRequest || resp["success"] != false || !strings.Contains(msg, c.want) {
			t.Errorf("POST %s %s: got %d %v, want 400 with an error mentioning %q", c.path, c.body, status, resp, c.want)
		}
	}
	// An oversized body is refused before it is read whole.
	big := `{"phone":"573123456789","message":"` + strings.Repeat("a", 2<<20) + `"}`
	if status, resp := postRaw(t, s.API+"/api/send-message", big, nil); status != http.StatusBadRequest || resp["success"] != false {
		t.Errorf("oversized body: %d %v, want 400", status, resp)
	}
	if got := s.Sandbox.Stats().Accepted; got != 0 {
		t.Errorf("Meta received %d messages from rejected requests, want 0", got)
	}
}

func TestAPIKey(t *testing.T) {
	s := NewStack(t, StackOptions{APIKey: "s3cret"})
	body := `{"phone":"573123456789","message":"hola"}`
	if status, resp := postRaw(t, s.API+"/api/send-message", body, nil); status != http.StatusUnauthorized || resp["success"] != false {
		t.Errorf("without key: %d %v, want 401", status, resp)
	}
	if status, _ := postRaw(t, s.API+"/api/send-message", body, map[string]string{"X-API-Key": "wrong"}); status != http.StatusUnauthorized {
		t.Errorf("wrong key: %d, want 401", status)
	}
	if status, _ := postRaw(t, s.API+"/api/send-message", body, map[string]string{"X-API-Key": "s3cret"}); status != http.StatusOK {
		t.Errorf("X-API-Key: %d, want 200", status)
	}
	if status, _ := postRaw(t, s.API+"/api/send-message", body, map[string]string{"Authorization": "Bearer s3cret"}); status != http.StatusOK {
		t.Errorf("Bearer: %d, want 200", status)
	}
	resp, err := http.Get(s.API + "/api/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("health without key: %d, want 200", resp.StatusCode)
	}
}
