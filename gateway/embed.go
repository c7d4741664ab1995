package gateway

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
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

// oembed answers GET /oembed?url=<watch or embed URL of this gateway>&maxwidth=&maxheight=.
func (g *Gateway) oembed(c echo.Context) error {
	if f := c.QueryParam("format"); f != "" && f != "json" {
		return echo.NewHTTPError(http.StatusNotImplemented, fmt.Sprintf("format %q is not implemented: only json", f))
	}
	base := g.baseURL(c)
	raw := c.QueryParam("url")
	ih, file, err := pageTarget(raw, base)
	if err != nil {
		return fmt.Errorf("%w: url %q: %v", ErrNotFound, raw, err)
	}
	e, err := g.lookup(ih)
	if err != nil {
		return fmt.Errorf("%w: url %q: no such torrent on this gateway", ErrNotFound, raw)
	}
	if file >= 0 && e.t.Info() != nil && file >= len(e.t.Files()) {
		return fmt.Errorf("%w: url %q: torrent has %d file(s), indexed from 0", ErrNotFound, raw, len(e.t.Files()))
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
	title := e.t.Name()
	src := base + "/embed/" + ih
	if file >= 0 {
		src += "?file=" + strconv.Itoa(file)
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

// pageTarget reads the infohash and file index (-1 when none) of a watch or embed URL on the
// gateway reached at base.
func pageTarget(raw, base string) (ih string, file int, err error) {
	if raw == "" {
		return "", 0, fmt.Errorf("missing: give the watch or embed URL of a torrent on this gateway")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", 0, fmt.Errorf("not an http(s) URL")
	}
	b, err := url.Parse(base)
	if err != nil || !strings.EqualFold(u.Host, b.Host) {
		return "", 0, fmt.Errorf("not a page of this gateway (%s)", base)
	}
	rest, ok := strings.CutPrefix(u.Path, "/watch/")
	if !ok {
		rest, ok = strings.CutPrefix(u.Path, "/embed/")
	}
	if !ok || strings.Contains(strings.TrimSuffix(rest, "/"), "/") {
		return "", 0, fmt.Errorf("not a /watch/<infohash> or /embed/<infohash> page")
	}
	hash, err := parseInfoHash(strings.TrimSuffix(rest, "/"))
	if err != nil {
		return "", 0, err
	}
	file = -1
	if f := u.Query().Get("file"); f != "" {
		file, err = strconv.Atoi(f)
		if err != nil || file < 0 {
			return "", 0, fmt.Errorf("file %q: want a file index from 0", f)
		}
	}
	return hash.HexString(), file, nil
}

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
