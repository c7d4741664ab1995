package gateway

import (
	"bytes"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/metainfo"
)

// buildTorrent makes a real .torrent of root with anacrolix's metainfo, as any client would.
func buildTorrent(t *testing.T, root string) []byte {
	t.Helper()
	info := metainfo.Info{PieceLength: 16 << 10}
	if err := info.BuildFromFilePath(root); err != nil {
		t.Fatal(err)
	}
	return torrentBytes(t, &info)
}

func postTorrent(t *testing.T, r *running, b []byte) string {
	t.Helper()
	res := r.do(t, http.MethodPost, "/api/torrents", map[string]string{"Content-Type": "application/x-bittorrent"}, bytes.NewReader(b))
	if res.status != http.StatusCreated {
		t.Fatalf("POST .torrent: %d %s", res.status, res.body)
	}
	return decodeView(t, res.body).InfoHash
}

// checkM3ULines checks the shape of every line: the header, then #EXTINF and a stream URL in turn.
// An injected line (#EXTVLCOPT, a URL of the torrent maker's choosing) breaks the pattern.
func checkM3ULines(t *testing.T, body []byte, streamPrefix string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if lines[0] != "#EXTM3U" {
		t.Errorf("first line %q", lines[0])
	}
	for i, l := range lines[1:] {
		switch {
		case strings.ContainsAny(l, "\r\u2028\u2029\u0085"):
			t.Errorf("line %d %q holds a line break", i+2, l)
		case i%2 == 0 && !strings.HasPrefix(l, "#EXTINF:-1,"):
			t.Errorf("line %d %q, want #EXTINF", i+2, l)
		case i%2 == 1 && !strings.HasPrefix(l, streamPrefix):
			t.Errorf("line %d %q, want a URL under %s", i+2, l, streamPrefix)
		}
	}
}

// TestPlaylistNameInjection: names with line breaks in an uploaded .torrent are accepted (the
// infohash covers them) but cannot add lines to the playlists; only media files are listed.
func TestPlaylistNameInjection(t *testing.T) {
	r := startGateway(t, nil)
	dir := t.TempDir()
	single := filepath.Join(dir, "clip\n#EXTVLCOPT:http-user-agent=pwned\r\n#EXTINF:-1,fake\u2028x\u0085.mp4")
	writeFile(t, single, randomBytes(1000, 1))
	pack := filepath.Join(dir, "pack\n#EXTVLCOPT:run-time=1")
	for name, n := range map[string]int{
		"ep1.mkv": 3000, "ep1.srt": 100, "info.nfo": 100, "data.bin": 100,
		"sub/two\n#EXTVLCOPT:network-caching=0\nhttp:x.webm": 2000,
	} {
		writeFile(t, filepath.Join(pack, name), randomBytes(n, uint64(n)))
	}
	ihSingle := postTorrent(t, r, buildTorrent(t, single))
	ihPack := postTorrent(t, r, buildTorrent(t, pack))

	const bad = "\uFFFD"
	singleTitle := "clip" + bad + "#EXTVLCOPT:http-user-agent=pwned" + bad + bad + "#EXTINF:-1,fake" + bad + "x" + bad + ".mp4"
	two := "sub/two" + bad + "#EXTVLCOPT:network-caching=0" + bad + "http:x.webm"
	packName := "pack" + bad + "#EXTVLCOPT:run-time=1"
	// Files are indexed in the torrent's order, which BuildFromFilePath sorts by path.
	for _, tc := range []struct{ path, want string }{
		{"/playlist/" + ihSingle + ".m3u", "#EXTM3U\n" +
			"#EXTINF:-1," + singleTitle + "\n" + r.base + "/stream/" + ihSingle + "/0\n"},
		{"/playlist/" + ihPack + ".m3u", "#EXTM3U\n" +
			"#EXTINF:-1,ep1.mkv\n" + r.base + "/stream/" + ihPack + "/1\n" +
			"#EXTINF:-1," + two + "\n" + r.base + "/stream/" + ihPack + "/4\n"},
		{"/playlist/all.m3u", "#EXTM3U\n" +
			"#EXTINF:-1," + singleTitle + "\n" + r.base + "/stream/" + ihSingle + "/0\n" +
			"#EXTINF:-1," + packName + "/ep1.mkv\n" + r.base + "/stream/" + ihPack + "/1\n" +
			"#EXTINF:-1," + packName + "/" + two + "\n" + r.base + "/stream/" + ihPack + "/4\n"},
	} {
		res := r.get(t, tc.path, nil)
		if res.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", tc.path, res.status, res.body)
		}
		checkM3ULines(t, res.body, r.base+"/stream/")
		if string(res.body) != tc.want {
			t.Errorf("GET %s:\n%q\nwant:\n%q", tc.path, res.body, tc.want)
		}
	}
	// The names themselves are kept: the API shows them exactly (JSON escapes them).
	if v := decodeView(t, r.get(t, "/api/torrents/"+ihSingle, nil).body); v.Name != filepath.Base(single) {
		t.Errorf("API name %q, want %q", v.Name, filepath.Base(single))
	}
}

// TestPlaylistAll: /playlist/all.m3u lists the media files of every torrent with metadata, oldest
// first, and each URL streams that file's bytes. A torrent still waiting for metadata is left out
// without holding the list up.
func TestPlaylistAll(t *testing.T) {
	r := startGateway(t, nil)
	parent := t.TempDir()
	files := map[string][]byte{
		"show/ep1.mp4":      randomBytes(40_000, 1),
		"show/ep1.srt":      randomBytes(100, 2),
		"show/notes.nfo":    randomBytes(100, 3),
		"show/sample.bin":   randomBytes(100, 4),
		"show/x/ep2.webm":   randomBytes(30_000, 5),
		"song.flac":         randomBytes(20_000, 6),
		"readme/readme.txt": randomBytes(10, 7),
	}
	for name, b := range files {
		writeFile(t, filepath.Join(parent, name), b)
	}
	ihShow, _ := seedLocal(t, r.g, filepath.Join(parent, "show"))
	if res := r.postJSON(t, map[string]string{"infohash": someInfoHash(7)}); res.status != http.StatusCreated {
		t.Fatalf("POST infohash: %d %s", res.status, res.body)
	}
	ihSong, _ := seedLocal(t, r.g, filepath.Join(parent, "song.flac"))
	seedLocal(t, r.g, filepath.Join(parent, "readme")) // nothing to play: no entries

	res := r.get(t, "/playlist/all.m3u", nil)
	if res.status != http.StatusOK {
		t.Fatalf("all.m3u: %d %s", res.status, res.body)
	}
	if ct := res.header.Get("Content-Type"); !strings.Contains(ct, "mpegurl") {
		t.Errorf("Content-Type %q", ct)
	}
	checkM3ULines(t, res.body, r.base+"/stream/")
	want := "#EXTM3U\n" +
		"#EXTINF:-1,show/ep1.mp4\n" + r.base + "/stream/" + ihShow + "/0\n" +
		"#EXTINF:-1,show/x/ep2.webm\n" + r.base + "/stream/" + ihShow + "/4\n" +
		"#EXTINF:-1,song.flac\n" + r.base + "/stream/" + ihSong + "/0\n"
	if string(res.body) != want {
		t.Fatalf("all.m3u:\n%s\nwant:\n%s", res.body, want)
	}
	// Each URL, as a player would follow it, gives the file's bytes.
	lines := strings.Split(strings.TrimSpace(string(res.body)), "\n")
	for i := 1; i+1 < len(lines); i += 2 {
		name := strings.TrimPrefix(lines[i], "#EXTINF:-1,")
		got := r.get(t, strings.TrimPrefix(lines[i+1], r.base), nil)
		if got.status != http.StatusOK || !bytes.Equal(got.body, files[name]) {
			t.Errorf("%s (%s): %d, %d bytes, equal %v", name, lines[i+1], got.status, len(got.body), bytes.Equal(got.body, files[name]))
		}
	}
}

// TestPlaylistURLsEscaped: a public URL with characters a URL must escape comes out
// percent-encoded in the playlist.
func TestPlaylistURLsEscaped(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.PublicURL = "https://tv.example.org/my tv ä" })
	parent := t.TempDir()
	writeFile(t, filepath.Join(parent, "a.mp4"), randomBytes(100, 1))
	ih, _ := seedLocal(t, r.g, filepath.Join(parent, "a.mp4"))
	res := r.get(t, "/playlist/"+ih+".m3u", nil)
	want := "#EXTM3U\n#EXTINF:-1,a.mp4\nhttps://tv.example.org/my%20tv%20%C3%A4/stream/" + ih + "/0\n"
	if res.status != http.StatusOK || string(res.body) != want {
		t.Errorf("playlist: %d\n%q\nwant\n%q", res.status, res.body, want)
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"plain name.mp4":            "plain name.mp4",
		"ünïcödé 日本.mkv":            "ünïcödé 日本.mkv",
		"a\nb\rc\td\x00e\x7f":       "a\uFFFDb\uFFFDc\uFFFDd\uFFFDe\uFFFD",
		"nel\u0085ls\u2028ps\u2029": "nel\uFFFDls\uFFFDps\uFFFD",
		"bad\xff\xfeutf8":           "bad\uFFFD\uFFFDutf8",
		"Icon\r":                    "Icon\uFFFD",
	} {
		if got := cleanName(in); got != want {
			t.Errorf("cleanName(%q) = %q, want %q", in, got, want)
		}
	}
}
