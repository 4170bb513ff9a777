package apiserver

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/go-chi/chi/v5"

	"github.com/wagate/wagate/shared"
)

// OpenAPI is the OpenAPI 3.1 document of every endpoint, served at GET
// /api/openapi.json. It is maintained by hand next to the router; the package's tests
// check that it names every route and that the contract's examples validate against it.
//
//go:embed openapi.json
var OpenAPI []byte

// docsUI holds the docs page and the Swagger UI files it loads (docsui/README.md says
// where they come from).
//
//go:embed docsui
var docsUI embed.FS

// docsCSP keeps the docs page to the apiserver's own files: no CDN, no outside
// validator. Swagger UI sets inline styles and draws icons from data: URIs.
const docsCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"

// openAPI answers GET /api/openapi.json. Like /docs it needs no API key: the document
// describes the API, not its data, and the docs page must load it from a browser that
// has no key to send.
func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(OpenAPI)
}

// docsPage answers GET /docs: Swagger UI over /api/openapi.json.
func (s *Server) docsPage(w http.ResponseWriter, _ *http.Request) {
	page, err := docsUI.ReadFile("docsui/index.html")
	if err != nil { // the page is embedded at build time: only a broken build lacks it
		s.Logger.Error("docs page missing", "err", err)
		http.Error(w, "docs page missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", docsCSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(page)
}

// docsAsset answers GET /docs/assets/{file}: one of the embedded files, by name.
func (s *Server) docsAsset(w http.ResponseWriter, r *http.Request) error {
	name := chi.URLParam(r, "file")
	b, err := fs.ReadFile(docsUI, path.Join("docsui", path.Base(name)))
	if name == "" || path.Base(name) != name || err != nil {
		return shared.Errorf(shared.KindNotFound, "Archivo no encontrado: %s", shared.Cut(name))
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "text/plain; charset=utf-8" // LICENSE, NOTICE
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// The files change only with a new binary; an hour keeps a rolling upgrade's old
	// and new pages from mixing for long.
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("Vary", "Accept-Encoding")
	if len(b) >= gzipMin && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		b = gzipped(name, b)
	}
	_, _ = w.Write(b)
	return nil
}

// gzipMin is the size from which an asset is sent compressed: Swagger UI's script is
// 1.7 MB, about a quarter of that gzipped.
const gzipMin = 16 << 10

var gzipCache sync.Map // file name → gzipped bytes, made on first request

// gzipped is b compressed, made once per file.
func gzipped(name string, b []byte) []byte {
	if z, ok := gzipCache.Load(name); ok {
		return z.([]byte)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // a valid level: no error
	_, _ = zw.Write(b)                                       // writes to a bytes.Buffer do not fail
	_ = zw.Close()
	z, _ := gzipCache.LoadOrStore(name, buf.Bytes())
	return z.([]byte)
}
