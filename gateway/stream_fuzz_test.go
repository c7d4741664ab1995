package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/swarmgate/swarmgate/registry"
)

// failingReader is a file whose reads fail from byte failAt on, as a torrent read does when
// storage fails or the download stops.
type failingReader struct {
	*bytes.Reader
	failAt int64
}

var errTestRead = errors.New("read failed")

func (r *failingReader) Read(p []byte) (int, error) {
	pos, _ := r.Seek(0, io.SeekCurrent)
	if pos >= r.failAt {
		return 0, errTestRead
	}
	if rest := r.failAt - pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	return r.Reader.Read(p)
}

// headerWatch records whether and when the status went out.
type headerWatch struct {
	*httptest.ResponseRecorder
	sent bool
}

func (h *headerWatch) WriteHeader(code int) { h.sent = true; h.ResponseRecorder.WriteHeader(code) }
func (h *headerWatch) Write(p []byte) (int, error) {
	h.sent = true
	return h.ResponseRecorder.Write(p)
}

// FuzzStreamRange serves a file through the stream path's writer (http.ServeContent behind
// servedWriter) for any Range header, with reads that may fail at any byte. What comes out must be
// one of: the right bytes with a matching status and headers (200, 206, multipart 206), 416 with
// "bytes */size", or — when a read fails before the first byte — no header at all and an
// ErrUnavailable, never a success status with a short body that claims to be whole.
func FuzzStreamRange(f *testing.F) {
	for _, rng := range []string{"", "bytes=0-0", "bytes=100-199", "bytes=-500", "bytes=1000-", "bytes=0-9,20-29",
		"bytes=999999-", "bytes=5-2", "bytes=-0", "items=0-1", "bytes=0-0,-1", "bytes= 1 - 2", "bytes=18446744073709551615-"} {
		f.Add(rng, uint16(2000), uint16(65535))
		f.Add(rng, uint16(2000), uint16(0))
		f.Add(rng, uint16(0), uint16(3))
	}
	f.Fuzz(func(t *testing.T, rng string, size, failAt uint16) {
		content := randomBytes(int(size), uint64(size))
		req := httptest.NewRequest(http.MethodGet, "/stream/x/0", nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		rec := &headerWatch{ResponseRecorder: httptest.NewRecorder()}
		w := &servedWriter{ResponseWriter: rec, e: &registry.Entry{}, ctx: req.Context()}
		w.Header().Set("Content-Type", "video/mp4")
		body := &readErrs{ReadSeeker: &failingReader{Reader: bytes.NewReader(content), failAt: int64(failAt)}}
		err := serveRanges(w, req, "x.mp4", body, int64(len(content)))

		got := rec.Body.Bytes()
		if err != nil {
			if rec.sent {
				t.Fatalf("error %v after the header went out (status %d, %d bytes)", err, rec.Code, len(got))
			}
			var he *echo.HTTPError
			switch {
			case errors.Is(err, ErrUnavailable):
				if int(failAt) >= len(content) {
					t.Fatalf("unavailable though every read succeeds: %v", err)
				}
			case errors.As(err, &he) && he.Code == http.StatusRequestedRangeNotSatisfiable:
				// Go leaves Content-Range out when the header does not parse (RFC 9110 only asks for it
				// when the range is well-formed but outside the file).
				if cr := w.Header().Get("Content-Range"); cr != "" && cr != fmt.Sprintf("bytes */%d", len(content)) {
					t.Fatalf("416 with Content-Range %q", cr)
				}
			default:
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if !rec.sent {
			t.Fatalf("no error and no answer")
		}
		short := body.err != nil // a read failed after the header: the body is cut, and says so by its length
		cl, _ := strconv.Atoi(rec.Header().Get("Content-Length"))
		if !short && rec.Header().Get("Content-Length") != "" && cl != len(got) {
			t.Fatalf("Content-Length %d, body %d bytes", cl, len(got))
		}
		switch rec.Code {
		case http.StatusOK:
			if !bytes.HasPrefix(content, got) || (!short && len(got) != len(content)) {
				t.Fatalf("200: %d bytes, not the file's %d", len(got), len(content))
			}
		case http.StatusPartialContent:
			if strings.HasPrefix(rec.Header().Get("Content-Type"), "multipart/") {
				return // parts are checked in rangeCases; here it is enough that nothing failed
			}
			var start, end, total int
			if _, err := fmt.Sscanf(rec.Header().Get("Content-Range"), "bytes %d-%d/%d", &start, &end, &total); err != nil {
				t.Fatalf("206 with Content-Range %q", rec.Header().Get("Content-Range"))
			}
			if total != len(content) || start > end || end >= total {
				t.Fatalf("Content-Range %q for a %d-byte file", rec.Header().Get("Content-Range"), len(content))
			}
			if !bytes.HasPrefix(content[start:end+1], got) || (!short && len(got) != end-start+1) {
				t.Fatalf("206 %s: body is not those bytes", rec.Header().Get("Content-Range"))
			}
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}
