package gateway

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
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
	hostPort, _, _ := strings.Cut(rest, "?")
	if _, _, err := net.SplitHostPort(hostPort); err != nil {
		return ICEServer{}, fmt.Errorf("ice server %q: %v", s, err)
	}
	if (scheme == "turn" || scheme == "turns") && srv.Username == "" {
		return ICEServer{}, fmt.Errorf("ice server %q: a TURN server needs user:pass@", s)
	}
	srv.URLs = []string{scheme + ":" + rest}
	return srv, nil
}

// Config is everything a Gateway needs. Zero values are filled in by DefaultConfig; Validate says
// which setting is wrong and why.
type Config struct {
	// HTTPAddr is where the API, pages, streams, webseed and the websocket tracker listen.
	HTTPAddr string
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
	// EmbedOrigins are the origins (https://example.org, http://127.0.0.1:9000) whose pages may
	// frame the watch and embed pages; empty means any site may.
	EmbedOrigins []string
	// CacheSize bounds the downloaded data under the data dir's torrents/ in bytes: pieces of
	// torrents nobody watches are evicted least recently used first. 0 means no bound.
	CacheSize int64
	// IdleTimeout drops a downloaded torrent, data and all, that nobody watched for this long.
	// Seeded-in-place torrents and the demo stay. 0 means never.
	IdleTimeout time.Duration
	// Demo seeds the built-in demo video on start.
	Demo bool
	// ViewerLinger is how long a torrent counts as watched after its last HTTP read, so that its
	// files are fetched ahead in order.
	ViewerLinger time.Duration
	// MetadataWait bounds how long a stream request waits for a magnet's metadata.
	MetadataWait time.Duration
	// ShutdownTimeout bounds the graceful drain of HTTP connections.
	ShutdownTimeout time.Duration

	// writeRetry is how long a torrent's downloading pauses after a disk write failed (tests
	// shorten it; 0 means the default).
	writeRetry time.Duration
}

// minCacheSize catches "--cache-size 10" meant as 10G: nothing useful fits below it.
const minCacheSize = 1 << 20

const defaultWriteRetry = 10 * time.Second

// DefaultConfig returns the settings a new user gets.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:        ":8080",
		DataDir:         "swarmgate-data",
		BTPort:          6881,
		CacheSize:       10 << 30,
		IdleTimeout:     24 * time.Hour,
		ViewerLinger:    30 * time.Second,
		MetadataWait:    20 * time.Second,
		ShutdownTimeout: 10 * time.Second,
	}
}

// Validate reports the first setting that cannot work, naming it.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("http-addr %q: %v", c.HTTPAddr, err)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("public-url %q: want an absolute http(s) URL such as https://tv.example.org", c.PublicURL)
		}
	}
	if c.DataDir == "" {
		return fmt.Errorf("data-dir: must not be empty")
	}
	if c.BTPort < 0 || c.BTPort > 65535 {
		return fmt.Errorf("bt-port %d: must be 0..65535", c.BTPort)
	}
	if c.WebRTCUDPPort < 0 || c.WebRTCUDPPort > 65535 {
		return fmt.Errorf("webrtc-udp-port %d: must be 0..65535", c.WebRTCUDPPort)
	}
	for _, ip := range c.PublicIPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("public-ip %q: not an IP address", ip)
		}
	}
	for _, s := range c.ICEServers {
		if len(s.URLs) == 0 {
			return fmt.Errorf("ice-server: an entry has no URL")
		}
	}
	for _, o := range c.EmbedOrigins {
		if err := checkOrigin(o); err != nil {
			return fmt.Errorf("embed-origins %q: %v", o, err)
		}
	}
	if c.UploadRate < 0 {
		return fmt.Errorf("upload-rate %d: must be 0 (no cap) or positive", c.UploadRate)
	}
	if c.CacheSize < 0 {
		return fmt.Errorf("cache-size %d: must be 0 (unlimited) or positive", c.CacheSize)
	}
	if c.CacheSize > 0 && c.CacheSize < minCacheSize {
		return fmt.Errorf("cache-size %d: at least 1M (sizes take k, M, G suffixes, e.g. 10G; 0 = unlimited)", c.CacheSize)
	}
	if c.IdleTimeout < 0 {
		return fmt.Errorf("idle-timeout %v: must be 0 (never) or positive", c.IdleTimeout)
	}
	if c.ViewerLinger <= 0 || c.MetadataWait <= 0 || c.ShutdownTimeout <= 0 {
		return fmt.Errorf("timeouts must be positive")
	}
	return nil
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
