package live

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeFetcher serves segments from memory in place of BitTorrent. A held segment's fetch waits
// until its channel is closed; a failing one errs.
type fakeFetcher struct {
	mu      sync.Mutex
	data    map[entryKey][]byte
	hold    map[entryKey]chan struct{}
	fail    map[entryKey]bool
	served  []entryKey // fetches answered, with bytes or an error
	dropped []entryKey
}

func newFakeFetcher() *fakeFetcher {
	return &fakeFetcher{data: map[entryKey][]byte{}, hold: map[entryKey]chan struct{}{}, fail: map[entryKey]bool{}}
}

func (f *fakeFetcher) FetchSegment(ctx context.Context, e Entry, _ func() []string) ([]byte, error) {
	k := keyOf(e)
	f.mu.Lock()
	hold := f.hold[k]
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.served = append(f.served, k)
	if d, ok := f.data[k]; ok && !f.fail[k] {
		return d, nil
	}
	return nil, errors.New("no peer has it")
}

func (f *fakeFetcher) DropSegment(e Entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropped = append(f.dropped, keyOf(e))
}

func (f *fakeFetcher) hasServed(keys ...entryKey) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		if !slices.Contains(f.served, k) {
			return false
		}
	}
	return true
}

// waitUntil polls cond until it holds, failing the test if it never does.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 2000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// relayFixture is a source gateway (a real Origin over HTTP on loopback) holding a stream, and
// the origin a relay of it feeds.
type relayFixture struct {
	b        *broadcaster
	src      *Origin // the source gateway's origin, served by source
	source   *httptest.Server
	manifest atomic.Int64 // manifest reads at the source
	origin   *Origin
	fetcher  *fakeFetcher

	mu    sync.Mutex
	added []entryKey // in the order the relay's origin accepted them
}

func newRelayFixture(t *testing.T) *relayFixture {
	f := &relayFixture{b: newBroadcaster(t), fetcher: newFakeFetcher()}
	f.src = newTestOrigin(t, nil)
	f.source = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/manifest.json") {
			f.manifest.Add(1)
		}
		f.src.ServeHTTP(w, r)
	}))
	t.Cleanup(f.source.Close)
	f.origin = newTestOrigin(t, func(c *OriginConfig) {
		c.OnSegment = func(_ StreamID, seg Segment) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.added = append(f.added, keyOf(seg.Entry))
		}
	})
	return f
}

// put uploads a segment to the source and gives the fetcher its bytes.
func (f *relayFixture) put(t *testing.T, kind Kind, seq uint64, at time.Time) entryKey {
	t.Helper()
	dur := time.Second
	if kind == KindInit {
		dur = 0
	}
	se, data := f.b.segment(kind, seq, at, dur)
	if rec := originPut(t, f.src, se, data); rec.Code != http.StatusCreated {
		t.Fatalf("upload of %s %d to the source: %d %s", kind, seq, rec.Code, rec.Body)
	}
	f.fetcher.mu.Lock()
	defer f.fetcher.mu.Unlock()
	f.fetcher.data[keyOf(se.Entry)] = data
	return keyOf(se.Entry)
}

// run starts a relay of the fixture's stream from sources; it stops with the test.
func (f *relayFixture) run(t *testing.T, sources []string) *Relay {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{}}
	cfg := DefaultRelayConfig()
	cfg.Stream, cfg.Sources, cfg.Origin, cfg.Fetcher = f.b.id, sources, f.origin, f.fetcher
	cfg.HTTP, cfg.Poll, cfg.Backlog = client, time.Millisecond, 100
	r, err := NewRelay(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.origin.Follow(f.b.id, r.Status); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		client.CloseIdleConnections()
	})
	return r
}

// TestRelayRun: the relay adds segments to its origin in stream order however their fetches
// finish, skips one that cannot be fetched (and drops it from the fetcher), and ends the stream
// once everything before the broadcaster's end is in.
func TestRelayRun(t *testing.T) {
	f := newRelayFixture(t)
	at := time.Now().Add(-10 * time.Second)
	init0 := f.put(t, KindInit, 0, at)
	var media []entryKey
	for seq := range uint64(6) {
		media = append(media, f.put(t, KindMedia, seq, at.Add(time.Duration(seq)*time.Second)))
	}
	end, _ := SignEnd(f.b.priv, 5, time.Now()).MarshalJSON()
	req := httptest.NewRequest(http.MethodPut, "/live/"+f.b.id.String()+"/end", strings.NewReader(string(end)))
	req.Header.Set("Authorization", "Bearer "+originToken)
	rec := httptest.NewRecorder()
	f.src.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("end at the source: %d %s", rec.Code, rec.Body)
	}
	// Media 1 arrives last of all; media 3 never does.
	release := make(chan struct{})
	f.fetcher.hold[media[1]] = release
	f.fetcher.fail[media[3]] = true

	r := f.run(t, []string{f.source.URL + "/live/" + f.b.id.String()})
	waitUntil(t, "the fetches after media 1", func() bool { return f.fetcher.hasServed(media[2], media[3], media[4], media[5]) })
	// Media 0's fetch may have been served a moment before its add: wait for what can be added.
	waitUntil(t, "init and media 0 added", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.added) >= 2
	})
	f.mu.Lock()
	early := slices.Clone(f.added)
	f.mu.Unlock()
	if want := []entryKey{init0, media[0]}; !slices.Equal(early, want) {
		t.Errorf("while media 1 is on its way the origin has %v, want %v", early, want)
	}
	close(release)
	waitUntil(t, "the stream to end at the relay", func() bool {
		st, ok := f.origin.Status(f.b.id, "")
		return ok && st.State == StateEnded
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if want := []entryKey{init0, media[0], media[1], media[2], media[4], media[5]}; !slices.Equal(f.added, want) {
		t.Errorf("the origin took %v, want %v", f.added, want)
	}
	if st := r.Status(); st.Fetched != 6 || st.Skipped != 1 || st.Pending != 0 {
		t.Errorf("relay status %+v, want 6 fetched, 1 skipped, none pending", st)
	}
	if !slices.Equal(f.fetcher.dropped, []entryKey{media[3]}) {
		t.Errorf("dropped %v, want media 3", f.fetcher.dropped)
	}
	if st, _ := f.origin.Status(f.b.id, ""); st.Gaps != 1 || st.Missing != 1 {
		t.Errorf("gaps %d, missing %d, want the one skipped segment", st.Gaps, st.Missing)
	}
}

// TestRelayRunHungSource: a source that never answers has one poll in flight, however many
// ticks pass, while the other source is polled on every tick.
func TestRelayRunHungSource(t *testing.T) {
	f := newRelayFixture(t)
	f.put(t, KindInit, 0, time.Now())
	var inFlight, most atomic.Int64
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-r.Context().Done()
	}))
	t.Cleanup(hung.Close)
	f.run(t, []string{hung.URL + "/live/" + f.b.id.String(), f.source.URL + "/live/" + f.b.id.String()})
	waitUntil(t, "20 polls of the healthy source", func() bool { return f.manifest.Load() >= 20 })
	if n := most.Load(); n != 1 {
		t.Errorf("%d polls of the hung source in flight at once, want 1", n)
	}
}

// TestRelayRunAfterRestart: a relay whose origin kept its window over a restart goes on from the
// newest segment kept, fetching what it missed while down and nothing it has, when that is at
// most CatchUp media segments; missing more, it joins Backlog segments behind the edge as a new
// relay does, and its window shows the gap.
func TestRelayRunAfterRestart(t *testing.T) {
	for _, tc := range []struct {
		catchUp   int
		wantFetch []uint64 // media fetched after the restart
		wantGap   uint64   // media missing in the window
	}{
		{catchUp: 5, wantFetch: []uint64{10, 11, 12, 13, 14}},
		{catchUp: 4, wantFetch: []uint64{12, 13, 14}, wantGap: 2},
	} {
		t.Run(fmt.Sprintf("CatchUp %d", tc.catchUp), func(t *testing.T) {
			f := newRelayFixture(t)
			dir := t.TempDir()
			source := []string{f.source.URL + "/live/" + f.b.id.String()}
			at := time.Now().Add(-time.Minute)
			f.put(t, KindInit, 0, at)
			for seq := range uint64(10) {
				f.put(t, KindMedia, seq, at.Add(time.Duration(seq)*time.Second))
			}
			follow := func(catchUp int) (*Origin, func()) {
				t.Helper()
				o := newTestOrigin(t, func(c *OriginConfig) { c.Dir = dir })
				cfg := DefaultRelayConfig()
				client := &http.Client{Transport: &http.Transport{}}
				cfg.Stream, cfg.Sources, cfg.Origin, cfg.Fetcher = f.b.id, source, o, f.fetcher
				cfg.HTTP, cfg.Poll, cfg.Backlog, cfg.CatchUp = client, time.Millisecond, 3, catchUp
				r, err := NewRelay(cfg, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := o.Follow(f.b.id, r.Status); err != nil {
					t.Fatal(err)
				}
				if err := o.Restore(); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() {
					defer close(done)
					r.Run(ctx)
				}()
				stop := func() { cancel(); <-done; client.CloseIdleConnections() }
				t.Cleanup(stop)
				return o, stop
			}
			edge := func(o *Origin, seq uint64) func() bool {
				return func() bool {
					st, ok := o.Status(f.b.id, "")
					return ok && st.EdgeSeq != nil && *st.EdgeSeq == seq
				}
			}
			o, stop := follow(100) // joins at media 7, Backlog 3 behind the edge
			waitUntil(t, "the relay to reach media 9", edge(o, 9))
			stop()
			for seq := uint64(10); seq < 15; seq++ {
				f.put(t, KindMedia, seq, at.Add(time.Duration(seq)*time.Second))
			}
			f.fetcher.mu.Lock()
			f.fetcher.served = nil
			f.fetcher.mu.Unlock()

			o, _ = follow(tc.catchUp)
			waitUntil(t, "the restarted relay to reach media 14", edge(o, 14))
			var fetched []uint64
			f.fetcher.mu.Lock()
			for _, k := range f.fetcher.served {
				fetched = append(fetched, k.seq)
			}
			f.fetcher.mu.Unlock()
			slices.Sort(fetched)
			st, _ := o.Status(f.b.id, "")
			if !slices.Equal(fetched, tc.wantFetch) || st.Missing != tc.wantGap || *st.Window.FirstSeq != 7 {
				t.Errorf("fetched %v, window from %d missing %d; want %v fetched, from 7, %d missing", fetched, *st.Window.FirstSeq, st.Missing, tc.wantFetch, tc.wantGap)
			}
		})
	}
}
