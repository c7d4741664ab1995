package live

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Relay defaults (see DefaultRelayConfig).
const (
	DefaultRelayPoll         = 500 * time.Millisecond
	DefaultRelayFetchTimeout = 8 * time.Second
	DefaultRelayParallel     = 4
	DefaultRelayBacklog      = 5
	// DefaultRelayCatchUp matches the segments each gateway seeds over BitTorrent
	// (segtorrent.DefaultKeep): older ones could not be fetched anyway.
	DefaultRelayCatchUp = 30
	// relayStatusEvery is how many polls pass between two reads of a source's state (where its
	// BitTorrent client listens changes rarely).
	relayStatusEvery = 20
	// maxManifestBytes bounds a source's manifest.json: 30 min of 1 s segments is about 600 KB.
	maxManifestBytes = 8 << 20
)

// SegmentFetcher fetches a segment's bytes by the infohash in its signed entry, from the given
// BitTorrent peers (host:port), checking every piece against the torrent's hashes. The relay
// then checks the bytes against the entry once more (size, SHA-256, infohash) before using them.
//
// peers is called again while the fetch waits, so that peers learnt later (a source that came
// back, a relay that got the segment since) are tried too.
type SegmentFetcher interface {
	FetchSegment(ctx context.Context, e Entry, peers func() []string) ([]byte, error)
	// DropSegment forgets a segment the relay fetched but did not keep (it failed or was skipped).
	DropSegment(e Entry)
}

// RelayConfig sets up a Relay. Start from DefaultRelayConfig.
type RelayConfig struct {
	// Stream is the stream followed. Required.
	Stream StreamID
	// Sources are gateways that hold the stream (its origin, other relays), by the stream's URL
	// there (see ParseStreamURL). At least one.
	Sources []string
	// Origin is this gateway's origin: the stream must have been made there with Follow. Required.
	Origin *Origin
	// Fetcher gets segment bytes over BitTorrent. Required.
	Fetcher SegmentFetcher
	// HTTP reads the sources' manifests and states.
	HTTP *http.Client
	// Poll is how often each source's manifest is read (while a read is under way, the source
	// is not read again).
	Poll time.Duration
	// FetchTimeout is how long one segment may take before the relay skips it.
	FetchTimeout time.Duration
	// Parallel is how many segments are fetched at once.
	Parallel int
	// Backlog is how many media segments behind the live edge a relay starts from.
	Backlog int
	// CatchUp is how many media segments a relay whose origin kept its window over a restart
	// (Origin.Restore) fetches to go on from the newest one kept, filling what it missed while
	// it was down. Missing more, it starts Backlog segments behind the edge as a new relay
	// does, and its window shows a gap.
	CatchUp int
}

// DefaultRelayConfig returns the defaults (Stream, Sources, Origin and Fetcher still to be
// set): an HTTP client with a 5 s timeout, a poll every 500 ms, 8 s for a segment, 4 at once,
// starting 5 segments behind the live edge, catching up on at most 30 after a restart.
func DefaultRelayConfig() RelayConfig {
	return RelayConfig{
		HTTP:         &http.Client{Timeout: 5 * time.Second},
		Poll:         DefaultRelayPoll,
		FetchTimeout: DefaultRelayFetchTimeout,
		Parallel:     DefaultRelayParallel,
		Backlog:      DefaultRelayBacklog,
		CatchUp:      DefaultRelayCatchUp,
	}
}

// Validate reports every unusable field, each with the reason.
func (c RelayConfig) Validate() error {
	var errs configErrors
	if c.Stream.IsZero() {
		errs.add("Stream", "must be set")
	}
	if len(c.Sources) == 0 {
		errs.add("Sources", "must list at least one stream URL")
	}
	for _, raw := range c.Sources {
		if _, id, err := ParseStreamURL(raw); err != nil {
			errs.add("Sources", "%v", err)
		} else if !c.Stream.IsZero() && id != c.Stream {
			errs.add("Sources", "%s is stream %s, not %s", raw, id, c.Stream)
		}
	}
	if c.Origin == nil {
		errs.add("Origin", "must be set")
	}
	if c.Fetcher == nil {
		errs.add("Fetcher", "must be set")
	}
	if c.HTTP == nil {
		errs.add("HTTP", "must be set")
	}
	errs.duration("Poll", c.Poll)
	errs.duration("FetchTimeout", c.FetchTimeout)
	errs.positive("Parallel", int64(c.Parallel))
	errs.positive("Backlog", int64(c.Backlog))
	errs.positive("CatchUp", int64(c.CatchUp))
	return errs.err()
}

// RelayStatus is how a relay follows its stream, as GET /api/live/{stream} reports it.
type RelayStatus struct {
	Sources []RelaySourceStatus `json:"sources"`
	// Fetched counts segments fetched over BitTorrent and accepted; FetchedBytes their bytes.
	Fetched      uint64 `json:"fetched"`
	FetchedBytes uint64 `json:"fetched_bytes"`
	// Skipped counts segments given up on (not fetched within the timeout, or refused).
	Skipped uint64 `json:"skipped"`
	// Pending is how many segments are being fetched or wait for an earlier one.
	Pending int `json:"pending"`
	// Rejected counts entries and segments refused, by result label (see Results).
	Rejected map[string]uint64 `json:"rejected"`
}

// RelaySourceStatus is one source as a relay sees it.
type RelaySourceStatus struct {
	URL string `json:"url"`
	// OK is whether the last read of its manifest worked.
	OK bool `json:"ok"`
	// Error is why the last read failed.
	Error  string     `json:"error,omitempty"`
	LastOK *time.Time `json:"last_ok,omitempty"`
	// Peer is where its BitTorrent client listens, if known.
	Peer string `json:"peer,omitempty"`
}

// ParseStreamURL reads a stream's URL on a gateway: http(s)://host[:port][/prefix]/live/{stream},
// optionally followed by "/", "/index.m3u8" or "/manifest.json". It returns the gateway's base URL
// (scheme, host and prefix) and the stream id.
func ParseStreamURL(raw string) (base string, id StreamID, err error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", StreamID{}, fmt.Errorf("stream URL %q: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", StreamID{}, fmt.Errorf("stream URL %q: want http(s)://host/live/<stream id>", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", StreamID{}, fmt.Errorf("stream URL %q: no user, query or fragment, please", raw)
	}
	p := u.Path
	for _, suffix := range []string{"/index.m3u8", "/manifest.json", "/"} {
		if q, ok := strings.CutSuffix(p, suffix); ok {
			p = q
			break
		}
	}
	i := strings.LastIndex(p, "/live/")
	if i < 0 || strings.Contains(p[i+len("/live/"):], "/") {
		return "", StreamID{}, fmt.Errorf("stream URL %q: want http(s)://host/live/<stream id>", raw)
	}
	id, err = ParseStreamID(p[i+len("/live/"):])
	if err != nil {
		return "", StreamID{}, fmt.Errorf("stream URL %q: %v", raw, err)
	}
	return u.Scheme + "://" + u.Host + p[:i], id, nil
}

// Relay follows a stream held by other gateways: it reads their signed manifests, fetches each
// new segment over BitTorrent by its signed infohash, and adds it to this gateway's origin in
// stream order, so that the gateway serves the stream's HLS and browser swarm as if it were its
// origin. Nothing a source says is trusted: entries must carry the broadcaster's signature, and
// bytes must match the entries. With several sources, any one that still has the segments keeps
// the stream going. A segment that cannot be fetched in time is skipped: the window shows a gap
// and the stream goes on with the next one.
type Relay struct {
	cfg     RelayConfig
	log     *slog.Logger
	sources []*relaySource

	// badMu guards bad: the signatures of entries already refused, so that a source listing a
	// forged entry in every manifest is counted (and logged) once.
	badMu sync.Mutex
	bad   map[[64]byte]struct{}

	mu           sync.Mutex
	fetched      uint64
	fetchedBytes uint64
	skipped      uint64
	pendingN     int
	rejected     map[string]uint64
}

type relaySource struct {
	raw       string // as configured
	base      string // gateway base URL
	host      string // the host of base, for the BitTorrent peer address
	manifest  string
	statusURL string

	// Set by the poll loop, read by Status.
	mu     sync.Mutex
	ok     bool
	err    string
	lastOK time.Time
	port   int
	polls  int
}

func (s *relaySource) peer() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.port == 0 {
		return ""
	}
	return net.JoinHostPort(s.host, strconv.Itoa(s.port))
}

// NewRelay checks cfg; Run follows the stream. log nil discards its logs.
func NewRelay(cfg RelayConfig, log *slog.Logger) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Relay{cfg: cfg, log: log.With("component", "relay", "stream", cfg.Stream), rejected: map[string]uint64{}, bad: map[[64]byte]struct{}{}}
	for _, raw := range cfg.Sources {
		base, id, _ := ParseStreamURL(raw) // Validate checked it
		u, _ := url.Parse(base)
		r.sources = append(r.sources, &relaySource{
			raw: raw, base: base, host: u.Hostname(),
			manifest:  base + "/live/" + id.String() + "/manifest.json",
			statusURL: base + "/api/live/" + id.String(),
		})
	}
	return r, nil
}

// Status reports how the relay follows its stream.
func (r *Relay) Status() RelayStatus {
	st := RelayStatus{Sources: make([]RelaySourceStatus, len(r.sources))}
	for i, s := range r.sources {
		p := s.peer()
		s.mu.Lock()
		st.Sources[i] = RelaySourceStatus{URL: s.raw, OK: s.ok, Error: s.err, Peer: p}
		if !s.lastOK.IsZero() {
			t := s.lastOK.UTC()
			st.Sources[i].LastOK = &t
		}
		s.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st.Fetched, st.FetchedBytes, st.Skipped, st.Pending = r.fetched, r.fetchedBytes, r.skipped, r.pendingN
	st.Rejected = make(map[string]uint64, len(r.rejected))
	for k, v := range r.rejected {
		st.Rejected[k] = v
	}
	return st
}

func (r *Relay) reject(err error, from string) {
	res := ResultOf(err)
	r.mu.Lock()
	r.rejected[res]++
	r.mu.Unlock()
	r.log.Warn("relay refused a segment", "from", from, "result", res, "err", err)
}

// job is one segment on its way: listed by a source, being fetched, or fetched and waiting for
// the segments before it.
type job struct {
	se      SignedEntry
	started bool
	done    bool
	data    []byte
	err     error
}

type fetchResult struct {
	key  entryKey
	data []byte
	err  error
}

type entryKey struct {
	kind Kind
	seq  uint64
}

func keyOf(e Entry) entryKey { return entryKey{e.Kind, e.Seq} }

// Run follows the stream until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	var (
		jobs      = map[entryKey]*job{}
		results   = make(chan fetchResult)
		running   int
		last      Entry // the last entry added to the origin (or skipped)
		haveLast  bool
		joined    bool // the first manifest decided where to start
		tick      = time.NewTicker(r.cfg.Poll)
		manifests = make(chan sourceManifest, len(r.sources))
		end       *End // an end a source listed, applied once what comes before it is in
		endDone   [64]byte
	)
	defer tick.Stop()
	if s := r.cfg.Origin.stream(r.cfg.Stream); s != nil {
		// A window kept from before a restart: go on after its newest entry.
		last, haveLast = s.w.lastEntry()
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	// One poll in flight per source: a source that hangs (up to the HTTP client's timeout) is
	// skipped by the ticks until its poll ends, instead of piling up pollers.
	polling := make([]bool, len(r.sources))
	poll := func() {
		for i, s := range r.sources {
			if polling[i] {
				continue
			}
			polling[i] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, ok := r.poll(ctx, s)
				m.source, m.ok = i, ok
				// Never blocks: the channel holds one answer per source.
				manifests <- m
			}()
		}
	}
	poll()
	for {
		select {
		case <-ctx.Done():
			// Let running fetches end (their contexts are ctx's).
			for running > 0 {
				<-results
				running--
			}
			return
		case <-tick.C:
			poll()
		case m := <-manifests:
			polling[m.source] = false
			if !m.ok {
				break
			}
			entries := m.entries
			if m.end != nil && m.end.Sig != endDone {
				end = m.end
			}
			if !joined && len(entries) > 0 {
				joined = true
				// Backlog segments behind the edge, or on from the window kept over a restart.
				if floor, init, ok := startFrom(entries, r.cfg.Backlog); ok && !(haveLast && r.canCatchUp(entries, last)) {
					last, haveLast = floor, true
					if init != nil {
						if _, have := r.cfg.Origin.segment(r.cfg.Stream, KindInit, init.Seq); !have {
							jobs[keyOf(init.Entry)] = &job{se: *init}
						}
					}
				}
			}
			for _, se := range entries {
				k := keyOf(se.Entry)
				if _, ok := jobs[k]; ok || haveLast && !before(last, se.Entry) {
					continue
				}
				if _, ok := r.cfg.Origin.segment(r.cfg.Stream, se.Kind, se.Seq); ok {
					continue
				}
				jobs[k] = &job{se: se}
			}
		case res := <-results:
			running--
			if j, ok := jobs[res.key]; ok {
				j.done, j.data, j.err = true, res.data, res.err
			}
		}
		// Commit in stream order: the first pending job, once it is done.
		for {
			j := first(jobs)
			if j == nil || !j.done {
				break
			}
			delete(jobs, keyOf(j.se.Entry))
			if !haveLast || before(last, j.se.Entry) {
				// (The init segment a relay joins with lies behind the floor it set.)
				last, haveLast = j.se.Entry, true
			}
			if j.err != nil {
				r.skip(j, j.err)
				continue
			}
			added, err := r.cfg.Origin.AddRelayed(r.cfg.Stream, j.se, j.data)
			if err != nil {
				r.reject(err, "bittorrent")
				r.skip(j, err)
				continue
			}
			if added.Missing > 0 {
				r.log.Info("gap before segment", "seq", j.se.Seq, "missing", added.Missing)
			}
			r.mu.Lock()
			r.fetched++
			r.fetchedBytes += uint64(len(j.data))
			r.mu.Unlock()
		}
		if end != nil {
			if j := first(jobs); j == nil || j.se.Seq > end.LastSeq {
				if err := r.cfg.Origin.EndRelayed(r.cfg.Stream, *end); err != nil {
					r.log.Debug("a source's end does not apply", "err", err)
				} else {
					r.log.Info("the broadcaster ended the stream", "last_seq", end.LastSeq)
				}
				endDone, end = end.Sig, nil
			}
		}
		// Start fetches, oldest first.
		if running < r.cfg.Parallel {
			for _, j := range ordered(jobs) {
				if running >= r.cfg.Parallel {
					break
				}
				if j.started {
					continue
				}
				j.started = true
				running++
				go func(se SignedEntry) {
					fctx, cancel := context.WithTimeout(ctx, r.cfg.FetchTimeout)
					defer cancel()
					data, err := r.cfg.Fetcher.FetchSegment(fctx, se.Entry, r.peers)
					results <- fetchResult{key: keyOf(se.Entry), data: data, err: err}
				}(j.se)
			}
		}
		r.mu.Lock()
		r.pendingN = len(jobs)
		r.mu.Unlock()
	}
}

func (r *Relay) skip(j *job, err error) {
	r.cfg.Fetcher.DropSegment(j.se.Entry)
	r.mu.Lock()
	r.skipped++
	r.mu.Unlock()
	r.log.Warn("relay skipped a segment", "kind", j.se.Kind, "seq", j.se.Seq, "err", err)
}

// canCatchUp says whether a relay whose window ends with last goes on from there: at most
// CatchUp media segments listed come after it.
func (r *Relay) canCatchUp(entries []SignedEntry, last Entry) bool {
	n := 0
	for _, se := range entries {
		if se.Kind == KindMedia && before(last, se.Entry) {
			n++
		}
	}
	return n <= r.cfg.CatchUp
}

// startFrom is where a relay joining a stream starts: backlog media segments behind the newest
// listed, and the init segment that heads the first of them. It returns the entry just before the
// first of those media segments (the floor: only later entries are taken) and the init segment
// when it lies behind the floor. ok is false when the relay should take everything listed.
func startFrom(entries []SignedEntry, backlog int) (floor Entry, init *SignedEntry, ok bool) {
	sorted := append([]SignedEntry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return before(sorted[i].Entry, sorted[j].Entry) })
	var media []int
	for i, se := range sorted {
		if se.Kind == KindMedia {
			media = append(media, i)
		}
	}
	if len(media) <= backlog {
		return Entry{}, nil, false
	}
	first := media[len(media)-backlog]
	if sorted[first-1].Kind == KindInit {
		// The init heading it comes right before it: the floor is the entry before that.
		if first-1 == 0 {
			return Entry{}, nil, false
		}
		return sorted[first-2].Entry, nil, true
	}
	floor = sorted[first-1].Entry
	for i := first - 1; i >= 0; i-- {
		if sorted[i].Kind == KindInit {
			return floor, &sorted[i], true
		}
	}
	return floor, nil, true
}

func ordered(jobs map[entryKey]*job) []*job {
	out := make([]*job, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, j)
	}
	sort.Slice(out, func(i, k int) bool { return before(out[i].se.Entry, out[k].se.Entry) })
	return out
}

func first(jobs map[entryKey]*job) *job {
	var f *job
	for _, j := range jobs {
		if f == nil || before(j.se.Entry, f.se.Entry) {
			f = j
		}
	}
	return f
}

// peers is where the sources' BitTorrent clients listen, as far as known.
func (r *Relay) peers() []string {
	var out []string
	for _, s := range r.sources {
		if p := s.peer(); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// sourceManifest is what a source's manifest gave: the entries with the broadcaster's
// signature, and its signed end if it has one.
type sourceManifest struct {
	entries []SignedEntry
	end     *End
	// source is the index of the source polled; ok is whether the poll worked.
	source int
	ok     bool
}

// poll reads a source's manifest (and now and then its state, for its BitTorrent port), and
// returns the entries that carry the stream's signature. A source that lists a forged entry is
// logged and counted; its other entries are still used.
func (r *Relay) poll(ctx context.Context, s *relaySource) (sourceManifest, bool) {
	s.mu.Lock()
	needStatus := s.port == 0 || s.polls%relayStatusEvery == 0
	s.polls++
	s.mu.Unlock()
	if needStatus {
		var st StreamStatus
		if err := r.getJSON(ctx, s.statusURL, &st); err != nil {
			r.failed(s, err)
			return sourceManifest{}, false
		}
		s.mu.Lock()
		s.port = st.BitTorrentPort
		s.mu.Unlock()
	}
	var m struct {
		Version int               `json:"version"`
		Stream  StreamID          `json:"stream"`
		Entries []json.RawMessage `json:"entries"`
		End     *End              `json:"end"`
	}
	if err := r.getJSON(ctx, s.manifest, &m); err != nil {
		r.failed(s, err)
		return sourceManifest{}, false
	}
	if m.Version != ManifestVersion || m.Stream != r.cfg.Stream {
		r.failed(s, fmt.Errorf("manifest of version %d for stream %s, want version %d for %s", m.Version, m.Stream, ManifestVersion, r.cfg.Stream))
		return sourceManifest{}, false
	}
	s.mu.Lock()
	s.ok, s.err, s.lastOK = true, "", time.Now()
	s.mu.Unlock()
	entries := make([]SignedEntry, 0, len(m.Entries))
	for _, raw := range m.Entries {
		var se SignedEntry
		if err := json.Unmarshal(raw, &se); err != nil {
			r.reject(&RejectError{Err: ErrMalformed, Reason: err.Error()}, s.raw)
			continue
		}
		if err := Verify(r.cfg.Stream, se); err != nil {
			if r.firstRefusal(se.Sig) {
				r.reject(err, s.raw)
			}
			continue
		}
		entries = append(entries, se)
	}
	out := sourceManifest{entries: entries}
	if m.End != nil {
		if err := VerifyEnd(r.cfg.Stream, *m.End); err != nil {
			if r.firstRefusal(m.End.Sig) {
				r.reject(err, s.raw)
			}
		} else {
			out.end = m.End
		}
	}
	return out, true
}

// firstRefusal is true the first time an entry with this signature is refused.
func (r *Relay) firstRefusal(sig [64]byte) bool {
	r.badMu.Lock()
	defer r.badMu.Unlock()
	if _, ok := r.bad[sig]; ok {
		return false
	}
	if len(r.bad) >= 4096 {
		clear(r.bad)
	}
	r.bad[sig] = struct{}{}
	return true
}

func (r *Relay) failed(s *relaySource, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ok || s.err == "" {
		r.log.Warn("relay source unreachable", "source", s.raw, "err", err)
	}
	// A source back from a restart may listen on another BitTorrent port: read it again then.
	s.ok, s.err, s.port = false, err.Error(), 0
}

func (r *Relay) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := r.cfg.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxManifestBytes)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %v", u, err)
	}
	return nil
}
