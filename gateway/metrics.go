package gateway

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/swarmgate/swarmgate/registry"
	"github.com/swarmgate/swarmgate/transcode"
)

const metricsNamespace = "swarmgate"

// metrics are read from the live state at scrape time (torrents, peers, bytes, tracker), except
// HTTP requests, which are counted as they are answered. Torrents that were removed keep their
// bytes in removed, so byte counters never go back.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu      sync.Mutex
	removed registry.ByteCounts
	removedPieces
}

type removedPieces struct{ good, bad int64 }

func newMetrics(g *Gateway) *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "http_requests_total",
		Help: "HTTP requests answered, by route and status code.",
	}, []string{"route", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "http_request_duration_seconds",
		Help:    "Time to answer HTTP requests (streams: until the body ended), by route.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	}, []string{"route"})
	m.registry.MustRegister(
		m.requests, m.duration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		gatewayCollector{g: g, m: m},
		liveCollector{g: g},
	)
	return m
}

// forget keeps a removed torrent's counts in the totals.
func (m *metrics) forget(e *registry.Entry) {
	b, _ := e.Counts()
	s := e.Torrent().Stats()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removed.FromNative += b.FromNative
	m.removed.FromWebRTC += b.FromWebRTC
	m.removed.FromWebseed += b.FromWebseed
	m.removed.ToNative += b.ToNative
	m.removed.ToWebRTC += b.ToWebRTC
	m.removed.ToHTTP += b.ToHTTP
	m.removedPieces.good += s.PiecesDirtiedGood.Int64()
	m.removedPieces.bad += s.PiecesDirtiedBad.Int64()
}

// middleware counts requests by route pattern (not by path, which would be unbounded).
func (m *metrics) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err) // write the error answer now, so its status is the one counted
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		m.requests.WithLabelValues(route, strconv.Itoa(c.Response().Status)).Inc()
		m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		return nil
	}
}

func (m *metrics) handler() echo.HandlerFunc { return echo.WrapHandler(m.httpHandler()) }

func (m *metrics) httpHandler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

var (
	descTorrents = prometheus.NewDesc(metricsNamespace+"_torrents", "Torrents by state.", []string{"state"}, nil)
	descPeers    = prometheus.NewDesc(metricsNamespace+"_peers", "Connected peers by kind (native BitTorrent, WebRTC).", []string{"kind"}, nil)
	descBytes    = prometheus.NewDesc(metricsNamespace+"_bytes_total", "Torrent data moved, by direction and the kind of the other end.", []string{"direction", "kind"}, nil)
	descPieces   = prometheus.NewDesc(metricsNamespace+"_pieces_total", "Pieces written and hash-checked, by result.", []string{"result"}, nil)
	descSockets  = prometheus.NewDesc(metricsNamespace+"_signaling_sockets", "Open tracker websockets.", nil, nil)
	descSwarms   = prometheus.NewDesc(metricsNamespace+"_signaling_swarms", "Swarms known to the tracker.", nil, nil)
	descSigPeers = prometheus.NewDesc(metricsNamespace+"_signaling_peers", "Peers announced to the tracker.", nil, nil)
	descSigMsgs  = prometheus.NewDesc(metricsNamespace+"_signaling_messages_total", "Tracker messages handled, by kind.", []string{"kind"}, nil)
	descSigFails = prometheus.NewDesc(metricsNamespace+"_signaling_failures_total", "Failure replies the tracker sent.", nil, nil)
	descRTC      = prometheus.NewDesc(metricsNamespace+"_webrtc_peer_connections", "Live WebRTC PeerConnections, pending or open.", nil, nil)
	descRTCDisc  = prometheus.NewDesc(metricsNamespace+"_webrtc_peer_connections_disconnected", "WebRTC PeerConnections whose ICE is disconnected, given time to come back before they are closed.", nil, nil)
	descRefusals = prometheus.NewDesc(metricsNamespace+"_limit_refusals_total", "Requests, sockets, offers and announces refused by access control and limits, by limit.", []string{"limit"}, nil)
	descCache    = prometheus.NewDesc(metricsNamespace+"_cache_bytes", "Disk blocks held by downloaded torrent pieces (what --cache-size bounds).", nil, nil)
	descCacheCap = prometheus.NewDesc(metricsNamespace+"_cache_capacity_bytes", "The --cache-size bound; 0 = unlimited.", nil, nil)
	descEvicted  = prometheus.NewDesc(metricsNamespace+"_cache_evictions_total", "Pieces evicted from the cache.", nil, nil)
	descEvictedB = prometheus.NewDesc(metricsNamespace+"_cache_evicted_bytes_total", "Bytes of pieces evicted from the cache.", nil, nil)
	descIdle     = prometheus.NewDesc(metricsNamespace+"_torrents_dropped_idle_total", "Torrents dropped by --idle-timeout.", nil, nil)
	descBanned   = prometheus.NewDesc(metricsNamespace+"_peers_banned", "Peer IPs banned for sending data that failed its piece hash.", nil, nil)

	descDeclined   = prometheus.NewDesc(metricsNamespace+"_upload_declined_requests_total", "Browsers' requests rejected for pieces the gateway had not offered them (--upload-sharing).", nil, nil)
	descNeeds      = prometheus.NewDesc(metricsNamespace+"_upload_needs_messages_total", "Messages from browsers naming the piece their player waits on (BEP 10 extension sg_needs, --upload-sharing).", nil, nil)
	descTcJobs     = prometheus.NewDesc(metricsNamespace+"_transcode_jobs", "ffmpeg jobs making HLS segments, by state (running, paused ahead of their viewers).", []string{"state"}, nil)
	descTcStarted  = prometheus.NewDesc(metricsNamespace+"_transcode_jobs_started_total", "ffmpeg jobs started.", nil, nil)
	descTcFailed   = prometheus.NewDesc(metricsNamespace+"_transcode_jobs_failed_total", "ffmpeg jobs that failed.", nil, nil)
	descTcRefused  = prometheus.NewDesc(metricsNamespace+"_transcode_refused_total", "HLS requests refused because every --max-transcodes slot was busy.", nil, nil)
	descTcSegments = prometheus.NewDesc(metricsNamespace+"_transcode_segments_total", "HLS segments made, by mode (remux, transcode).", []string{"mode"}, nil)
	descTcMedia    = prometheus.NewDesc(metricsNamespace+"_transcode_media_seconds_total", "Media seconds made into HLS, by mode; ÷ work seconds = encode speed.", []string{"mode"}, nil)
	descTcWork     = prometheus.NewDesc(metricsNamespace+"_transcode_work_seconds_total", "Seconds ffmpeg jobs ran making segments (pauses left out), by mode.", []string{"mode"}, nil)
	descMembers    = prometheus.NewDesc(metricsNamespace+"_cluster_members", "Live nodes of the cluster, this one included (absent for a gateway on its own).", nil, nil)
	descCatalog    = prometheus.NewDesc(metricsNamespace+"_cluster_torrents", "Torrents in the cluster's catalog (held here or on their home node).", nil, nil)
	descForwarded  = prometheus.NewDesc(metricsNamespace+"_signaling_forwarded_total", "Tracker messages of this node's sockets sent to the node owning their swarm, and announces sent again when owners changed, by kind (forwarded, replayed).", []string{"kind"}, nil)
	descRemote     = prometheus.NewDesc(metricsNamespace+"_signaling_remote_sockets", "Other nodes' sockets with peers or messages in this node's swarms.", nil, nil)
	descTcCache    = prometheus.NewDesc(metricsNamespace+"_transcode_cache_bytes", "Bytes of HLS segments kept on disk (a quarter of --cache-size bounds them).", nil, nil)
)

type gatewayCollector struct {
	g *Gateway
	m *metrics
}

func (c gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTorrents, descPeers, descBytes, descPieces, descSockets, descSwarms, descSigPeers, descSigMsgs, descSigFails, descRTC, descRTCDisc, descCache, descCacheCap, descEvicted, descEvictedB, descIdle, descBanned, descRefusals, descDeclined, descNeeds,
		descTcJobs, descTcStarted, descTcFailed, descTcRefused, descTcSegments, descTcMedia, descTcWork, descTcCache,
		descMembers, descCatalog, descForwarded, descRemote} {
		ch <- d
	}
}

func (c gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	states := map[string]int{registry.StateMetadata: 0, registry.StateIdle: 0, registry.StateDownloading: 0, registry.StateSeeding: 0}
	var peers registry.PeerCounts
	c.m.mu.Lock()
	total := c.m.removed
	good, bad := c.m.removedPieces.good, c.m.removedPieces.bad
	c.m.mu.Unlock()
	for _, e := range c.g.torrents.List() {
		states[e.State()]++
		b, p := e.Counts()
		peers.Native += p.Native
		peers.WebRTC += p.WebRTC
		total.FromNative += b.FromNative
		total.FromWebRTC += b.FromWebRTC
		total.FromWebseed += b.FromWebseed
		total.ToNative += b.ToNative
		total.ToWebRTC += b.ToWebRTC
		total.ToHTTP += b.ToHTTP
		s := e.Torrent().Stats()
		good += s.PiecesDirtiedGood.Int64()
		bad += s.PiecesDirtiedBad.Int64()
	}
	for state, n := range states {
		ch <- prometheus.MustNewConstMetric(descTorrents, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(peers.Native), "native")
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(peers.WebRTC), "webrtc")
	for _, b := range []struct {
		dir, kind string
		n         int64
	}{
		{"in", "native", total.FromNative}, {"in", "webrtc", total.FromWebRTC}, {"in", "webseed", total.FromWebseed},
		{"out", "native", total.ToNative}, {"out", "webrtc", total.ToWebRTC}, {"out", "http", total.ToHTTP},
	} {
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(b.n), b.dir, b.kind)
	}
	ch <- prometheus.MustNewConstMetric(descPieces, prometheus.CounterValue, float64(good), "verified")
	ch <- prometheus.MustNewConstMetric(descPieces, prometheus.CounterValue, float64(bad), "failed")

	st := c.g.tracker.Stats()
	ch <- prometheus.MustNewConstMetric(descSockets, prometheus.GaugeValue, float64(st.Sockets))
	ch <- prometheus.MustNewConstMetric(descSwarms, prometheus.GaugeValue, float64(st.Swarms))
	ch <- prometheus.MustNewConstMetric(descSigPeers, prometheus.GaugeValue, float64(st.Peers))
	for kind, n := range map[string]uint64{"announce": st.Announces, "scrape": st.Scrapes, "offer": st.OffersRelayed, "answer": st.AnswersRelayed} {
		ch <- prometheus.MustNewConstMetric(descSigMsgs, prometheus.CounterValue, float64(n), kind)
	}
	ch <- prometheus.MustNewConstMetric(descSigFails, prometheus.CounterValue, float64(st.Failures))
	if cp := c.g.cluster; cp != nil {
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(len(cp.node.Members())))
		ch <- prometheus.MustNewConstMetric(descCatalog, prometheus.GaugeValue, float64(len(cp.node.Torrents())))
		ch <- prometheus.MustNewConstMetric(descForwarded, prometheus.CounterValue, float64(st.Forwarded), "forwarded")
		ch <- prometheus.MustNewConstMetric(descForwarded, prometheus.CounterValue, float64(st.Replayed), "replayed")
		ch <- prometheus.MustNewConstMetric(descRemote, prometheus.GaugeValue, float64(st.RemoteSockets))
	}
	bs := c.g.bridge.Stats()
	ch <- prometheus.MustNewConstMetric(descRTC, prometheus.GaugeValue, float64(bs.PeerConnections))
	ch <- prometheus.MustNewConstMetric(descRTCDisc, prometheus.GaugeValue, float64(bs.Disconnected))
	r := &c.g.refused
	for limit, n := range map[string]uint64{
		limitAllowAdd:         r.allowAdd.Load(),
		limitAllowInfoHash:    r.allowInfoHash.Load(),
		limitMaxTorrents:      r.maxTorrents.Load(),
		limitWebRTCPeers:      r.webrtcPeers.Load(),
		limitWebRTCPerTorrent: r.webrtcPerTorrent.Load(),
		limitWSPerIP:          st.SocketsRefused,
		limitOffersPerSec:     st.OffersDropped,
		limitTrackerInfoHash:  st.InfoHashesRefused,
	} {
		ch <- prometheus.MustNewConstMetric(descRefusals, prometheus.CounterValue, float64(n), limit)
	}
	cs := c.g.cache.Stats()
	ch <- prometheus.MustNewConstMetric(descCache, prometheus.GaugeValue, float64(cs.Used))
	ch <- prometheus.MustNewConstMetric(descCacheCap, prometheus.GaugeValue, float64(cs.Capacity))
	ch <- prometheus.MustNewConstMetric(descEvicted, prometheus.CounterValue, float64(cs.Evictions))
	ch <- prometheus.MustNewConstMetric(descEvictedB, prometheus.CounterValue, float64(cs.EvictedBytes))
	ch <- prometheus.MustNewConstMetric(descIdle, prometheus.CounterValue, float64(c.g.torrents.DroppedIdle()))
	ch <- prometheus.MustNewConstMetric(descBanned, prometheus.GaugeValue, float64(len(c.g.client.BadPeerIPs())))
	sharing := c.g.UploadSharingStats()
	ch <- prometheus.MustNewConstMetric(descDeclined, prometheus.CounterValue, float64(sharing.Declined))
	ch <- prometheus.MustNewConstMetric(descNeeds, prometheus.CounterValue, float64(sharing.Told))
	if c.g.transcoder != nil {
		ts := c.g.transcoder.Stats()
		ch <- prometheus.MustNewConstMetric(descTcJobs, prometheus.GaugeValue, float64(ts.JobsRunning-ts.JobsPaused), "running")
		ch <- prometheus.MustNewConstMetric(descTcJobs, prometheus.GaugeValue, float64(ts.JobsPaused), "paused")
		ch <- prometheus.MustNewConstMetric(descTcStarted, prometheus.CounterValue, float64(ts.JobsStarted))
		ch <- prometheus.MustNewConstMetric(descTcFailed, prometheus.CounterValue, float64(ts.JobsFailed))
		ch <- prometheus.MustNewConstMetric(descTcRefused, prometheus.CounterValue, float64(ts.Refused))
		for _, mode := range []transcode.Mode{transcode.Remux, transcode.Transcode} {
			ch <- prometheus.MustNewConstMetric(descTcSegments, prometheus.CounterValue, float64(ts.SegmentsMade[mode]), string(mode))
			ch <- prometheus.MustNewConstMetric(descTcMedia, prometheus.CounterValue, ts.MediaSeconds[mode], string(mode))
			ch <- prometheus.MustNewConstMetric(descTcWork, prometheus.CounterValue, ts.WorkSeconds[mode], string(mode))
		}
		ch <- prometheus.MustNewConstMetric(descTcCache, prometheus.GaugeValue, float64(ts.CacheBytes))
	}
}
