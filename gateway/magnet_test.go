package gateway

import (
	"errors"
	"strings"
	"testing"
)

// TestMagnetErrorsSayWhatIsWrong: a bad magnet is refused in words a person can act on, not
// anacrolix's ("unhandled xt parameter encoding (encoded length 3)").
func TestMagnetErrorsSayWhatIsWrong(t *testing.T) {
	for _, tc := range []struct{ magnet, want string }{
		{"magnet:?xt=urn:btih:abc", `infohash "abc" has 3 characters; an infohash is 40 hex digits`},
		{"magnet:?xt=urn:btih:" + strings.Repeat("g", 40), "is not 40 hex digits"},
		{"magnet:?xt=urn:btih:" + strings.Repeat("1", 32), "is not 32 base32 characters"},
		{"magnet:?dn=film&tr=udp://tracker.example:1337", "no infohash: it needs xt=urn:btih:"},
		{"magnet:?xt=urn:btmh:1220" + strings.Repeat("a", 64), "v2-only magnets (urn:btmh) are not supported"},
		{"magnet:?xt=urn:btih:%zz", "cannot be read"},
	} {
		_, err := magnetSpec(tc.magnet)
		if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrBadInput saying %q", tc.magnet, err, tc.want)
		}
	}
	for _, ok := range []string{
		"magnet:?xt=urn:btih:" + strings.Repeat("A", 40),
		"magnet:?xt=urn:btih:abcdefghijklmnopqrstuvwxyz234567&dn=film", // base32 in lower case, as found in the wild
		"magnet:?xt=urn:btmh:1220" + strings.Repeat("a", 64) + "&xt=urn:btih:" + strings.Repeat("1", 40),
	} {
		if _, err := magnetSpec(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	// Kept in upper case, so that a restart (anacrolix decodes base32 in upper case only) reads it.
	if got, _ := normalMagnet("magnet:?xt=urn:btih:abcdefghijklmnopqrstuvwxyz234567&dn=x"); got != "magnet:?xt=urn:btih:ABCDEFGHIJKLMNOPQRSTUVWXYZ234567&dn=x" {
		t.Errorf("normalMagnet kept %q", got)
	}
}
