package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/textproto"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/labstack/echo/v4"
	"github.com/swarmgate/swarmgate/registry"
	"golang.org/x/time/rate"
)

// streamReadahead is how far past a /stream reader's position pieces are asked for: a few seconds
// of HD video, so that playback does not wait on every piece.
const streamReadahead = 8 << 20

func (g *Gateway) stream(c echo.Context) error {
	e, err := g.lookup(c.Param("ih"))
	if err != nil {
		return err
	}
	g.watch(e)
	if _, err := g.waitInfo(c.Request().Context(), e); err != nil {
		return err
	}
	files := e.Torrent().Files()
	idx, err := strconv.Atoi(c.Param("file"))
	if err != nil || idx < 0 || idx >= len(files) {
		return fmt.Errorf("%w: file %q out of range: torrent has %d file(s), indexed from 0", ErrNotFound, c.Param("file"), len(files))
	}
	// The file's own name for "Save as" and for players that show it; inline, so browsers play it.
	f := files[idx]
	c.Response().Header().Set("Content-Disposition", contentDispositionOf(path.Base(f.DisplayPath())))
	var pace *streamPace
	if c.QueryParam(quickParam) == "1" {
		ih, length := e.Torrent().InfoHash(), f.Length()
		pace = newStreamPace(func() (float64, bool) { return g.fileBitrate(ih, idx, length) }, g.drainc)
	}
	return g.serveFile(c, e, f, streamReadahead, pace)
}

// webseed answers BEP 19 requests: <base>/webseed/<ih>/<name> for a single-file torrent and
// <base>/webseed/<ih>/<name>/<path> for a multi-file one. Paths are looked up, never joined onto
// the file system, so traversal has nothing to reach.
func (g *Gateway) webseed(c echo.Context) error {
	e, err := g.lookup(c.Param("ih"))
	if err != nil {
		return err
	}
	g.watch(e)
	info, err := g.waitInfo(c.Request().Context(), e)
	if err != nil {
		return err
	}
	rest := webseedPath(c.Request().URL.Path)
	for _, f := range e.Torrent().Files() {
		want := info.BestName()
		if info.IsDir() {
			fi := f.FileInfo()
			want = path.Join(append([]string{info.BestName()}, fi.BestPath()...)...)
		}
		if rest == want {
			// A webseed request covers a few pieces: read just that, no further.
			return g.serveFile(c, e, f, 0, nil)
		}
	}
	return fmt.Errorf("%w: no file %q in torrent %s", ErrNotFound, rest, e.Torrent().InfoHash().HexString())
}

// webseedPath is the file path of a webseed request: what follows /webseed/<ih>/ in the decoded
// URL path. Not echo's c.Param("*"): when the request escapes a character Go keeps escaped in
// paths (%26 for '&', and + = $ , ; : @ ! ' ( ) *), Go sets URL.RawPath, echo routes on it and the
// param stays escaped. URL.Path is decoded exactly once, so a '%' in a name (sent as %25) is kept.
func webseedPath(urlPath string) string {
	rest, _ := strings.CutPrefix(urlPath, "/webseed/")
	_, rest, _ = strings.Cut(rest, "/")
	return rest
}

// watch records an HTTP reader (/stream, /webseed): a player is playing, so a torrent nobody
// watched until now starts fetching ahead at once. Opening a page is not reading (PageView).
func (g *Gateway) watch(e *registry.Entry) {
	wasIdle := time.Since(e.LastRead()) >= g.cfg.ViewerLinger
	e.Touch()
	if wasIdle {
		g.torrents.DemandChanged()
	}
}

// serveFile streams one file with Range support, reading through the torrent so that missing
// pieces are fetched first, then verified, then sent. The reader is not responsive: anacrolix's
// responsive mode hands out chunks before their piece's hash is checked, and a lying peer's bytes
// would then reach the viewer. A read waits for the whole piece instead: the first byte comes one
// piece's transfer later than it did. pace, if not nil, paces the answer (the quick start).
func (g *Gateway) serveFile(c echo.Context, e *registry.Entry, f *torrent.File, readahead int64, pace *streamPace) error {
	e.ReaderOpened()
	defer e.ReaderClosed()
	r := f.NewReader()
	defer r.Close()
	if readahead > 0 {
		r.SetReadahead(readahead)
	}
	req := c.Request()
	r.SetContext(req.Context())
	// Through echo's Response, not its Writer, so that the status (206, 304) is the one the
	// metrics middleware counts.
	w := &servedWriter{ResponseWriter: c.Response(), e: e, limit: g.uploadLimit, pace: pace, ctx: req.Context()}
	if g.ownRead(req) {
		w.limit, w.own = nil, true
	}
	w.Header().Set(echo.HeaderContentType, mimeType(f.DisplayPath()))
	w.Header().Set("Cache-Control", "public, max-age=86400, immutable")
	return serveRanges(w, req, f.DisplayPath(), r, f.Length())
}

// serveRanges answers req from body (size bytes) with http.ServeContent, through w.
func serveRanges(w *servedWriter, req *http.Request, name string, body io.ReadSeeker, size int64) error {
	if size == 0 {
		// ServeContent answers a suffix range of an empty file with "206 bytes 0--1/0"; an empty
		// file is best served whole.
		req.Header.Del("Range")
	}
	if rng, ok := strings.CutPrefix(req.Header.Get("Range"), "bytes="); ok {
		// ServeContent answers a zero-length suffix ("bytes=-0", unsatisfiable by RFC 9110 §14.1.1)
		// with "206 bytes N-(N-1)/N": drop such specs, and answer 416 when none is left.
		var kept []string
		for _, spec := range strings.Split(rng, ",") {
			if isZeroSuffix(spec) {
				continue
			}
			kept = append(kept, spec)
		}
		if len(kept) == 0 {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			w.Write([]byte("invalid range: a suffix of zero bytes is empty"))
			return w.finish(nil, name)
		}
		req.Header.Set("Range", "bytes="+strings.Join(kept, ","))
	}
	rb := &readErrs{ReadSeeker: body}
	http.ServeContent(w, req, path.Base(name), time.Time{}, rb)
	return w.finish(rb.err, name)
}

// isZeroSuffix reports whether a range spec asks for the last zero bytes ("-0", "- 00", "-+0"). It
// reads the spec as net/http's parser does (textproto trimming, strconv.ParseInt), so that every spec
// ServeContent would take as a zero-length suffix is caught.
func isZeroSuffix(spec string) bool {
	start, end, ok := strings.Cut(textproto.TrimString(spec), "-")
	if !ok || textproto.TrimString(start) != "" {
		return false
	}
	end = textproto.TrimString(end)
	if strings.HasPrefix(end, "-") {
		return false // net/http rejects "--0" as a whole
	}
	n, err := strconv.ParseInt(end, 10, 64)
	return err == nil && n == 0
}

// readErrs keeps the first read error, which http.ServeContent drops.
type readErrs struct {
	io.ReadSeeker
	err error
}

func (r *readErrs) Read(p []byte) (int, error) {
	n, err := r.ReadSeeker.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// servedWriter counts bytes sent and touches the torrent's viewer clock while a long stream runs.
// It holds a success status back until the first body byte, so that a read that fails before any
// data (a storage error, a request given up) is answered with an error instead of a 200 whose body
// stops short. Errors that http.ServeContent writes as text (416, 412) are turned into our JSON
// shape.
type servedWriter struct {
	http.ResponseWriter
	e       *registry.Entry
	limit   *rate.Limiter
	pace    *streamPace
	own     bool // the gateway's own read (ownRead): not egress
	ctx     context.Context
	code    int // held success status, 0 once sent
	sent    bool
	errCode int
	errBody bytes.Buffer
}

func (w *servedWriter) WriteHeader(code int) {
	if code >= 400 {
		w.errCode = code
		return
	}
	w.code = code
}

func (w *servedWriter) sendHeader() {
	if w.sent {
		return
	}
	w.sent = true
	if w.code != 0 {
		w.ResponseWriter.WriteHeader(w.code)
	}
}

func (w *servedWriter) Write(p []byte) (int, error) {
	if w.errCode != 0 {
		return w.errBody.Write(p)
	}
	w.sendHeader()
	written := 0
	for len(p) > 0 {
		chunk := p
		if w.pace != nil {
			chunk = p[:min(len(p), capChunk)]
			if err := w.pace.wait(w.ctx, len(chunk)); err != nil {
				return written, err
			}
		}
		if w.limit != nil {
			chunk = p[:min(len(p), capChunk)]
			if err := w.limit.WaitN(w.ctx, len(chunk)); err != nil {
				return written, err
			}
		}
		n, err := w.ResponseWriter.Write(chunk)
		written += n
		if !w.own {
			w.e.CountHTTP(n)
		}
		w.e.Touch()
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// capChunk is how much of an answer goes at a time under the upload cap: a peer's block (16 KiB).
// Writers and peer conns wait their turns for the cap's tokens in the order they asked; a
// bigger chunk would take a bigger turn (with 256 KiB, HTTP answers took nearly all of a saturated
// cap from the browsers' WebRTC conns).
const capChunk = 16 << 10

// finish sends what is still held: the header of an empty or HEAD answer, or the error.
func (w *servedWriter) finish(readErr error, name string) error {
	if w.errCode != 0 {
		w.Header().Del("Content-Type")
		w.Header().Del("Cache-Control")
		w.Header().Del("Content-Disposition")
		return echo.NewHTTPError(w.errCode, strings.TrimSpace(w.errBody.String()))
	}
	if readErr == nil || w.sent {
		// Past the header, a failed read can only end the body early; the client sees fewer bytes
		// than Content-Length said and knows the answer is incomplete.
		w.sendHeader()
		return nil
	}
	for _, h := range []string{"Content-Type", "Cache-Control", "Content-Disposition", "Content-Length", "Content-Range", "Accept-Ranges"} {
		w.Header().Del(h)
	}
	if w.ctx.Err() != nil {
		return nil // the client left; nobody reads an answer
	}
	return fmt.Errorf("%w: reading %q: %v", ErrUnavailable, name, readErr)
}

// knownTypes covers what players care about; the system table (which containers may lack) is
// the fallback.
var knownTypes = map[string]string{
	".mp4":  "video/mp4",
	".m4v":  "video/mp4",
	".m4a":  "audio/mp4",
	".webm": "video/webm",
	".mkv":  "video/x-matroska",
	".mov":  "video/quicktime",
	".avi":  "video/x-msvideo",
	".ts":   "video/mp2t",
	".mp3":  "audio/mpeg",
	".ogg":  "audio/ogg",
	".ogv":  "video/ogg",
	".opus": "audio/ogg",
	".flac": "audio/flac",
	".wav":  "audio/wav",
	".srt":  "application/x-subrip",
	".vtt":  "text/vtt",
	".txt":  "text/plain; charset=utf-8",
	".nfo":  "text/plain; charset=utf-8",
	".jpg":  "image/jpeg",
	".png":  "image/png",
}

func mimeType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := knownTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// contentDispositionOf is an inline Content-Disposition naming the file, encoded as RFC 2231
// says where the name is not plain ASCII.
func contentDispositionOf(name string) string {
	return mime.FormatMediaType("inline", map[string]string{"filename": name})
}
