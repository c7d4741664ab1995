package transcode

import (
	"errors"
	"math"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFixedLayout(t *testing.T) {
	l, err := FixedLayout(0.005, 10.3, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0.005, 4.005, 8.005, 10.305}
	if len(l.Bounds) != len(want) {
		t.Fatalf("bounds %v, want %v", l.Bounds, want)
	}
	for i := range want {
		if math.Abs(l.Bounds[i]-want[i]) > 1e-9 {
			t.Fatalf("bounds %v, want %v", l.Bounds, want)
		}
	}
	// A sliver under a tenth of a segment joins the last one.
	if l, _ := FixedLayout(0, 8.2, 4); l.Segments() != 2 || math.Abs(l.Duration(1)-4.2) > 1e-9 {
		t.Errorf("8.2 s: %v", l.Bounds)
	}
	if _, err := FixedLayout(0, 0, 4); !errors.Is(err, ErrNoDuration) {
		t.Errorf("no duration: %v", err)
	}
}

func TestKeyframeLayout(t *testing.T) {
	kf := []float64{0, 1, 2, 3.5, 6, 6.5, 13, 14}
	l, err := KeyframeLayout(kf, 0, 14.2, 3)
	if err != nil {
		t.Fatal(err)
	}
	// 0 → 3.5 (first ≥ 3 later) → 6.5 → 13 → end; 14 is under a tenth of a segment from... no:
	// 14.2-0.3 = 13.9 ≤ 14, so 14 is too near the end to start one.
	want := []float64{0, 3.5, 6.5, 13, 14.2}
	if len(l.Bounds) != len(want) {
		t.Fatalf("bounds %v, want %v", l.Bounds, want)
	}
	for i := range want {
		if l.Bounds[i] != want[i] {
			t.Fatalf("bounds %v, want %v", l.Bounds, want)
		}
	}
	if _, err := KeyframeLayout(nil, 0, 10, 3); !errors.Is(err, ErrNoIndex) {
		t.Errorf("no keyframes: %v", err)
	}
	pl := l.Playlist()
	for _, s := range []string{"#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-TARGETDURATION:7", "#EXTINF:3.500000,\n0.ts", "3.ts\n#EXT-X-ENDLIST"} {
		if !strings.Contains(pl, s) {
			t.Errorf("playlist lacks %q:\n%s", s, pl)
		}
	}
}

func TestVariantNames(t *testing.T) {
	for _, c := range []struct {
		name  string
		mode  Mode
		audio int
	}{{"remux", Remux, -1}, {"transcode", Transcode, -1}, {"remux-a2", Remux, 2}, {"transcode-a0", Transcode, 0}} {
		m, a, err := ParseVariantName(c.name)
		if err != nil || m != c.mode || a != c.audio {
			t.Errorf("%q: %v %d %v", c.name, m, a, err)
		}
		if got := VariantName(c.mode, c.audio); got != c.name {
			t.Errorf("VariantName(%v, %d) = %q", c.mode, c.audio, got)
		}
	}
	for _, bad := range []string{"", "direct", "remux-a", "remux-a-1", "remux-a01", "transcode-ax", "remux-a99999"} {
		if _, _, err := ParseVariantName(bad); !errors.Is(err, ErrBadVariant) {
			t.Errorf("%q: %v, want ErrBadVariant", bad, err)
		}
	}
}

func TestPolicy(t *testing.T) {
	if !PolicyOn.Allows(Transcode) || !PolicyRemux.Allows(Remux) || PolicyRemux.Allows(Transcode) || PolicyOff.Allows(Remux) {
		t.Error("policy table")
	}
	if _, err := ParsePolicy("maybe"); err == nil {
		t.Error("ParsePolicy accepted maybe")
	}
	if _, err := ParseHWAccel("cuda"); err == nil {
		t.Error("ParseHWAccel accepted cuda")
	}
}
