package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmgate/swarmgate/live"
)

// liveDir is the folder below --data-dir that keeps each live stream's window (one folder per
// stream id), so that it survives a restart.
const liveDir = "live"

// The live origin (package live) is mounted here: uploads from broadcasters under
// --ingest-token, and each stream's playlist, segments, manifest and state. Its windows are kept
// in liveDir too; startLive brings them back.
func (g *Gateway) newLiveOrigin() (*live.Origin, error) {
	cfg := live.DefaultOriginConfig()
	cfg.Dir = filepath.Join(g.cfg.DataDir, liveDir)
	cfg.IngestToken = g.cfg.IngestToken
	cfg.Window = g.cfg.LiveWindow
	cfg.MaxStreams = g.cfg.MaxLiveStreams
	cfg.MaxBytes = g.cfg.LiveMaxBytes
	cfg.OnSegment = func(id live.StreamID, seg live.Segment) {
		if err := g.segments.Seed(id, seg); err != nil {
			g.log.Warn("seeding a live segment over BitTorrent failed", "stream", id, "seq", seg.Seq, "err", err)
		}
	}
	cfg.BitTorrentPort = g.btPort
	cfg.BrowserPeers = func(id live.StreamID) int { return g.tracker.SwarmStats(LiveSwarmInfoHash(id)).Peers }
	return live.NewOrigin(cfg, g.rootLog)
}

// startLive brings back the live streams kept in the data folder and follows each stream named
// by --relay, grouping the URLs of one stream as its sources; the segments come over BitTorrent
// through g.segments. The relayed streams are made first, so that they get their kept windows
// back (and their slots under --max-live-streams before the origin's own), and their relays start
// once the windows are back, to go on after the newest segment kept.
func (g *Gateway) startLive() error {
	var order []live.StreamID
	sources := map[live.StreamID][]string{}
	for _, raw := range g.cfg.Relays {
		_, id, err := live.ParseStreamURL(raw)
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		if _, ok := sources[id]; !ok {
			order = append(order, id)
		}
		sources[id] = append(sources[id], raw)
	}
	var relays []*live.Relay
	for _, id := range order {
		rc := live.DefaultRelayConfig()
		rc.Stream, rc.Sources, rc.Origin, rc.Fetcher = id, sources[id], g.live, g.segments
		r, err := live.NewRelay(rc, g.rootLog)
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		if err := g.live.Follow(id, r.Status); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		relays = append(relays, r)
	}
	if err := g.live.Restore(); err != nil {
		return fmt.Errorf("restoring live streams from %s: %w", filepath.Join(g.cfg.DataDir, liveDir), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-g.stop
		cancel()
	}()
	for i, r := range relays {
		g.log.Info("relaying live stream", "stream", order[i], "sources", sources[order[i]])
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			r.Run(ctx)
		}()
	}
	return nil
}

// btPort is the port of the BitTorrent listener, 0 if none: live states report it, so that
// relays know where to fetch segments.
func (g *Gateway) btPort() int {
	if a, ok := g.BTAddr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// liveRoutes mounts the live origin, which routes its own paths (see live.Origin), beside the
// gateway's pages: /live/{stream} (and /live/{stream}/) is the watch page
// (web/templates/live.html), /live/{stream}/embed its bare player for iframes
// (live-embed.html). "embed" names nothing of the origin's: segments are {seq}.m4s and
// init-{seq}.mp4, uploads PUT to init/{seq} and media/{seq}.
func (g *Gateway) liveRoutes(e *echo.Echo) {
	origin := func(c echo.Context) error {
		// The origin names URLs from this header; a client's own is overwritten.
		c.Request().Header.Set(live.BaseURLHeader, g.baseURL(c))
		g.live.ServeHTTP(c.Response(), c.Request())
		return nil
	}
	page := func(name string) echo.HandlerFunc {
		return func(c echo.Context) error {
			stream, err := url.PathUnescape(c.Param("stream"))
			if stream == "" || err != nil {
				return origin(c) // the origin's 404
			}
			return g.livePage(c, stream, name)
		}
	}
	read := []string{http.MethodGet, http.MethodHead}
	// In a cluster, a stream's home serves it (uploads and reads alike).
	toHome := g.toLiveHome()
	e.Match(read, "/live/:stream", page("live.html"), toHome...)
	e.Match(read, "/live/:stream/", page("live.html"), toHome...)
	e.Match(read, "/live/:stream/"+liveEmbedPath, page("live-embed.html"), toHome...)
	e.Match([]string{http.MethodGet, http.MethodHead, http.MethodPut}, "/live/*", origin, toHome...)
	if g.cluster != nil {
		e.Match(read, "/api/live", g.listLive)
	} else {
		e.Match(read, "/api/live", origin)
	}
	e.Match(read, "/api/live/:stream", origin, toHome...)
}

var (
	descLiveSegments = prometheus.NewDesc(metricsNamespace+"_live_segments_total", "Live segment uploads, by result (accepted or why refused).", []string{"result"}, nil)
	descLiveStreams  = prometheus.NewDesc(metricsNamespace+"_live_streams", "Live streams held, by state.", []string{"state"}, nil)
)

type liveCollector struct{ g *Gateway }

func (c liveCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLiveSegments
	ch <- descLiveStreams
}

func (c liveCollector) Collect(ch chan<- prometheus.Metric) {
	for result, n := range c.g.live.Counts() {
		ch <- prometheus.MustNewConstMetric(descLiveSegments, prometheus.CounterValue, float64(n), result)
	}
	states := map[string]int{live.StateLive: 0, live.StateStalled: 0, live.StateEnded: 0}
	for _, s := range c.g.live.Statuses("") {
		states[s.State]++
	}
	for state, n := range states {
		ch <- prometheus.MustNewConstMetric(descLiveStreams, prometheus.GaugeValue, float64(n), state)
	}
}
