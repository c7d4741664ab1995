package gateway

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestValidateNamesTheSetting: each wrong setting is refused with its flag's name and a reason.
func TestValidateNamesTheSetting(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"http-addr without port", func(c *Config) { c.HTTPAddr = "localhost" }, []string{"http-addr", "host:port"}},
		{"http-addr port not a number", func(c *Config) { c.HTTPAddr = ":http-ish" }, []string{"http-addr", "0..65535"}},
		{"http-addr port too big", func(c *Config) { c.HTTPAddr = ":70000" }, []string{"http-addr", "0..65535"}},
		{"metrics-addr without port", func(c *Config) { c.MetricsAddr = "localhost" }, []string{"metrics-addr", "host:port"}},
		{"public-url relative", func(c *Config) { c.PublicURL = "/tv" }, []string{"public-url", "absolute"}},
		{"public-url with query", func(c *Config) { c.PublicURL = "https://tv.example.org/?a=1" }, []string{"public-url", "query"}},
		{"public-url with user", func(c *Config) { c.PublicURL = "https://me@tv.example.org" }, []string{"public-url", "user"}},
		{"data-dir empty", func(c *Config) { c.DataDir = "" }, []string{"data-dir", "empty"}},
		{"bt-port", func(c *Config) { c.BTPort = 65536 }, []string{"bt-port", "0..65535"}},
		{"webrtc-udp-port", func(c *Config) { c.WebRTCUDPPort = -1 }, []string{"webrtc-udp-port", "0..65535"}},
		{"webrtc-udp-port is bt-port", func(c *Config) { c.BTPort, c.WebRTCUDPPort = 6881, 6881 }, []string{"webrtc-udp-port", "bt-port", "uTP"}},
		{"public-ip not an IP", func(c *Config) { c.PublicIPs = []string{"203.0.113.1", "tv.example.org"} }, []string{"public-ip", "tv.example.org", "not an IP"}},
		{"public-ip unspecified", func(c *Config) { c.PublicIPs = []string{"0.0.0.0"} }, []string{"public-ip", "unspecified"}},
		{"public-ip multicast", func(c *Config) { c.PublicIPs = []string{"ff02::1"} }, []string{"public-ip", "multicast"}},
		{"ice-server no URL", func(c *Config) { c.ICEServers = []ICEServer{{}} }, []string{"ice-server", "no URL"}},
		{"ice-server without host", func(c *Config) { c.ICEServers = []ICEServer{{URLs: []string{"stun::3478"}}} }, []string{"ice-server", "no host"}},
		{"ice-server bad port", func(c *Config) { c.ICEServers = []ICEServer{{URLs: []string{"stun:h.example.org:99999"}}} }, []string{"ice-server", "port"}},
		{"ice-server stun query", func(c *Config) {
			c.ICEServers = []ICEServer{{URLs: []string{"stun:h.example.org:3478?transport=udp"}}}
		}, []string{"ice-server", "query"}},
		{"ice-server turn transport", func(c *Config) {
			c.ICEServers = []ICEServer{{URLs: []string{"turn:h.example.org:3478?transport=sctp"}, Username: "u", Credential: "p"}}
		}, []string{"ice-server", "transport"}},
		{"ice-server turn without user", func(c *Config) { c.ICEServers = []ICEServer{{URLs: []string{"turn:h.example.org:3478"}}} }, []string{"ice-server", "user:pass"}},
		{"upload-rate", func(c *Config) { c.UploadRate = -1 }, []string{"upload-rate"}},
		{"timeout", func(c *Config) { c.MetadataWait = 0 }, []string{"MetadataWait", "positive"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.mutate(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatalf("%+v accepted", cfg)
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
		{"http-addr in use", func(c *Config) { c.HTTPAddr = tcp.Addr().String() }, []string{"http-addr", "in use"}},
		{"bt-port in use", func(c *Config) { c.BTPort = tcpPort }, []string{"bt-port " + strconv.Itoa(tcpPort), "in use"}},
		{"webrtc-udp-port in use", func(c *Config) { c.WebRTCUDPPort = udpPort }, []string{"webrtc-udp-port " + strconv.Itoa(udpPort), "in use"}},
		{"data-dir is a file", func(c *Config) { c.DataDir = aFile }, []string{"data-dir", aFile}},
		{"data-dir's torrents is a file", func(c *Config) { c.DataDir = torrentsIsFile }, []string{"data-dir", torrentsIsFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.mutate(&cfg)
			g, err := New(cfg, testLogger(t))
			if err == nil {
				g.Close()
				t.Fatalf("New with %s succeeded", tc.name)
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
	if !strings.Contains(err.Error(), "data-dir") || !strings.Contains(err.Error(), "not writable") {
		t.Errorf("error %q does not say data-dir is not writable", err)
	}
}
