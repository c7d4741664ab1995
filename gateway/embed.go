package gateway

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/swarmgate/swarmgate/live"
)

// Embed sizes: 16:9, 640×360 unless the consumer asks for less.
const (
	embedWidth  = 640
	embedHeight = 360
)

// oembedAnswer is an oEmbed 1.0 "video" answer.
type oembedAnswer struct {
	Version      string `json:"version"`
	Type         string `json:"type"`
	ProviderName string `json:"provider_name"`
	ProviderURL  string `json:"provider_url"`
	Title        string `json:"title"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	HTML         string `json:"html"`
}

// oembed answers GET /oembed?url=<watch or embed URL of this gateway>&maxwidth=&maxheight=, for
// a torrent (/watch/{ih}, /embed/{ih}) or a live stream (/live/{stream}, /live/{stream}/embed).
func (g *Gateway) oembed(c echo.Context) error {
	if f := c.QueryParam("format"); f != "" && f != "json" {
		return echo.NewHTTPError(http.StatusNotImplemented, fmt.Sprintf("format %q is not implemented: only json", f))
	}
	base := g.baseURL(c)
	raw := c.QueryParam("url")
	p, err := pageTarget(raw, base)
	if err != nil {
		return fmt.Errorf("%w: url %q: %v", ErrNotFound, raw, err)
	}
	var title, src string
	if p.stream != "" {
		id, _ := live.ParseStreamID(p.stream) // pageTarget checked it
		if _, ok := g.live.Status(id, base); !ok {
			return fmt.Errorf("%w: url %q: no such live stream on this gateway", ErrNotFound, raw)
		}
		title = "Live stream " + p.stream
		src = base + "/live/" + p.stream + "/" + liveEmbedPath
		if p.latency > 0 {
			src += "?latency=" + strconv.Itoa(p.latency)
		}
	} else {
		e, err := g.lookup(p.ih)
		if err != nil {
			return fmt.Errorf("%w: url %q: no such torrent on this gateway", ErrNotFound, raw)
		}
		if p.file >= 0 && e.Torrent().Info() != nil && p.file >= len(e.Torrent().Files()) {
			return fmt.Errorf("%w: url %q: torrent has %d file(s), indexed from 0", ErrNotFound, raw, len(e.Torrent().Files()))
		}
		title = cleanName(e.Torrent().Name())
		src = base + "/embed/" + p.ih
		if p.file >= 0 {
			src += "?file=" + strconv.Itoa(p.file)
		}
	}
	maxW, err := dimension(c, "maxwidth")
	if err != nil {
		return err
	}
	maxH, err := dimension(c, "maxheight")
	if err != nil {
		return err
	}
	w, h := embedWidth, embedHeight
	if maxW > 0 && w > maxW {
		w, h = maxW, maxW*9/16
	}
	if maxH > 0 && h > maxH {
		w, h = maxH*16/9, maxH
	}
	return c.JSON(http.StatusOK, oembedAnswer{
		Version:      "1.0",
		Type:         "video",
		ProviderName: "swarmgate",
		ProviderURL:  base + "/",
		Title:        title,
		Width:        w,
		Height:       h,
		HTML: fmt.Sprintf(`<iframe src="%s" width="%d" height="%d" style="border:0" allow="autoplay; fullscreen; picture-in-picture" allowfullscreen title="%s"></iframe>`,
			html.EscapeString(src), w, h, html.EscapeString(title)),
	})
}

// pageRef is what a watch or embed URL names: a torrent's infohash and file index (-1 when
// none), or a live stream and its ?latency (0 when none).
type pageRef struct {
	ih      string
	file    int
	stream  string
	latency int
}

// pageTarget reads what a watch or embed URL on the gateway reached at base names.
func pageTarget(raw, base string) (pageRef, error) {
	if raw == "" {
		return pageRef{}, fmt.Errorf("missing: give the watch or embed URL of a torrent or live stream on this gateway")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return pageRef{}, fmt.Errorf("not an http(s) URL")
	}
	b, err := url.Parse(base)
	if err != nil || !strings.EqualFold(u.Host, b.Host) {
		return pageRef{}, fmt.Errorf("not a page of this gateway (%s)", base)
	}
	if rest, ok := strings.CutPrefix(u.Path, "/live/"); ok {
		return liveTarget(strings.TrimSuffix(rest, "/"), u.Query())
	}
	rest, ok := strings.CutPrefix(u.Path, "/watch/")
	if !ok {
		rest, ok = strings.CutPrefix(u.Path, "/embed/")
	}
	if !ok || strings.Contains(strings.TrimSuffix(rest, "/"), "/") {
		return pageRef{}, fmt.Errorf("not a /watch/<infohash>, /embed/<infohash>, /live/<stream> or /live/<stream>/embed page")
	}
	hash, err := parseInfoHash(strings.TrimSuffix(rest, "/"))
	if err != nil {
		return pageRef{}, err
	}
	p := pageRef{ih: hash.HexString(), file: -1}
	if f := u.Query().Get("file"); f != "" {
		p.file, err = strconv.Atoi(f)
		if err != nil || p.file < 0 {
			return pageRef{}, fmt.Errorf("file %q: want a file index from 0", f)
		}
	}
	return p, nil
}

// liveTarget reads "{stream}" or "{stream}/embed" (the path after /live/) and ?latency.
func liveTarget(rest string, q url.Values) (pageRef, error) {
	stream, sub, found := strings.Cut(rest, "/")
	if found && sub != liveEmbedPath {
		return pageRef{}, fmt.Errorf("not a /live/<stream> or /live/<stream>/embed page")
	}
	id, err := live.ParseStreamID(stream)
	if err != nil {
		return pageRef{}, err
	}
	p := pageRef{stream: id.String(), file: -1}
	if l := q.Get("latency"); l != "" {
		p.latency, err = strconv.Atoi(l)
		if err != nil || p.latency < 1 || p.latency > maxLiveLatency {
			return pageRef{}, fmt.Errorf("latency %q: want a number of segments from 1 to %d", l, maxLiveLatency)
		}
	}
	return p, nil
}

// maxLiveLatency is the most segments behind the live edge the live player plays (web/static/live.js
// clamps ?latency to 1..30).
const maxLiveLatency = 30

// dimension reads an optional positive maxwidth or maxheight.
func dimension(c echo.Context, name string) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%w: %s %q: want a positive number of pixels", ErrBadInput, name, v)
	}
	return n, nil
}
