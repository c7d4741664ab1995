package gateway

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"testing"

	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"github.com/swarmgate/swarmgate/piececache"

	"github.com/swarmgate/swarmgate/registry"
)

// Fuzz targets for what POST /api/torrents parses: a magnet link, a bare infohash, a .torrent.
// They call the parse functions directly, without a gateway. Run one with
//
//	go test -run '^$' -fuzz '^FuzzMagnetSpec$' -fuzztime 60s -parallel 1 ./gateway/

// checkBadInput fails unless err is the package's ErrBadInput, which the API answers with 400.
func checkBadInput(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrBadInput) {
		t.Fatalf("%s: error %v is not ErrBadInput", what, err)
	}
}

// allocatedBy is how many bytes fn allocates. Fuzzing runs one input at a time per process
// (-parallel 1), so nothing else allocates much meanwhile.
func allocatedBy(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// FuzzMagnetSpec: a magnet either fails with ErrBadInput or has a v1 infohash, and what it says
// survives being written as a magnet again and read back.
func FuzzMagnetSpec(f *testing.F) {
	ih := strings.Repeat("0123456789", 4)
	f.Add("magnet:?xt=urn:btih:" + ih)
	f.Add("magnet:?xt=urn:btih:" + ih + "&dn=demo%20video.mp4&tr=ws%3A%2F%2F127.0.0.1%3A1%2Ftracker&x.pe=127.0.0.1:6881&ws=http://127.0.0.1/x")
	f.Add("magnet:?xt=urn:btih:AEBAGBAFAYDQQCIKBMGA2DQPCAIREEYU") // base32
	f.Add("magnet:?xt=urn:btih:AAAAAAAAAAAAAAAAAAAAAAAAAA======") // base32 of 16 bytes: anacrolix panicked
	f.Add("magnet:?xt=urn:btmh:1220" + strings.Repeat("ab", 32))  // v2 only
	f.Add("magnet:?xt=urn:btih:" + ih + "&xt=urn:btih:" + ih)
	f.Add("magnet:?dn=no+hash")
	f.Add("http://example.com/x.torrent")
	f.Add("magnet:%")
	f.Fuzz(func(t *testing.T, uri string) {
		spec, err := magnetSpec(uri)
		if err != nil {
			checkBadInput(t, "magnetSpec("+uri+")", err)
			return
		}
		if spec.InfoHash.IsZero() || !strings.HasPrefix(uri, "magnet:") {
			t.Fatalf("magnetSpec(%q) accepted infohash %v", uri, spec.InfoHash)
		}
		params := url.Values{}
		for k, v := range map[string][]string{"x.pe": spec.PeerAddrs, "ws": spec.Webseeds, "xs": spec.Sources} {
			if len(v) > 0 {
				params[k] = v
			}
		}
		again := metainfo.MagnetV2{InfoHash: g.Some(spec.InfoHash), V2InfoHash: spec.InfoHashV2,
			Trackers: spec.Trackers[0], DisplayName: spec.DisplayName, Params: params}.String()
		back, err := magnetSpec(again)
		if err != nil {
			t.Fatalf("magnetSpec(%q) = %+v, written again as %q: %v", uri, spec, again, err)
		}
		if back.InfoHash != spec.InfoHash || back.InfoHashV2 != spec.InfoHashV2 || back.DisplayName != spec.DisplayName ||
			!slices.Equal(back.Trackers[0], spec.Trackers[0]) || !slices.Equal(back.PeerAddrs, spec.PeerAddrs) ||
			!slices.Equal(back.Webseeds, spec.Webseeds) || !slices.Equal(back.Sources, spec.Sources) {
			t.Fatalf("magnet %q read as %+v, written again as %q, read back as %+v", uri, spec, again, back)
		}
	})
}

// FuzzParseInfoHash: exactly 40 hex digits parse, to the infohash whose hex they are.
func FuzzParseInfoHash(f *testing.F) {
	f.Add(strings.Repeat("0123456789", 4))
	f.Add(strings.Repeat("aBcDeF0189", 4))
	f.Add(strings.Repeat("g", 40))
	f.Add(strings.Repeat("a", 39))
	f.Add(strings.Repeat("é", 20))
	f.Fuzz(func(t *testing.T, s string) {
		ih, err := parseInfoHash(s)
		valid := len(s) == 40 && strings.Trim(strings.ToLower(s), "0123456789abcdef") == ""
		if err != nil {
			if valid {
				t.Fatalf("parseInfoHash(%q): %v", s, err)
			}
			checkBadInput(t, "parseInfoHash("+s+")", err)
			if _, specErr := infoHashSpec(s); specErr == nil {
				t.Fatalf("infoHashSpec(%q) accepted what parseInfoHash refuses", s)
			}
			return
		}
		if !valid || ih.HexString() != strings.ToLower(s) {
			t.Fatalf("parseInfoHash(%q) = %s", s, ih.HexString())
		}
		if spec, err := infoHashSpec(s); err != nil || spec.InfoHash != ih {
			t.Fatalf("infoHashSpec(%q) = %v, %v", s, spec, err)
		}
	})
}

// fuzzTorrent is a .torrent of info, bencoded the way a client writes one.
func fuzzTorrent(info any, extra map[string]any) []byte {
	ib, err := bencode.Marshal(info)
	if err != nil {
		panic(err)
	}
	mi := map[string]any{"info": bencode.Bytes(ib)}
	for k, v := range extra {
		mi[k] = v
	}
	b, err := bencode.Marshal(mi)
	if err != nil {
		panic(err)
	}
	return b
}

func metainfoSeeds() [][]byte {
	piece := func(n int) []byte { return bytes.Repeat([]byte{0xAB}, 20*n) }
	single := metainfo.Info{Name: "video.mp4", PieceLength: 16 << 10, Length: 40 << 10, Pieces: piece(3)}
	multi := metainfo.Info{Name: "album", PieceLength: 32 << 10, Pieces: piece(2), Files: []metainfo.FileInfo{
		{Path: []string{"cd1", "01.flac"}, Length: 30 << 10}, {Path: []string{"cover.jpg"}, Length: 10 << 10}}}
	escape := multi
	escape.Files = []metainfo.FileInfo{{Path: []string{"..", "etc", "passwd"}, Length: 64 << 10}}
	// A hybrid (v1 and v2) info: the v2 file tree says how long each file is.
	hybrid := map[string]any{
		"name": "h.bin", "piece length": 16 << 10, "length": 32 << 10, "pieces": string(piece(2)),
		"meta version": 2,
		"file tree":    map[string]any{"h.bin": map[string]any{"": map[string]any{"length": 32 << 10, "pieces root": strings.Repeat("r", 32)}}},
	}
	return [][]byte{
		fuzzTorrent(single, map[string]any{"announce": "ws://127.0.0.1:1/tracker", "url-list": []string{"http://127.0.0.1/"}}),
		fuzzTorrent(multi, nil),
		fuzzTorrent(escape, nil),
		fuzzTorrent(hybrid, nil),
		fuzzTorrent(map[string]any{"name": "v2", "piece length": 16 << 10, "meta version": 2,
			"file tree": map[string]any{"v2": map[string]any{"": map[string]any{"length": 1, "pieces root": strings.Repeat("r", 32)}}}}, nil),
		fuzzTorrent(metainfo.Info{Name: "zero", Length: 1, Pieces: piece(1)}, nil),
		[]byte("d4:infod4:name1:xee"),
		[]byte("de"),
		[]byte("l"),
	}
}

// FuzzMetainfoSpec: a .torrent either fails with ErrBadInput or yields the infohash of its info
// bytes, with an info that passes checkInfo and claims no more pieces than a file this size can
// describe, and the spec survives the .torrent being written again. Parsing allocates in
// proportion to the file.
func FuzzMetainfoSpec(f *testing.F) {
	for _, b := range metainfoSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var spec *torrent.TorrentSpec
		var err error
		// Bencode strings are copied and lists grow by doubling: a few times the input, plus
		// the fixed cost of a parse.
		if n, limit := allocatedBy(func() { spec, err = metainfoSpec(b) }), uint64(16*len(b)+64<<10); n > limit {
			t.Fatalf("a .torrent of %d bytes allocated %d bytes (limit %d)", len(b), n, limit)
		}
		if err != nil {
			checkBadInput(t, "metainfoSpec", err)
			return
		}
		mi, err := metainfo.Load(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("metainfoSpec accepted what metainfo.Load refuses: %v", err)
		}
		if spec.InfoHash != sha1.Sum(mi.InfoBytes) {
			t.Fatalf("infohash %v, but the info bytes hash to %x", spec.InfoHash, sha1.Sum(mi.InfoBytes))
		}
		info, err := mi.UnmarshalInfo()
		if err != nil || !info.HasV1() || registry.CheckInfo(&info) != nil {
			t.Fatalf("accepted an info that does not pass the checks: %v, v1 %v, %v", err, info.HasV1(), registry.CheckInfo(&info))
		}
		// The client sets up state for every piece: their number is what the file paid for.
		if n := info.NumPieces(); n < 0 || n > len(info.Pieces)/20 {
			t.Fatalf("accepted an info of %d pieces with %d bytes of v1 piece hashes", n, len(info.Pieces))
		}
		var again bytes.Buffer
		if err := mi.Write(&again); err != nil {
			t.Fatalf("writing the .torrent again: %v", err)
		}
		back, err := metainfoSpec(again.Bytes())
		if err != nil {
			t.Fatalf("the .torrent written again is refused: %v", err)
		}
		if back.InfoHash != spec.InfoHash || back.DisplayName != spec.DisplayName || !slices.EqualFunc(back.Trackers, spec.Trackers, slices.Equal) {
			t.Fatalf("the .torrent written again reads as %+v, first %+v", back, spec)
		}
	})
}

// hybridInfo is a hybrid info whose v2 file tree claims fileLen bytes while its v1 hashes cover
// two 16 KiB pieces.
func hybridInfo(fileLen int64) map[string]any {
	return map[string]any{
		"name": "h.bin", "piece length": 16 << 10, "length": 32 << 10,
		"pieces": strings.Repeat("p", 40), "meta version": 2,
		"file tree": map[string]any{"h.bin": map[string]any{"": map[string]any{"length": fileLen, "pieces root": strings.Repeat("r", 32)}}},
	}
}

// TestPieceCountMismatch: a hybrid .torrent whose file tree claims more pieces than its v1 hashes
// is refused, by POST /api/torrents' parsing and by the cache storage (where metadata from a
// magnet's peers arrives). Before, 200 bytes claiming 32 TiB made the gateway allocate 80 GB
// for per-piece state and die.
func TestPieceCountMismatch(t *testing.T) {
	_, err := metainfoSpec(fuzzTorrent(hybridInfo(1<<30), nil))
	checkBadInput(t, "a hybrid .torrent claiming 1 GiB with 2 piece hashes", err)
	if _, err := metainfoSpec(fuzzTorrent(hybridInfo(32<<10), nil)); err != nil {
		t.Fatalf("a consistent hybrid .torrent: %v", err)
	}

	ib, err := bencode.Marshal(hybridInfo(1 << 30))
	if err != nil {
		t.Fatal(err)
	}
	var info metainfo.Info
	if err := bencode.Unmarshal(ib, &info); err != nil {
		t.Fatal(err)
	}
	cfg := piececache.DefaultConfig()
	cfg.Dir, cfg.Completion, cfg.CheckInfo = t.TempDir(), storage.NewMapPieceCompletion(), registry.CheckPieceCount
	c, err := piececache.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Storage().OpenTorrent(context.Background(), &info, sha1.Sum(ib))
	if !errors.Is(err, registry.ErrBadTorrent) {
		t.Errorf("opening storage for a hybrid info claiming 1 GiB with 2 piece hashes: %v, want registry.ErrBadTorrent", err)
	}
}
