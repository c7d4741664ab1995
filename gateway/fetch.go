package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// Adding a .torrent by URL ({"url": "https://..."}): the gateway fetches it for the caller, which
// makes the gateway a client on the caller's behalf. So only callers allowed to add may (the API
// checks that first), and only public http(s) addresses are fetched, checked on every connection
// the fetch makes (redirects and DNS answers included, so a name that resolves to 10.0.0.1, or
// changes its answer between a check and the dial, reaches nothing inside the operator's network),
// with a size cap and a timeout.
const (
	torrentFetchTimeout   = 20 * time.Second
	torrentFetchRedirects = 5
)

// errNotPublic refuses an address inside a private, loopback, link-local or otherwise special
// network.
var errNotPublic = errors.New("not a public address")

// publicAddr reports whether a fetch may connect to ip: a global unicast address outside the
// private, shared (CGNAT), benchmarking and documentation ranges.
func publicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return false
	}
	for _, p := range nonPublicPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

var nonPublicPrefixes = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (carrier-grade NAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: embeds any IPv4 address, private ones too
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
}

// newTorrentFetcher is the HTTP client .torrent URLs are fetched with. allowPrivate lifts the
// address check (tests, which can only serve on loopback).
func newTorrentFetcher(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{
		Timeout: 10 * time.Second,
		// Control runs for every connection attempt with the address actually dialled, after
		// DNS: the check cannot be raced by a name that answers differently the second time.
		Control: func(network, address string, _ syscall.RawConn) error {
			if allowPrivate {
				return nil
			}
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return err
			}
			if !publicAddr(ap.Addr()) {
				return fmt.Errorf("%s: %w", ap.Addr(), errNotPublic)
			}
			return nil
		},
	}
	return &http.Client{
		Timeout: torrentFetchTimeout,
		Transport: &http.Transport{
			Proxy:                 nil, // a proxy would dial for us, past the check
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConns:          4,
			IdleConnTimeout:       30 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= torrentFetchRedirects {
				return fmt.Errorf("more than %d redirects", torrentFetchRedirects)
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirected to %s: only http and https are fetched", req.URL.Scheme)
			}
			return nil
		},
	}
}

// fetchTorrentFile downloads the .torrent at raw: http or https, at most maxTorrentFileBytes.
// Every failure is the request's (ErrBadInput), worded for the person who gave the URL.
func (g *Gateway) fetchTorrentFile(ctx context.Context, raw string) ([]byte, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: url must be an http or https address of a .torrent file", ErrBadInput)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: url must not carry a user name or password", ErrBadInput)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: url: %v", ErrBadInput, err)
	}
	req.Header.Set("Accept", "application/x-bittorrent, */*;q=0.5")
	req.Header.Set("User-Agent", "swarmgate")
	res, err := g.torrentFetcher.Do(req)
	if err != nil {
		if errors.Is(err, errNotPublic) {
			return nil, fmt.Errorf("%w: url %s: the gateway fetches only from public addresses (%v)", ErrForbidden, u.Redacted(), err)
		}
		return nil, fmt.Errorf("%w: fetching %s: %v", ErrBadInput, u.Redacted(), err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: fetching %s: the server answered %s", ErrBadInput, u.Redacted(), res.Status)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxTorrentFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: fetching %s: %v", ErrBadInput, u.Redacted(), err)
	}
	if len(body) > maxTorrentFileBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes: not a .torrent file", ErrBadInput, u.Redacted(), maxTorrentFileBytes)
	}
	return body, nil
}
