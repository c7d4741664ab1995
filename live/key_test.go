package live

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFileRoundTrip(t *testing.T) {
	priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "stream.key")
	if err := WriteKeyFile(path, priv); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "-----BEGIN PRIVATE KEY-----\n") {
		t.Errorf("key file is not a PKCS#8 PEM: %q", b)
	}
	got, err := ReadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(priv) {
		t.Error("read back a different key")
	}

	other, _ := GenerateKey()
	err = WriteKeyFile(path, other)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("overwrite: err %v, want fs.ErrExist saying it refuses", err)
	}
	if got, _ := ReadKeyFile(path); !got.Equal(priv) {
		t.Error("the refused write changed the file")
	}
}

func TestReadKeyFileErrors(t *testing.T) {
	dir := t.TempDir()
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope.key"), "does not exist"},
		{"not PEM", write("garbage.key", "hello\n"), "no PEM block"},
		{"wrong PEM type", write("cert.key", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}))), `"CERTIFICATE"`},
		{"bad PKCS#8", write("bad.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}))), "bad PKCS#8"},
		{"not ed25519", write("ec.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}))), "not an ed25519 key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ReadKeyFile(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadKeyFile: key %v, err %v; want an error containing %q", k != nil, err, tc.want)
			}
		})
	}
	if _, err := ReadKeyFile(filepath.Join(dir, "nope.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v does not wrap fs.ErrNotExist", err)
	}
}

func TestStreamID(t *testing.T) {
	priv, _ := GenerateKey()
	id := StreamIDOfKey(priv)
	s := id.String()
	if len(s) != StreamIDLen {
		t.Fatalf("id %q has %d characters, want %d", s, len(s), StreamIDLen)
	}
	back, err := ParseStreamID(s)
	if err != nil || back != id {
		t.Fatalf("ParseStreamID(%q) = %v, %v", s, back, err)
	}
	if !back.PublicKey().Equal(priv.Public()) {
		t.Error("the id does not give back the public key")
	}
	// 52 characters carry 260 bits: the last one holds the key's last bit and 4 stray bits, so only
	// "a" and "q" may end an id; "b" sets a stray bit of "a".
	var zero StreamID
	zs := zero.String()
	nonCanonical := zs[:51] + "b"

	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", "want 52 characters"},
		{"short", s[:51], "want 52 characters"},
		{"long", s + "a", "want 52 characters"},
		{"uppercase", strings.ToUpper(s), "not lowercase base32"},
		{"padding", s[:51] + "=", "not lowercase base32"},
		{"digit 1", s[:10] + "1" + s[11:], "not lowercase base32"},
		{"digit 8", "8" + s[1:], "not lowercase base32"},
		{"any canonical key", strings.Repeat("ab", 25) + "aq", ""}, // must parse and round-trip
		{"stray bits", nonCanonical, "not canonical"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStreamID(tc.in)
			if tc.want == "" {
				if err != nil || got.String() != tc.in {
					t.Fatalf("ParseStreamID(%q) = %v, %v; want it to round-trip", tc.in, got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseStreamID(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.want)
			}
		})
	}

	if !StreamIDOf(priv.Public().(ed25519.PublicKey)[:31]).IsZero() {
		t.Error("a 31-byte key made a stream id")
	}
	var viaText StreamID
	if err := viaText.UnmarshalText([]byte(s)); err != nil || viaText != id {
		t.Errorf("UnmarshalText: %v, %v", viaText, err)
	}
	if err := viaText.UnmarshalText([]byte("x")); err == nil {
		t.Error("UnmarshalText accepted a bad id")
	}
}
