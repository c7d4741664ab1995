package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/swarmgate/swarmgate/live"
	"github.com/swarmgate/swarmgate/media"
	"github.com/swarmgate/swarmgate/transcode"
)

// HLS for browsers that cannot play a file as it is (package transcode): the watch page asks
// for a variant when its play plan says remux or transcode.
//
//	GET /hls/{ih}/{file}/{variant}/index.m3u8     the VOD playlist, whole from the first request
//	GET /hls/{ih}/{file}/{variant}/{n}.ts         segment n, made on demand
//	GET /hls/{ih}/{file}/{variant}/manifest.json  signed entries of the segments made so far
//	GET /hls/{ih}/{file}/subtitles/{stream}.vtt   a text subtitle track as WebVTT
//
// {variant} is "remux" or "transcode", with "-a{N}" for audio stream N ("transcode-a2").

const (
	hlsDir        = "hls"     // below the data dir: segments, one directory per variant
	hlsKeyFile    = "hls.key" // the key variants' signing keys derive from
	keyframesFile = "%s-%d.keyframes.json"
	// hlsCacheShare is the part of --cache-size kept for segments; pieces get the rest.
	hlsCacheShare = 4
)

// startTranscoder makes the HLS maker unless the operator turned it off or ffmpeg is missing
// (then browsers that cannot play a file as it is are told so, and /stream serves as ever).
func (g *Gateway) startTranscoder() error {
	policy, _ := transcode.ParsePolicy(g.cfg.Transcode)
	if policy == transcode.PolicyOff || g.cfg.FFmpeg == "" {
		return nil
	}
	if g.cfg.FFprobe == "" {
		// Said at warn level already when ffprobe is missing; off on purpose, it is no surprise.
		g.log.Info("HLS remux/transcode off: it needs ffprobe to learn what files hold")
		return nil
	}
	key, err := loadOrMakeKey(filepath.Join(g.cfg.DataDir, hlsKeyFile))
	if err != nil {
		return &FieldError{Field: "DataDir", Err: err}
	}
	hw, _ := transcode.ParseHWAccel(g.cfg.HWAccel)
	cfg := transcode.DefaultConfig()
	cfg.FFmpeg, cfg.Policy, cfg.MaxJobs, cfg.HWAccel, cfg.Key = g.cfg.FFmpeg, policy, g.cfg.MaxTranscodes, hw, key
	cfg.Dir = filepath.Join(g.cfg.DataDir, hlsDir)
	if g.cfg.CacheSize > 0 {
		cfg.CacheBytes = g.cfg.CacheSize / hlsCacheShare
	}
	m, err := transcode.New(cfg, g.rootLog.With("component", "transcode"))
	if errors.Is(err, transcode.ErrNoFFmpeg) {
		g.log.Warn("ffmpeg not found: HLS remux/transcode off; browsers that cannot play a file as it is are told so",
			"ffmpeg", g.cfg.FFmpeg, "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	g.transcoder = m
	return nil
}

// transcodePolicy is what this gateway makes, for pages: "off" without a transcoder.
func (g *Gateway) transcodePolicy() string {
	if g.transcoder == nil {
		return string(transcode.PolicyOff)
	}
	return string(g.transcoder.Policy())
}

// loadOrMakeKey reads the gateway's HLS key, making it on first start. Kept across restarts so
// that cached segments keep their signatures.
func loadOrMakeKey(path string) ([]byte, error) {
	key, err := live.ReadKeyFile(path)
	if err == nil {
		return key, nil
	}
	if _, serr := os.Stat(path); serr == nil {
		return nil, err // there, but unreadable: say so rather than replace it
	}
	if key, err = live.GenerateKey(); err != nil {
		return nil, err
	}
	if err := live.WriteKeyFile(path, key); err != nil {
		return nil, err
	}
	return key, nil
}

// hls answers every /hls/... request.
func (g *Gateway) hls(c echo.Context) error {
	if g.transcoder == nil {
		return fmt.Errorf("%w: this gateway makes no HLS (--transcode off, or ffmpeg or ffprobe missing): play the file as it is", ErrForbidden)
	}
	e, err := g.lookup(c.Param("ih"))
	if err != nil {
		return err
	}
	g.watch(e)
	ctx := c.Request().Context()
	if _, err := g.waitInfo(ctx, e); err != nil {
		return err
	}
	files := e.Torrent().Files()
	idx, err := strconv.Atoi(c.Param("file"))
	if err != nil || idx < 0 || idx >= len(files) {
		return fmt.Errorf("%w: file %q out of range: torrent has %d file(s), indexed from 0", ErrNotFound, c.Param("file"), len(files))
	}
	ih := e.Torrent().InfoHash()
	view := g.probes.view(ih, idx)
	switch {
	case view == nil:
		return fmt.Errorf("%w: media probing is off on this gateway", ErrForbidden)
	case view.State == "probing":
		c.Response().Header().Set("Retry-After", "2")
		return fmt.Errorf("%w: the file is still being probed; try again in a moment", ErrUnavailable)
	case view.State != "done" || view.Info == nil:
		return fmt.Errorf("%w: the file could not be probed: %s", ErrConflict, view.Error)
	}
	src := transcode.Source{URL: g.ownStreamURL(ih, idx), Info: view.Info}
	name := c.Param("name")

	if c.Param("variant") == "subtitles" {
		stream, ok := strings.CutSuffix(name, ".vtt")
		n, err := strconv.Atoi(stream)
		if !ok || err != nil || !isTextSubtitle(view.Info, n) {
			return fmt.Errorf("%w: %q is not a text subtitle stream of this file (want {stream}.vtt)", ErrNotFound, name)
		}
		path, err := g.transcoder.Subtitles(ctx, ih.HexString(), idx, n, src.URL)
		if err != nil {
			return hlsError(err)
		}
		c.Response().Header().Set("Content-Type", "text/vtt; charset=utf-8")
		return c.File(path)
	}

	mode, audio, err := transcode.ParseVariantName(c.Param("variant"))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	src.Keyframes = func() ([]float64, error) { return g.keyframes(ctx, ih.HexString(), idx, src.URL) }
	v, err := g.transcoder.Variant(ih.HexString(), idx, mode, audio, src)
	if err != nil {
		return hlsError(err)
	}
	switch {
	case name == "index.m3u8":
		c.Response().Header().Set("Cache-Control", "no-cache")
		return c.Blob(http.StatusOK, "application/vnd.apple.mpegurl", []byte(v.Playlist()))
	case name == "manifest.json":
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, v.Manifest())
	case strings.HasSuffix(name, ".ts"):
		n, err := strconv.Atoi(strings.TrimSuffix(name, ".ts"))
		if err != nil || n < 0 || n >= v.Layout().Segments() {
			return fmt.Errorf("%w: no segment %q: the playlist has 0.ts to %d.ts", ErrNotFound, name, v.Layout().Segments()-1)
		}
		path, _, err := v.Segment(ctx, n)
		if err != nil && ctx.Err() != nil {
			return nil // the player gave up on it (a seek): nobody to answer, nothing went wrong
		}
		if err != nil {
			return hlsError(err)
		}
		c.Response().Header().Set("Content-Type", "video/mp2t")
		c.Response().Header().Set("Cache-Control", "public, max-age=3600")
		return c.File(path)
	}
	return fmt.Errorf("%w: %q: want index.m3u8, manifest.json or {n}.ts", ErrNotFound, name)
}

func isTextSubtitle(info *media.Info, stream int) bool {
	for _, s := range info.Subtitles {
		if s.Index == stream {
			return s.Text
		}
	}
	return false
}

// hlsError maps the transcoder's errors onto the API's.
func hlsError(err error) error {
	switch {
	case errors.Is(err, transcode.ErrBusy):
		return fmt.Errorf("%w: %v: try again shortly, or play the file as it is", ErrLimit, err)
	case errors.Is(err, transcode.ErrNotAllowed):
		return fmt.Errorf("%w: %v", ErrForbidden, err)
	case errors.Is(err, transcode.ErrBadVariant):
		return fmt.Errorf("%w: %v", ErrBadInput, err)
	case errors.Is(err, transcode.ErrNoAudio):
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	case errors.Is(err, transcode.ErrNoVideo), errors.Is(err, transcode.ErrNotH264),
		errors.Is(err, transcode.ErrNoIndex), errors.Is(err, transcode.ErrNoDuration):
		return fmt.Errorf("%w: %v", ErrConflict, err)
	case errors.Is(err, transcode.ErrClosed):
		return ErrClosed
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// keyframes are a file's video keyframe times, read from its container's index through the
// gateway's own /stream (a few ranges: the pieces holding the index) and kept in the data dir.
func (g *Gateway) keyframes(ctx context.Context, ih string, file int, url string) ([]float64, error) {
	path := g.keyframesPath(ih, file)
	if kf, ok := readKeyframes(path); ok {
		if len(kf) == 0 {
			return nil, transcode.ErrNoIndex // looked before: the container keeps none
		}
		return kf, nil
	}
	r, err := newRangeReader(ctx, url)
	if err != nil {
		return nil, err
	}
	kf, err := media.Keyframes(r, r.size)
	if errors.Is(err, media.ErrNoIndex) {
		kf, err = []float64{}, transcode.ErrNoIndex // kept as [], so that it is not read again
	} else if err != nil {
		return nil, fmt.Errorf("reading the keyframe index: %w", err)
	}
	if b, jerr := json.Marshal(kf); jerr == nil {
		if merr := os.MkdirAll(filepath.Dir(path), 0o755); merr == nil {
			os.WriteFile(path, b, 0o644)
		}
	}
	if err != nil {
		return nil, err
	}
	return kf, nil
}

// readKeyframes reads what keyframes kept: ok is false when nothing was (an empty list is a
// container without an index).
func readKeyframes(path string) (kf []float64, ok bool) {
	b, err := os.ReadFile(path)
	return kf, err == nil && json.Unmarshal(b, &kf) == nil
}

func (g *Gateway) keyframesPath(ih string, file int) string {
	return filepath.Join(g.cfg.DataDir, mediaDir, fmt.Sprintf(keyframesFile, strings.ToLower(ih), file))
}

// rangeReader reads a URL with range requests: an io.ReaderAt over the gateway's own /stream.
type rangeReader struct {
	ctx  context.Context
	url  string
	size int64
}

func newRangeReader(ctx context.Context, url string) (*rangeReader, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.ContentLength < 0 {
		return nil, fmt.Errorf("HEAD %s: %s", url, res.Status)
	}
	return &rangeReader{ctx: ctx, url: url, size: res.ContentLength}, nil
}

func (r *rangeReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), r.size)
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, end-1))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusPartialContent {
		return 0, fmt.Errorf("GET %s bytes %d-%d: %s", r.url, off, end-1, res.Status)
	}
	n, err := io.ReadFull(res.Body, p[:end-off])
	if err == nil && end-off < int64(len(p)) {
		err = io.EOF
	}
	return n, err
}
