package transcode

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/swarmgate/swarmgate/live"
	"github.com/swarmgate/swarmgate/media"
)

// spec is what a variant is: fixed when it is first asked for.
type spec struct {
	mode    Mode
	audio   *media.Track // nil: no audio
	layout  Layout
	src     Source
	segment float64
	dirName string
	dir     string
	priv    ed25519.PrivateKey
	id      live.StreamID
}

// variant is a spec and what exists of it: its segments on disk, its running jobs. Guarded by
// the manager's mutex.
type variant struct {
	*spec
	m        *Manager
	made     []*live.SignedEntry // by segment; nil: not made (or evicted)
	jobs     []*job
	changed  chan struct{} // closed and replaced whenever a segment or a job changes
	lastRead time.Time
	failure  error // the last job's failure, for the requests waiting on it
	failedAt time.Time
}

// job is one ffmpeg run making segments first, first+1, ... into its own scratch directory.
type job struct {
	v         *variant
	first     int
	next      int // the segment it makes now
	end       int // one past the last segment it makes
	want      int // it pauses once next passes this
	cmd       *exec.Cmd
	dir       string
	hw        HWAccel
	paused    bool
	stopping  bool
	slotFreed bool // freeSlot counted it gone already
	waiters   int  // requests waiting for a segment this job makes: it is not given up for another
	made      int
	lastAt    time.Time // when it last made a segment or resumed: encode time counts from there
	stderr    tailWriter
}

func (j *job) kill() {
	if j.stopping {
		return
	}
	j.stopping = true
	if j.cmd.Process != nil {
		j.cmd.Process.Kill()
	}
}

func (j *job) pause() {
	if !j.paused && !j.stopping && j.cmd.Process.Signal(syscall.SIGSTOP) == nil {
		j.paused = true
	}
}

func (j *job) resume() {
	if j.paused && j.cmd.Process.Signal(syscall.SIGCONT) == nil {
		j.paused = false
		j.lastAt = time.Now()
	}
}

// Variant is a file made into HLS: its playlist, signed manifest and segments.
type Variant struct{ v *variant }

// StreamID is the variant's public key, the name of its P2P swarm, and what its entries are
// signed by.
func (x *Variant) StreamID() live.StreamID { return x.v.id }

// Mode is how it is made.
func (x *Variant) Mode() Mode { return x.v.mode }

// Layout is where its segments fall.
func (x *Variant) Layout() Layout { return x.v.layout }

// Playlist is its VOD media playlist.
func (x *Variant) Playlist() string { return x.v.layout.Playlist() }

// Manifest lists the signed entries of the segments made so far, in live's manifest form, so
// that browsers verify segments from peers with the same code as the live page.
func (x *Variant) Manifest() live.Manifest {
	v := x.v
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	mf := live.Manifest{Version: 1, Stream: v.id, Entries: []live.SignedEntry{}}
	for _, e := range v.made {
		if e != nil {
			mf.Entries = append(mf.Entries, *e)
		}
	}
	return mf
}

// Segment returns the path of segment i, made if need be: it waits for a job that will make
// it soon, or starts one at i (a seek). ErrBusy when no job slot is free.
func (x *Variant) Segment(ctx context.Context, i int) (string, live.SignedEntry, error) {
	v := x.v
	m := v.m
	if i < 0 || i >= v.layout.Segments() {
		return "", live.SignedEntry{}, fmt.Errorf("%w: segment %d of %d", ErrBadSegment, i, v.layout.Segments())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		if m.closed {
			return "", live.SignedEntry{}, ErrClosed
		}
		v.lastRead = time.Now()
		if use := m.disk[v.dirName]; use != nil {
			use.lastUse = v.lastRead
		}
		if e := v.made[i]; e != nil {
			return v.segmentPath(i), *e, nil
		}
		if v.failure != nil && time.Since(v.failedAt) < 5*time.Second {
			return "", live.SignedEntry{}, v.failure
		}
		j := v.covering(i)
		if j == nil {
			var err error
			if j, err = v.startJob(i); err != nil {
				return "", live.SignedEntry{}, err
			}
		}
		if want := i + m.cfg.Ahead; want > j.want {
			j.want = want
			j.resume()
		}
		ch := v.changed
		j.waiters++
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			m.mu.Lock()
			j.waiters--
			return "", live.SignedEntry{}, ctx.Err()
		case <-ch:
		}
		m.mu.Lock()
		j.waiters--
	}
}

// ErrBadSegment is a segment number outside the playlist.
var ErrBadSegment = errors.New("no such segment")

// jobReach is how far ahead of a job's current segment a request waits for it rather than
// starting another job: about what it makes while a new ffmpeg starts and seeks.
const jobReach = 3

func (v *variant) covering(i int) *job {
	for _, j := range v.jobs {
		if !j.stopping && j.first <= i && i < j.end && i <= j.next+jobReach {
			return j
		}
	}
	return nil
}

func (v *variant) segmentPath(i int) string { return filepath.Join(v.dir, strconv.Itoa(i)+".ts") }
func (v *variant) entryPath(i int) string   { return filepath.Join(v.dir, strconv.Itoa(i)+".json") }

func (v *variant) broadcast() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// loadVariant takes the segments an earlier run left on disk whose signed entries still verify
// and match their files. Called with m.mu held.
func (m *Manager) loadVariant(s *spec) *variant {
	v := &variant{spec: s, m: m, made: make([]*live.SignedEntry, s.layout.Segments()), changed: make(chan struct{})}
	for i := range v.made {
		b, err := os.ReadFile(v.entryPath(i))
		if err != nil {
			continue
		}
		var e live.SignedEntry
		fi, serr := os.Stat(v.segmentPath(i))
		if json.Unmarshal(b, &e) != nil || live.Verify(v.id, e) != nil || serr != nil ||
			e.Seq != uint64(i) || uint64(fi.Size()) != e.Size {
			continue
		}
		v.made[i] = &e
	}
	return v
}

// forgetSegments drops what is on disk from memory (the cache evicts the variant).
func (v *variant) forgetSegments() {
	for i := range v.made {
		v.made[i] = nil
	}
}

// startJob starts ffmpeg at segment first. Called with m.mu held.
func (v *variant) startJob(first int) (*job, error) {
	m := v.m
	if !m.freeSlot(v) {
		m.stats.Refused++
		return nil, fmt.Errorf("%w: %d of %d transcodes running (--max-transcodes)", ErrBusy, m.running, m.cfg.MaxJobs)
	}
	if err := os.MkdirAll(v.dir, 0o755); err != nil {
		return nil, fmt.Errorf("transcode: %w", err)
	}
	dir, err := os.MkdirTemp(v.dir, fmt.Sprintf("job-%d-", first))
	if err != nil {
		return nil, fmt.Errorf("transcode: %w", err)
	}
	hw := m.cfg.HWAccel
	if m.hwBroken || v.mode != Transcode {
		hw = HWNone
	}
	j := &job{v: v, first: first, next: first, end: min(v.layout.Segments(), first+maxJobSegments),
		want: first + m.cfg.Ahead, dir: dir, hw: hw, lastAt: time.Now()}
	j.cmd = exec.Command(m.ffmpeg, jobArgs(v.spec, first, dir, hw)...)
	j.cmd.Stderr = &j.stderr
	out, err := j.cmd.StdoutPipe()
	if err == nil {
		err = j.cmd.Start()
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("transcode: starting ffmpeg: %w", err)
	}
	m.running++
	m.stats.JobsStarted++
	v.jobs = append(v.jobs, j)
	v.failure = nil
	m.log.Info("transcode: job started", "variant", v.dirName, "segment", first, "of", v.layout.Segments(), "hwaccel", string(hw))
	m.wg.Add(1)
	go j.run(out)
	return j, nil
}

// run follows ffmpeg's list of closed segments, takes each into the cache, and cleans up when
// ffmpeg exits.
func (j *job) run(out interface{ Read([]byte) (int, error) }) {
	v, m := j.v, j.v.m
	defer m.wg.Done()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if i, ok := parseListLine(sc.Text()); ok && i >= j.first && i < v.layout.Segments() {
			j.take(i)
		}
	}
	err := j.cmd.Wait()
	os.RemoveAll(j.dir)

	m.mu.Lock()
	defer m.mu.Unlock()
	for k, x := range v.jobs {
		if x == j {
			v.jobs = append(v.jobs[:k], v.jobs[k+1:]...)
			break
		}
	}
	if !j.slotFreed {
		m.running--
	}
	switch {
	case j.stopping:
	case err != nil && j.hw != HWNone && j.made == 0:
		// The hardware encoder is missing or broken: software from now on; the requests
		// waiting start a software job.
		m.hwBroken = true
		m.stats.JobsFailed++
		m.log.Warn("transcode: the hardware encoder failed; using software (libx264) from now on",
			"hwaccel", string(j.hw), "err", err, "ffmpeg", j.stderr.String())
	case err != nil:
		m.stats.JobsFailed++
		v.failure = fmt.Errorf("ffmpeg failed making segment %d: %v: %s", j.next, err, j.stderr.String())
		v.failedAt = time.Now()
		m.log.Warn("transcode: job failed", "variant", v.dirName, "segment", j.next, "err", err, "ffmpeg", j.stderr.String())
	case j.next < j.end && v.made[j.next] == nil:
		v.failure = fmt.Errorf("ffmpeg ended before segment %d: %s", j.next, j.stderr.String())
		v.failedAt = time.Now()
	}
	v.broadcast()
}

// take moves segment i from the job's directory into the cache, signed, unless another job made
// it first; then pauses the job when it is far enough ahead, or stops it when what comes next
// exists already.
func (j *job) take(i int) {
	v, m := j.v, j.v.m
	src := filepath.Join(j.dir, strconv.Itoa(i)+".ts")
	data, err := os.ReadFile(src)
	var entry live.SignedEntry
	if err == nil {
		start := v.layout.Bounds[i]
		entry, err = live.SignSegment(v.priv, live.KindMedia, uint64(i), time.UnixMilli(int64(start*1000)).UTC(),
			time.Duration(v.layout.Duration(i)*float64(time.Second)), data)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	m.stats.MediaSeconds[v.mode] += v.layout.Duration(i)
	m.stats.WorkSeconds[v.mode] += now.Sub(j.lastAt).Seconds()
	j.lastAt = now
	j.next, j.made = i+1, j.made+1
	if err != nil {
		m.log.Warn("transcode: taking a segment", "variant", v.dirName, "segment", i, "err", err)
	} else if v.made[i] == nil {
		if err = v.store(i, src, entry); err != nil {
			m.log.Warn("transcode: storing a segment", "variant", v.dirName, "segment", i, "err", err)
		} else {
			m.stats.SegmentsMade[v.mode]++
			use := m.disk[v.dirName]
			if use == nil {
				use = &diskUse{}
				m.disk[v.dirName] = use
			}
			use.bytes += int64(len(data))
			use.lastUse = now
			m.stats.CacheBytes += int64(len(data))
		}
	}
	os.Remove(src)
	switch {
	case j.next < j.end && v.made[j.next] != nil:
		j.kill() // another job made what comes next
	case j.next > j.want:
		j.pause()
	}
	v.broadcast()
	m.trimCache()
}

// store puts segment i and its entry into the variant's directory: the entry last, so that a
// crash leaves no entry without its segment.
func (v *variant) store(i int, src string, e live.SignedEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := os.Rename(src, v.segmentPath(i)); err != nil {
		return err
	}
	tmp := v.entryPath(i) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, v.entryPath(i)); err != nil {
		return err
	}
	v.made[i] = &e
	return nil
}

// tailWriter keeps the end of ffmpeg's stderr for error messages.
type tailWriter struct{ b []byte }

const tailSize = 600

func (t *tailWriter) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailSize {
		t.b = t.b[len(t.b)-tailSize:]
	}
	return len(p), nil
}

func (t *tailWriter) String() string { return strings.TrimSpace(string(t.b)) }
