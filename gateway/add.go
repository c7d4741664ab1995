package gateway

import (
	"bytes"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmgate/swarmgate/registry"
)

// maxTorrentFileBytes bounds an uploaded .torrent; real ones with tens of thousands of pieces stay
// well under it.
const maxTorrentFileBytes = 8 << 20

// AddMagnet adds a torrent by magnet link. A magnet's x.pe peers are dialled at once.
func (g *Gateway) AddMagnet(uri string) (*torrent.Torrent, bool, error) {
	uri, err := normalMagnet(uri)
	if err != nil {
		return nil, false, err
	}
	spec, err := magnetSpec(uri)
	if err != nil {
		return nil, false, err
	}
	return g.addSpec(spec, registry.Source{Magnet: uri})
}

func magnetSpec(uri string) (*torrent.TorrentSpec, error) {
	uri, err := normalMagnet(uri)
	if err != nil {
		return nil, err
	}
	spec, err := torrent.TorrentSpecFromMagnetUri(uri)
	if err != nil {
		return nil, fmt.Errorf("%w: magnet: %v", ErrBadInput, err)
	}
	if spec.InfoHash.IsZero() {
		return nil, fmt.Errorf("%w: magnet has no BitTorrent v1 infohash (xt=urn:btih:...)", ErrBadInput)
	}
	return spec, nil
}

// normalMagnet checks a magnet's infohash and says in a person's words what is wrong with it,
// where anacrolix would say "unhandled xt parameter encoding (encoded length 3)". It returns the
// magnet with a base32 infohash in upper case, the only case anacrolix decodes (lower case is
// common in the wild); the magnet is kept so for restarts.
func normalMagnet(uri string) (string, error) {
	if !strings.HasPrefix(uri, "magnet:") {
		return "", fmt.Errorf("%w: magnet must start with \"magnet:\"", ErrBadInput)
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("%w: magnet is not a valid URI: %v", ErrBadInput, err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", fmt.Errorf("%w: magnet's parameters cannot be read: %v", ErrBadInput, err)
	}
	var btih string
	for _, xt := range q["xt"] {
		if len(xt) > len("urn:btih:") && strings.EqualFold(xt[:len("urn:btih:")], "urn:btih:") {
			btih = xt[len("urn:btih:"):]
			break
		}
	}
	switch {
	case btih == "" && len(q["xt"]) == 0:
		return "", fmt.Errorf("%w: magnet has no infohash: it needs xt=urn:btih: followed by 40 hex digits", ErrBadInput)
	case btih == "":
		return "", fmt.Errorf("%w: magnet has no BitTorrent v1 infohash (xt=urn:btih:...); BitTorrent v2-only magnets (urn:btmh) are not supported", ErrBadInput)
	case len(btih) == 40:
		if _, err := hex.DecodeString(btih); err != nil {
			return "", fmt.Errorf("%w: magnet's infohash %q is not 40 hex digits (0-9, a-f)", ErrBadInput, btih)
		}
	case len(btih) == 32:
		upper := strings.ToUpper(btih)
		if _, err := base32.StdEncoding.DecodeString(upper); err != nil {
			return "", fmt.Errorf("%w: magnet's infohash %q is not 32 base32 characters (A-Z, 2-7)", ErrBadInput, btih)
		}
		if upper != btih {
			uri = strings.Replace(uri, btih, upper, 1)
		}
	default:
		return "", fmt.Errorf("%w: magnet's infohash %q has %d characters; an infohash is 40 hex digits (or 32 base32 characters)", ErrBadInput, btih, len(btih))
	}
	return uri, nil
}

// AddInfoHash adds a torrent known only by its v1 infohash (40 hex digits); peers come from the
// DHT and from browsers.
func (g *Gateway) AddInfoHash(s string) (*torrent.Torrent, bool, error) {
	spec, err := infoHashSpec(s)
	if err != nil {
		return nil, false, err
	}
	return g.addSpec(spec, registry.Source{})
}

func infoHashSpec(s string) (*torrent.TorrentSpec, error) {
	ih, err := parseInfoHash(s)
	if err != nil {
		return nil, err
	}
	spec := &torrent.TorrentSpec{}
	spec.InfoHash = ih
	return spec, nil
}

// AddMetainfo adds a torrent from the bytes of a .torrent file.
func (g *Gateway) AddMetainfo(b []byte) (*torrent.Torrent, bool, error) {
	spec, err := metainfoSpec(b)
	if err != nil {
		return nil, false, err
	}
	return g.addSpec(spec, registry.Source{})
}

func metainfoSpec(b []byte) (*torrent.TorrentSpec, error) {
	var mi metainfo.MetaInfo
	if err := decodeBencode(b, &mi); err != nil {
		return nil, fmt.Errorf("%w: not a .torrent file: %v", ErrBadInput, err)
	}
	var info metainfo.Info
	if err := decodeBencode(mi.InfoBytes, &info); err != nil {
		return nil, fmt.Errorf("%w: .torrent info dictionary: %v", ErrBadInput, err)
	}
	if !info.HasV1() {
		return nil, fmt.Errorf("%w: only BitTorrent v1 and hybrid torrents are supported", ErrBadInput)
	}
	if err := registry.CheckInfo(&info); err != nil {
		return nil, badInput{err}
	}
	spec, err := torrent.TorrentSpecFromMetaInfoErr(&mi)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	return spec, nil
}

// decodeBencode decodes all of b into v, refusing any string longer than b: the decoder allocates
// a string's declared length before reading it, and its own limit (128 MiB) let "134217727:", 10
// bytes, allocate 128 MiB.
func decodeBencode(b []byte, v any) error {
	d := bencode.NewDecoder(bytes.NewReader(b))
	d.MaxStrLen = int64(len(b))
	if err := d.Decode(v); err != nil {
		return err
	}
	return d.ReadEOF()
}

// addFromAPI adds spec for an API client: the allowlist and MaxTorrents apply (the operator's
// own torrents bypass both). A torrent already there is never refused.
func (g *Gateway) addFromAPI(spec *torrent.TorrentSpec, src registry.Source) (*torrent.Torrent, bool, error) {
	if !g.access.infoHashAllowed(spec.InfoHash) {
		g.refused.allowInfoHash.Add(1)
		return nil, false, fmt.Errorf("%w: %s is not on this gateway's allowlist", ErrForbidden, spec.InfoHash.HexString())
	}
	g.addMu.Lock()
	defer g.addMu.Unlock()
	if _, ok := g.torrents.Get(spec.InfoHash); !ok && g.cfg.MaxTorrents > 0 && g.torrents.Len() >= g.cfg.MaxTorrents {
		g.refused.maxTorrents.Add(1)
		return nil, false, fmt.Errorf("%w: this gateway holds its maximum of %d torrents; retry later", ErrLimit, g.cfg.MaxTorrents)
	}
	return g.addSpec(spec, src)
}

// addSpec adds to the registry, in the gateway's words: a closed registry is a closed gateway.
func (g *Gateway) addSpec(spec *torrent.TorrentSpec, src registry.Source) (*torrent.Torrent, bool, error) {
	t, isNew, err := g.torrents.Add(spec, src)
	switch {
	case errors.Is(err, registry.ErrClosed):
		return nil, false, ErrClosed
	case errors.Is(err, registry.ErrBadTorrent):
		return nil, false, badInput{err}
	}
	return t, isNew, err
}

func parseInfoHash(s string) (metainfo.Hash, error) {
	var ih metainfo.Hash
	if len(s) != 40 {
		return ih, fmt.Errorf("%w: infohash must be 40 hex digits, got %d characters", ErrBadInput, len(s))
	}
	if _, err := hex.Decode(ih[:], []byte(s)); err != nil {
		return ih, fmt.Errorf("%w: infohash must be 40 hex digits: %v", ErrBadInput, err)
	}
	return ih, nil
}

// Remove drops a torrent; with deleteData its downloaded data goes too.
func (g *Gateway) Remove(ih metainfo.Hash, deleteData bool) error {
	e, ok := g.torrents.Get(ih)
	if !ok {
		return fmt.Errorf("%w: no torrent %s", ErrNotFound, ih.HexString())
	}
	if deleteData && !e.OwnsData() {
		return fmt.Errorf("%w: this torrent is seeded from files the gateway does not own; they are not deleted", ErrConflict)
	}
	return g.torrents.Remove(ih, deleteData)
}

// AddLocal seeds files that are already complete on disk under parentDir, as described by info
// (built by HashPath). The files stay where they are and are never deleted by the gateway; the
// torrent is restored after a restart while the files are there.
func (g *Gateway) AddLocal(parentDir string, info *metainfo.Info) (*torrent.Torrent, error) {
	t, err := g.torrents.AddLocal(registry.Source{SeedDir: parentDir}, info)
	if errors.Is(err, registry.ErrClosed) {
		return nil, ErrClosed
	}
	return t, err
}
