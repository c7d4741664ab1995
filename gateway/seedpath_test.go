package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// TestSeedPathOverAPI: the operator seeds a file of the gateway's machine into the running
// gateway ({"path": ...} with the admin token), which serves it in place; anyone else, or a
// gateway without a token, is refused.
func TestSeedPathOverAPI(t *testing.T) {
	const token = "seed-path-admin-token-0123456789"
	r := startGateway(t, func(c *Config) { c.AdminToken = token })
	dir := t.TempDir()
	content := randomBytes(300_000, 7)
	file := filepath.Join(dir, "talk.mp4")
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	post := func(body any, auth string) response {
		b, _ := json.Marshal(body)
		h := map[string]string{"Content-Type": "application/json"}
		if auth != "" {
			h["Authorization"] = "Bearer " + auth
		}
		return r.do(t, http.MethodPost, "/api/torrents", h, bytes.NewReader(b))
	}
	wantJSONError(t, "no token", post(map[string]string{"path": file}, ""), http.StatusUnauthorized)
	wantJSONError(t, "relative path", post(map[string]string{"path": "talk.mp4"}, token), http.StatusBadRequest)
	wantJSONError(t, "missing path", post(map[string]string{"path": filepath.Join(dir, "nope.mp4")}, token), http.StatusBadRequest)
	res := post(map[string]string{"path": file}, token)
	if res.status != http.StatusCreated {
		t.Fatalf("seed a path: %d %s", res.status, res.body)
	}
	v := decodeView(t, res.body)
	if got := r.get(t, "/stream/"+v.InfoHash+"/0", nil); got.status != http.StatusOK || !bytes.Equal(got.body, content) {
		t.Fatalf("stream of the seeded file: %d, %d bytes", got.status, len(got.body))
	}
	if res := post(map[string]string{"path": file}, token); res.status != http.StatusOK {
		t.Errorf("seeding it again: %d, want 200", res.status)
	}

	open := startGateway(t, nil) // no admin token: adding is open, reading its files is not
	b, _ := json.Marshal(map[string]string{"path": file})
	wantJSONError(t, "gateway without a token", open.do(t, http.MethodPost, "/api/torrents", map[string]string{"Content-Type": "application/json"}, bytes.NewReader(b)), http.StatusForbidden)
}
