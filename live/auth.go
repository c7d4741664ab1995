package live

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// authorize lets an upload through only with the ingest token, compared in constant time
// (by hash, so that its length does not leak either). Without a token ingest is off.
func (o *Origin) authorize(r *http.Request) error {
	if o.cfg.IngestToken == "" {
		return fail(http.StatusForbidden, ResultIngestOff, "live ingest is off on this gateway: it has no IngestToken")
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return fail(http.StatusUnauthorized, ResultUnauthorized, "uploads need the ingest token as \"Authorization: Bearer <token>\"")
	}
	scheme, tok, ok := strings.Cut(auth, " ")
	h := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(h[:], o.tokenHash[:]) != 1 {
		return fail(http.StatusUnauthorized, ResultUnauthorized, "wrong ingest token")
	}
	return nil
}
