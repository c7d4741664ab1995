package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const ihA = "0123456789abcdef0123456789abcdef01234567"

func TestAccessAndLimitFlagErrors(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	badFile := filepath.Join(dir, "bad.txt")
	emptyFile := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(badFile, []byte("# allowed\n"+ihA+"\nnot-a-hash\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(emptyFile, []byte("# nothing yet\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"allow-add token without a token", safeArgs(t, "serve", "--allow-add", "token"), "allow-add token: needs --admin-token"},
		{"allow-add unknown", safeArgs(t, "serve", "--allow-add", "everyone"), `allow-add "everyone"`},
		{"admin-token short", safeArgs(t, "serve", "--admin-token", "short"), "--admin-token must be at least"},
		{"allow-infohash", safeArgs(t, "serve", "--allow-infohash", "abc"), `allow-infohash "abc"`},
		{"allow-infohash-file missing", safeArgs(t, "serve", "--allow-infohash-file", filepath.Join(dir, "nope")), "allow-infohash-file"},
		{"allow-infohash-file bad line", safeArgs(t, "serve", "--allow-infohash-file", badFile), "bad.txt:3"},
		{"allow-infohash-file empty", safeArgs(t, "serve", "--allow-infohash-file", emptyFile), "no infohashes"},
		{"trusted-proxy", safeArgs(t, "serve", "--trusted-proxy", "10.0.0.0/33"), "trusted-proxy"},
		{"cors-origins", safeArgs(t, "serve", "--cors-origins", "https://ok.example,ftp://x"), "cors-origins"},
		{"max-torrents", safeArgs(t, "serve", "--max-torrents", "-1"), "max-torrents"},
		{"max-ws-per-ip", safeArgs(t, "serve", "--max-ws-per-ip", "-2"), "max-ws-per-ip"},
		{"max-swarms-per-socket", safeArgs(t, "serve", "--max-swarms-per-socket", "0"), "max-swarms-per-socket"},
		{"max-message-bytes", safeArgs(t, "serve", "--max-message-bytes", "100"), "max-message-bytes"},
		{"max-offers-per-sec", safeArgs(t, "serve", "--max-offers-per-sec", "-1"), "max-offers-per-sec"},
		{"max-offers-per-sec not a number", safeArgs(t, "serve", "--max-offers-per-sec", "lots"), "max-offers-per-sec"},
		{"max-webrtc-peers", safeArgs(t, "serve", "--max-webrtc-peers", "0"), "max-webrtc-peers"},
		{"max-webrtc-peers-per-torrent", safeArgs(t, "serve", "--max-webrtc-peers-per-torrent", "-1"), "max-webrtc-peers-per-torrent"},
	} {
		t.Run(tc.name, func(t *testing.T) { expectUsageError(t, tc.args, tc.want) })
	}
}

func TestAccessAndLimitEnvTwins(t *testing.T) {
	file := filepath.Join(t.TempDir(), "allow.txt")
	ihB := strings.Repeat("b", 40)
	if err := os.WriteFile(file, []byte("# allowed torrents\n"+ihB+"  # the talk\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := parse(t, nil, map[string]string{
		"SWARMGATE_ADMIN_TOKEN":                  "a-long-enough-admin-token",
		"SWARMGATE_ALLOW_ADD":                    "none",
		"SWARMGATE_ALLOW_INFOHASH":               ihA,
		"SWARMGATE_ALLOW_INFOHASH_FILE":          file,
		"SWARMGATE_CORS_ORIGINS":                 "https://a.example,https://b.example",
		"SWARMGATE_TRUSTED_PROXY":                "10.0.0.0/8, 192.0.2.1",
		"SWARMGATE_MAX_TORRENTS":                 "7",
		"SWARMGATE_MAX_WS_PER_IP":                "3",
		"SWARMGATE_MAX_SWARMS_PER_SOCKET":        "9",
		"SWARMGATE_MAX_MESSAGE_BYTES":            "32768",
		"SWARMGATE_MAX_OFFERS_PER_SEC":           "2.5",
		"SWARMGATE_MAX_WEBRTC_PEERS":             "40",
		"SWARMGATE_MAX_WEBRTC_PEERS_PER_TORRENT": "4",
	})
	if err == nil {
		err = o.finish()
	}
	if err == nil {
		err = o.cfg.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.AdminToken != "a-long-enough-admin-token" || c.AllowAdd != "none" || c.MaxTorrents != 7 || c.MaxWSPerIP != 3 ||
		c.MaxSwarmsPerSocket != 9 || c.MaxMessageBytes != 32768 || c.MaxOffersPerSec != 2.5 || c.MaxWebRTCPeers != 40 ||
		c.MaxWebRTCPeersPerTorrent != 4 {
		t.Errorf("from env: %+v", c)
	}
	if strings.Join(c.AllowInfoHashes, " ") != ihA+" "+ihB {
		t.Errorf("allowlist from env and file: %q", c.AllowInfoHashes)
	}
	if strings.Join(c.CORSOrigins, " ") != "https://a.example https://b.example" ||
		strings.Join(c.TrustedProxies, " ") != "10.0.0.0/8 192.0.2.1" {
		t.Errorf("lists from env: %q %q", c.CORSOrigins, c.TrustedProxies)
	}
}
