package live

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// routes is the Origin's one router (see Origin for what each route does). The method-less
// patterns catch what no route takes, so that every answer is JSON: 404 for unknown paths, 405
// for other methods.
func (o *Origin) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("PUT /live/{stream}/{kind}/{seq}", o.ingest(o.upload))
	mux.Handle("PUT /live/{stream}/end", o.ingest(o.end))
	mux.Handle("PUT /live/", o.ingest(func(*http.Request, *IngestResult) error { return errUploadPath }))
	mux.HandleFunc("GET /live/{stream}/index.m3u8", o.withStream(o.servePlaylist))
	mux.HandleFunc("GET /live/{stream}/manifest.json", o.withStream(o.serveManifest))
	mux.HandleFunc("GET /live/{stream}/{segment}", o.withStream(o.serveSegment))
	mux.HandleFunc("GET /live/", notFound)
	mux.HandleFunc("/live/", methodNotAllowed("GET, HEAD, PUT"))
	mux.HandleFunc("GET /api/live", o.serveStatuses)
	mux.HandleFunc("GET /api/live/{$}", o.serveStatuses)
	mux.HandleFunc("GET /api/live/{stream}", o.serveStatus)
	mux.HandleFunc("GET /api/live/", notFound)
	mux.HandleFunc("/api/live", methodNotAllowed("GET, HEAD"))
	mux.HandleFunc("/api/live/", methodNotAllowed("GET, HEAD"))
	mux.HandleFunc("/", notFound)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="swarmgate-ingest"`)
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, http.StatusNotFound, "not found")
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, r, http.StatusMethodNotAllowed, "method not allowed")
	}
}

// withStream makes the handler of a route under /live/{stream}/: 404 unless the stream is here.
func (o *Origin) withStream(serve func(http.ResponseWriter, *http.Request, *stream)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := ParseStreamID(r.PathValue("stream"))
		if err != nil {
			writeError(w, r, http.StatusNotFound, err.Error())
			return
		}
		s := o.stream(id)
		if s == nil {
			writeError(w, r, http.StatusNotFound, fmt.Sprintf("no live stream %s here", id))
			return
		}
		serve(w, r, s)
	}
}

// servePlaylist answers GET /live/{stream}/index.m3u8.
func (o *Origin) servePlaylist(w http.ResponseWriter, r *http.Request, s *stream) {
	b, err := s.w.Playlist(PlaylistOptions{URI: func(e Entry) string { return SegmentName(e.Kind, e.Seq) }, MaxSegments: o.cfg.PlaylistSegments})
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Cache-Control", "max-age=1")
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

// serveManifest answers GET /live/{stream}/manifest.json.
func (o *Origin) serveManifest(w http.ResponseWriter, r *http.Request, s *stream) {
	b, err := json.Marshal(s.w.Manifest())
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Cache-Control", "max-age=1")
	w.Header().Set("Content-Type", "application/json")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

// serveSegment answers GET /live/{stream}/{seq}.m4s and /live/{stream}/init-{seq}.mp4. A
// segment's name never names other bytes, so it is cached as immutable.
func (o *Origin) serveSegment(w http.ResponseWriter, r *http.Request, s *stream) {
	name := r.PathValue("segment")
	kind, seq, ok := parseSegmentName(name)
	if !ok {
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("no %q in a live stream: want index.m3u8, manifest.json, <seq>.m4s or init-<seq>.mp4", name))
		return
	}
	seg, ok := s.w.Get(kind, seq)
	switch {
	case !ok:
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("%s segment %d is not in the stream's window", kind, seq))
		return
	case seg.Data == nil:
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("%s segment %d: its bytes are no longer kept here (fetch it by infohash %s)", kind, seq, seg.InfoHash.HexString()))
		return
	}
	ctype := "video/iso.segment"
	if kind == KindInit {
		ctype = "video/mp4"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Header().Set("ETag", `"`+hex.EncodeToString(seg.SHA256[:])+`"`)
	cw := &countingResponse{ResponseWriter: w}
	http.ServeContent(cw, r, "", seg.Start(), bytes.NewReader(seg.Data))
	s.mu.Lock()
	s.bytesOut += cw.n
	s.mu.Unlock()
}

// countingResponse counts the body bytes written through it.
type countingResponse struct {
	http.ResponseWriter
	n uint64
}

func (c *countingResponse) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += uint64(n)
	return n, err
}

// parseSegmentName reads SegmentName's two forms, canonical spellings only.
func parseSegmentName(name string) (Kind, uint64, bool) {
	kind, num := KindMedia, ""
	if n, ok := strings.CutSuffix(name, ".m4s"); ok {
		num = n
	} else if n, ok := strings.CutPrefix(name, "init-"); ok {
		if num, ok = strings.CutSuffix(n, ".mp4"); !ok {
			return 0, 0, false
		}
		kind = KindInit
	}
	seq, err := strconv.ParseUint(num, 10, 64)
	if err != nil || strconv.FormatUint(seq, 10) != num {
		return 0, 0, false
	}
	return kind, seq, true
}

// serveStatuses answers GET /api/live: every stream's state.
func (o *Origin) serveStatuses(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, o.Statuses(baseOf(r)))
}

// serveStatus answers GET /api/live/{stream}.
func (o *Origin) serveStatus(w http.ResponseWriter, r *http.Request) {
	id, err := ParseStreamID(r.PathValue("stream"))
	if err != nil {
		writeError(w, r, http.StatusNotFound, err.Error())
		return
	}
	st, ok := o.Status(id, baseOf(r))
	if !ok {
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("no live stream %s here", id))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// BaseURLHeader, when a mounting server sets it on the request, is the base URL the origin's
// answers name (e.g. the gateway's public URL); else the request's own host.
const BaseURLHeader = "X-Swarmgate-Base-Url"

func baseOf(r *http.Request) string {
	if b := r.Header.Get(BaseURLHeader); b != "" {
		return strings.TrimSuffix(b, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
