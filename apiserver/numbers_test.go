package apiserver

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/wagate/wagate/shared"
)

func TestNumbersEndpoints(t *testing.T) {
	h, _ := inboundServer(t, shared.Config{})
	juan := `{"phone":"573123456789","name":"Juan Pérez","data":{"email":"juan@example.com","company":"Empresa XYZ"}}`
	steps := []struct {
		method, path, body string
		wantCode           int
		want               string // the whole JSON answer
	}{
		{"GET", "/api/numbers", "", 200, `{"success":true,"numbers":[],"total":0}`},
		{"POST", "/api/numbers", juan, 201, `{"success":true,"message":"Number 573123456789 added successfully"}`},
		{"POST", "/api/numbers", `{"phone":"573000000001"}`, 201, `{"success":true,"message":"Number 573000000001 added successfully"}`},
		{"GET", "/api/numbers/573123456789", "", 200, `{"success":true,"number":{"phone":"573123456789","name":"Juan Pérez",
			"data":{"email":"juan@example.com","company":"Empresa XYZ"},"created_at":"2025-01-16T10:00:00Z","updated_at":"2025-01-16T10:00:00Z"}}`},
		{"GET", "/api/numbers", "", 200, `{"success":true,"total":2,"numbers":[
			{"phone":"573000000001","name":"","data":{},"created_at":"2025-01-16T10:00:00Z","updated_at":"2025-01-16T10:00:00Z"},
			{"phone":"573123456789","name":"Juan Pérez","data":{"email":"juan@example.com","company":"Empresa XYZ"},"created_at":"2025-01-16T10:00:00Z","updated_at":"2025-01-16T10:00:00Z"}]}`},
		{"GET", "/api/numbers/579999999999", "", 404, `{"success":false,"message":"Number not found"}`},
		{"DELETE", "/api/numbers/573000000001", "", 200, `{"success":true,"message":"Number 573000000001 deleted successfully"}`},
		{"DELETE", "/api/numbers/573000000001", "", 404, `{"success":false,"message":"Number not found"}`},
		{"POST", "/api/numbers/clear", "", 200, `{"success":true,"deleted":1,"message":"Deleted 1 numbers"}`},
		{"GET", "/api/numbers/573123456789", "", 404, `{"success":false,"message":"Number not found"}`},
	}
	for i, st := range steps {
		rec, _ := do(t, h, st.method, st.path, []byte(st.body), map[string]string{"Content-Type": "application/json"})
		if rec.Code != st.wantCode {
			t.Errorf("step %d %s %s: status %d; want %d (body %s)", i, st.method, st.path, rec.Code, st.wantCode, rec.Body.String())
		}
		if !sameJSON(t, rec.Body.Bytes(), []byte(st.want)) {
			t.Errorf("step %d %s %s\n got %s\nwant %s", i, st.method, st.path, rec.Body.String(), st.want)
		}
	}
}

func TestAddNumberValidation(t *testing.T) {
	h, _ := inboundServer(t, shared.Config{})
	tests := []struct {
		name, body string
	}{
		{"missing phone", `{"name":"x"}`},
		{"phone with plus", `{"phone":"+573123456789"}`},
		{"phone too short", `{"phone":"1234"}`},
		{"data not an object", `{"phone":"573123456789","data":[1]}`},
		{"name not a string", `{"phone":"573123456789","name":5}`},
		{"malformed", `{"phone":`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, out := do(t, h, http.MethodPost, "/api/numbers", []byte(tt.body), nil)
			if rec.Code != http.StatusBadRequest || out["success"] != false || out["error"] == nil {
				t.Errorf("POST /api/numbers %s = %d %v; want 400 with the error shape", tt.body, rec.Code, out)
			}
		})
	}
}

// The store keeps created_at on update (redisstore tests); here the handler answers 201
// for an update too and replaces name and data.
func TestAddNumberUpdate(t *testing.T) {
	h, store := inboundServer(t, shared.Config{})
	for _, body := range []string{`{"phone":"573123456789","name":"A","data":{"x":1}}`, `{"phone":"573123456789","name":"C","data":{ "k" : 1 }}`} {
		if rec, out := do(t, h, http.MethodPost, "/api/numbers", []byte(body), nil); rec.Code != http.StatusCreated {
			t.Fatalf("POST %s = %d %v; want 201", body, rec.Code, out)
		}
	}
	n, err := store.GetNumber(t.Context(), "573123456789")
	if err != nil || n.Name != "C" || string(n.Data) != `{"k":1}` {
		t.Errorf("after update %+v, %v; want name C and data {\"k\":1} (compacted)", n, err)
	}
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("not JSON: %s", a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("bad expectation: %s", b)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}
