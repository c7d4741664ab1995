package gateway

import (
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// PieceLengthFor picks a piece length for a torrent of total bytes: about a thousand pieces, at
// least 32 KiB (small pieces start streams fast) and at most 4 MiB (browsers hash whole pieces).
func PieceLengthFor(total int64) int64 {
	const minLen, maxLen = 32 << 10, 4 << 20
	target := total / 1024
	if target <= minLen {
		return minLen
	}
	l := int64(1) << (63 - bits.LeadingZeros64(uint64(target-1)) + 1)
	return min(l, maxLen)
}

// HashPath builds the info dictionary of a file or a folder, reporting hashing progress. It returns
// the folder the torrent's data lives under (the parent of root), ready for AddLocal.
func HashPath(root string, progress func(done, total int64)) (string, *metainfo.Info, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return "", nil, err
	}
	st, err := os.Stat(root)
	if err != nil {
		return "", nil, err
	}
	info := &metainfo.Info{Name: filepath.Base(root)}
	var total int64
	if st.IsDir() {
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			info.Files = append(info.Files, metainfo.FileInfo{
				Path:   strings.Split(filepath.ToSlash(rel), "/"),
				Length: fi.Size(),
			})
			total += fi.Size()
			return nil
		})
		if err != nil {
			return "", nil, err
		}
		if len(info.Files) == 0 {
			return "", nil, fmt.Errorf("%s: no regular files to seed", root)
		}
		sort.Slice(info.Files, func(i, j int) bool {
			return strings.Join(info.Files[i].Path, "/") < strings.Join(info.Files[j].Path, "/")
		})
	} else {
		if !st.Mode().IsRegular() {
			return "", nil, fmt.Errorf("%s: not a regular file or folder", root)
		}
		info.Length = st.Size()
		total = st.Size()
	}
	if total == 0 {
		return "", nil, fmt.Errorf("%s: nothing to seed (0 bytes)", root)
	}
	info.PieceLength = PieceLengthFor(total)
	var done int64
	if progress != nil {
		progress(0, total)
	}
	err = info.GeneratePieces(func(fi metainfo.FileInfo) (io.ReadCloser, error) {
		p := root
		if st.IsDir() {
			p = filepath.Join(append([]string{root}, fi.Path...)...)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		return &progressReader{f: f, report: func(n int) {
			done += int64(n)
			if progress != nil {
				progress(done, total)
			}
		}}, nil
	})
	if err != nil {
		return "", nil, err
	}
	return filepath.Dir(root), info, nil
}

type progressReader struct {
	f      *os.File
	report func(n int)
}

func (r *progressReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	if n > 0 {
		r.report(n)
	}
	return n, err
}

func (r *progressReader) Close() error { return r.f.Close() }

// metainfoInfoHash is the infohash of info, as a torrent made of it has.
func metainfoInfoHash(info *metainfo.Info) metainfo.Hash {
	b, err := bencode.Marshal(info)
	if err != nil {
		return metainfo.Hash{}
	}
	return metainfo.HashBytes(b)
}
