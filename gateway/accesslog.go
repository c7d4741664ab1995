package gateway

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// The --access-log settings.
const (
	// AccessLogOn logs what an operator reads: page views, websocket upgrades, API changes and
	// every 4xx at info, 5xx at warn; the many successful reads a player makes (stream and webseed
	// ranges, live playlists and segments, live uploads, the API reads pages poll, static files,
	// probes, metrics) at debug.
	AccessLogOn = "on"
	// AccessLogAll logs every request at info (5xx at warn), as a web server's access log does.
	AccessLogAll = "all"
	// AccessLogOff logs no request (a 5xx's error is still logged as "request failed").
	AccessLogOff = "off"
)

// infoRoutes are the routes whose successful GETs are page views, logged at info under
// AccessLogOn. /live/* is a page only at /live/<stream> and /live/<stream>/embed (livePage).
var infoRoutes = map[string]bool{
	"/":          true,
	"/watch/:ih": true,
	"/embed/:ih": true,
	"/oembed":    true,
	"/announce":  true, // one record per websocket, at its upgrade
}

// accessLog is the middleware that logs one record per request (component=http) once its answer
// is written: method, route (the pattern matched, "unmatched" for none), path, status, bytes
// (body bytes written), duration, the client IP (X-Forwarded-For from --trusted-proxy hops, as
// for the per-IP limits), the Range header when sent, and the user agent. A websocket is logged
// at its upgrade with status 101, not when it closes.
func (g *Gateway) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	if g.cfg.AccessLog == AccessLogOff {
		return next
	}
	log := g.rootLog.With("component", "http")
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err) // write the error answer now, so that its status is the one logged
		}
		req, res := c.Request(), c.Response()
		status := res.Status
		if !res.Committed && strings.EqualFold(req.Header.Get("Upgrade"), "websocket") {
			status = http.StatusSwitchingProtocols // hijacked: the handshake bypassed res
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		level := g.accessLevel(req, route, status)
		if !log.Enabled(req.Context(), level) {
			return nil
		}
		attrs := make([]slog.Attr, 0, 10)
		attrs = append(attrs,
			slog.String("method", req.Method),
			slog.String("route", route),
			slog.String("path", req.URL.Path),
			slog.Int("status", status),
			slog.Int64("bytes", res.Size),
			slog.Duration("duration", time.Since(start)),
			slog.String("ip", g.access.clientIP(req)),
		)
		if r := req.Header.Get("Range"); r != "" {
			attrs = append(attrs, slog.String("range", r))
		}
		if ua := req.UserAgent(); ua != "" {
			attrs = append(attrs, slog.String("ua", ua))
		}
		log.LogAttrs(req.Context(), level, "request", attrs...)
		return nil
	}
}

// accessLevel is the level of a request's record (see AccessLogOn).
func (g *Gateway) accessLevel(req *http.Request, route string, status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelWarn
	case g.cfg.AccessLog == AccessLogAll, status >= 400:
		return slog.LevelInfo
	case req.Method == http.MethodPost || req.Method == http.MethodDelete:
		return slog.LevelInfo
	case route == "/live/*" && req.Method != http.MethodPut && isLivePagePath(req.URL.Path):
		return slog.LevelInfo
	case infoRoutes[route]:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// isLivePagePath says whether path is a live page (/live/<stream> or /live/<stream>/embed), not
// a playlist, segment or manifest under it.
func isLivePagePath(path string) bool {
	rest, ok := strings.CutPrefix(path, "/live/")
	if !ok {
		return false
	}
	stream, sub, nested := strings.Cut(rest, "/")
	return stream != "" && (!nested || sub == liveEmbedPath)
}
