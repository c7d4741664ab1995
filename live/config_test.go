package live

import (
	"errors"
	"strings"
	"testing"
)

// TestConfigValidate: the defaults (with the required fields set) are valid; a zero config
// reports every unusable field at once, by its field name, under ErrInvalidConfig; the
// constructors refuse what Validate refuses.
func TestConfigValidate(t *testing.T) {
	b := newBroadcaster(t)
	o := newTestOrigin(t, nil)
	url := "http://127.0.0.1:1/live/" + b.id.String()

	window := DefaultWindowConfig()
	window.Stream = b.id
	relay := DefaultRelayConfig()
	relay.Stream, relay.Sources, relay.Origin, relay.Fetcher = b.id, []string{url}, o, newFakeFetcher()
	broadcast := DefaultBroadcastConfig()
	broadcast.Gateway, broadcast.Token, broadcast.Key, broadcast.Input = "http://127.0.0.1:1", "t", b.priv, "in.mp4"
	for name, err := range map[string]error{
		"origin": DefaultOriginConfig().Validate(), "window": window.Validate(),
		"relay": relay.Validate(), "broadcast": broadcast.Validate(),
	} {
		if err != nil {
			t.Errorf("%s defaults: %v", name, err)
		}
	}

	other := newBroadcaster(t)
	badSources := RelayConfig{Stream: b.id, Sources: []string{"ftp://h/x", "http://h/live/" + other.id.String()}}
	for _, c := range []struct {
		name   string
		err    error
		fields []string
	}{
		{"origin", OriginConfig{MaxBytes: -1}.Validate(), []string{"Window", "MaxStreams", "MaxSegmentSize", "MaxBytes", "PlaylistSegments"}},
		{"window", WindowConfig{MaxBytes: -1}.Validate(), []string{"Stream", "Duration", "MaxSegmentSize", "MaxBytes", "FutureSkew"}},
		{"relay", RelayConfig{}.Validate(), []string{"Stream", "Sources", "Origin", "Fetcher", "HTTP", "Poll", "FetchTimeout", "Parallel", "Backlog", "CatchUp"}},
		{"relay sources", badSources.Validate(), []string{"Sources ", "want http(s)", "is stream " + other.id.String()}},
		{"broadcast", BroadcastConfig{SegmentSeconds: -1}.Validate(), []string{"Gateway", "Token", "Key", "Input", "SegmentSeconds", "FFmpeg", "Client", "Poll", "RetryFor"}},
	} {
		if !errors.Is(c.err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", c.name, c.err)
			continue
		}
		msg := c.err.Error()
		for _, f := range c.fields {
			if !strings.Contains(msg, f) {
				t.Errorf("%s: %q does not name %s", c.name, msg, f)
			}
		}
		if strings.Contains(msg, "--") {
			t.Errorf("%s: %q names a command-line flag", c.name, msg)
		}
	}

	if _, err := NewOrigin(OriginConfig{}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewOrigin of a zero config: %v", err)
	}
	if _, err := NewWindow(WindowConfig{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewWindow of a zero config: %v", err)
	}
	if _, err := NewRelay(RelayConfig{}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewRelay of a zero config: %v", err)
	}
	if _, err := Broadcast(t.Context(), BroadcastConfig{}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Broadcast of a zero config: %v", err)
	}
}

// TestFollowErrors: following a stream twice, or past MaxStreams, and feeding a stream that is
// not followed, fail with errors callers can tell apart.
func TestFollowErrors(t *testing.T) {
	o := newTestOrigin(t, func(c *OriginConfig) { c.MaxStreams = 1 })
	b, b2 := newBroadcaster(t), newBroadcaster(t)
	status := func() RelayStatus { return RelayStatus{} }
	if err := o.Follow(b.id, status); err != nil {
		t.Fatal(err)
	}
	if err := o.Follow(b.id, status); !errors.Is(err, ErrStreamExists) {
		t.Errorf("following twice: %v", err)
	}
	if err := o.Follow(b2.id, status); !errors.Is(err, ErrStreamLimit) || strings.Contains(err.Error(), "--") {
		t.Errorf("following past MaxStreams: %v", err)
	}
	se, data := b2.segment(KindInit, 0, t0, 0)
	if _, err := o.AddRelayed(b2.id, se, data); !errors.Is(err, ErrNotFollowed) {
		t.Errorf("a segment of a stream not followed: %v", err)
	}
	if err := o.EndRelayed(b2.id, SignEnd(b2.priv, 0, t0)); !errors.Is(err, ErrNotFollowed) {
		t.Errorf("the end of a stream not followed: %v", err)
	}
}
