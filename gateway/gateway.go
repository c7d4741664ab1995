package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"github.com/labstack/echo/v4"
	"github.com/pion/webrtc/v4"
	"golang.org/x/time/rate"

	"github.com/swarmgate/swarmgate/bridge"
	"github.com/swarmgate/swarmgate/live"
	"github.com/swarmgate/swarmgate/live/segtorrent"
	"github.com/swarmgate/swarmgate/piececache"
	"github.com/swarmgate/swarmgate/registry"
	"github.com/swarmgate/swarmgate/signaling"
	"github.com/swarmgate/swarmgate/transcode"
)

// uploadBurst lets one 16 KiB block (and HTTP writes of up to this size) through the upload cap.
const uploadBurst = 256 << 10

// torrentsDir is where, below the data dir, the piece cache keeps downloaded torrents' files.
const torrentsDir = "torrents"

// peerIDPrefix starts the gateway's BitTorrent peer id (BEP 20, Azureus style: client SG):
// pages tell any gateway's wire from browsers' by it, across restarts and cluster nodes.
const peerIDPrefix = "-SG0001-"

// webrtcNetwork is the network name bridge conns report; anacrolix copies it into PeerConn.Network.
const webrtcNetwork = "webrtc"

// Gateway is one running swarmgate node.
type Gateway struct {
	cfg     Config
	log     *slog.Logger // component=gateway
	rootLog *slog.Logger // as given to New: for subsystems that name their own component
	client  *torrent.Client
	storage storage.ClientImplCloser
	cache   *piececache.Cache
	// resync holds pieces the cache evicted, for anacrolix to re-read their completion.
	resync resyncQueue
	// completion is the persistent record of verified pieces, shared by every storage.
	completion storage.PieceCompletion
	tracker    *signaling.Server
	bridge     *bridge.Bridge
	offers     *offerer // the gateway's own offers to browsers that have data
	peerID     signaling.ID
	echo       *echo.Echo
	server     *http.Server
	ln         net.Listener
	// metricsLn and metricsServer serve /metrics alone when Config.MetricsAddr is set.
	metricsLn     net.Listener
	metricsServer *http.Server

	torrents     *registry.Registry
	access       access
	refused      refusals
	addMu        sync.Mutex // serialises API adds, so that MaxTorrents holds
	metrics      *metrics
	live         *live.Origin
	segments     *segtorrent.Torrents // live segments over BitTorrent
	draining     atomic.Bool          // /readyz answers 503 once shutdown began
	drainc       chan struct{}        // closed once shutdown began: paced answers go at full speed
	uploadLimit  *rate.Limiter        // nil without a cap
	uplinkBusyAt atomic.Int64         // when the cap was last seen reached (noteUplink), Unix ns
	ownToken     string               // marks the gateway's own reads of its /stream (ownStreamURL)
	// torrentFetcher fetches .torrent files by URL for the API, public addresses only.
	torrentFetcher *http.Client
	probes         *probes            // what media files hold
	transcoder     *transcode.Manager // HLS for browsers; nil when off or ffmpeg is missing
	cluster        *clusterPart       // nil for a gateway on its own

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New builds a gateway and binds its ports, so that a port in use fails here and not later.
// Serve starts answering.
func New(cfg Config, log *slog.Logger) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, &FieldError{Field: "DataDir", Err: err}
	}
	cfg.DataDir = dataDir
	if err := checkWritable(filepath.Join(dataDir, torrentsDir)); err != nil {
		return nil, &FieldError{Field: "DataDir", Err: fmt.Errorf("%s: %w", dataDir, err)}
	}
	g := &Gateway{
		cfg:     cfg,
		log:     log.With("component", "gateway"),
		rootLog: log,
		stop:    make(chan struct{}),
		drainc:  make(chan struct{}),
	}
	g.ownToken = rand.Text()
	if g.access, err = newAccess(cfg); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			g.Close()
		}
	}()

	g.completion, err = storage.NewDefaultPieceCompletionForDir(dataDir)
	if err != nil {
		return nil, fmt.Errorf("piece completion store in %s: %w", dataDir, err)
	}
	if g.cfg.writeRetry <= 0 {
		g.cfg.writeRetry = defaultWriteRetry
	}
	g.resync.wake = make(chan struct{}, 1)
	if g.cfg.FFprobe != "" {
		if _, err := exec.LookPath(g.cfg.FFprobe); err != nil {
			g.log.Warn("ffprobe not found: media files are not probed, and players play them as they are", "ffprobe", g.cfg.FFprobe, "err", err)
			g.cfg.FFprobe = ""
		}
	}
	if err := g.startTranscoder(); err != nil {
		return nil, err
	}
	cacheCfg := piececache.DefaultConfig()
	cacheCfg.Dir = filepath.Join(dataDir, torrentsDir)
	cacheCfg.Capacity = cfg.CacheSize
	if g.transcoder != nil && cfg.CacheSize > 0 {
		cacheCfg.Capacity -= cfg.CacheSize / hlsCacheShare // the segments' share
	}
	cacheCfg.Completion = g.completion
	cacheCfg.Watched = func(ih metainfo.Hash) bool {
		e, ok := g.torrents.Get(ih)
		return ok && e.Watched(time.Now())
	}
	cacheCfg.CheckInfo = registry.CheckPieceCount
	cacheCfg.OnWriteError = func(ih metainfo.Hash, err error) { g.torrents.WriteFailed(ih, err) }
	cacheCfg.OnWriteOK = func(ih metainfo.Hash) { g.torrents.WriteSucceeded(ih) }
	cacheCfg.OnEvicted = g.resync.add
	if g.cache, err = piececache.New(cacheCfg, g.log.With("component", "cache")); err != nil {
		return nil, err
	}
	g.storage = g.cache.Storage()

	tcfg := torrent.NewDefaultClientConfig()
	tcfg.DataDir = dataDir
	tcfg.DefaultStorage = g.storage
	tcfg.ListenPort = cfg.BTPort
	if cfg.BTHost != "" {
		tcfg.SetListenAddr(net.JoinHostPort(cfg.BTHost, fmt.Sprint(cfg.BTPort)))
		if ip := net.ParseIP(cfg.BTHost); ip != nil && ip.To4() != nil {
			tcfg.DisableIPv6 = true
		}
	}
	tcfg.Bep20 = peerIDPrefix
	tcfg.NoDHT = cfg.NoDHT
	tcfg.NoDefaultPortForwarding = cfg.NoUPnP
	// A torrent nobody watches yet wants no pieces, and anacrolix would then turn away the very
	// browser whose arrival makes it wanted.
	tcfg.AlwaysWantConns = true
	tcfg.Seed = true
	// Browsers come through our own bridge; anacrolix's WebTorrent client would open its own pion
	// stack with settings we cannot reach.
	tcfg.DisableWebtorrent = true
	// PEX would advertise browsers' ICE addresses to native peers as if they were dialable.
	tcfg.DisablePEX = true
	// Browsers speak plain BitTorrent; try plaintext first, fall back for native peers that insist.
	tcfg.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{Preferred: false, RequirePreferred: false}
	tcfg.EstablishedConnsPerTorrent = 200
	if cfg.UploadRate > 0 {
		// One bucket for peers and HTTP alike: the cap is on what leaves the gateway.
		g.uploadLimit = rate.NewLimiter(rate.Limit(cfg.UploadRate), uploadBurst)
		tcfg.UploadRateLimiter = g.uploadLimit
		if cfg.UploadSharing {
			tcfg.UploadSharing = &torrent.UploadSharing{
				Busy:   g.uplinkBusy,
				Trades: func(network string) bool { return network == webrtcNetwork },
			}
		}
	}
	tcfg.Slogger = slog.New(newTorrentLog(log.Handler())).With("component", "torrent")
	if cfg.tuneTorrent != nil {
		cfg.tuneTorrent(tcfg)
	}
	tcfg.Callbacks.PeerConnClosed = g.onPeerConnClosed
	tcfg.Callbacks.PeerConnAdded = append(tcfg.Callbacks.PeerConnAdded, g.onPeerConnAdded)
	g.client, err = torrent.NewClient(tcfg)
	if err != nil {
		return nil, &FieldError{Field: "BTPort", Err: fmt.Errorf("%d: bittorrent client: %w", cfg.BTPort, err)}
	}
	rcfg := registry.DefaultConfig()
	rcfg.Client, rcfg.Completion = g.client, g.completion
	rcfg.StateDir, rcfg.DataDir = dataDir, filepath.Join(dataDir, torrentsDir)
	rcfg.ViewerLinger, rcfg.IdleTimeout, rcfg.WriteRetry = cfg.ViewerLinger, cfg.IdleTimeout, g.cfg.writeRetry
	rcfg.Playable = isMedia
	// Torrents are added from restore on, when the tracker and the offerer exist.
	rcfg.Added = func(e *registry.Entry) {
		g.tracker.Join(signaling.ID(e.Torrent().InfoHash()))
		g.offers.wakeUp() // browsers in the swarm may have the data already
		if g.cluster != nil {
			g.cluster.added(e)
		}
	}
	rcfg.Removed = func(e *registry.Entry) {
		if g.cluster != nil {
			g.cluster.removed(e)
		}
		g.tracker.Leave(signaling.ID(e.Torrent().InfoHash()))
		g.metrics.forget(e)
		g.probes.forget(e.Torrent().InfoHash())
		if g.transcoder != nil {
			g.transcoder.Forget(e.Torrent().InfoHash().HexString())
		}
	}
	if g.torrents, err = registry.New(rcfg, log.With("component", "registry")); err != nil {
		return nil, err
	}
	g.peerID = signaling.ID(g.client.PeerID())

	bcfg := bridge.DefaultConfig()
	bcfg.ICEServers = cfg.pionICEServers()
	bcfg.UDPPort = cfg.WebRTCUDPPort
	bcfg.PublicIPs = cfg.PublicIPs
	bcfg.LoopbackOnly = cfg.LoopbackWebRTC
	bcfg.MaxPeers = cfg.MaxWebRTCPeers
	// Answered and offered alike: its peers per torrent are the browsers it serves or fetches from there.
	bcfg.MaxPeersPerSwarm = cfg.MaxWebRTCPeersPerTorrent
	bcfg.OnDialable = g.onDialable
	g.bridge, err = bridge.New(bcfg, log)
	if err != nil {
		if cfg.WebRTCUDPPort != 0 {
			return nil, &FieldError{Field: "WebRTCUDPPort", Err: fmt.Errorf("%d: %w", cfg.WebRTCUDPPort, err)}
		}
		return nil, fmt.Errorf("webrtc: %w", err)
	}
	g.client.AddListener(g.bridge)
	g.client.AddDialer(g.bridge)

	if err := g.startCluster(); err != nil {
		return nil, err
	}
	scfg := signaling.DefaultConfig()
	if g.cluster != nil {
		scfg.Bus = g.cluster.bus
	}
	scfg.MaxSocketsPerIP = cfg.MaxWSPerIP
	scfg.MaxSwarmsPerSocket = cfg.MaxSwarmsPerSocket
	scfg.MaxMessageBytes = cfg.MaxMessageBytes
	scfg.OffersPerSecond = cfg.MaxOffersPerSec
	scfg.ClientIP = g.access.clientIP
	scfg.AllowInfoHash = g.trackerAllows()
	g.tracker, err = signaling.New(scfg, log)
	if err != nil {
		return nil, fmt.Errorf("signaling: %w", err)
	}
	g.offers = newOfferer(g)
	g.tracker.AttachLocal(g.peerID, localPeer{g})

	g.torrentFetcher = newTorrentFetcher(cfg.fetchPrivate)
	g.probes = newProbes(g)
	g.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, &FieldError{Field: "HTTPAddr", Err: fmt.Errorf("%s: %w", cfg.HTTPAddr, err)}
	}
	if cfg.MetricsAddr != "" {
		if g.metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return nil, &FieldError{Field: "MetricsAddr", Err: fmt.Errorf("%s: %w", cfg.MetricsAddr, err)}
		}
	}
	segCfg := segtorrent.DefaultConfig()
	segCfg.Client = g.client
	if g.segments, err = segtorrent.New(segCfg, log); err != nil {
		return nil, fmt.Errorf("live segment torrents: %w", err)
	}
	if g.live, err = g.newLiveOrigin(); err != nil {
		return nil, err
	}
	g.metrics = newMetrics(g)
	g.echo = g.routes()
	g.server = &http.Server{Handler: g.echo, ReadHeaderTimeout: 10 * time.Second}
	if g.metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", g.metrics.httpHandler())
		g.metricsServer = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}

	if err := g.torrents.Restore(); err != nil {
		return nil, fmt.Errorf("restoring torrents from %s: %w", dataDir, err)
	}
	if cfg.Demo {
		if _, err := g.addDemo(); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
	}
	if err := g.startLive(); err != nil {
		return nil, err
	}
	g.wg.Add(3)
	// Every second the cache is brought under its capacity, as the registry's maintenance did
	// when the two were one loop (after a restart with a smaller capacity, or pieces a write
	// could not evict for, such as watched torrents', that became evictable since).
	go g.every(time.Second, g.cache.Trim)
	go g.resyncEvicted()
	go g.offers.run()
	if g.uploadLimit != nil {
		g.wg.Add(1)
		go g.every(uplinkLookEvery, g.noteUplink)
	}
	if g.cluster != nil {
		g.cluster.join()
	}
	ok = true
	return g, nil
}

// Addr is the address the HTTP server listens on.
func (g *Gateway) Addr() net.Addr { return g.ln.Addr() }

// MetricsAddr is the address of the /metrics listener, or nil when /metrics is served on Addr.
func (g *Gateway) MetricsAddr() net.Addr {
	if g.metricsLn == nil {
		return nil
	}
	return g.metricsLn.Addr()
}

// BTAddr is the address native BitTorrent peers reach the gateway at (TCP).
func (g *Gateway) BTAddr() net.Addr {
	for _, l := range g.client.Listeners() {
		if l.Addr().Network() == "tcp" {
			return l.Addr()
		}
	}
	return nil
}

// Client exposes the torrent client for tests and tools in this module.
func (g *Gateway) Client() *torrent.Client { return g.client }

// Serve answers HTTP until ctx ends, then shuts down gracefully.
func (g *Gateway) Serve(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- g.server.Serve(g.ln) }()
	if g.metricsServer != nil {
		go func() { errc <- g.metricsServer.Serve(g.metricsLn) }()
	}
	select {
	case err := <-errc:
		g.Close()
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	if !g.draining.Swap(true) {
		close(g.drainc)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout)
	defer cancel()
	// Websockets are hijacked and ignored by Shutdown: the tracker closes them itself.
	g.tracker.Close()
	// ffmpeg jobs read the gateway's own /stream, and a paused one would hold its request open
	// until the drain times out: they stop first (HLS requests waiting on them end at once).
	if g.transcoder != nil {
		g.transcoder.Close()
	}
	err := g.server.Shutdown(shutdownCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("drain: HTTP requests still open after %v were cut off", g.cfg.ShutdownTimeout)
	}
	if cerr := g.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close stops everything at once. It is safe to call more than once.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		close(g.stop)
		var errs []error
		if g.cluster != nil {
			// First: the other nodes stop sending viewers and tracker messages here.
			errs = append(errs, g.cluster.close())
		}
		if g.transcoder != nil {
			// First: its ffmpeg jobs read the gateway's own /stream.
			errs = append(errs, g.transcoder.Close())
		}
		if g.server != nil {
			errs = append(errs, ignoreClosed(g.server.Close()))
		} else if g.ln != nil {
			errs = append(errs, ignoreClosed(g.ln.Close()))
		}
		if g.metricsServer != nil {
			errs = append(errs, ignoreClosed(g.metricsServer.Close()))
		} else if g.metricsLn != nil {
			errs = append(errs, ignoreClosed(g.metricsLn.Close()))
		}
		if g.tracker != nil {
			errs = append(errs, g.tracker.Close())
		}
		if g.torrents != nil {
			errs = append(errs, g.torrents.Close())
		}
		g.wg.Wait()
		if g.client != nil {
			for _, err := range g.client.Close() {
				errs = append(errs, err)
			}
		}
		if g.bridge != nil {
			errs = append(errs, g.bridge.Close())
		}
		if g.storage != nil {
			errs = append(errs, g.storage.Close())
		}
		g.closeErr = errors.Join(errs...)
	})
	return g.closeErr
}

// checkWritable makes dir and proves that files can be created in it, so that a read-only or
// foreign-owned data folder fails at start and not at the first download.
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("not writable: %w", err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (c Config) pionICEServers() []webrtc.ICEServer {
	out := make([]webrtc.ICEServer, 0, len(c.ICEServers))
	for _, s := range c.ICEServers {
		out = append(out, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return out
}

// localPeer lets the gateway answer browser offers in the swarms it serves, without a socket.
type localPeer struct{ g *Gateway }

// WantOffer declines the offer when the gateway has no room for another WebRTC peer (in all or in
// this torrent): the tracker then relays it to another browser, and the browser keeps the others
// and the webseed.
func (p localPeer) WantOffer(infoHash, from signaling.ID) bool {
	if _, ok := p.g.torrents.Get(metainfo.Hash(infoHash)); !ok {
		return false
	}
	if p.g.bridge.Connected(bridge.PeerMeta{InfoHash: infoHash, PeerID: from}) {
		return false
	}
	if err := p.g.bridge.Room(infoHash); err != nil {
		p.g.webrtcRefused(infoHash, from, err)
		return false
	}
	return true
}

// HandleOffer answers; a limit reached since WantOffer makes it an error, and no answer is sent.
func (p localPeer) HandleOffer(ctx context.Context, o signaling.Offer) (string, error) {
	sdp, err := p.g.bridge.Answer(ctx, bridge.PeerMeta{InfoHash: o.InfoHash, PeerID: o.PeerID}, o.SDP)
	if errors.Is(err, bridge.ErrTooManyPeers) {
		p.g.webrtcRefused(o.InfoHash, o.PeerID, err)
	}
	return sdp, err
}

func (g *Gateway) webrtcRefused(infoHash, from signaling.ID, err error) {
	if errors.Is(err, bridge.ErrTooManyPeersInSwarm) {
		g.refused.webrtcPerTorrent.Add(1)
	} else {
		g.refused.webrtcPeers.Add(1)
	}
	g.log.Debug("declining a WebRTC offer", "infohash", metainfo.Hash(infoHash).HexString(), "from", from, "err", err)
}

// onDialable hands a data channel we offered to anacrolix as an outgoing peer; anacrolix then
// "dials" it through the bridge.
func (g *Gateway) onDialable(meta bridge.PeerMeta, addr string) {
	t, ok := g.client.Torrent(metainfo.Hash(meta.InfoHash))
	if !ok {
		return
	}
	t.AddPeers([]torrent.PeerInfo{{Addr: torrent.StringAddr(addr), Id: meta.PeerID, Source: "webrtc"}})
}

// onPeerConnAdded and onPeerConnClosed run with anacrolix's lock held: the registry only files
// the conn.
func (g *Gateway) onPeerConnAdded(pc *torrent.PeerConn) {
	if pc.Network == webrtcNetwork {
		g.torrents.WebRTCConnAdded(pc)
	}
}

func (g *Gateway) onPeerConnClosed(pc *torrent.PeerConn) {
	if pc.Network == webrtcNetwork {
		g.torrents.WebRTCConnClosed(pc)
	}
}

// DeclinedRequests counts browsers' requests rejected for pieces the gateway had not offered them
// (Config.UploadSharing).
func (g *Gateway) DeclinedRequests() int64 { return g.client.DeclinedRequests() }
