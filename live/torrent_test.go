package live

import (
	"bytes"
	"io"
	"testing"

	"github.com/anacrolix/torrent/metainfo"
)

func TestSegmentTorrentDeterministic(t *testing.T) {
	id := StreamIDOfKey(testKey())
	other, _ := GenerateKey()
	otherID := StreamIDOfKey(other)
	data := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640000 bytes: 3 pieces, the last short
	ih := func(stream StreamID, kind Kind, seq uint64, b []byte) metainfo.Hash {
		t.Helper()
		h, err := SegmentInfoHash(stream, kind, seq, b)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	base := ih(id, KindMedia, 42, data)
	if again := ih(id, KindMedia, 42, bytes.Clone(data)); again != base {
		t.Errorf("same bytes, seq and stream: %v then %v", base, again)
	}
	flipped := bytes.Clone(data)
	flipped[len(flipped)-1] ^= 1
	for _, tc := range []struct {
		name string
		h    metainfo.Hash
	}{
		{"other seq", ih(id, KindMedia, 43, data)},
		{"other stream", ih(otherID, KindMedia, 42, data)},
		{"init instead of media", ih(id, KindInit, 42, data)},
		{"other bytes", ih(id, KindMedia, 42, flipped)},
	} {
		if tc.h == base {
			t.Errorf("%s: same infohash %v", tc.name, base)
		}
	}

	mi, err := SegmentMetaInfo(id, KindMedia, 42, data)
	if err != nil {
		t.Fatal(err)
	}
	if mi.HashInfoBytes() != base || mi.CreationDate != 0 || mi.Announce != "" {
		t.Errorf("metainfo: %+v", mi)
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "42.m4s" || info.PieceLength != SegmentPieceLength || info.TotalLength() != int64(len(data)) ||
		info.NumPieces() != 3 || info.IsDir() || info.Source != "swarmgate-live-v1:"+id.String() {
		t.Errorf("info: name %q piece length %d length %d pieces %d source %q", info.Name, info.PieceLength,
			info.TotalLength(), info.NumPieces(), info.Source)
	}
	// The pieces are what anacrolix computes itself for the same file.
	ref := metainfo.Info{PieceLength: SegmentPieceLength, Name: info.Name, Length: int64(len(data))}
	if err := ref.GeneratePieces(func(metainfo.FileInfo) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ref.Pieces, info.Pieces) {
		t.Error("piece hashes differ from metainfo.GeneratePieces")
	}
	if got := SegmentName(KindInit, 7); got != "init-7.mp4" {
		t.Errorf("init name %q", got)
	}
	if _, err := SegmentInfoHash(id, KindMedia, 1, nil); err == nil {
		t.Error("an empty segment got an infohash")
	}
	if _, err := SegmentInfoHash(id, Kind(0), 1, data); err == nil {
		t.Error("an unknown kind got an infohash")
	}
}
