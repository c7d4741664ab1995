package gateway

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/swarmgate/swarmgate/internal/peertest"
)

// TestAddByURL: a .torrent given by URL is fetched and added; what is not a .torrent, too big,
// missing or not http(s) is refused with the reason.
func TestAddByURL(t *testing.T) {
	seeder, err := peertest.NewSeeder(t.TempDir(), "talk.mp4", 128<<10, 16<<10, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer seeder.Close()
	var mi bytes.Buffer
	if err := seeder.MetaInfo.Write(&mi); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/talk.torrent", func(w http.ResponseWriter, r *http.Request) { w.Write(mi.Bytes()) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/talk.torrent", http.StatusFound) })
	mux.HandleFunc("/page.html", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>not a torrent</html>")) })
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("d"), maxTorrentFileBytes+10))
	})
	mux.HandleFunc("/ftp", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "ftp://example.org/x.torrent", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	r := startGateway(t, func(c *Config) { c.fetchPrivate = true })
	res := r.postJSON(t, map[string]string{"url": srv.URL + "/moved"})
	if res.status != http.StatusCreated || !strings.Contains(string(res.body), seeder.Torrent.InfoHash().HexString()) {
		t.Fatalf("add by URL (redirected): %d %s", res.status, res.body)
	}
	if _, ok := r.g.torrents.Get(seeder.Torrent.InfoHash()); !ok {
		t.Error("not in the registry")
	}
	for _, tc := range []struct {
		body   map[string]string
		status int
		want   string
	}{
		{map[string]string{"url": srv.URL + "/page.html"}, 400, "not a .torrent file"},
		{map[string]string{"url": srv.URL + "/huge"}, 400, "larger than"},
		{map[string]string{"url": srv.URL + "/nope"}, 400, "404 Not Found"},
		{map[string]string{"url": srv.URL + "/ftp"}, 400, "only http and https"},
		{map[string]string{"url": "file:///etc/passwd"}, 400, "http or https"},
		{map[string]string{"url": "http://user:pw@example.org/x.torrent"}, 400, "user name"},
		{map[string]string{"url": srv.URL + "/talk.torrent", "magnet": seeder.Magnet()}, 400, "one of magnet, infohash, url or path"},
	} {
		res := r.postJSON(t, tc.body)
		wantJSONError(t, tc.body["url"], res, tc.status)
		if !strings.Contains(string(res.body), tc.want) {
			t.Errorf("%s: %s, want it to say %q", tc.body["url"], res.body, tc.want)
		}
	}
}

// TestAddByURLReachesOnlyPublicAddresses: with the check on (the default), the gateway does not
// fetch from loopback or private addresses, however the URL names them, and says why.
func TestAddByURLReachesOnlyPublicAddresses(t *testing.T) {
	var hit atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit.Store(true) }))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	r := startGateway(t, nil)
	for _, u := range []string{srv.URL + "/x.torrent", "http://localhost" + port + "/x.torrent", "http://[::1]" + port + "/",
		"http://[::ffff:127.0.0.1]" + port + "/", "http://0.0.0.0" + port + "/"} {
		res := r.postJSON(t, map[string]string{"url": u})
		wantJSONError(t, u, res, http.StatusForbidden)
		if !strings.Contains(string(res.body), "public addresses") {
			t.Errorf("%s: %s", u, res.body)
		}
	}
	if hit.Load() {
		t.Error("the gateway reached the loopback server")
	}
	for addr, public := range map[string]bool{"8.8.8.8": true, "2606:4700::1111": true, "10.1.2.3": false, "172.16.0.1": false,
		"192.168.1.1": false, "169.254.169.254": false, "100.64.0.1": false, "127.0.0.1": false, "::1": false, "fe80::1": false,
		"fc00::1": false, "::ffff:10.0.0.1": false, "64:ff9b::a00:1": false, "0.0.0.0": false, "224.0.0.1": false} {
		if got := publicAddr(netip.MustParseAddr(addr)); got != public {
			t.Errorf("publicAddr(%s) = %v", addr, got)
		}
	}
}
