package gateway

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent/metainfo"
)

// Fuzz targets for what POST /api/torrents parses: a magnet link, a bare infohash.
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
