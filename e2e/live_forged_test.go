package e2e

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/gateway"
	"github.com/swarmgate/swarmgate/live"
)

// forgeUploadsJS makes a page a forging peer: every segment-data message it sends over a WebRTC
// data channel has one byte flipped. p2p-media-loader's wire format (core/src/p2p/peer-protocol.ts,
// commands/binary-command-creator.ts): a command is framed by "cstr" or "dstr" at its start and
// "cend" or "dend" at its end; anything else is raw segment bytes, sent in chunks after a
// SegmentData command that gives the length. Commands go through untouched, so the protocol works
// and the receiver gets a segment of the right seq and size whose bytes are wrong.
const forgeUploadsJS = `(() => {
  const codes = (s) => Array.from(s, (c) => c.charCodeAt(0));
  const starts = [codes("cstr"), codes("dstr")], ends = [codes("cend"), codes("dend")];
  const at = (u, off, f) => f.every((b, i) => u[off + i] === b);
  const isCommand = (u) => u.length >= 8 && starts.some((f) => at(u, 0, f)) && ends.some((f) => at(u, u.length - 4, f));
  window.__forged = { chunks: 0, bytes: 0 };
  const send = RTCDataChannel.prototype.send;
  RTCDataChannel.prototype.send = function (data) {
    let u = null;
    if (data instanceof ArrayBuffer) u = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) u = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (u && u.length > 0 && !isCommand(u)) {
      const f = u.slice();
      f[f.length >> 1] ^= 0xff;
      window.__forged.chunks++;
      window.__forged.bytes += f.length;
      return send.call(this, f);
    }
    return send.call(this, data);
  };
})();`

// recordAnnouncesJS keeps the info_hash of every announce the page sends to a websocket tracker.
const recordAnnouncesJS = `(() => {
  window.__announced = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    try {
      const m = typeof data === "string" ? JSON.parse(data) : null;
      if (m && m.action === "announce" && !window.__announced.includes(m.info_hash)) window.__announced.push(m.info_hash);
    } catch (e) {}
    return send.call(this, data);
  };
})();`

// recordAppendsJS keeps the SHA-256 of every buffer the page hands to Media Source Extensions:
// what the player plays.
const recordAppendsJS = `(() => {
  window.__appended = { hashes: [], pending: 0 };
  const append = SourceBuffer.prototype.appendBuffer;
  SourceBuffer.prototype.appendBuffer = function (data) {
    const u = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const copy = u.slice();
    window.__appended.pending++;
    crypto.subtle.digest("SHA-256", copy).then((h) => {
      window.__appended.hashes.push(Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, "0")).join(""));
      window.__appended.pending--;
    });
    return append.call(this, data);
  };
})();`

// TestLiveForgedPeerRejected (issue 5): viewer a uploads forged segments (right seq and size,
// one byte flipped per chunk) over WebRTC; viewer b, an honest page further behind the edge,
// downloads them from a, rejects every one against the signed manifest, fetches those segments
// over HTTP instead and keeps playing. Nothing b hands to the player differs from a signed
// segment, and no segment from a counts as verified.
//
// The gateway runs with --allow-infohash set to a torrent that is not the stream's: the tracker
// must still serve the live page's swarm (gateway.LiveSwarmInfoHash, whose derivation is checked
// here against what Chromium really announces), or a and b would never meet.
func TestLiveForgedPeerRejected(t *testing.T) {
	needDefaultRoute(t)
	ls := startLive(t, liveOptions{seconds: 120, gateway: func(c *gateway.Config) {
		c.AllowInfoHashes = []string{strings.Repeat("5a", 20)}
	}})
	id, u := ls.id, ls.page
	a := startBrowser(t, browserOptions{name: "forger", initScripts: []string{forgeUploadsJS, recordAnnouncesJS}})
	b := startBrowser(t, browserOptions{name: "viewer", initScripts: []string{recordAnnouncesJS, recordAppendsJS}})

	// a plays near the edge, b further behind: b's segments beyond its HTTP window (3 s) are
	// ones a already has, so b asks a for them (as in TestLiveP2PBetweenBrowsers).
	a.watchLive(u + "?latency=2")
	b.watchLive(u + "?latency=8")
	s := b.waitLive(90*time.Second, "b getting bytes from a and rejecting a segment", func(s liveState) bool {
		return s.SG.Stats.FromBrowsers > 0 && s.SG.Stats.Rejected > 0
	})
	from := s.CurrentTime
	s = b.waitLive(30*time.Second, "b playing on past 4 more segments", func(s liveState) bool {
		return s.CurrentTime > from+4 && s.SG.State == "playing"
	})
	t.Logf("viewer b: %v", s)

	var forged struct{ Chunks, Bytes float64 }
	if err := a.eval(0, `window.__forged`, &forged); err != nil {
		t.Fatal(err)
	}
	t.Logf("forger a sent %v forged chunks, %v bytes", forged.Chunks, forged.Bytes)
	if forged.Chunks == 0 {
		t.Errorf("a sent no segment bytes, yet b counted %v bytes from browsers", s.SG.Stats.FromBrowsers)
	}
	if s.SG.Stats.Verified != 0 {
		t.Errorf("b verified %v segments from a, whose every upload is forged", s.SG.Stats.Verified)
	}
	if s.SG.Stats.FromGateway == 0 {
		t.Errorf("b fetched nothing over HTTP: %v", s)
	}
	for _, l := range b.consoleLines() {
		if strings.Contains(l, "live: hls.js fatal") {
			t.Errorf("b: %s", l)
		}
	}

	// Every buffer b played is a signed segment of the stream.
	var appended struct {
		Hashes  []string
		Pending float64
	}
	waitUntil(t, 10*time.Second, "b's appended buffers hashed", func() (bool, string) {
		if err := b.eval(0, `window.__appended`, &appended); err != nil {
			return false, err.Error()
		}
		return appended.Pending == 0, ""
	})
	res, err := http.Get(u + "/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m live.Manifest
	err = json.NewDecoder(res.Body).Decode(&m)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	signed := map[string]bool{}
	for _, e := range m.Entries {
		signed[hex.EncodeToString(e.SHA256[:])] = true
	}
	t.Logf("viewer b appended %d buffers, each a signed segment", len(appended.Hashes))
	if len(appended.Hashes) < 5 {
		t.Errorf("b appended only %d buffers", len(appended.Hashes))
	}
	for _, h := range appended.Hashes {
		if !signed[h] {
			t.Errorf("b played a buffer (SHA-256 %s) that is no signed segment of the stream", h)
		}
	}

	// Both pages announced the swarm the gateway derives, and only it.
	want := gateway.LiveSwarmInfoHash(id)
	for _, v := range []*browser{a, b} {
		var announced []string
		if err := v.eval(0, `window.__announced`, &announced); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(announced, []string{string(want[:])}) {
			t.Errorf("%s announced info_hashes %q, want just %q", v.name, announced, want[:])
		}
	}
}
