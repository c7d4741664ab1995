package live

import (
	"crypto/sha1"
	"fmt"
	"strconv"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// SegmentPieceLength is the piece length of every segment torrent. Fixed, so that everyone who
// has a segment's bytes computes the same infohash.
const SegmentPieceLength = 256 << 10

// SegmentName is the file name in a segment's torrent: "<seq>.m4s" for a media segment,
// "init-<seq>.mp4" for an init segment.
func SegmentName(kind Kind, seq uint64) string {
	if kind == KindInit {
		return "init-" + strconv.FormatUint(seq, 10) + ".mp4"
	}
	return strconv.FormatUint(seq, 10) + ".m4s"
}

// segmentSource goes in the info's "source" key so that the same bytes in two streams are two
// torrents (and a segment torrent says which stream it belongs to).
func segmentSource(stream StreamID) string { return "swarmgate-live-v1:" + stream.String() }

// SegmentInfo is the info dictionary of a segment's single-file torrent. It depends only on its
// arguments: name SegmentName(kind, seq), piece length SegmentPieceLength, source
// "swarmgate-live-v1:<stream id>", and nothing time-dependent, so the broadcaster, the origin and
// every relay compute the same infohash.
func SegmentInfo(stream StreamID, kind Kind, seq uint64, data []byte) (*metainfo.Info, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("live: %s segment %d is empty", kind, seq)
	}
	if !kind.valid() {
		return nil, fmt.Errorf("live: unknown segment kind %d", uint8(kind))
	}
	info := &metainfo.Info{
		Name:        SegmentName(kind, seq),
		PieceLength: SegmentPieceLength,
		Length:      int64(len(data)),
		Source:      segmentSource(stream),
	}
	pieces := make([]byte, 0, (len(data)+SegmentPieceLength-1)/SegmentPieceLength*sha1.Size)
	for off := 0; off < len(data); off += SegmentPieceLength {
		h := sha1.Sum(data[off:min(off+SegmentPieceLength, len(data))])
		pieces = append(pieces, h[:]...)
	}
	info.Pieces = pieces
	return info, nil
}

// SegmentMetaInfo is the segment's torrent with only its info dictionary. Callers add trackers
// and webseeds (url-list) as they like: those are outside the info and leave the infohash alone.
func SegmentMetaInfo(stream StreamID, kind Kind, seq uint64, data []byte) (*metainfo.MetaInfo, error) {
	info, err := SegmentInfo(stream, kind, seq, data)
	if err != nil {
		return nil, err
	}
	b, err := bencode.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("live: encoding segment info: %w", err)
	}
	return &metainfo.MetaInfo{InfoBytes: b}, nil
}

// SegmentInfoHash is the BitTorrent v1 infohash of the segment's torrent.
func SegmentInfoHash(stream StreamID, kind Kind, seq uint64, data []byte) (metainfo.Hash, error) {
	mi, err := SegmentMetaInfo(stream, kind, seq, data)
	if err != nil {
		return metainfo.Hash{}, err
	}
	return mi.HashInfoBytes(), nil
}
