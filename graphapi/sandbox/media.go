package sandbox

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	mb = 1 << 20
	// maxMediaBytes bounds the bytes kept for uploads; the oldest are evicted first, so an
	// evicted id answers like an expired one.
	maxMediaBytes = 256 * mb
	// mediaURLTTL is how long a download URL stays valid, as on Meta.
	mediaURLTTL = 5 * time.Minute
)

// mediaLimits are Meta's upload size limits per MIME type; a type absent here is refused.
var mediaLimits = map[string]int64{
	"image/jpeg": 5 * mb,
	"image/png":  5 * mb,
	"image/webp": 500 << 10, // stickers

	"video/mp4":  16 * mb,
	"video/3gpp": 16 * mb,

	"audio/aac":  16 * mb,
	"audio/amr":  16 * mb,
	"audio/mpeg": 16 * mb,
	"audio/mp4":  16 * mb,
	"audio/ogg":  16 * mb,

	"text/plain":                    100 * mb,
	"application/pdf":               100 * mb,
	"application/msword":            100 * mb,
	"application/vnd.ms-excel":      100 * mb,
	"application/vnd.ms-powerpoint": 100 * mb,
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document":   100 * mb,
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":         100 * mb,
	"application/vnd.openxmlformats-officedocument.presentationml.presentation": 100 * mb,
}

type mediaItem struct {
	id     string
	pnid   string
	mime   string
	sha256 string
	data   []byte
}

// mediaStore keeps uploads in memory, bounded by maxMediaBytes (oldest evicted first).
type mediaStore struct {
	mu    sync.RWMutex
	byID  map[string]*mediaItem
	order []string // upload order, for eviction
	total int64
	max   int64
}

func newMediaStore(max int64) *mediaStore {
	return &mediaStore{byID: make(map[string]*mediaItem), max: max}
}

func (ms *mediaStore) known(id string) bool {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	_, ok := ms.byID[id]
	return ok
}

func (ms *mediaStore) get(id string) *mediaItem {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	return ms.byID[id]
}

func (ms *mediaStore) delete(id string) bool {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	it, ok := ms.byID[id]
	if ok {
		delete(ms.byID, id)
		ms.total -= int64(len(it.data))
	}
	return ok
}

func (ms *mediaStore) put(it *mediaItem) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for {
		// Media ids are 16 random digits, like Meta's; retry on the rare collision.
		it.id = strconv.FormatUint(1_000_000_000_000_000+rand.Uint64N(9_000_000_000_000_000), 10)
		if _, taken := ms.byID[it.id]; !taken {
			break
		}
	}
	for ms.total+int64(len(it.data)) > ms.max && len(ms.order) > 0 {
		old := ms.order[0]
		ms.order = ms.order[1:]
		if o, ok := ms.byID[old]; ok {
			ms.total -= int64(len(o.data))
			delete(ms.byID, old)
		}
	}
	ms.byID[it.id] = it
	ms.order = append(ms.order, it.id)
	ms.total += int64(len(it.data))
}

// handleUpload answers POST /{v}/{phone-number-id}/media.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request, pnid string) *apiError {
	if e := s.checkAuth(r); e != nil {
		return e
	}
	if e := s.checkPNID(pnid, "post"); e != nil {
		return e
	}
	it, e := readUpload(w, r)
	if err := s.sleep(r); err != nil {
		return nil // the client is gone
	}
	if e != nil {
		return e
	}
	it.pnid = pnid
	s.media.put(it)
	s.mu.Lock()
	s.stats.Uploads++
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"id": it.id})
	return nil
}

// readUpload parses the multipart form field by field so that a large file is read once.
func readUpload(w http.ResponseWriter, r *http.Request) (*mediaItem, *apiError) {
	r.Body = http.MaxBytesReader(w, r.Body, 100*mb+mb)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fieldErr(CodeInvalidParameter, "file", "a multipart/form-data body is required")
	}
	var (
		product, declared string
		data              []byte
		haveFile          bool
	)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fieldErr(CodeInvalidParameter, "file", "malformed multipart body")
		}
		switch part.FormName() {
		case "messaging_product":
			product, err = readSmall(part)
		case "type":
			declared, err = readSmall(part)
		case "file":
			haveFile = true
			data, err = io.ReadAll(part)
		}
		part.Close()
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return nil, metaErr(CodeMediaUpload, "file: larger than 100 MB")
			}
			return nil, fieldErr(CodeInvalidParameter, part.FormName(), "unreadable form field")
		}
	}
	switch {
	case product == "":
		return nil, missing("messaging_product")
	case product != "whatsapp":
		return nil, fieldErr(CodeInvalidParameter, "messaging_product", fmt.Sprintf("must be 'whatsapp', got '%s'", product))
	case !haveFile:
		return nil, missing("file")
	case declared == "":
		return nil, missing("type")
	}
	mt, _, err := mime.ParseMediaType(declared)
	if err != nil {
		return nil, fieldErr(CodeInvalidParameter, "type", fmt.Sprintf("invalid MIME type '%s'", declared))
	}
	limit, ok := mediaLimits[mt]
	if !ok {
		return nil, fieldErr(CodeInvalidParameter, "type", fmt.Sprintf("Param file must be a file with one of the supported types, got '%s'", mt))
	}
	if len(data) == 0 {
		return nil, metaErr(CodeMediaUpload, "file: empty file")
	}
	if int64(len(data)) > limit {
		return nil, metaErr(CodeMediaUpload, fmt.Sprintf("file: %d bytes exceeds the %d MB limit for %s", len(data), limit/mb, mt))
	}
	if strings.HasPrefix(mt, "image/") {
		if sniffed, _, _ := strings.Cut(http.DetectContentType(data), ";"); sniffed != mt {
			return nil, metaErr(CodeMediaUpload, fmt.Sprintf("file: declared type %s does not match the content (%s)", mt, sniffed))
		}
	}
	sum := sha256.Sum256(data)
	return &mediaItem{mime: mt, sha256: hex.EncodeToString(sum[:]), data: data}, nil
}

func readSmall(p *multipart.Part) (string, error) {
	b, err := io.ReadAll(io.LimitReader(p, 1024))
	return strings.TrimSpace(string(b)), err
}

// mediaInfo is the answer of GET /{v}/{media-id}.
type mediaInfo struct {
	MessagingProduct string `json:"messaging_product"`
	URL              string `json:"url"`
	MimeType         string `json:"mime_type"`
	SHA256           string `json:"sha256"`
	FileSize         string `json:"file_size"`
	ID               string `json:"id"`
}

// handleMediaGet answers GET /{v}/{media-id} with a download URL valid for five minutes.
func (s *Server) handleMediaGet(w http.ResponseWriter, r *http.Request, it *mediaItem) *apiError {
	if err := s.sleep(r); err != nil {
		return nil
	}
	if pn := r.URL.Query().Get("phone_number_id"); pn != "" && pn != it.pnid {
		return unsupported("get", it.id)
	}
	exp := time.Now().Add(mediaURLTTL).Unix()
	token := strconv.FormatInt(exp, 10) + "." + s.signMedia(it.id, exp)
	s.mu.Lock()
	s.stats.MediaGets++
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, mediaInfo{
		MessagingProduct: "whatsapp",
		URL:              s.baseURL(r) + "/_sandbox/download/" + it.id + "?token=" + token,
		MimeType:         it.mime,
		SHA256:           it.sha256,
		FileSize:         strconv.Itoa(len(it.data)),
		ID:               it.id,
	})
	return nil
}

func (s *Server) signMedia(id string, exp int64) string {
	mac := hmac.New(sha256.New, s.urlKey)
	fmt.Fprintf(mac, "%s|%d", id, exp)
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// handleDownload serves GET /_sandbox/download/{id}: like Meta's media URLs it needs the
// bearer token and a URL that has not expired; otherwise it answers 404.
func (s *Server) handleDownload(w http.ResponseWriter, r *http.Request, id string) {
	if e := s.checkAuth(r); e != nil {
		writeError(w, e)
		return
	}
	it := s.media.get(id)
	expStr, sig, _ := strings.Cut(r.URL.Query().Get("token"), ".")
	exp, err := strconv.ParseInt(expStr, 10, 64)
	if it == nil || err != nil || time.Now().Unix() > exp || !hmac.Equal([]byte(sig), []byte(s.signMedia(id, exp))) {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", it.mime)
	w.Header().Set("Content-Length", strconv.Itoa(len(it.data)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(it.data)
	}
}
