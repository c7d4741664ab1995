package gateway

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent"

	"github.com/swarmgate/swarmgate/live"
)

// liveFeed uploads signed segments of random bytes to an origin, as a broadcaster would.
type liveFeed struct {
	t      *testing.T
	origin *running
	priv   ed25519.PrivateKey
	id     live.StreamID
	start  time.Time
	next   uint64
	data   map[string][]byte // by segment name
}

func newLiveFeed(t *testing.T, origin *running) *liveFeed {
	priv := mustKey(t)
	return &liveFeed{t: t, origin: origin, priv: priv, id: live.StreamIDOfKey(priv), start: time.Now().Add(-time.Minute), data: map[string][]byte{}}
}

// push uploads an init segment (with init) and then n media segments of about 300 KB (two
// pieces each), timed a second apart.
func (f *liveFeed) push(init bool, n int) {
	f.t.Helper()
	if init {
		f.upload(live.KindInit, []byte(fmt.Sprintf("init segment %d of %s", f.next, f.id)))
	}
	for range n {
		b := make([]byte, 300_000+int(f.next))
		rand.Read(b)
		f.upload(live.KindMedia, b)
		f.next++
	}
}

func (f *liveFeed) upload(kind live.Kind, data []byte) {
	f.t.Helper()
	at := f.start.Add(time.Duration(f.next) * time.Second)
	se := signSeg(f.t, f.priv, kind, f.next, at, data)
	if res := putSegment(f.t, f.origin, f.id, se, data, nil); res.status != http.StatusCreated {
		f.t.Fatalf("upload %s %d: %d %s", kind, f.next, res.status, res.body)
	}
	f.data[live.SegmentName(kind, f.next)] = data
}

func (f *liveFeed) url(r *running) string { return r.base + "/live/" + f.id.String() }

func liveStatus(t testing.TB, r *running, id live.StreamID) live.StreamStatus {
	t.Helper()
	res := r.do(t, http.MethodGet, "/api/live/"+id.String(), nil, nil)
	if res.status != http.StatusOK {
		t.Fatalf("GET /api/live/%s: %d %s", id, res.status, res.body)
	}
	var st live.StreamStatus
	if err := json.Unmarshal(res.body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitEdge waits until r's window of the stream reaches media segment seq.
func waitEdge(t *testing.T, r *running, id live.StreamID, seq uint64, what string) live.StreamStatus {
	t.Helper()
	var st live.StreamStatus
	waitFor(t, 30*time.Second, what, func() bool {
		st = liveStatus(t, r, id)
		return st.EdgeSeq != nil && *st.EdgeSeq >= seq
	})
	return st
}

func relayConfig(sources ...string) func(*Config) {
	return func(c *Config) { c.Relays = sources }
}

// TestLiveRelayOverBitTorrent: a relay follows a stream from its origin, fetching every segment
// over BitTorrent by its signed infohash (the origin serves no segment over HTTP), and serves
// the same playlist, manifest and bytes.
func TestLiveRelayOverBitTorrent(t *testing.T) {
	origin := startGateway(t, func(c *Config) { c.IngestToken = testIngestToken })
	feed := newLiveFeed(t, origin)
	feed.push(true, 8) // init 0, media 0–7
	relay := startGateway(t, relayConfig(feed.url(origin)))
	waitEdge(t, relay, feed.id, 7, "the relay to reach segment 7")
	feed.push(false, 4) // media 8–11, while the relay follows
	st := waitEdge(t, relay, feed.id, 11, "the relay to follow to segment 11")

	// It joined DefaultRelayBacklog segments behind the edge, with the init heading them.
	if st.Window.FirstSeq == nil || *st.Window.FirstSeq != 8-live.DefaultRelayBacklog {
		t.Errorf("relay window starts at %v, want %d", st.Window.FirstSeq, 8-live.DefaultRelayBacklog)
	}
	for seq := uint64(8 - live.DefaultRelayBacklog); seq < 12; seq++ {
		name := live.SegmentName(live.KindMedia, seq)
		res := relay.do(t, http.MethodGet, "/live/"+feed.id.String()+"/"+name, nil, nil)
		if res.status != http.StatusOK || !bytes.Equal(res.body, feed.data[name]) {
			t.Errorf("relay %s: %d, %d bytes; want the %d uploaded", name, res.status, len(res.body), len(feed.data[name]))
		}
	}
	res := relay.do(t, http.MethodGet, "/live/"+feed.id.String()+"/init-0.mp4", nil, nil)
	if res.status != http.StatusOK || !bytes.Equal(res.body, feed.data["init-0.mp4"]) {
		t.Errorf("relay init-0.mp4: %d %q", res.status, res.body)
	}
	if st.Relay == nil || st.Relay.Fetched < 8 || st.Relay.FetchedBytes < 8*300_000 || len(st.Relay.Sources) != 1 || !st.Relay.Sources[0].OK {
		t.Errorf("relay status %+v", st.Relay)
	}
	if st.Relay != nil && st.Relay.Sources[0].Peer != origin.g.BTAddr().String() {
		t.Errorf("relay's peer for its source: %q, want %s", st.Relay.Sources[0].Peer, origin.g.BTAddr())
	}
	if os := liveStatus(t, origin, feed.id); os.BytesOutHTTP != 0 || os.BitTorrentPort != origin.g.btPort() {
		t.Errorf("origin served %d segment bytes over HTTP (want 0: relays use BitTorrent), reports BitTorrent port %d", os.BytesOutHTTP, os.BitTorrentPort)
	}
	// The relay's playlist names the same segments.
	pl := relay.do(t, http.MethodGet, "/live/"+feed.id.String()+"/index.m3u8", nil, nil)
	if pl.status != http.StatusOK || !bytes.Contains(pl.body, []byte("11.m4s")) || !bytes.Contains(pl.body, []byte(`#EXT-X-MAP:URI="init-0.mp4"`)) {
		t.Errorf("relay playlist: %d\n%s", pl.status, pl.body)
	}
	// Uploads to a relayed stream are refused with a reason.
	relayIngest := startGateway(t, func(c *Config) { c.IngestToken = testIngestToken; c.Relays = []string{feed.url(origin)} })
	waitEdge(t, relayIngest, feed.id, 11, "the second relay to follow")
	data := []byte("not from the origin")
	up := putSegment(t, relayIngest, feed.id, signSeg(t, feed.priv, live.KindMedia, 100, time.Now(), data), data, nil)
	if up.status != http.StatusConflict || !bytes.Contains(up.body, []byte("relays stream")) {
		t.Errorf("upload to a relayed stream: %d %s", up.status, up.body)
	}
}

// proxy forwards TCP from a listener to a target until cut.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

func startProxy(t *testing.T, listen, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(p.close)
	return p
}

// close cuts the proxy: its listener and every connection through it.
func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.cut = true
}

// TestLiveRelayKeepsGoingWithoutOrigin: relay A follows the origin through a link that the test
// cuts, and relay B. With the link cut, A gets the new entries from B's manifest and the
// segments from B over BitTorrent, and the stream goes on there.
func TestLiveRelayKeepsGoingWithoutOrigin(t *testing.T) {
	origin := startGateway(t, func(c *Config) { c.IngestToken = testIngestToken })
	feed := newLiveFeed(t, origin)
	feed.push(true, 3)
	relayB := startGateway(t, relayConfig(feed.url(origin)))
	waitEdge(t, relayB, feed.id, 2, "relay B to follow")

	// The link from A to the origin: HTTP and BitTorrent on 127.0.0.3, the BitTorrent side on the
	// origin's own port number, since A dials the host of the source URL at the port the origin
	// reports.
	btPort := origin.g.btPort()
	httpLink := startProxy(t, "127.0.0.3:0", origin.g.Addr().String())
	btLink := startProxy(t, net.JoinHostPort("127.0.0.3", strconv.Itoa(btPort)), origin.g.BTAddr().String())
	viaLink := "http://" + httpLink.ln.Addr().String() + "/live/" + feed.id.String()
	// The link carries TCP only, so A dials BitTorrent over TCP alone: its uTP dials to
	// 127.0.0.3 would never connect, and anacrolix lets a pending dial run out its timeout after
	// Client.Close (the dial's context is not the client's), which TestMain reports as a leak.
	relayA := startGateway(t, func(c *Config) {
		relayConfig(viaLink, feed.url(relayB))(c)
		c.tuneTorrent = func(tc *torrent.ClientConfig) { tc.DisableUTP = true }
	})
	waitEdge(t, relayA, feed.id, 2, "relay A to follow")

	httpLink.close()
	btLink.close()
	feed.push(false, 4) // media 3–6: only B can give them to A now
	waitEdge(t, relayB, feed.id, 6, "relay B to follow to 6")
	st := waitEdge(t, relayA, feed.id, 6, "relay A to follow to 6 through relay B")
	if st.Relay == nil || st.Relay.Sources[0].OK || !st.Relay.Sources[1].OK {
		t.Errorf("relay A's sources: %+v; want the cut link failing and relay B fine", st.Relay)
	}
	for seq := uint64(3); seq <= 6; seq++ {
		name := live.SegmentName(live.KindMedia, seq)
		if res := relayA.do(t, http.MethodGet, "/live/"+feed.id.String()+"/"+name, nil, nil); !bytes.Equal(res.body, feed.data[name]) {
			t.Errorf("relay A %s: %d, %d bytes", name, res.status, len(res.body))
		}
	}
	if st.Relay != nil && st.Relay.Skipped != 0 {
		t.Errorf("relay A skipped %d segments", st.Relay.Skipped)
	}
}

// TestLiveRelayRefusesForgedSource: a source that lists altered entries and entries signed by
// another key is refused entry by entry (counted by reason); the relay follows the stream from
// its honest source, with the broadcaster's bytes.
func TestLiveRelayRefusesForgedSource(t *testing.T) {
	origin := startGateway(t, func(c *Config) { c.IngestToken = testIngestToken })
	feed := newLiveFeed(t, origin)
	feed.push(true, 3)
	impostor := mustKey(t)

	// The forger proxies the origin's state (so its BitTorrent peer is the origin's) and serves
	// the origin's manifest with each media entry's size changed, plus a next segment signed by
	// another key.
	forger := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := origin.do(t, http.MethodGet, r.URL.Path, nil, nil)
		if r.URL.Path != "/live/"+feed.id.String()+"/manifest.json" {
			w.WriteHeader(res.status)
			w.Write(res.body)
			return
		}
		var m live.Manifest
		if err := json.Unmarshal(res.body, &m); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		last := m.Entries[len(m.Entries)-1]
		for i := range m.Entries {
			if m.Entries[i].Kind == live.KindMedia {
				m.Entries[i].Size++
			}
		}
		fake := []byte("a segment the broadcaster never made")
		e, err := live.NewEntry(feed.id, live.KindMedia, last.Seq+1, time.Now(), time.Second, fake)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		// The stream's id, another key's signature (live.Sign refuses to make that).
		se := live.SignedEntry{Entry: e}
		copy(se.Sig[:], ed25519.Sign(impostor, e.SigningBytes()))
		m.Entries = append(m.Entries, se)
		json.NewEncoder(w).Encode(m)
	}))
	defer forger.Close()

	relay := startGateway(t, relayConfig(forger.URL+"/live/"+feed.id.String(), feed.url(origin)))
	waitEdge(t, relay, feed.id, 2, "the relay to follow from the honest source")
	feed.push(false, 2)
	st := waitEdge(t, relay, feed.id, 4, "the relay to keep following")
	if st.Rejections[live.ResultBadSignature] < 3 {
		t.Errorf("rejections %v: want the forged entries counted as %s", st.Rejections, live.ResultBadSignature)
	}
	for seq := uint64(0); seq <= 4; seq++ {
		name := live.SegmentName(live.KindMedia, seq)
		if res := relay.do(t, http.MethodGet, "/live/"+feed.id.String()+"/"+name, nil, nil); !bytes.Equal(res.body, feed.data[name]) {
			t.Errorf("relay %s: %d, %d bytes: not the broadcaster's", name, res.status, len(res.body))
		}
	}
	if res := relay.do(t, http.MethodGet, "/live/"+feed.id.String()+"/5.m4s", nil, nil); res.status != http.StatusNotFound {
		t.Errorf("the impostor's segment 5: %d, want 404", res.status)
	}
}

// TestRelayFlagValidation: a bad --relay URL is a configuration error that names the field.
func TestRelayFlagValidation(t *testing.T) {
	for _, u := range []string{"ftp://h/live/x", "http://h/watch/abc", "http://h/live/notastreamid", "http://h/live/"} {
		cfg := testConfig(t)
		cfg.Relays = []string{u}
		if err := cfg.Validate(); err == nil || !bytes.Contains([]byte(err.Error()), []byte("Relays")) {
			t.Errorf("relay %q: %v", u, err)
		}
	}
}

// putEnd sends a signed end of the stream.
func putEnd(t *testing.T, r *running, id live.StreamID, e live.End, token string) response {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	return r.do(t, http.MethodPut, "/live/"+id.String()+"/end", h, bytes.NewReader(b))
}

// TestLiveEnd: the broadcaster's signed end makes the stream "ended" with #EXT-X-ENDLIST, on the
// origin and on a relay following it; bad ends are refused with reasons; a later segment (the
// broadcaster going on) lifts the end.
func TestLiveEnd(t *testing.T) {
	origin := startGateway(t, func(c *Config) { c.IngestToken = testIngestToken })
	feed := newLiveFeed(t, origin)
	feed.push(true, 3) // media 0–2
	relay := startGateway(t, relayConfig(feed.url(origin)))
	waitEdge(t, relay, feed.id, 2, "the relay to follow")

	other := mustKey(t)
	forged := live.SignEnd(other, 2, time.Now())
	forged.Stream = feed.id
	for _, c := range []struct {
		name   string
		id     live.StreamID
		end    live.End
		token  string
		status int
		want   string
	}{
		{"no token", feed.id, live.SignEnd(feed.priv, 2, time.Now()), "", http.StatusUnauthorized, "ingest token"},
		{"another key", feed.id, forged, testIngestToken, http.StatusUnprocessableEntity, "signature"},
		{"another stream's end", feed.id, live.SignEnd(other, 2, time.Now()), testIngestToken, http.StatusUnprocessableEntity, "stream"},
		{"before the last segment", feed.id, live.SignEnd(feed.priv, 1, time.Now()), testIngestToken, http.StatusConflict, "media segment 2 came after it"},
		{"unknown stream", live.StreamIDOfKey(other), live.SignEnd(other, 2, time.Now()), testIngestToken, http.StatusNotFound, "no live stream"},
	} {
		res := putEnd(t, origin, c.id, c.end, c.token)
		if res.status != c.status || !bytes.Contains(res.body, []byte(c.want)) {
			t.Errorf("%s: %d %s; want %d saying %q", c.name, res.status, res.body, c.status, c.want)
		}
	}
	if st := liveStatus(t, origin, feed.id); st.State == live.StateEnded {
		t.Fatalf("the stream ended on a refused end")
	}

	if res := putEnd(t, origin, feed.id, live.SignEnd(feed.priv, 2, time.Now()), testIngestToken); res.status != http.StatusCreated {
		t.Fatalf("end: %d %s", res.status, res.body)
	}
	for _, r := range []*running{origin, relay} {
		waitFor(t, 20*time.Second, "the stream ended", func() bool { return liveStatus(t, r, feed.id).State == live.StateEnded })
		pl := r.do(t, http.MethodGet, "/live/"+feed.id.String()+"/index.m3u8", nil, nil)
		if !bytes.HasSuffix(pl.body, []byte("2.m4s\n#EXT-X-ENDLIST\n")) {
			t.Errorf("playlist of an ended stream:\n%s", pl.body)
		}
		if m := fetchManifest(t, r, feed.id); m.End == nil || m.End.LastSeq != 2 {
			t.Errorf("manifest end: %+v", m.End)
		}
	}

	// The broadcaster goes on: the end is lifted, on the relay too.
	feed.push(false, 1)
	waitEdge(t, relay, feed.id, 3, "the relay to follow past the end")
	for _, r := range []*running{origin, relay} {
		if st := liveStatus(t, r, feed.id); st.State == live.StateEnded {
			t.Errorf("still ended after a new segment")
		}
		if pl := r.do(t, http.MethodGet, "/live/"+feed.id.String()+"/index.m3u8", nil, nil); bytes.Contains(pl.body, []byte("ENDLIST")) {
			t.Errorf("playlist still ends:\n%s", pl.body)
		}
	}
}
