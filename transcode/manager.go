package transcode

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/swarmgate/swarmgate/live"
	"github.com/swarmgate/swarmgate/media"
)

// Config is what the operator sets; DefaultConfig has the defaults.
type Config struct {
	// FFmpeg is the ffmpeg binary, a path or a name looked up in PATH.
	FFmpeg string
	// Dir holds the segments, one directory per variant, and subtitles.
	Dir string
	// Policy is what may be made (--transcode).
	Policy Policy
	// MaxJobs bounds the ffmpeg runs making segments at once (--max-transcodes). A request that
	// needs one more is refused with ErrBusy, after stopping a job nobody waits for if there is
	// one.
	MaxJobs int
	// HWAccel picks a hardware encoder for transcodes; software (libx264) is the fallback when
	// it fails.
	HWAccel HWAccel
	// SegmentSeconds is the target segment length.
	SegmentSeconds float64
	// CacheBytes bounds the segments kept on disk (0: no bound). Variants read least recently go
	// first; a variant being made or read is kept even over the bound.
	CacheBytes int64
	// Key signs segment entries: each variant signs with a key derived from it, whose public key
	// is the variant's stream id (live.StreamID), so browsers check segments from peers as the
	// live page does.
	Key ed25519.PrivateKey
	// IdleTimeout stops a variant's jobs when none of its segments was asked for that long.
	IdleTimeout time.Duration
	// Ahead is how many segments a job makes past the furthest one asked for before it pauses
	// (SIGSTOP) until a viewer gets nearer: no CPU spent on what nobody may watch.
	Ahead int
}

// DefaultConfig is a software transcoder with two jobs at once and 4 s segments.
func DefaultConfig() Config {
	return Config{
		FFmpeg: "ffmpeg", Policy: PolicyOn, MaxJobs: 2, SegmentSeconds: 4,
		IdleTimeout: 30 * time.Second, Ahead: 15,
	}
}

// Errors a request can get.
var (
	// ErrBusy: every job slot is making segments someone waits for.
	ErrBusy = errors.New("every transcoder slot is busy")
	// ErrNotAllowed: the operator's policy does not allow that mode.
	ErrNotAllowed = errors.New("not allowed on this gateway")
	// ErrNoFFmpeg: ffmpeg is not installed where it was looked for.
	ErrNoFFmpeg = errors.New("ffmpeg not found")
	// ErrClosed: the manager is shutting down.
	ErrClosed = errors.New("transcoder closed")
)

// Stats are counters for metrics.
type Stats struct {
	JobsRunning  int   // ffmpeg runs alive (paused ones included)
	JobsPaused   int   // of which paused, ahead of their viewers
	JobsStarted  int64 // since start
	JobsFailed   int64
	Refused      int64 // requests refused with ErrBusy
	SegmentsMade map[Mode]int64
	// MediaSeconds and WorkSeconds: media made, and the time the jobs ran to make it (paused
	// time left out); their ratio is the encode speed as a multiple of real time.
	MediaSeconds map[Mode]float64
	WorkSeconds  map[Mode]float64
	CacheBytes   int64
}

// Manager makes HLS variants of files and keeps their segments.
type Manager struct {
	cfg    Config
	ffmpeg string // resolved path
	log    *slog.Logger

	mu       sync.Mutex
	variants map[string]*variant // by directory name
	disk     map[string]*diskUse // every variant directory, loaded or not
	running  int
	hwBroken bool // the hardware encoder failed: software from now on
	closed   bool
	stats    Stats
	subs     map[string]*subtitleRun

	stop chan struct{}
	wg   sync.WaitGroup
}

type diskUse struct {
	bytes   int64
	lastUse time.Time
}

// New starts a manager. Without ffmpeg it fails with ErrNoFFmpeg: the caller plays direct only.
func New(cfg Config, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.Default()
	}
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("transcode: no signing key")
	}
	if cfg.SegmentSeconds <= 0 || cfg.MaxJobs <= 0 || cfg.Ahead <= 0 || cfg.IdleTimeout <= 0 {
		return nil, fmt.Errorf("transcode: SegmentSeconds, MaxJobs, Ahead and IdleTimeout must be positive")
	}
	bin, err := exec.LookPath(cfg.FFmpeg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoFFmpeg, err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("transcode: %w", err)
	}
	m := &Manager{
		cfg: cfg, ffmpeg: bin, log: log,
		variants: map[string]*variant{}, disk: map[string]*diskUse{}, subs: map[string]*subtitleRun{},
		stop: make(chan struct{}),
	}
	m.stats.SegmentsMade = map[Mode]int64{}
	m.stats.MediaSeconds = map[Mode]float64{}
	m.stats.WorkSeconds = map[Mode]float64{}
	m.scanDisk()
	m.wg.Add(1)
	go m.reap()
	return m, nil
}

// Policy is what the manager may make.
func (m *Manager) Policy() Policy { return m.cfg.Policy }

// scanDisk counts what earlier runs left in Dir, and removes their jobs' scratch directories.
func (m *Manager) scanDisk() {
	ents, err := os.ReadDir(m.cfg.Dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(m.cfg.Dir, e.Name())
		use := &diskUse{}
		files, _ := os.ReadDir(dir)
		for _, f := range files {
			if f.IsDir() && strings.HasPrefix(f.Name(), "job-") {
				os.RemoveAll(filepath.Join(dir, f.Name()))
				continue
			}
			if fi, err := f.Info(); err == nil && strings.HasSuffix(f.Name(), ".ts") {
				use.bytes += fi.Size()
				if fi.ModTime().After(use.lastUse) {
					use.lastUse = fi.ModTime()
				}
			}
		}
		m.disk[e.Name()] = use
		m.stats.CacheBytes += use.bytes
	}
}

// Variant returns the variant of file (of torrent ih) made in mode with audio stream audio (-1:
// the file's default), ready to serve its playlist at once; segments are made when asked for.
// Its layout and key are fixed the first time it is asked for in this run; after that a request
// costs a map lookup (every segment request goes through here).
func (m *Manager) Variant(ih string, file int, mode Mode, audio int, src Source) (*Variant, error) {
	if !m.cfg.Policy.Allows(mode) {
		return nil, fmt.Errorf("%w: %s (--transcode %s)", ErrNotAllowed, mode, m.cfg.Policy)
	}
	info := src.Info
	if info == nil || len(info.Video) == 0 {
		return nil, ErrNoVideo
	}
	a, err := audioTrack(info, audio)
	if err != nil {
		return nil, err
	}
	audioIndex := -1
	if a != nil {
		audioIndex = a.Index
	}
	name := fmt.Sprintf("%s-%d-%s-s%g", strings.ToLower(ih), file, VariantName(mode, audioIndex), m.cfg.SegmentSeconds)
	m.mu.Lock()
	v, ok := m.variants[name]
	m.mu.Unlock()
	if ok {
		return &Variant{v}, nil
	}

	s, err := m.spec(name, mode, a, src)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if v, ok := m.variants[name]; ok { // another request made it meanwhile
		return &Variant{v}, nil
	}
	v = m.loadVariant(s)
	m.variants[name] = v
	return &Variant{v}, nil
}

// spec checks that the file can be made in mode and fixes the variant's layout and key.
func (m *Manager) spec(name string, mode Mode, audio *media.Track, src Source) (*spec, error) {
	info := src.Info
	var layout Layout
	var err error
	switch mode {
	case Remux:
		if info.Video[0].Codec != "h264" {
			return nil, ErrNotH264
		}
		var kf []float64
		if src.Keyframes == nil {
			return nil, ErrNoIndex
		}
		if kf, err = src.Keyframes(); err != nil {
			return nil, err
		}
		layout, err = KeyframeLayout(kf, info.StartTime, info.Duration, m.cfg.SegmentSeconds)
	case Transcode:
		layout, err = FixedLayout(info.StartTime, info.Duration, m.cfg.SegmentSeconds)
	default:
		return nil, fmt.Errorf("%w: %q", ErrBadVariant, mode)
	}
	if err != nil {
		return nil, err
	}
	// Each variant has its own key, so that a signed segment of one cannot pass for another's.
	mac := hmac.New(sha256.New, m.cfg.Key.Seed())
	mac.Write([]byte("swarmgate-hls-v1\x00" + name))
	priv := ed25519.NewKeyFromSeed(mac.Sum(nil))
	return &spec{
		mode: mode, audio: audio, layout: layout, src: src, segment: m.cfg.SegmentSeconds,
		dirName: name, dir: filepath.Join(m.cfg.Dir, name), priv: priv, id: live.StreamIDOfKey(priv),
	}, nil
}

// Forget stops the jobs of torrent ih's variants and removes their segments (the torrent was
// deleted).
func (m *Manager) Forget(ih string) {
	prefix := strings.ToLower(ih) + "-"
	m.mu.Lock()
	var dirs []string
	for name, v := range m.variants {
		if strings.HasPrefix(name, prefix) {
			for _, j := range v.jobs {
				j.kill()
			}
			delete(m.variants, name)
		}
	}
	for name, use := range m.disk {
		if strings.HasPrefix(name, prefix) {
			m.stats.CacheBytes -= use.bytes
			delete(m.disk, name)
			dirs = append(dirs, name)
		}
	}
	for key := range m.subs {
		if strings.HasPrefix(key, prefix) {
			delete(m.subs, key)
		}
	}
	m.mu.Unlock()
	for _, d := range dirs {
		os.RemoveAll(filepath.Join(m.cfg.Dir, d))
	}
	if files, err := filepath.Glob(filepath.Join(m.cfg.Dir, prefix+"*.vtt")); err == nil {
		for _, f := range files {
			os.Remove(f)
		}
	}
}

// Stats reads the counters.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.SegmentsMade, s.MediaSeconds, s.WorkSeconds = map[Mode]int64{}, map[Mode]float64{}, map[Mode]float64{}
	for k, v := range m.stats.SegmentsMade {
		s.SegmentsMade[k] = v
	}
	for k, v := range m.stats.MediaSeconds {
		s.MediaSeconds[k] = v
	}
	for k, v := range m.stats.WorkSeconds {
		s.WorkSeconds[k] = v
	}
	s.JobsRunning = m.running
	for _, v := range m.variants {
		for _, j := range v.jobs {
			if j.paused {
				s.JobsPaused++
			}
		}
	}
	return s
}

// Close stops every job and waits for them.
func (m *Manager) Close() error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.stop)
		for _, v := range m.variants {
			for _, j := range v.jobs {
				j.kill()
			}
		}
	}
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}

// reap stops the jobs of variants nobody reads.
func (m *Manager) reap() {
	defer m.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		m.mu.Lock()
		for _, v := range m.variants {
			if len(v.jobs) > 0 && time.Since(v.lastRead) > m.cfg.IdleTimeout {
				for _, j := range v.jobs {
					j.kill()
				}
			}
		}
		m.mu.Unlock()
	}
}

// freeSlot makes room for one more job for variant v, stopping a job nobody waits for: a
// paused one (its viewers are far behind it), else one of v's own (its viewer seeked away from
// it), else the one of the variant read least recently, if that was over a few seconds ago. A
// job with requests waiting on it is never stopped for another: a player's prefetch far ahead
// would otherwise stop the job the other viewers wait on, and they would restart it (jobs
// thrashing); the prefetch gets ErrBusy and is asked again later. Called with m.mu held.
func (m *Manager) freeSlot(v *variant) bool {
	if m.running < m.cfg.MaxJobs {
		return true
	}
	var victim *job
	rank := func(j *job) int {
		switch {
		case j.paused:
			return 0
		case j.v == v:
			return 1
		}
		return 2
	}
	for _, w := range m.variants {
		for _, j := range w.jobs {
			if j.stopping || j.waiters > 0 && !j.paused {
				continue
			}
			if victim == nil || rank(j) < rank(victim) ||
				rank(j) == rank(victim) && j.v.lastRead.Before(victim.v.lastRead) {
				victim = j
			}
		}
	}
	if victim == nil || rank(victim) == 2 && time.Since(victim.v.lastRead) < 5*time.Second {
		return false
	}
	victim.kill()
	// The killed job's slot frees when it exits; count it free now so that the caller's job
	// starts (a moment of one job over the bound, not a refusal).
	m.running--
	victim.slotFreed = true
	return true
}

// trimCache removes the segments of the variants read least recently until the cache fits.
// Called with m.mu held.
func (m *Manager) trimCache() {
	if m.cfg.CacheBytes <= 0 || m.stats.CacheBytes <= m.cfg.CacheBytes {
		return
	}
	names := make([]string, 0, len(m.disk))
	for name := range m.disk {
		names = append(names, name)
	}
	sort.Slice(names, func(a, b int) bool { return m.disk[names[a]].lastUse.Before(m.disk[names[b]].lastUse) })
	for _, name := range names {
		if m.stats.CacheBytes <= m.cfg.CacheBytes {
			return
		}
		if v, ok := m.variants[name]; ok {
			if len(v.jobs) > 0 || time.Since(v.lastRead) < time.Minute {
				continue // in use: over the bound a while rather than pulled from under a viewer
			}
			v.forgetSegments()
		}
		m.stats.CacheBytes -= m.disk[name].bytes
		delete(m.disk, name)
		// Under the lock: a job of this variant must not start writing while it goes.
		os.RemoveAll(filepath.Join(m.cfg.Dir, name))
		m.log.Info("transcode cache: removed a variant read least recently", "variant", name)
	}
}
