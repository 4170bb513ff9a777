package sandbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image/jpeg"
	"image/png"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// form builds a multipart upload; an empty value leaves the field out.
func form(t *testing.T, product, mimeType string, file []byte) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if product != "" {
		mw.WriteField("messaging_product", product)
	}
	if mimeType != "" {
		mw.WriteField("type", mimeType)
	}
	if file != nil {
		fw, err := mw.CreateFormFile("file", "upload.bin")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(file)
	}
	mw.Close()
	return &b, mw.FormDataContentType()
}

func upload(t *testing.T, ts *httptest.Server, product, mimeType string, file []byte) response {
	t.Helper()
	body, ct := form(t, product, mimeType, file)
	return do(t, http.MethodPost, ts.URL+"/v23.0/"+testPNID+"/media", testToken, body, ct)
}

func fetchAsset(t *testing.T, ts *httptest.Server, name string) response {
	t.Helper()
	return do(t, http.MethodGet, ts.URL+"/_sandbox/assets/"+name, "", nil, "")
}

func TestAssets(t *testing.T) {
	_, ts := strict(t)
	for _, tt := range []struct{ name, mime string }{
		{"sample.jpg", "image/jpeg"},
		{"sample.png", "image/png"},
		{"sample.pdf", "application/pdf"},
		{"sample.mp4", "video/mp4"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := fetchAsset(t, ts, tt.name)
			if r.status != http.StatusOK || r.header.Get("Content-Type") != tt.mime {
				t.Fatalf("got %d %s, want 200 %s", r.status, r.header.Get("Content-Type"), tt.mime)
			}
			if got := http.DetectContentType(r.body); got != tt.mime {
				t.Errorf("sniffed type: got %s, want %s", got, tt.mime)
			}
		})
	}
	if _, err := jpeg.Decode(bytes.NewReader(fetchAsset(t, ts, "sample.jpg").body)); err != nil {
		t.Errorf("sample.jpg does not decode: %v", err)
	}
	if _, err := png.Decode(bytes.NewReader(fetchAsset(t, ts, "sample.png").body)); err != nil {
		t.Errorf("sample.png does not decode: %v", err)
	}
	pdf := string(fetchAsset(t, ts, "sample.pdf").body)
	if !strings.HasPrefix(pdf, "%PDF-1.4") || !strings.HasSuffix(pdf, "%%EOF\n") {
		t.Errorf("sample.pdf is not a complete PDF: %q", pdf)
	}
	// The startxref offset must point at the xref table.
	i := strings.LastIndex(pdf, "startxref\n")
	off, _ := strconv.Atoi(strings.Fields(pdf[i+len("startxref\n"):])[0])
	if !strings.HasPrefix(pdf[off:], "xref") {
		t.Errorf("startxref %d does not point at the xref table", off)
	}
	if r := fetchAsset(t, ts, "nope.gif"); r.status != http.StatusNotFound {
		t.Errorf("unknown asset: got %d, want 404", r.status)
	}
}

func TestMediaRoundTrip(t *testing.T) {
	s, ts := strict(t)
	jpg := fetchAsset(t, ts, "sample.jpg").body

	r := upload(t, ts, "whatsapp", "image/jpeg", jpg)
	var up struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(r.body, &up); err != nil || r.status != 200 {
		t.Fatalf("upload: got %d %s", r.status, r.body)
	}
	if len(up.ID) < 15 || len(up.ID) > 16 || !allDigits(up.ID) {
		t.Errorf("media id: got %q, want 15-16 digits", up.ID)
	}

	r = do(t, http.MethodGet, ts.URL+"/v23.0/"+up.ID, testToken, nil, "")
	var info mediaInfo
	if err := json.Unmarshal(r.body, &info); err != nil || r.status != 200 {
		t.Fatalf("get media: got %d %s", r.status, r.body)
	}
	sum := sha256.Sum256(jpg)
	want := mediaInfo{MessagingProduct: "whatsapp", MimeType: "image/jpeg", SHA256: hex.EncodeToString(sum[:]),
		FileSize: strconv.Itoa(len(jpg)), ID: up.ID, URL: info.URL}
	if info != want {
		t.Errorf("media info: got %+v, want %+v", info, want)
	}
	if !strings.HasPrefix(info.URL, ts.URL+"/_sandbox/download/"+up.ID+"?token=") {
		t.Errorf("url: got %s, want under %s/_sandbox/download/", info.URL, ts.URL)
	}

	r = do(t, http.MethodGet, info.URL, testToken, nil, "")
	if r.status != 200 || !bytes.Equal(r.body, jpg) || r.header.Get("Content-Type") != "image/jpeg" {
		t.Errorf("download: got %d %s, %d bytes, want 200 image/jpeg with the uploaded bytes", r.status, r.header.Get("Content-Type"), len(r.body))
	}
	if r := do(t, http.MethodGet, info.URL, "", nil, ""); r.status != http.StatusUnauthorized {
		t.Errorf("download without bearer: got %d, want 401", r.status)
	}
	if r := do(t, http.MethodGet, strings.Replace(info.URL, "token=", "token=1", 1), testToken, nil, ""); r.status != http.StatusNotFound {
		t.Errorf("download with a forged token: got %d, want 404", r.status)
	}
	if r := do(t, http.MethodGet, ts.URL+"/v23.0/"+up.ID+"?phone_number_id=999", testToken, nil, ""); r.status != http.StatusBadRequest {
		t.Errorf("media of another number: got %d, want 400", r.status)
	}

	// The id is usable in sends.
	wantSuccess(t, send(t, ts, envelope("image", map[string]any{"id": up.ID, "caption": "foto"})))
	wantSuccess(t, send(t, ts, set(ctaMsg, "interactive.header", map[string]any{"type": "image", "image": map[string]any{"id": up.ID}})))
	wantSuccess(t, send(t, ts, set(templateMsg, "template.components.0.parameters.0.image", map[string]any{"id": up.ID})))

	if st := s.Stats(); st.Uploads != 1 || st.MediaGets != 1 {
		t.Errorf("stats: got uploads %d media gets %d, want 1 and 1", st.Uploads, st.MediaGets)
	}

	r = do(t, http.MethodDelete, ts.URL+"/v23.0/"+up.ID, testToken, nil, "")
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"success":true`)) {
		t.Errorf("delete: got %d %s", r.status, r.body)
	}
	wantError(t, do(t, http.MethodGet, ts.URL+"/v23.0/"+up.ID, testToken, nil, ""), http.StatusBadRequest, CodeInvalidParameter, "")
	wantError(t, send(t, ts, envelope("image", map[string]any{"id": up.ID})), http.StatusBadRequest, CodeInvalidParameter, "unknown media id")
}

func TestUploadValidation(t *testing.T) {
	_, ts := strict(t)
	jpg := fetchAsset(t, ts, "sample.jpg").body
	pngb := fetchAsset(t, ts, "sample.png").body
	pdf := fetchAsset(t, ts, "sample.pdf").body
	mp4 := fetchAsset(t, ts, "sample.mp4").body
	tests := []struct {
		name, product, mime string
		file                []byte
		status, code        int
		details             string
	}{
		{"jpeg", "whatsapp", "image/jpeg", jpg, 200, 0, ""},
		{"png", "whatsapp", "image/png", pngb, 200, 0, ""},
		{"pdf", "whatsapp", "application/pdf", pdf, 200, 0, ""},
		{"mp4", "whatsapp", "video/mp4", mp4, 200, 0, ""},
		{"audio", "whatsapp", "audio/mpeg", []byte("ID3\x03\x00\x00\x00"), 200, 0, ""},
		{"jpeg declared as png", "whatsapp", "image/png", jpg, 400, CodeMediaUpload, "does not match"},
		{"pdf declared as jpeg", "whatsapp", "image/jpeg", pdf, 400, CodeMediaUpload, "does not match"},
		{"png over 5 MB", "whatsapp", "image/png", append(append([]byte{}, pngb...), make([]byte, 5*mb)...), 400, CodeMediaUpload, "5 MB"},
		{"mp4 over 16 MB", "whatsapp", "video/mp4", append(append([]byte{}, mp4...), make([]byte, 16*mb)...), 400, CodeMediaUpload, "16 MB"},
		{"unsupported type", "whatsapp", "image/gif", []byte("GIF89a"), 400, CodeInvalidParameter, "image/gif"},
		{"empty file", "whatsapp", "application/pdf", []byte{}, 400, CodeMediaUpload, "empty"},
		{"messaging_product missing", "", "image/jpeg", jpg, 400, CodeMissingParameter, "messaging_product"},
		{"messaging_product wrong", "sms", "image/jpeg", jpg, 400, CodeInvalidParameter, "messaging_product"},
		{"type missing", "whatsapp", "", jpg, 400, CodeMissingParameter, "type"},
		{"file missing", "whatsapp", "image/jpeg", nil, 400, CodeMissingParameter, "file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := upload(t, ts, tt.product, tt.mime, tt.file)
			if tt.status == 200 {
				if r.status != 200 || !bytes.Contains(r.body, []byte(`"id":"`)) {
					t.Errorf("got %d %s, want 200 with an id", r.status, r.body)
				}
				return
			}
			wantError(t, r, tt.status, tt.code, tt.details)
		})
	}
	t.Run("not multipart", func(t *testing.T) {
		r := do(t, http.MethodPost, ts.URL+"/v23.0/"+testPNID+"/media", testToken, strings.NewReader("{}"), "application/json")
		wantError(t, r, http.StatusBadRequest, CodeInvalidParameter, "multipart")
	})
	t.Run("no token", func(t *testing.T) {
		body, ct := form(t, "whatsapp", "image/jpeg", jpg)
		wantError(t, do(t, http.MethodPost, ts.URL+"/v23.0/"+testPNID+"/media", "", body, ct), http.StatusUnauthorized, CodeAccessToken, "")
	})
}

func TestMediaEviction(t *testing.T) {
	ms := newMediaStore(10)
	a := &mediaItem{data: make([]byte, 6)}
	b := &mediaItem{data: make([]byte, 6)}
	ms.put(a)
	ms.put(b)
	if ms.known(a.id) || !ms.known(b.id) {
		t.Errorf("after overflowing: known(a)=%v known(b)=%v, want the oldest evicted", ms.known(a.id), ms.known(b.id))
	}
	if ms.total != 6 {
		t.Errorf("total: got %d, want 6", ms.total)
	}
}
