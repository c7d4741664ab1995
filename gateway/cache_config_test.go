package gateway

import (
	"strings"
	"testing"
	"time"
)

func TestCacheConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string // in the error; "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"unlimited cache", func(c *Config) { c.CacheSize = 0 }, ""},
		{"never idle", func(c *Config) { c.IdleTimeout = 0 }, ""},
		{"1M cache", func(c *Config) { c.CacheSize = 1 << 20 }, ""},
		{"negative cache", func(c *Config) { c.CacheSize = -1 }, "CacheSize -1: must be 0 (unlimited) or positive"},
		{"tiny cache", func(c *Config) { c.CacheSize = 10 }, "CacheSize 10: at least 1M"},
		{"negative idle", func(c *Config) { c.IdleTimeout = -time.Minute }, "IdleTimeout -1m0s: must be 0 (never) or positive"},
	} {
		cfg := DefaultConfig()
		tc.mutate(&cfg)
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if d := DefaultConfig(); d.CacheSize != 10<<30 || d.IdleTimeout != 24*time.Hour {
		t.Errorf("defaults: cache %d, idle %v; the README says 10G and 24h", d.CacheSize, d.IdleTimeout)
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1048576": 1 << 20, "512k": 512 << 10, "500M": 500 << 20, "10G": 10 << 30, " 2G ": 2 << 30} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "-5G", "ten", "10T", "1.5G", "G", "9999999999G"} {
		if _, err := ParseByteSize(in); err == nil || !strings.Contains(err.Error(), "want a size in bytes") {
			t.Errorf("ParseByteSize(%q): error %v, want a clear one", in, err)
		}
	}
}
