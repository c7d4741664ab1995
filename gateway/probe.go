package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmgate/swarmgate/media"
)

// What a torrent's media files hold (package media), learned by running ffprobe on the gateway's
// own /stream of each: ffprobe reads the header and any index at the end, and the gateway fetches
// just those pieces, verified. A probe starts the first time a player's view of the torrent shows
// the file (GET /api/torrents/{ih}, or a watch page's start-up data) and is kept in the data dir, so it runs
// once per file and never again after a restart.

const (
	mediaDir        = "media" // below the data dir: <infohash>-<file>.json
	probeTimeout    = 2 * time.Minute
	probesAtOnce    = 2
	probeRetryAfter = 5 * time.Minute // a failed probe (peers gone) is tried again after this
)

// mediaView is a file's probe as the API shows it.
type mediaView struct {
	// State is "probing", "done" or "failed".
	State string      `json:"state"`
	Info  *media.Info `json:"info,omitempty"`
	Error string      `json:"error,omitempty"`
	// Keyframes summarises the video's keyframe index (read from the container after the probe;
	// what a remux cuts at), absent where the container keeps none.
	Keyframes *keyframeIndex `json:"keyframes,omitempty"`
}

// keyframeIndex is what the API shows of a file's keyframe times (the times themselves are
// kept in the data dir beside the probe).
type keyframeIndex struct {
	Count int `json:"count"`
	// MaxInterval is the longest gap between keyframes in seconds: how long a remuxed segment
	// can get.
	MaxInterval float64 `json:"max_interval"`
}

func summarise(kf []float64) *keyframeIndex {
	if len(kf) == 0 {
		return nil
	}
	ki := &keyframeIndex{Count: len(kf)}
	for i := 1; i < len(kf); i++ {
		ki.MaxInterval = max(ki.MaxInterval, kf[i]-kf[i-1])
	}
	ki.MaxInterval = math.Round(ki.MaxInterval*1000) / 1000
	return ki
}

type probeKey struct {
	ih   metainfo.Hash
	file int
}

type probeResult struct {
	view     mediaView
	failedAt time.Time
}

// probes runs and keeps the probes of a gateway's files.
type probes struct {
	g   *Gateway
	sem chan struct{}

	mu sync.Mutex
	m  map[probeKey]*probeResult
}

func newProbes(g *Gateway) *probes {
	return &probes{g: g, sem: make(chan struct{}, probesAtOnce), m: map[probeKey]*probeResult{}}
}

func (p *probes) path(k probeKey) string {
	return filepath.Join(p.g.cfg.DataDir, mediaDir, fmt.Sprintf("%s-%d.json", k.ih.HexString(), k.file))
}

// view returns what is known of a file, starting its probe when nothing is and FFprobe is set.
// nil: nothing known, and probing is off.
func (p *probes) view(ih metainfo.Hash, file int) *mediaView {
	k := probeKey{ih, file}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.m[k]; ok {
		if r == nil {
			return nil // looked on disk once: nothing there, and probing is off
		}
		if r.view.State != "failed" || time.Since(r.failedAt) < probeRetryAfter {
			v := r.view
			return &v
		}
	}
	if b, err := os.ReadFile(p.path(k)); err == nil {
		var info media.Info
		if json.Unmarshal(b, &info) == nil {
			v := mediaView{State: "done", Info: &info}
			if kf, ok := readKeyframes(p.g.keyframesPath(k.ih.HexString(), k.file)); ok {
				v.Keyframes = summarise(kf)
			}
			p.m[k] = &probeResult{view: v}
			return &v
		}
	}
	if p.g.cfg.FFprobe == "" {
		p.m[k] = nil // every view of the torrent asks again: read the disk once, not each time
		return nil
	}
	select {
	case <-p.g.stop:
		return &mediaView{State: "failed", Error: "the gateway is shutting down"}
	default:
	}
	p.m[k] = &probeResult{view: mediaView{State: "probing"}}
	p.g.wg.Add(1)
	go p.run(k)
	return &mediaView{State: "probing"}
}

func (p *probes) run(k probeKey) {
	defer p.g.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	go func() {
		select {
		case <-p.g.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	select {
	case p.sem <- struct{}{}:
		defer func() { <-p.sem }()
	case <-ctx.Done():
		p.finish(k, nil, nil, ctx.Err())
		return
	}
	url := p.g.ownStreamURL(k.ih, k.file)
	info, err := media.Probe(ctx, p.g.cfg.FFprobe, url)
	var kf []float64
	if err == nil && len(info.Video) > 0 {
		// The keyframe index too (a few more ranges), so that a remux's playlist is ready at once.
		kf, _ = p.g.keyframes(ctx, k.ih.HexString(), k.file, url)
	}
	p.finish(k, info, summarise(kf), err)
}

func (p *probes) finish(k probeKey, info *media.Info, kf *keyframeIndex, err error) {
	r := &probeResult{view: mediaView{State: "done", Info: info, Keyframes: kf}}
	if err != nil {
		r = &probeResult{view: mediaView{State: "failed", Error: p.g.redactOwn(err.Error())}, failedAt: time.Now()}
		if !errors.Is(err, context.Canceled) {
			p.g.log.Warn("probing a media file", "infohash", k.ih.HexString(), "file", k.file, "err", err)
		}
	} else if b, jerr := json.Marshal(info); jerr == nil {
		path := p.path(k)
		if werr := os.MkdirAll(filepath.Dir(path), 0o755); werr == nil {
			if werr = os.WriteFile(path, b, 0o644); werr != nil {
				p.g.log.Warn("saving a probe; it will run again after a restart", "err", werr)
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[k] = r
}

// forget drops a removed torrent's probes, kept and saved.
func (p *probes) forget(ih metainfo.Hash) {
	p.mu.Lock()
	for k := range p.m {
		if k.ih == ih {
			delete(p.m, k)
		}
	}
	p.mu.Unlock()
	files, _ := filepath.Glob(filepath.Join(p.g.cfg.DataDir, mediaDir, ih.HexString()+"-*.json"))
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			p.g.log.Warn("removing a probe", "err", err)
		}
	}
}

// ownParam marks a /stream request as the gateway's own (ownStreamURL): its value is the
// gateway's ownToken, random per process.
const ownParam = "own"

// ownStreamURL is the gateway's own /stream of a file, for its tools on this machine (ffprobe,
// ffmpeg, the keyframe reader). Those reads never leave the machine, so they are neither held to
// the upload cap nor counted as HTTP egress (ownRead): the demo's probe alone used to take half
// the cap's burst, and a fresh gateway under a cap then rendered its first viewer's page as if
// the uplink were busy.
func (g *Gateway) ownStreamURL(ih metainfo.Hash, file int) string {
	return fmt.Sprintf("%s/stream/%s/%d?%s=%s", g.loopbackBase(), ih.HexString(), file, ownParam, g.ownToken)
}

// redactOwn takes the gateway's token out of a message a client may read (ffprobe's and ffmpeg's
// errors name the URL they read).
func (g *Gateway) redactOwn(msg string) string {
	if g.ownToken == "" {
		return msg
	}
	return strings.ReplaceAll(msg, g.ownToken, "…")
}

// ownRead says whether the request is the gateway's own (ownStreamURL).
func (g *Gateway) ownRead(req *http.Request) bool {
	got := req.URL.Query().Get(ownParam)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(g.ownToken)) == 1
}

// loopbackBase is the gateway's own HTTP address for tools on this machine (ffprobe): its
// listening address, with an unspecified host (all interfaces) made the loopback one.
func (g *Gateway) loopbackBase() string {
	addr := g.ln.Addr().(*net.TCPAddr)
	ip := addr.IP
	switch {
	case ip == nil || ip.IsUnspecified() && ip.To4() != nil:
		ip = net.IPv4(127, 0, 0, 1)
	case ip.IsUnspecified():
		ip = net.IPv6loopback
	}
	return "http://" + net.JoinHostPort(ip.String(), fmt.Sprint(addr.Port))
}
