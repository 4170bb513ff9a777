package sandbox

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"net/http"
	"strconv"
	"sync"
)

type asset struct {
	mime string
	data []byte
}

// sampleAssets are generated once per process: real files that pass Meta's checks, for
// header_content links while developing offline.
var sampleAssets = sync.OnceValue(func() map[string]asset {
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for y := range 64 {
		for x := range 64 {
			img.Set(x, y, color.RGBA{R: uint8(x * 4), G: uint8(y * 4), B: 160, A: 255})
		}
	}
	var jpg, pngb bytes.Buffer
	if err := jpeg.Encode(&jpg, img, &jpeg.Options{Quality: 80}); err != nil {
		panic(err) // encoding to memory cannot fail
	}
	if err := png.Encode(&pngb, img); err != nil {
		panic(err)
	}
	return map[string]asset{
		"sample.jpg": {"image/jpeg", jpg.Bytes()},
		"sample.png": {"image/png", pngb.Bytes()},
		"sample.pdf": {"application/pdf", samplePDF()},
		"sample.mp4": {"video/mp4", sampleMP4()},
	}
})

// samplePDF builds a one-page PDF with a correct cross-reference table.
func samplePDF() []byte {
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		"", // content stream, below
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	}
	stream := "BT /F1 18 Tf 40 70 Td (wagate sandbox) Tj ET"
	objs[3] = fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(stream), stream)
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

// sampleMP4 is an ftyp box followed by an empty free box: enough for MIME sniffing.
func sampleMP4() []byte {
	var b bytes.Buffer
	ftyp := []byte("ftypisom\x00\x00\x02\x00isomiso2avc1mp41")
	binary.Write(&b, binary.BigEndian, uint32(4+len(ftyp)))
	b.Write(ftyp)
	binary.Write(&b, binary.BigEndian, uint32(8))
	b.WriteString("free")
	return b.Bytes()
}

func serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := sampleAssets()[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.mime)
	w.Header().Set("Content-Length", strconv.Itoa(len(a.data)))
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(a.data)
	}
}
