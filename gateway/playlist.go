package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/anacrolix/torrent"
	"github.com/labstack/echo/v4"
	"github.com/swarmgate/swarmgate/registry"
)

// allPlaylist is the name of the playlist of every torrent; an infohash is 40 hex digits, so it
// never collides with one.
const allPlaylist = "all"

// playlist answers GET /playlist/{infohash}.m3u, the media files of one torrent, and
// /playlist/all.m3u, those of every torrent with metadata, oldest first. Each entry is an
// #EXTINF title and a /stream URL; other files (subtitles, .nfo, samples' .bin) are left out,
// since a player would only stop at them.
func (g *Gateway) playlist(c echo.Context) error {
	name, ok := strings.CutSuffix(c.Param("name"), ".m3u")
	if !ok {
		return fmt.Errorf("%w: playlist path must be /playlist/<infohash>.m3u or /playlist/%s.m3u", ErrNotFound, allPlaylist)
	}
	base, err := url.Parse(g.baseURL(c))
	if err != nil {
		return fmt.Errorf("base URL: %w", err)
	}
	var b strings.Builder
	b.WriteString("#EXTM3U\n")
	if name == allPlaylist {
		// Torrents still waiting for metadata have no files to list yet; waiting for each
		// would hold the whole list up.
		for _, e := range g.torrents.List() {
			if registry.HasInfo(e.Torrent()) {
				writeM3UEntries(&b, base, e.Torrent(), true)
			}
		}
		if g.cluster != nil {
			g.cluster.otherPlaylists(c, &b)
		}
	} else {
		e, err := g.lookup(name)
		if err != nil {
			return err
		}
		if _, err := g.waitInfo(c.Request().Context(), e); err != nil {
			return err
		}
		writeM3UEntries(&b, base, e.Torrent(), false)
	}
	return c.Blob(http.StatusOK, "audio/x-mpegurl", []byte(b.String()))
}

// writeM3UEntries writes an #EXTINF line and a stream URL for each media file of t. Titles are
// the files' paths in the torrent, with the torrent's name in front when withName (the
// all-torrents playlist); names come from whoever made the torrent, so they are cleaned of
// anything that could end the line.
func writeM3UEntries(b *strings.Builder, base *url.URL, t *torrent.Torrent, withName bool) {
	ih := t.InfoHash().HexString()
	for i, f := range t.Files() {
		if !isMedia(f.DisplayPath()) {
			continue
		}
		title := f.DisplayPath()
		if withName {
			title = f.Path()
		}
		// JoinPath escapes each element; String percent-encodes what the base URL carries.
		u := base.JoinPath("stream", ih, strconv.Itoa(i))
		fmt.Fprintf(b, "#EXTINF:-1,%s\n%s\n", cleanName(title), u.String())
	}
}

// isMedia says whether a file is video or audio by its extension, as the watch page decides
// what it can play.
func isMedia(name string) bool {
	m := mimeType(name)
	return strings.HasPrefix(m, "video/") || strings.HasPrefix(m, "audio/")
}

// cleanName is a torrent or file name fit for a line of text: control characters (C0, DEL, C1,
// NEL among them), Unicode line and paragraph separators and bytes that are not UTF-8 become
// U+FFFD. The names themselves stay as the torrent has them (see checkInfo); this is for what
// the gateway writes as text.
func cleanName(s string) string {
	clean := true
	for _, r := range s {
		if unsafeInText(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s { // invalid UTF-8 comes out of range as utf8.RuneError
		if unsafeInText(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}

func unsafeInText(r rune) bool {
	return r == utf8.RuneError || unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}
