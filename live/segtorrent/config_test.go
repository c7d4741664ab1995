package segtorrent

import (
	"errors"
	"strings"
	"testing"
)

// TestConfigValidate: every unusable field is reported by name under ErrInvalidConfig, and New
// refuses such a config.
func TestConfigValidate(t *testing.T) {
	err := Config{Keep: -1}.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("zero config: %v, want ErrInvalidConfig", err)
	}
	for _, field := range []string{"Client must be set", "Keep must be > 0, got -1", "PeerRetry must be > 0"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("%q lacks %q", err, field)
		}
	}
	if _, err := New(DefaultConfig(), nil); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "Client") {
		t.Errorf("New without a client: %v", err)
	}
	cfg := DefaultConfig()
	cfg.Client = newClient(t)
	if err := cfg.Validate(); err != nil {
		t.Errorf("defaults with a client: %v", err)
	}
}
