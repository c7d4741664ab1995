// Package live is the trust core of swarmgate's live streams: broadcaster identities, signed
// segment entries, the deterministic single-file torrent of each segment, a rolling window of
// accepted entries, and the HLS media playlist rendered from it; on top of these, Origin (the
// http.Handler a gateway mounts for ingest and serving: routes.go, ingest.go, auth.go, the
// streams it holds in registry.go and their states in stream.go), Relay (a stream followed from
// other gateways, its segments fetched through a SegmentFetcher) and Broadcast (ffmpeg's
// segments, signed and uploaded to an origin).
//
// A window can be kept on disk (WindowConfig.Dir, OriginConfig.Dir: store.go), so that it survives
// a restart of its gateway; what is read back is verified as an upload is.
//
// Each of Origin, Window, Relay and Broadcast takes a config that starts from its Default…Config
// and is checked by Validate, which reports every unusable field by name under ErrInvalidConfig;
// a nil logger discards. The package knows nothing of the gateway, BitTorrent clients or
// command-line flags: the gateway supplies the fetcher (live/segtorrent's, over its anacrolix
// client) and the hooks, the CLI words errors in its flags.
//
// Trust model. A stream is named by its broadcaster's ed25519 public key (StreamID, 52 characters
// of lowercase base32), so the name is the key. Only the broadcaster holds the private key: it
// signs one Entry per segment (init segments too) binding the stream id, sequence number, time,
// duration, size, SHA-256 and BitTorrent infohash of the bytes. Everyone else verifies and never
// needs the private key: a gateway (origin) accepts an entry into its Window only if the signature
// is good for the stream in the URL, the sequence number moves forward and the time is fresh; a
// relay fetches a segment by the signed infohash over BitTorrent and checks the bytes; a browser
// checks each signed manifest entry with WebCrypto (plain Ed25519 over the fixed byte layout of
// Entry.SigningBytes) and each segment's SHA-256 before playing or sharing it. A gateway or relay
// that lies can withhold or delay segments, but cannot forge, alter or reorder them.
package live
