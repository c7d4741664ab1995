package gateway

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestValidateNamesTheSetting: each wrong setting is refused as a *FieldError naming its field
// (the first of want) and a reason, matching ErrInvalidConfig.
func TestValidateNamesTheSetting(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"http-addr without port", func(c *Config) { c.HTTPAddr = "localhost" }, []string{"HTTPAddr", "host:port"}},
		{"http-addr port not a number", func(c *Config) { c.HTTPAddr = ":http-ish" }, []string{"HTTPAddr", "0..65535"}},
		{"http-addr port too big", func(c *Config) { c.HTTPAddr = ":70000" }, []string{"HTTPAddr", "0..65535"}},
		{"metrics-addr without port", func(c *Config) { c.MetricsAddr = "localhost" }, []string{"MetricsAddr", "host:port"}},
		{"public-url relative", func(c *Config) { c.PublicURL = "/tv" }, []string{"PublicURL", "absolute"}},
		{"public-url with query", func(c *Config) { c.PublicURL = "https://tv.example.org/?a=1" }, []string{"PublicURL", "query"}},
		{"public-url with user", func(c *Config) { c.PublicURL = "https://me@tv.example.org" }, []string{"PublicURL", "user"}},
		{"data-dir empty", func(c *Config) { c.DataDir = "" }, []string{"DataDir", "empty"}},
		{"bt-port", func(c *Config) { c.BTPort = 65536 }, []string{"BTPort", "0..65535"}},
		{"webrtc-udp-port", func(c *Config) { c.WebRTCUDPPort = -1 }, []string{"WebRTCUDPPort", "0..65535"}},
		{"webrtc-udp-port is bt-port", func(c *Config) { c.BTPort, c.WebRTCUDPPort = 6881, 6881 }, []string{"WebRTCUDPPort", "BTPort", "uTP"}},
		{"public-ip not an IP", func(c *Config) { c.PublicIPs = []string{"203.0.113.1", "tv.example.org"} }, []string{"PublicIPs", "tv.example.org", "not an IP"}},
		{"public-ip unspecified", func(c *Config) { c.PublicIPs = []string{"0.0.0.0"} }, []string{"PublicIPs", "unspecified"}},
		{"public-ip multicast", func(c *Config) { c.PublicIPs = []string{"ff02::1"} }, []string{"PublicIPs", "multicast"}},
		{"ice-server no URL", func(c *Config) { c.ICEServers = []ICEServer{{}} }, []string{"ICEServers", "no URL"}},
		{"ice-server without host", func(c *Config) { c.ICEServers = []ICEServer{{URLs: []string{"stun::3478"}}} }, []string{"ICEServers", "no host"}},
		{"ice-server bad port", func(c *Config) { c.ICEServers = []ICEServer{{URLs: []string{"stun:h.example.org:99999"}}} }, []string{"ICEServers", "port"}},
		{"ice-server stun query", func(c *Config) {
			c.ICEServers = []ICEServer{{URLs: []string{"stun:h.example.org:3478?transport=udp"}}}
		}, []string{"ICEServers", "query"}},
		{"ice-server turn transport", func(c *Config) {
			c.ICEServers = []ICEServer{{URLs: []string{"turn:h.example.org:3478?transport=sctp"}, Username: "u", Credential: "p"}}
		}, []string{"ICEServers", "transport"}},
		{"ice-server turn without user", func(c *Config) { c.ICEServers = []ICEServer{{URLs: []string{"turn:h.example.org:3478"}}} }, []string{"ICEServers", "user:pass"}},
		{"upload-rate", func(c *Config) { c.UploadRate = -1 }, []string{"UploadRate"}},
		{"timeout", func(c *Config) { c.MetadataWait = 0 }, []string{"MetadataWait", "positive"}},
		{"allow-add token without admin token", func(c *Config) { c.AllowAdd, c.AdminToken = "token", "" }, []string{"AllowAdd", "AdminToken"}},
		{"trusted-proxy", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/33"} }, []string{"TrustedProxies", "CIDR"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.mutate(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatalf("%+v accepted", cfg)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %q does not match ErrInvalidConfig", err)
			}
			if got := fieldsOf(err); len(got) != 1 || got[0] != tc.want[0] {
				t.Errorf("error %q names fields %q, want [%s]", err, got, tc.want[0])
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if err := testConfig(t).Validate(); err != nil {
		t.Errorf("the test config: %v", err)
	}
}

// TestValidateReportsEveryProblem: one run names every wrong field, so a config file is fixed in
// one go rather than one restart per mistake.
func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTPAddr = "localhost"
	cfg.CacheSize = -1
	cfg.AllowAdd = "token"
	cfg.AdminToken = ""
	cfg.TrustedProxies = []string{"not-a-cidr"}
	cfg.MaxWebRTCPeers = 0
	err := cfg.Validate()
	want := []string{"HTTPAddr", "AllowAdd", "TrustedProxies", "MaxWebRTCPeers", "CacheSize"}
	if got := fieldsOf(err); !slices.Equal(got, want) {
		t.Errorf("Validate named %q, want %q (in the order Validate checks); error:\n%v", got, want, err)
	}
}

// fieldsOf lists the Field of every *FieldError in err's tree, in order.
func fieldsOf(err error) []string {
	var fields []string
	var walk func(error)
	walk = func(err error) {
		var fe *FieldError
		switch e := err.(type) {
		case nil:
		case interface{ Unwrap() []error }:
			for _, err := range e.Unwrap() {
				walk(err)
			}
		default:
			if errors.As(err, &fe) {
				fields = append(fields, fe.Field)
			}
		}
	}
	walk(err)
	return fields
}

func TestParseICEServerRefusesWhatPionRefuses(t *testing.T) {
	for _, bad := range []string{"stun::3478", "stun:host:", "stun:host:x", "stun:host:0", "stun:host:3478?transport=udp",
		"turn:u:p@host:3478?transport=quic", "turn:u:p@:3478"} {
		if srv, err := ParseICEServer(bad); err == nil {
			t.Errorf("ParseICEServer(%q) = %+v, want an error", bad, srv)
		} else if !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseICEServer(%q): error %q does not quote it", bad, err)
		}
	}
}

// TestNewNamesTheSetting: what only binding or writing shows (a port in use, a data folder that
// cannot be one) fails New with the setting's name.
func TestNewNamesTheSetting(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	tcpPort := tcp.Addr().(*net.TCPAddr).Port
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	udpPort := udp.LocalAddr().(*net.UDPAddr).Port
	aFile := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(aFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	torrentsIsFile := t.TempDir()
	if err := os.WriteFile(filepath.Join(torrentsIsFile, torrentsDir), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"http-addr in use", func(c *Config) { c.HTTPAddr = tcp.Addr().String() }, []string{"HTTPAddr", "in use"}},
		{"bt-port in use", func(c *Config) { c.BTPort = tcpPort }, []string{"BTPort " + strconv.Itoa(tcpPort), "in use"}},
		{"webrtc-udp-port in use", func(c *Config) { c.WebRTCUDPPort = udpPort }, []string{"WebRTCUDPPort " + strconv.Itoa(udpPort), "in use"}},
		{"data-dir is a file", func(c *Config) { c.DataDir = aFile }, []string{"DataDir", aFile}},
		{"data-dir's torrents is a file", func(c *Config) { c.DataDir = torrentsIsFile }, []string{"DataDir", torrentsIsFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.mutate(&cfg)
			g, err := New(cfg, testLogger(t))
			if err == nil {
				g.Close()
				t.Fatalf("New with %s succeeded", tc.name)
			}
			if got := fieldsOf(err); len(got) != 1 || !strings.HasPrefix(tc.want[0], got[0]) {
				t.Errorf("error %q names fields %q, want %s", err, got, tc.want[0])
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestNewRefusesReadOnlyDataDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes into read-only folders")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, torrentsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, torrentsDir), 0o555); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(filepath.Join(dir, torrentsDir), 0o755)
	cfg := testConfig(t)
	cfg.DataDir = dir
	g, err := New(cfg, testLogger(t))
	if err == nil {
		g.Close()
		t.Fatal("New with a read-only data folder succeeded")
	}
	if !strings.Contains(err.Error(), "DataDir") || !strings.Contains(err.Error(), "not writable") {
		t.Errorf("error %q does not say DataDir is not writable", err)
	}
}
