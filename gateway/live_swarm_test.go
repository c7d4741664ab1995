package gateway

import (
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/live"
)

// p2pmlKnown are info_hashes p2p-media-loader-core 2.3.1 computes for the live page's swarm
// (swarmId the stream id, one "main" stream of a level without metadata): p2pmlScript's output,
// run in node on the package's own source.
var p2pmlKnown = []struct{ stream, swarm, infoHash string }{
	{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "v2-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-main-UYnLxGhQilEV4D0HbCx+kRv0ZF0=", "u2t+Werl676A1ayF6db9"},
	{"abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrsa", "v2-abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrsa-main-UYnLxGhQilEV4D0HbCx+kRv0ZF0=", "ZJD4InztvlKLJCmKGoJA"},
	{"7nxd3pxw6iz2hxg5rnhx6ia3oh2c7cweyjh4mxcm5qlsdnrgfy2a", "v2-7nxd3pxw6iz2hxg5rnhx6ia3oh2c7cweyjh4mxcm5qlsdnrgfy2a-main-UYnLxGhQilEV4D0HbCx+kRv0ZF0=", "8ALrkPZQMd4M/kMhHDdr"},
}

// p2pmlScript prints, for each stream id given, the swarm name and announce info_hash that
// p2p-media-loader's own functions derive (MODULES is web/node_modules; bundled by esbuild,
// which reads the TypeScript as it is).
const p2pmlScript = `
import { getStreamHash } from "MODULES/p2p-media-loader-core/src/utils/peer.ts";
import { getStreamSwarmId, generateStreamShortId } from "MODULES/p2p-media-loader-core/src/utils/stream.ts";
// What p2p-media-loader-hlsjs's SegmentManager passes for hls.js's single level of a media playlist.
const index = generateStreamShortId({ bitrate: 0 });
for (const id of process.argv.slice(2)) {
  const swarm = getStreamSwarmId(id, { type: "main", index });
  console.log(id, swarm, getStreamHash(swarm));
}
`

func parseLiveStreamID(t *testing.T, s string) live.StreamID {
	t.Helper()
	id, err := live.ParseStreamID(s)
	if err != nil {
		t.Fatalf("stream id %q: %v", s, err)
	}
	return id
}

func TestLiveSwarmInfoHashKnownValues(t *testing.T) {
	if got := p2pmlStreamIndex(liveSwarmLevel); got != "UYnLxGhQilEV4D0HbCx+kRv0ZF0=" {
		t.Errorf("stream index %q", got)
	}
	for _, k := range p2pmlKnown {
		id := LiveSwarmInfoHash(parseLiveStreamID(t, k.stream))
		if string(id[:]) != k.infoHash {
			t.Errorf("%s: info_hash %q, want %q (of %q)", k.stream, id[:], k.infoHash, k.swarm)
		}
	}
}

// TestLiveSwarmInfoHashMatchesJS runs p2p-media-loader's own derivation (web/node_modules, as
// `make web` installs it) on fresh stream ids and compares.
func TestLiveSwarmInfoHashMatchesJS(t *testing.T) {
	modules, err := filepath.Abs("../web/node_modules")
	if err != nil {
		t.Fatal(err)
	}
	esbuild := filepath.Join(modules, ".bin", "esbuild")
	node, nerr := exec.LookPath("node")
	if _, err := os.Stat(filepath.Join(modules, "p2p-media-loader-core", "src", "utils", "peer.ts")); err != nil || nerr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI needs node and web/node_modules (make web): %v %v", err, nerr)
		}
		t.Skipf("no node or web/node_modules (run make web): %v %v", err, nerr)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "entry.ts")
	if err := os.WriteFile(src, []byte(strings.ReplaceAll(p2pmlScript, "MODULES", filepath.ToSlash(modules))), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "entry.mjs")
	if b, err := exec.Command(esbuild, src, "--bundle", "--platform=node", "--format=esm", "--log-level=warning", "--outfile="+out).CombinedOutput(); err != nil {
		t.Fatalf("esbuild: %v\n%s", err, b)
	}
	var ids []live.StreamID
	args := []string{out}
	for _, k := range p2pmlKnown {
		ids = append(ids, parseLiveStreamID(t, k.stream))
	}
	for range 3 {
		ids = append(ids, live.StreamIDOfKey(mustKey(t)))
	}
	for _, id := range ids {
		args = append(args, id.String())
	}
	b, err := exec.Command(node, args...).Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != len(ids) {
		t.Fatalf("node printed %d lines for %d ids:\n%s", len(lines), len(ids), b)
	}
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != ids[i].String() {
			t.Fatalf("line %q for %s", l, ids[i])
		}
		got := LiveSwarmInfoHash(ids[i])
		if string(got[:]) != f[2] {
			t.Errorf("%s: Go info_hash %q, JS %q (swarm %q)", ids[i], got[:], f[2], f[1])
		}
	}
}

// TestTrackerAllowsLiveSwarms: under --allow-infohash the tracker serves the browser swarm of a
// live stream the gateway holds, not one it does not hold, and still refuses one off the list.
func TestTrackerAllowsLiveSwarms(t *testing.T) {
	r := startGateway(t, func(c *Config) {
		c.IngestToken = testIngestToken
		c.AllowInfoHashes = []string{someInfoHash(11)}
	})
	priv := mustKey(t)
	id := live.StreamIDOfKey(priv)
	swarm := LiveSwarmInfoHash(id)
	swarmHex := hex.EncodeToString(swarm[:])
	other := LiveSwarmInfoHash(live.StreamIDOfKey(mustKey(t)))
	otherHex := hex.EncodeToString(other[:])

	tr := dialTracker(t, r, nil)
	tr.announce(t, swarmHex)
	if reason := tr.failure(t, swarmHex); !strings.Contains(reason, "not served") {
		t.Errorf("a live swarm before the gateway has its stream: %q", reason)
	}
	if res := putSegment(t, r, id, signSeg(t, priv, live.KindInit, 0, time.Now(), []byte("init")), []byte("init"), nil); res.status != http.StatusCreated {
		t.Fatalf("init: %d %s", res.status, res.body)
	}
	tr.announceOK(t, swarmHex)
	tr.announce(t, otherHex)
	if reason := tr.failure(t, otherHex); !strings.Contains(reason, "not served") {
		t.Errorf("the swarm of a stream this gateway does not hold: %q", reason)
	}
	random := someInfoHash(12)
	tr.announce(t, random)
	if reason := tr.failure(t, random); !strings.Contains(reason, "not served") {
		t.Errorf("a swarm off the list: %q", reason)
	}
	tr.announceOK(t, someInfoHash(11))
	if m := scrapeLimitRefusals(t, r); m["tracker_infohash"] != 3 {
		t.Errorf("refusals: %v", m)
	}
}
