package live

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNoFFmpeg means ffmpeg is not installed (or not where BroadcastConfig.FFmpeg says).
var ErrNoFFmpeg = errors.New("ffmpeg not found: install it (Debian/Ubuntu: apt-get install ffmpeg) or give its path")

// ErrIngestRefused means the gateway refuses this broadcaster altogether (no ingest, wrong
// token): retrying the next segment would not help.
var ErrIngestRefused = errors.New("the gateway refuses uploads")

// BroadcastConfig sets up Broadcast. Start from DefaultBroadcastConfig.
type BroadcastConfig struct {
	// Gateway is the base URL of the origin gateway, e.g. https://tv.example.org. Required.
	Gateway string
	// Token is the gateway's ingest token. Required.
	Token string
	// Key is the stream's private key; the stream id is its public half. Required.
	Key ed25519.PrivateKey
	// Input is what ffmpeg reads (a file, a URL), in real time (-re); Loop repeats it forever.
	Input string
	Loop  bool
	// InputArgs, when set, replace ffmpeg's input arguments ("-re [-stream_loop -1] -i Input"),
	// e.g. lavfi test sources bounded with -t. Input or InputArgs is required.
	InputArgs []string
	// SegmentSeconds is the segment duration ffmpeg aims at; a keyframe starts each.
	SegmentSeconds float64
	// KeepOpen leaves the stream open when the broadcast stops, instead of ending it with a
	// signed End: viewers see it stalled until a broadcast with the same key goes on.
	KeepOpen bool
	// FFmpeg is the ffmpeg binary, looked up in PATH unless it is a path.
	FFmpeg string
	// Client makes the uploads.
	Client *http.Client
	// Out gets the stream id and watch URL (nil: nowhere).
	Out io.Writer
	// Poll is how often ffmpeg's playlist is read; RetryFor how long a segment's upload is
	// retried on network errors and 5xx before it is skipped.
	Poll     time.Duration
	RetryFor time.Duration
}

// DefaultBroadcastConfig returns the defaults (Gateway, Token, Key and the input still to be
// set): 1 s segments, ffmpeg from PATH, a client with a 30 s timeout, ffmpeg's playlist read
// every 200 ms, an upload retried for 20 s.
func DefaultBroadcastConfig() BroadcastConfig {
	return BroadcastConfig{
		SegmentSeconds: 1,
		FFmpeg:         "ffmpeg",
		Client:         &http.Client{Timeout: 30 * time.Second},
		Poll:           200 * time.Millisecond,
		RetryFor:       20 * time.Second,
	}
}

// Validate reports every unusable field, each with the reason.
func (c BroadcastConfig) Validate() error {
	var errs configErrors
	if u, err := url.Parse(c.Gateway); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs.add("Gateway", "%q: want an http(s) URL such as https://tv.example.org", c.Gateway)
	}
	if c.Token == "" {
		errs.add("Token", "must be set (the gateway's ingest token)")
	}
	if len(c.Key) != ed25519.PrivateKeySize {
		errs.add("Key", "must be an ed25519 private key, got %d bytes", len(c.Key))
	}
	if c.Input == "" && len(c.InputArgs) == 0 {
		errs.add("Input", "must be set, or InputArgs")
	}
	if math.IsNaN(c.SegmentSeconds) || math.IsInf(c.SegmentSeconds, 0) || c.SegmentSeconds <= 0 {
		errs.add("SegmentSeconds", "must be > 0, got %v", c.SegmentSeconds)
	}
	if c.FFmpeg == "" {
		errs.add("FFmpeg", "must name the ffmpeg binary")
	}
	if c.Client == nil {
		errs.add("Client", "must be set")
	}
	errs.duration("Poll", c.Poll)
	errs.duration("RetryFor", c.RetryFor)
	return errs.err()
}

// BroadcastStats counts what Broadcast did with the segments ffmpeg cut.
type BroadcastStats struct {
	Uploaded int // accepted by the gateway (init segments included)
	Refused  int // refused with a 4xx (the reason is logged)
	Failed   int // given up after RetryFor, or left behind by ffmpeg's rolling playlist
	// FirstSeq is the seq of the first media segment: the gateway's next_seq for a stream it
	// knows, else the Unix time in milliseconds (see Broadcast).
	FirstSeq uint64
	// Ended is whether the gateway took the stream's signed end.
	Ended bool
}

// cutListSize is how many segments ffmpeg's playlist lists: the uploader may fall that far behind
// (a gateway down for a while) before segments are skipped.
const cutListSize = 30

// FFmpegArgs is ffmpeg's command line (without the binary) for cfg, writing into dir:
// H.264/AAC in fMP4 HLS segments of SegmentSeconds, each starting with a keyframe.
func FFmpegArgs(cfg BroadcastConfig, dir string) []string {
	s := strconv.FormatFloat(cfg.SegmentSeconds, 'f', -1, 64)
	args := []string{"-hide_banner", "-loglevel", "warning", "-nostdin", "-y"}
	if len(cfg.InputArgs) > 0 {
		args = append(args, cfg.InputArgs...)
	} else {
		args = append(args, "-re")
		if cfg.Loop {
			args = append(args, "-stream_loop", "-1")
		}
		args = append(args, "-i", cfg.Input)
	}
	return append(args,
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
		"-force_key_frames", "expr:gte(t,n_forced*"+s+")", "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "128k", "-ac", "2",
		// A rolling playlist (a looped input runs for days); ffmpeg deletes segments once they are
		// cutListSize behind it, long after their upload.
		"-f", "hls", "-hls_time", s, "-hls_list_size", strconv.Itoa(cutListSize),
		"-hls_delete_threshold", strconv.Itoa(cutListSize), "-hls_segment_type", "fmp4",
		"-hls_flags", "independent_segments+program_date_time+temp_file+delete_segments",
		"-hls_fmp4_init_filename", "init.mp4",
		"-hls_segment_filename", filepath.Join(dir, "seg%d.m4s"),
		filepath.Join(dir, "index.m3u8"),
	)
}

// Broadcast runs ffmpeg on the input and uploads every segment it completes, init first, signed
// with cfg.Key, until ffmpeg ends (then it uploads the rest and returns nil) or ctx does (then it
// stops ffmpeg and returns ctx's error). Segments are numbered on from the gateway's next_seq
// for the stream, so a restarted broadcast goes on where the last one stopped. A stream the
// gateway does not know (new, or the gateway lost it) starts at the current
// Unix time in milliseconds, which no earlier segment of the stream can have reached (seq grows
// by at most 2 a second): a seq never names two different segments, which caches rely on (the
// gateway serves segments as immutable), and stays far below 2^53 for JavaScript. When it
// stops, it ends the stream with a signed End unless cfg.KeepOpen.
func Broadcast(ctx context.Context, cfg BroadcastConfig, log *slog.Logger) (stats BroadcastStats, err error) {
	var st BroadcastStats
	if err := cfg.Validate(); err != nil {
		return st, err
	}
	base := strings.TrimSuffix(cfg.Gateway, "/")
	bin, err := exec.LookPath(cfg.FFmpeg)
	if err != nil {
		return st, fmt.Errorf("%w (%v)", ErrNoFFmpeg, err)
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	id := StreamIDOfKey(cfg.Key)
	up := &uploader{cfg: cfg, log: log, base: base, id: id, stats: &st}
	if st.FirstSeq, err = up.nextSeq(ctx); err != nil {
		return st, err
	}
	if !cfg.KeepOpen {
		// However the broadcast stops (the input's end, Ctrl-C, an error), say so: viewers then
		// see the stream end rather than stall.
		defer func() {
			up.end(ctx)
			stats.Ended = st.Ended
		}()
	}
	fmt.Fprintf(cfg.Out, "stream %s\nwatch  %s/live/%s\n", id, base, id)

	dir, err := os.MkdirTemp("", "swarmgate-broadcast-")
	if err != nil {
		return st, err
	}
	defer os.RemoveAll(dir)
	cmd := exec.CommandContext(ctx, bin, FFmpegArgs(cfg, dir)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	var stderr tailBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return st, fmt.Errorf("starting ffmpeg: %w", err)
	}
	log.Info("ffmpeg started", "dir", dir, "stream", id)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	w := &watcher{dir: dir, seq: st.FirstSeq}
	tick := time.NewTicker(cfg.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			<-exited
			return st, ctx.Err()
		case werr := <-exited:
			if ctx.Err() != nil {
				// Ctrl-C in a terminal reaches ffmpeg too, which may end first.
				return st, ctx.Err()
			}
			// ffmpeg wrote its last segment and playlist: upload what is left.
			if err := w.upload(ctx, up); err != nil {
				return st, err
			}
			if werr != nil {
				return st, fmt.Errorf("ffmpeg: %v: %s", werr, strings.TrimSpace(stderr.String()))
			}
			return st, nil
		case <-tick.C:
			if err := w.upload(ctx, up); err != nil {
				cmd.Cancel()
				<-exited
				return st, err
			}
		}
	}
}

// watcher reads ffmpeg's playlist and uploads the segments it lists, each once.
type watcher struct {
	dir     string
	seq     uint64 // seq of ffmpeg's segment 0
	next    uint64 // ffmpeg's number (media sequence number) of the next segment to upload
	initURI string // the init segment last uploaded
}

type cutSegment struct {
	uri, mapURI string
	dur         time.Duration
	pdt         time.Time
}

func (w *watcher) upload(ctx context.Context, up *uploader) error {
	b, err := os.ReadFile(filepath.Join(w.dir, "index.m3u8"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	first, segs := parseCutPlaylist(b)
	if first > w.next {
		up.stats.Failed += int(first - w.next)
		up.log.Warn("segments skipped: the uploader fell behind ffmpeg", "from", w.seq+w.next, "count", first-w.next)
		w.next = first
	}
	for ; w.next < first+uint64(len(segs)); w.next++ {
		if ctx.Err() != nil {
			return nil
		}
		s := segs[w.next-first]
		seq := w.seq + w.next
		at := s.pdt
		if at.IsZero() {
			at = time.Now().Add(-s.dur)
		}
		if s.mapURI != "" && s.mapURI != w.initURI {
			if err := up.send(ctx, KindInit, seq, time.Now(), 0, filepath.Join(w.dir, filepath.Base(s.mapURI))); err != nil {
				return err
			}
			w.initURI = s.mapURI
		}
		err := up.send(ctx, KindMedia, seq, at, s.dur, filepath.Join(w.dir, filepath.Base(s.uri)))
		if errors.Is(err, errNeedInit) && s.mapURI != "" {
			// The gateway lost the stream (it restarted without its window): the init segment
			// again, then this one.
			up.log.Info("the gateway has no init segment for the stream (restarted?); sending it again", "seq", seq)
			if err = up.send(ctx, KindInit, seq, time.Now(), 0, filepath.Join(w.dir, filepath.Base(s.mapURI))); err == nil {
				err = up.send(ctx, KindMedia, seq, at, s.dur, filepath.Join(w.dir, filepath.Base(s.uri)))
			}
		}
		if errors.Is(err, errNeedInit) {
			up.stats.Refused++
			up.log.Warn("segment refused: the gateway wants its init segment", "seq", seq)
			err = nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseCutPlaylist reads ffmpeg's playlist, complete lines only: the media sequence number of
// its first segment, and the segments.
func parseCutPlaylist(b []byte) (first uint64, segs []cutSegment) {
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		return 0, nil
	}
	var out []cutSegment
	var cur cutSegment
	var mapURI string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		tag, val, _ := strings.Cut(l, ":")
		switch {
		case l == "":
		case tag == "#EXT-X-MEDIA-SEQUENCE":
			first, _ = strconv.ParseUint(val, 10, 64)
		case tag == "#EXT-X-MAP":
			for _, attr := range strings.Split(val, ",") {
				if v, ok := strings.CutPrefix(attr, "URI="); ok {
					mapURI = strings.Trim(v, `"`)
				}
			}
		case tag == "#EXT-X-PROGRAM-DATE-TIME":
			if t, err := time.Parse("2006-01-02T15:04:05.999999999Z0700", val); err == nil {
				cur.pdt = t
			} else if t, err := time.Parse(time.RFC3339Nano, val); err == nil {
				cur.pdt = t
			}
		case tag == "#EXTINF":
			d, _, _ := strings.Cut(val, ",")
			if f, err := strconv.ParseFloat(d, 64); err == nil && f > 0 {
				cur.dur = time.Duration(f * float64(time.Second)).Round(time.Microsecond)
			}
		case strings.HasPrefix(l, "#"):
		default:
			if cur.dur > 0 {
				cur.uri, cur.mapURI = l, mapURI
				out = append(out, cur)
			}
			cur = cutSegment{}
		}
	}
	return first, out
}

// uploader signs and PUTs segments.
type uploader struct {
	cfg   BroadcastConfig
	log   *slog.Logger
	base  string
	id    StreamID
	stats *BroadcastStats
	// lastMedia is the seq of the last media segment the gateway took, if anyMedia.
	lastMedia uint64
	anyMedia  bool
}

// end tells the gateway the stream ended after the last media segment it took (PUT
// /live/{stream}/end with the signed End), even when ctx is already cancelled (Ctrl-C).
func (u *uploader) end(ctx context.Context) {
	if !u.anyMedia {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	js, err := json.Marshal(SignEnd(u.cfg.Key, u.lastMedia, time.Now()))
	if err != nil {
		u.log.Warn("ending the stream", "err", err)
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, fmt.Sprintf("%s/live/%s/end", u.base, u.id), bytes.NewReader(js))
	if err != nil {
		u.log.Warn("ending the stream", "err", err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+u.cfg.Token)
	req.Header.Set("Content-Type", "application/json")
	res, err := u.cfg.Client.Do(req)
	if err != nil {
		u.log.Warn("ending the stream: the gateway did not answer; viewers will see it as stalled", "err", err)
		return
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		u.log.Warn("ending the stream: refused", "status", res.StatusCode, "reason", strings.TrimSpace(string(b)))
		return
	}
	u.stats.Ended = true
	u.log.Info("stream ended", "last_seq", u.lastMedia)
}

// nextSeq asks the gateway where the stream stands (see Broadcast for a stream it does not know).
func (u *uploader) nextSeq(ctx context.Context) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.base+"/api/live/"+u.id.String(), nil)
	if err != nil {
		return 0, err
	}
	res, err := u.cfg.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("gateway %s: %w", u.base, err)
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusNotFound:
		return uint64(time.Now().UnixMilli()), nil
	case http.StatusOK:
		var st struct {
			NextSeq uint64 `json:"next_seq"`
		}
		if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
			return 0, fmt.Errorf("gateway %s: stream status: %v", u.base, err)
		}
		return st.NextSeq, nil
	}
	return 0, fmt.Errorf("gateway %s: GET /api/live/%s answered %s", u.base, u.id, res.Status)
}

// send uploads one segment file, retrying network errors and 5xx for RetryFor. A 4xx refusal
// is logged and counted, and the broadcast goes on, except 401 and 403 (ErrIngestRefused).
func (u *uploader) send(ctx context.Context, kind Kind, seq uint64, at time.Time, dur time.Duration, path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		u.stats.Failed++
		u.log.Warn("segment skipped: ffmpeg deleted it before its upload", "kind", kind, "seq", seq)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading ffmpeg's %s: %w", filepath.Base(path), err)
	}
	se, err := SignSegment(u.cfg.Key, kind, seq, at, dur, data)
	if err != nil {
		return err
	}
	js, err := json.Marshal(se)
	if err != nil {
		return err
	}
	hdr := base64URL(js)
	target := fmt.Sprintf("%s/live/%s/%s/%d", u.base, u.id, kind, seq)
	deadline := time.Now().Add(u.cfg.RetryFor)
	backoff := 250 * time.Millisecond
	for {
		if ctx.Err() != nil { // nothing new starts once the broadcast is cancelled
			return nil
		}
		status, msg, result, err := u.putGracefully(ctx, target, hdr, data)
		switch {
		case err == nil && status == http.StatusConflict && result == ResultMissingInit && kind == KindMedia:
			return errNeedInit
		case err == nil && status == http.StatusCreated:
			u.stats.Uploaded++
			if kind == KindMedia {
				u.lastMedia, u.anyMedia = seq, true
			}
			u.log.Debug("segment uploaded", "kind", kind, "seq", seq, "bytes", len(data))
			return nil
		case err == nil && (status == http.StatusUnauthorized || status == http.StatusForbidden):
			return fmt.Errorf("%w: %s segment %d: %d %s", ErrIngestRefused, kind, seq, status, msg)
		case err == nil && status < 500 && status != http.StatusTooManyRequests:
			u.stats.Refused++
			u.log.Warn("segment refused", "kind", kind, "seq", seq, "status", status, "reason", msg)
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("%d %s", status, msg)
		}
		if time.Now().After(deadline) {
			u.stats.Failed++
			u.log.Warn("segment skipped: the gateway did not take it", "kind", kind, "seq", seq, "for", u.cfg.RetryFor, "err", err)
			return nil
		}
		u.log.Info("upload failed; retrying", "kind", kind, "seq", seq, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 4*time.Second)
	}
}

// errNeedInit is a media segment refused for want of its init segment (ResultMissingInit).
var errNeedInit = errors.New("the gateway wants the init segment first")

// cancelGrace is how long an upload under way may go on once the broadcast is cancelled.
const cancelGrace = 2 * time.Second

// putGracefully is put, except that cancelling ctx gives the request cancelGrace to finish: the
// gateway may already have taken the segment, and the signed end that follows a cancelled
// broadcast must name the last segment the gateway has.
func (u *uploader) putGracefully(ctx context.Context, target, entry string, data []byte) (int, string, string, error) {
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(cancelGrace, cancel) })
	defer stop()
	return u.put(pctx, target, entry, data)
}

// put uploads one segment: the status, the refusal's message and result label.
func (u *uploader) put(ctx context.Context, target, entry string, data []byte) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, bytes.NewReader(data))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Authorization", "Bearer "+u.cfg.Token)
	req.Header.Set(EntryHeader, entry)
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := u.cfg.Client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	var e struct {
		Error  string `json:"error"`
		Result string `json:"result"`
	}
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return res.StatusCode, msg, e.Result, nil
}

// tailBuffer keeps the last 4 KiB written to it (ffmpeg's stderr, for error messages).
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// EntryHeaderValue is se as EntryHeader carries it: its JSON, base64url without padding.
func EntryHeaderValue(se SignedEntry) (string, error) {
	js, err := json.Marshal(se)
	if err != nil {
		return "", err
	}
	return base64URL(js), nil
}

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
