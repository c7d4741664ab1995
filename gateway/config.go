package gateway

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/pion/stun/v4"

	"github.com/swarmgate/swarmgate/cluster"
	"github.com/swarmgate/swarmgate/live"
	"github.com/swarmgate/swarmgate/signaling"
	"github.com/swarmgate/swarmgate/transcode"
)

// ICEServer is a STUN or TURN server handed to WebRTC peers (the gateway's own and the browsers').
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ParseICEServer reads "stun:host:port" or "turn:user:pass@host:port?transport=udp".
// Credentials ride in the URL because a flag or an env var holds one string.
func ParseICEServer(s string) (ICEServer, error) {
	scheme, rest, ok := strings.Cut(s, ":")
	switch {
	case !ok || rest == "":
		return ICEServer{}, fmt.Errorf("ice server %q: want stun:host:port or turn:user:pass@host:port", s)
	case scheme != "stun" && scheme != "stuns" && scheme != "turn" && scheme != "turns":
		return ICEServer{}, fmt.Errorf("ice server %q: scheme must be stun, stuns, turn or turns", s)
	}
	srv := ICEServer{}
	// The host never holds '@', a password may: split at the last one.
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		creds, hostPart := rest[:at], rest[at+1:]
		user, pass, ok := strings.Cut(creds, ":")
		if !ok || user == "" {
			return ICEServer{}, fmt.Errorf("ice server %q: credentials must be user:pass@", s)
		}
		srv.Username, srv.Credential = user, pass
		rest = hostPart
	}
	if (scheme == "turn" || scheme == "turns") && srv.Username == "" {
		return ICEServer{}, fmt.Errorf("ice server %q: a TURN server needs user:pass@", s)
	}
	u := scheme + ":" + rest
	if err := checkICEURL(u); err != nil {
		return ICEServer{}, fmt.Errorf("ice server %q: %v", s, err)
	}
	srv.URLs = []string{u}
	return srv, nil
}

// checkICEURL accepts what pion's WebRTC stack accepts (a URL it refuses would fail every peer
// connection later, not at start), with host and port spelled out.
func checkICEURL(u string) error {
	_, rest, _ := strings.Cut(u, ":")
	hostPort, _, _ := strings.Cut(rest, "?")
	host, port, err := net.SplitHostPort(hostPort)
	switch {
	case err != nil:
		return fmt.Errorf("want host:port: %v", err)
	case host == "":
		return fmt.Errorf("no host before the port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q: want 1..65535", port)
	}
	if _, err := stun.ParseURI(u); err != nil {
		switch {
		case errors.Is(err, stun.ErrSTUNQuery):
			return fmt.Errorf("a stun URL takes no ?query")
		case errors.Is(err, stun.ErrProtoType), errors.Is(err, stun.ErrInvalidQuery):
			return fmt.Errorf("want ?transport=udp or ?transport=tcp")
		}
		return err
	}
	return nil
}

// Config is everything a Gateway needs. Start from DefaultConfig and change what you need: a zero
// field means zero (no limit, off), not "the default". Validate says which fields are wrong and why.
type Config struct {
	// HTTPAddr is where the API, pages, streams, webseed and the websocket tracker listen.
	HTTPAddr string
	// MetricsAddr, when set, is a listener of its own for /metrics (e.g. 127.0.0.1:9090, kept off
	// the public port), which HTTPAddr then no longer answers; empty serves /metrics on HTTPAddr.
	MetricsAddr string
	// PublicURL is the base URL viewers reach the gateway at (e.g. https://tv.example.org) when a
	// reverse proxy sits in front; empty means "derive it from each request".
	PublicURL string
	// DataDir holds downloaded torrent data (one folder per infohash) and piece completion state.
	DataDir string
	// BTPort is the TCP and uTP port for native BitTorrent peers; 0 picks a free one.
	BTPort int
	// BTHost limits the BitTorrent listeners to one address ("" = all).
	BTHost string
	// NoUPnP stops the BitTorrent client from asking the LAN's router to forward its port.
	NoUPnP bool
	// NoDHT turns the mainline DHT off (tests, private deployments).
	NoDHT bool
	// WebRTCUDPPort is the one UDP port shared by every WebRTC peer; 0 means an ephemeral port each.
	WebRTCUDPPort int
	// PublicIPs are advertised as host candidates instead of local addresses (NAT 1:1).
	PublicIPs []string
	// ICEServers go to the gateway's WebRTC stack and to every browser page; default none.
	ICEServers []ICEServer
	// LoopbackWebRTC restricts WebRTC to the loopback interface (tests on machines without a
	// network): loopback candidates on, mDNS off.
	LoopbackWebRTC bool
	// UploadRate caps everything the gateway sends of torrent data, to peers of any kind and over
	// HTTP, in bytes per second; 0 means no cap.
	UploadRate int64
	// UploadSharing, with an UploadRate, makes the gateway send each piece to as few browsers as
	// it can (super-seeding): a browser hears of the pieces no other browser holds, a few at a
	// time, and while the cap is reached of a piece others hold only when it has gone without it
	// for a while; browsers pass pieces on to each other (third_party/README.md, "Upload sharing").
	UploadSharing bool
	// EmbedOrigins are the origins (https://example.org, http://127.0.0.1:9000) whose pages may
	// frame the watch and embed pages; empty means any site may.
	EmbedOrigins []string
	// CORSOrigins are the origins whose pages may read the gateway's answers cross-origin (API,
	// streams, webseed); empty or "*" means any, for GET and HEAD only. A list of origins also
	// lets those pages POST and DELETE with an Authorization header.
	CORSOrigins []string

	// AdminToken, when set, must come as "Authorization: Bearer <token>" to delete torrents, and
	// to add them when AllowAdd is "token". Watching never needs it.
	AdminToken string
	// AllowAdd says who may add torrents over the API: "any", "token" (AdminToken holders) or
	// "none" (only the operator's --demo and seeded torrents). Empty means "token" when
	// AdminToken is set, else "any".
	AllowAdd string
	// AllowInfoHashes (40 hex digits each), when not empty, are the only torrents the API adds and
	// the only swarms the tracker serves besides the gateway's own torrents.
	AllowInfoHashes []string
	// TrustedProxies are CIDRs of reverse proxies whose X-Forwarded-For names the client IP for
	// per-IP limits; without them the TCP peer address is the client.
	TrustedProxies []string

	// MaxTorrents bounds the torrents the gateway holds; adding one more over the API answers
	// 503. 0 means no limit.
	MaxTorrents int
	// MaxWSPerIP bounds the tracker websockets of one client IP (429 at upgrade); 0 = no limit.
	MaxWSPerIP int
	// MaxSwarmsPerSocket bounds the swarms one tracker websocket may announce in.
	MaxSwarmsPerSocket int
	// MaxMessageBytes bounds one tracker message; a larger one closes its socket.
	MaxMessageBytes int64
	// MaxOffersPerSec is the rate of WebRTC offers one tracker websocket may send; offers over it
	// are dropped with a failure reason. 0 means no limit.
	MaxOffersPerSec float64
	// MaxWebRTCPeers bounds the gateway's WebRTC peers in all; MaxWebRTCPeersPerTorrent those of
	// one torrent (0 = only the total applies). Over either, the gateway declines browser offers,
	// which then go to other browsers.
	MaxWebRTCPeers           int
	MaxWebRTCPeersPerTorrent int

	// CacheSize bounds the downloaded data under the data dir's torrents/ in bytes: pieces of
	// torrents nobody watches are evicted least recently used first. 0 means no bound.
	CacheSize int64
	// IdleTimeout drops a downloaded torrent, data and all, that nobody watched for this long.
	// Seeded-in-place torrents and the demo stay. 0 means never.
	IdleTimeout time.Duration

	// IngestToken, when set, turns live ingest on: broadcasters upload signed segments with
	// "Authorization: Bearer <token>". Empty: uploads answer 403.
	IngestToken string
	// LiveWindow is how far back each live stream's window keeps segments.
	LiveWindow time.Duration
	// MaxLiveStreams bounds the live streams held at once (ended ones make room).
	MaxLiveStreams int
	// LiveMaxBytes caps the segment bytes each live stream keeps, in memory and on disk (below
	// DataDir, so that the window survives a restart); the oldest lose theirs first, and the
	// playlist (how far back viewers can seek) starts after them.
	LiveMaxBytes int64
	// Relays are live streams this gateway follows from other gateways, by their URLs there
	// (http(s)://host/live/<stream id>); several URLs of one stream are its sources, tried alike.
	// Segments come over BitTorrent and are verified against the broadcaster's signed entries.
	Relays []string

	// Cluster: several gateways as one (package cluster, docs/cluster.md). Without ClusterNATS
	// and ClusterListen the gateway runs alone and starts nothing of NATS.
	//
	// ClusterNATS is an existing NATS to join (nats://user:password@host:4222, comma-separated),
	// ClusterCreds a credentials file for it. ClusterListen is where this gateway's embedded NATS
	// takes the other nodes' routes; ClusterRoutes are theirs (this node's own may be listed);
	// ClusterSecret authenticates the routes. NodeName names this node (default: the host name);
	// ClusterAdvertise is this node's HTTP base URL as the other nodes reach it (default:
	// http:// and the HTTP listener's address, or the host name when it listens on all).
	ClusterNATS, ClusterCreds, ClusterListen  string
	ClusterRoutes                             []string
	ClusterSecret, NodeName, ClusterAdvertise string

	// Demo seeds the built-in demo video on start.
	Demo bool
	// FFprobe is the ffprobe binary (a name looked up in PATH, or a path) that learns what media
	// files hold, for players to decide how to play them; empty turns probing off.
	FFprobe string
	// FFmpeg is the ffmpeg binary that makes HLS for browsers that cannot play a file as it is
	// (package transcode); empty, or not installed, plays files as they are only.
	FFmpeg string
	// Transcode is what the gateway may make: "on" (remux and transcode), "remux" (the video
	// copied, only the audio re-encoded) or "off".
	Transcode string
	// MaxTranscodes bounds the ffmpeg jobs at once; over it viewers are told to try again.
	MaxTranscodes int
	// HWAccel asks for a hardware H.264 encoder: "vaapi", "nvenc", "qsv", or "" for software
	// (also the fallback when the hardware one fails).
	HWAccel string
	// ViewerLinger is how long a torrent counts as watched after its last HTTP read, so that its
	// files are fetched ahead in order.
	ViewerLinger time.Duration
	// MetadataWait bounds how long a stream request waits for a magnet's metadata.
	MetadataWait time.Duration
	// ShutdownTimeout bounds the graceful drain of HTTP connections.
	ShutdownTimeout time.Duration
	// AccessLog is how HTTP requests are logged, one record each (see accesslog.go): "on" (or
	// empty) logs media, probe and upload requests that succeed at debug and the rest at info,
	// "all" logs every request at info, "off" none.
	AccessLog string

	// fetchPrivate lets .torrent URLs reach private and loopback addresses (tests serve on
	// loopback); off, only public addresses are fetched.
	fetchPrivate bool
	// tuneTorrent, when set, changes the torrent client's config before the client is made
	// (tests: a DHT that finds no nodes without leaving loopback).
	tuneTorrent func(*torrent.ClientConfig)

	// writeRetry is how long a torrent's downloading pauses after a disk write failed (tests
	// shorten it; 0 means the default).
	writeRetry time.Duration
}

// minLiveMaxBytes catches "--live-max-bytes 256" meant as 256M.
const minLiveMaxBytes = 1 << 20

// minCacheSize catches "--cache-size 10" meant as 10G: nothing useful fits below it.
const minCacheSize = 1 << 20

const defaultWriteRetry = 10 * time.Second

// DefaultConfig returns the settings a new user gets.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:                 ":8080",
		DataDir:                  "swarmgate-data",
		BTPort:                   6881,
		CacheSize:                10 << 30,
		IdleTimeout:              24 * time.Hour,
		MaxTorrents:              100,
		MaxWSPerIP:               20,
		MaxSwarmsPerSocket:       signaling.DefaultConfig().MaxSwarmsPerSocket,
		MaxMessageBytes:          signaling.DefaultConfig().MaxMessageBytes,
		MaxOffersPerSec:          20,
		MaxWebRTCPeers:           500,
		MaxWebRTCPeersPerTorrent: 50,
		LiveWindow:               30 * time.Minute,
		MaxLiveStreams:           10,
		LiveMaxBytes:             live.DefaultMaxBytes,
		ViewerLinger:             30 * time.Second,
		FFprobe:                  "ffprobe",
		FFmpeg:                   "ffmpeg",
		UploadSharing:            true,
		Transcode:                string(transcode.PolicyOn),
		MaxTranscodes:            2,
		MetadataWait:             20 * time.Second,
		ShutdownTimeout:          10 * time.Second,
		AccessLog:                AccessLogOn,
	}
}

// ErrInvalidConfig is what every problem Validate reports matches with errors.Is.
var ErrInvalidConfig = errors.New("invalid gateway config")

// FieldError ties an error to the Config field it comes from: a value Validate refuses, or what
// New met using it (a port in use, a folder it cannot create). Messages name Config fields; a
// command line maps them to its own flags (cli does).
type FieldError struct {
	Field string // the Config field, e.g. "HTTPAddr"
	Err   error  // what is wrong, starting with the value where that helps
}

func (e *FieldError) Error() string { return e.Field + " " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// invalidValue is a problem Validate found: it matches ErrInvalidConfig without saying so in
// every message.
type invalidValue string

func (v invalidValue) Error() string        { return string(v) }
func (v invalidValue) Is(target error) bool { return target == ErrInvalidConfig }

func fieldError(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Err: invalidValue(fmt.Sprintf(format, args...))}
}

// Validate reports every setting that cannot work, each a *FieldError matching ErrInvalidConfig,
// joined with errors.Join.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) { errs = append(errs, fieldError(field, format, args...)) }
	checkAddr := func(field, addr string) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			bad(field, "%q: want host:port or :port: %v", addr, err)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad(field, "%q: port %q must be a number 0..65535", addr, port)
		}
	}
	checkAddr("HTTPAddr", c.HTTPAddr)
	if c.MetricsAddr != "" {
		checkAddr("MetricsAddr", c.MetricsAddr)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad("PublicURL", "%q: want an absolute http(s) URL such as https://tv.example.org", c.PublicURL)
		case u.User != nil || u.RawQuery != "" || u.Fragment != "":
			bad("PublicURL", "%q: want a base URL without user, ?query or #fragment", c.PublicURL)
		}
	}
	if c.DataDir == "" {
		bad("DataDir", "must not be empty")
	}
	errs = append(errs, c.validateCluster()...)
	if c.BTPort < 0 || c.BTPort > 65535 {
		bad("BTPort", "%d: must be 0..65535", c.BTPort)
	}
	if c.WebRTCUDPPort < 0 || c.WebRTCUDPPort > 65535 {
		bad("WebRTCUDPPort", "%d: must be 0..65535", c.WebRTCUDPPort)
	} else if c.WebRTCUDPPort != 0 && c.WebRTCUDPPort == c.BTPort {
		bad("WebRTCUDPPort", "%d: BTPort's uTP already uses this UDP port; pick another", c.WebRTCUDPPort)
	}
	for _, ip := range c.PublicIPs {
		parsed := net.ParseIP(ip)
		switch {
		case parsed == nil:
			bad("PublicIPs", "%q: not an IP address", ip)
		case parsed.IsUnspecified() || parsed.IsMulticast():
			bad("PublicIPs", "%q: peers cannot reach an unspecified or multicast address", ip)
		}
	}
	for _, s := range c.ICEServers {
		if len(s.URLs) == 0 {
			bad("ICEServers", "an entry has no URL")
		}
		for _, u := range s.URLs {
			if err := checkICEURL(u); err != nil {
				bad("ICEServers", "%q: %v", u, err)
			} else if strings.HasPrefix(u, "turn") && s.Username == "" {
				bad("ICEServers", "%q: a TURN server needs user:pass@", u)
			}
		}
	}
	for _, o := range c.EmbedOrigins {
		if err := checkOrigin(o); err != nil {
			bad("EmbedOrigins", "%q: %v", o, err)
		}
	}
	for _, o := range c.CORSOrigins {
		if o == "*" {
			continue
		}
		if err := checkOrigin(o); err != nil {
			bad("CORSOrigins", "%q: %v (or *)", o, err)
		}
	}
	if _, err := c.allowAdd(); err != nil {
		errs = append(errs, err)
	}
	if c.AdminToken != "" && len(c.AdminToken) < minTokenLen {
		bad("AdminToken", "must be at least %d characters; make one with `openssl rand -hex 32`", minTokenLen)
	}
	if c.IngestToken != "" && len(c.IngestToken) < minTokenLen {
		bad("IngestToken", "must be at least %d characters; make one with `openssl rand -hex 32`", minTokenLen)
	}
	for _, u := range c.Relays {
		if _, _, err := live.ParseStreamURL(u); err != nil {
			bad("Relays", "%v", err)
		}
	}
	for _, h := range c.AllowInfoHashes {
		if _, err := parseInfoHash(h); err != nil {
			bad("AllowInfoHashes", "%q: must be 40 hex digits", h)
		}
	}
	if _, err := c.trustedProxies(); err != nil {
		errs = append(errs, err)
	}
	switch c.AccessLog {
	case "", AccessLogOn, AccessLogAll, AccessLogOff:
	default:
		bad("AccessLog", "%q: want on, all or off", c.AccessLog)
	}
	for _, l := range []struct {
		field string
		v     int
		min   int
	}{
		{"MaxTorrents", c.MaxTorrents, 0},
		{"MaxWSPerIP", c.MaxWSPerIP, 0},
		{"MaxSwarmsPerSocket", c.MaxSwarmsPerSocket, 1},
		{"MaxWebRTCPeers", c.MaxWebRTCPeers, 1},
		{"MaxWebRTCPeersPerTorrent", c.MaxWebRTCPeersPerTorrent, 0},
		{"MaxLiveStreams", c.MaxLiveStreams, 1},
	} {
		switch {
		case l.v >= l.min:
		case l.min == 0:
			bad(l.field, "%d: must be 0 (no limit) or positive", l.v)
		default:
			bad(l.field, "%d: must be at least %d", l.v, l.min)
		}
	}
	if c.LiveMaxBytes < minLiveMaxBytes {
		bad("LiveMaxBytes", "%d: must be at least %d (1 MiB: a few segments)", c.LiveMaxBytes, minLiveMaxBytes)
	}
	if c.MaxMessageBytes < 1024 {
		bad("MaxMessageBytes", "%d: must be at least 1024 (an SDP alone needs more)", c.MaxMessageBytes)
	}
	if c.MaxOffersPerSec < 0 || math.IsNaN(c.MaxOffersPerSec) || math.IsInf(c.MaxOffersPerSec, 0) {
		bad("MaxOffersPerSec", "%v: must be 0 (no limit) or positive", c.MaxOffersPerSec)
	}
	if c.UploadRate < 0 {
		bad("UploadRate", "%d: must be 0 (no cap) or positive", c.UploadRate)
	}
	if c.CacheSize < 0 {
		bad("CacheSize", "%d: must be 0 (unlimited) or positive", c.CacheSize)
	} else if c.CacheSize > 0 && c.CacheSize < minCacheSize {
		bad("CacheSize", "%d: at least 1M (sizes take k, M, G suffixes, e.g. 10G; 0 = unlimited)", c.CacheSize)
	}
	if _, err := transcode.ParsePolicy(c.Transcode); err != nil {
		bad("Transcode", "%v", err)
	}
	if _, err := transcode.ParseHWAccel(c.HWAccel); err != nil {
		bad("HWAccel", "%v", err)
	}
	if c.MaxTranscodes < 1 {
		bad("MaxTranscodes", "%d: must be at least 1 (--transcode off turns HLS off)", c.MaxTranscodes)
	}
	if c.IdleTimeout < 0 {
		bad("IdleTimeout", "%v: must be 0 (never) or positive", c.IdleTimeout)
	}
	for _, d := range []struct {
		field string
		d     time.Duration
	}{{"LiveWindow", c.LiveWindow}, {"ViewerLinger", c.ViewerLinger}, {"MetadataWait", c.MetadataWait}, {"ShutdownTimeout", c.ShutdownTimeout}} {
		if d.d <= 0 {
			bad(d.field, "%v: must be positive", d.d)
		}
	}
	return errors.Join(errs...)
}

// checkOrigin accepts a web origin as a browser writes it: scheme, host and optional port, nothing
// else. It ends up in a Content-Security-Policy header, so anything looser is refused.
func checkOrigin(s string) error {
	const want = "want an origin such as https://example.org or http://127.0.0.1:9000"
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.Scheme+"://"+u.Host != s || u.User != nil {
		return fmt.Errorf("%s", want)
	}
	for _, r := range u.Host {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-:[]", r)
		if !ok {
			return fmt.Errorf("%s (%q is not allowed in a host)", want, r)
		}
	}
	if port := u.Port(); port != "" || strings.HasSuffix(u.Host, ":") {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s (bad port %q)", want, port)
		}
	}
	return nil
}

// ParseByteRate reads a rate in bytes per second: a whole number with an optional binary suffix,
// k, M or G (KiB, MiB, GiB), e.g. "512k" or "10M". "0" means no cap.
func ParseByteRate(s string) (int64, error) {
	n, ok := parseBytes(s)
	if !ok {
		return 0, fmt.Errorf("%q: want bytes per second such as 0, 800000, 512k or 10M", s)
	}
	return n, nil
}

// ParseByteSize reads a size in bytes, written as for ParseByteRate, e.g. "500M" or "10G".
func ParseByteSize(s string) (int64, error) {
	n, ok := parseBytes(s)
	if !ok {
		return 0, fmt.Errorf("%q: want a size in bytes such as 0, 500M or 10G", s)
	}
	return n, nil
}

func parseBytes(s string) (int64, bool) {
	mult := int64(1)
	num := strings.TrimSpace(s)
	for suffix, m := range map[string]int64{"k": 1 << 10, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30} {
		if rest, ok := strings.CutSuffix(num, suffix); ok {
			num, mult = rest, m
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, false
	}
	return n * mult, true
}

// Who may add torrents over the API.
const (
	allowAddAny   = "any"
	allowAddToken = "token"
	allowAddNone  = "none"
)

// minTokenLen keeps admin tokens out of guessing range.
const minTokenLen = 16

// allowAdd is the effective AllowAdd mode.
func (c Config) allowAdd() (string, error) {
	switch c.AllowAdd {
	case "":
		if c.AdminToken != "" {
			return allowAddToken, nil
		}
		return allowAddAny, nil
	case allowAddAny, allowAddNone:
		return c.AllowAdd, nil
	case allowAddToken:
		if c.AdminToken == "" {
			return "", fieldError("AllowAdd", "token: needs AdminToken to be set")
		}
		return c.AllowAdd, nil
	}
	return "", fieldError("AllowAdd", "%q: want any, token or none", c.AllowAdd)
}

func (c Config) trustedProxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			// A bare address is a one-host prefix.
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fieldError("TrustedProxies", "%q: want a CIDR such as 10.0.0.0/8 or an IP address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// ReadInfoHashFile reads an allowlist file: one 40-hex infohash per line; blank lines and text
// after '#' are ignored. Errors name the line.
func ReadInfoHashFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if _, err := parseInfoHash(line); err != nil {
			return nil, fmt.Errorf("%s:%d: %q is not 40 hex digits", path, i+1, line)
		}
		out = append(out, strings.ToLower(line))
	}
	return out, nil
}

// clusterFields names the gateway's Config fields for the cluster's.
var clusterFields = map[string]string{"Name": "NodeName", "NATSURL": "ClusterNATS", "CredsFile": "ClusterCreds",
	"Listen": "ClusterListen", "Routes": "ClusterRoutes", "Secret": "ClusterSecret"}

// clusterConfig is the cluster part of c, before the listeners exist (HTTPURL is filled later).
func (c Config) clusterConfig() cluster.Config {
	cc := cluster.DefaultConfig()
	cc.Name, cc.NATSURL, cc.CredsFile = c.NodeName, c.ClusterNATS, c.ClusterCreds
	cc.Listen, cc.Routes, cc.Secret = c.ClusterListen, c.ClusterRoutes, c.ClusterSecret
	if cc.Name == "" {
		cc.Name = cluster.DefaultName()
	}
	cc.HTTPURL = c.ClusterAdvertise
	return cc
}

// validateCluster checks the cluster settings when there are any, in the gateway's field names.
func (c Config) validateCluster() []error {
	cc := c.clusterConfig()
	if !cc.Enabled() {
		var errs []error
		for _, f := range []struct{ field, value string }{{"ClusterSecret", c.ClusterSecret}, {"ClusterRoutes", strings.Join(c.ClusterRoutes, ",")},
			{"ClusterCreds", c.ClusterCreds}, {"ClusterAdvertise", c.ClusterAdvertise}} {
			if f.value != "" {
				errs = append(errs, fieldError(f.field, "is set, but neither ClusterNATS nor ClusterListen is: the gateway would run alone"))
			}
		}
		return errs
	}
	var errs []error
	if c.ClusterAdvertise != "" {
		if u, err := url.Parse(c.ClusterAdvertise); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fieldError("ClusterAdvertise", "%q: want this node's base URL, such as http://10.0.0.2:8080", c.ClusterAdvertise))
		}
	}
	err := cc.Validate()
	if err == nil {
		return errs
	}
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *cluster.FieldError
		if errors.As(e, &fe) {
			errs = append(errs, fieldError(clusterFields[fe.Field], "%s", fe.Msg))
		} else {
			errs = append(errs, fieldError("Cluster", "%v", e))
		}
	}
	return errs
}
