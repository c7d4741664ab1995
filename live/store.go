package live

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/swarmgate/swarmgate/internal/atomicfile"
)

// The disk copy of a window (WindowConfig.Dir), so that a stream's window survives a restart of
// its gateway. The folder holds, for each segment whose bytes the window keeps:
//
//	<seq>.m4s, init-<seq>.mp4            the segment's bytes, named as served (SegmentName)
//	<seq>.m4s.json, init-<seq>.mp4.json  its record: the signed entry and what the window knew
//	                                     of the segment (gap, discontinuity, target duration)
//
// and end.json, the broadcaster's signed End while it holds. Every file is written under a
// temporary name (tmpPrefix), synced and renamed into place, and a segment's bytes are in place
// before its record is: a crash leaves at worst bytes without a record, which Load deletes, never
// a record without its bytes. Nothing read back is trusted: Load checks each record's signature
// with the stream's key and the bytes against it, as Add does, and deletes what fails.

const (
	recordSuffix = ".json"
	endFile      = "end.json"
	tmpPrefix    = ".tmp-"
	// recordVersion is the version of segmentRecord's JSON.
	recordVersion = 1
	// maxRecordBytes bounds a record read back (one is about 500 bytes).
	maxRecordBytes = 64 << 10
)

// segmentRecord is a kept segment's record file. The entry is signed; the rest is the window's
// own bookkeeping, which Load only uses where the kept segments cannot tell it again.
type segmentRecord struct {
	Version int         `json:"version"`
	Entry   SignedEntry `json:"entry"`
	// Missing and Discontinuity are Segment's.
	Missing       uint64 `json:"missing,omitempty"`
	Discontinuity bool   `json:"discontinuity,omitempty"`
	// DiscBefore is how many media segments the window marked as discontinuities before this
	// one, ever: the playlist's #EXT-X-DISCONTINUITY-SEQUENCE when this one heads it.
	DiscBefore uint64 `json:"disc_before,omitempty"`
	// Target is the window's target duration in seconds once it took this segment: it never
	// shrinks, even when the longest segment leaves the window.
	Target int `json:"target,omitempty"`
}

// storedSegment is a segment read back from disk and verified.
type storedSegment struct {
	rec  segmentRecord
	data []byte
}

// windowStore is one window's folder. Its methods report errors; the window logs them and goes
// on from memory (a full disk must not stop a live stream).
type windowStore struct {
	dir string
	log *slog.Logger
}

func recordName(kind Kind, seq uint64) string { return SegmentName(kind, seq) + recordSuffix }

// put writes a segment's bytes, then its record.
func (d *windowStore) put(rec segmentRecord, data []byte) error {
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return err
	}
	name := SegmentName(rec.Entry.Kind, rec.Entry.Seq)
	js, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := writeFileSynced(d.dir, name, data); err != nil {
		return err
	}
	if err := writeFileSynced(d.dir, name+recordSuffix, js); err != nil {
		os.Remove(filepath.Join(d.dir, name))
		return err
	}
	return syncDir(d.dir)
}

// remove deletes a segment's record, then its bytes (the reverse of put). A segment that was
// never written (put failed, or the window got no bytes for it) is no error.
func (d *windowStore) remove(kind Kind, seq uint64) {
	name := SegmentName(kind, seq)
	for _, f := range []string{name + recordSuffix, name} {
		if err := os.Remove(filepath.Join(d.dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("removing a live segment from disk", "file", filepath.Join(d.dir, f), "err", err)
		}
	}
}

func (d *windowStore) putEnd(e End) error {
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return err
	}
	js, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := writeFileSynced(d.dir, endFile, js); err != nil {
		return err
	}
	return syncDir(d.dir)
}

func (d *windowStore) removeEnd() {
	if err := os.Remove(filepath.Join(d.dir, endFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.log.Warn("removing a live stream's end from disk", "file", filepath.Join(d.dir, endFile), "err", err)
	}
}

// removeAll deletes the folder.
func (d *windowStore) removeAll() {
	if err := os.RemoveAll(d.dir); err != nil {
		d.log.Warn("removing a live stream's folder", "dir", d.dir, "err", err)
	}
}

// load reads the folder back: the segments whose record and bytes verify for stream id (in no
// order), and the end if its signature does. Everything else is deleted with a log line: files
// that fail to verify, bytes without a record, left-over temporary files. Files of other names
// are left alone. A missing folder holds nothing.
func (d *windowStore) load(id StreamID, maxSize uint64) ([]storedSegment, *End, error) {
	ents, err := os.ReadDir(d.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	names := map[string]bool{}
	for _, e := range ents {
		if e.Type().IsRegular() {
			names[e.Name()] = true
		}
	}
	var out []storedSegment
	claimed := map[string]bool{} // segment files that have a good record
	for name := range names {
		base, ok := strings.CutSuffix(name, recordSuffix)
		if !ok || name == endFile {
			continue
		}
		if _, _, ok := parseSegmentName(base); !ok {
			continue
		}
		s, err := d.loadSegment(id, base, maxSize)
		if err != nil {
			d.log.Warn("dropped a live segment kept on disk: it does not verify, and is never served", "stream", id, "file", filepath.Join(d.dir, name), "err", err)
			d.removeFiles(name, base)
			continue
		}
		claimed[base] = true
		out = append(out, s)
	}
	for name := range names {
		switch _, _, isSegment := parseSegmentName(name); {
		case strings.HasPrefix(name, tmpPrefix):
			d.removeFiles(name) // a write cut short
		case isSegment && !claimed[name] && !names[name+recordSuffix]:
			d.log.Warn("dropped a live segment kept on disk: it has no record (a write cut short)", "stream", id, "file", filepath.Join(d.dir, name))
			d.removeFiles(name)
		}
	}
	var end *End
	if names[endFile] {
		e, err := d.loadEnd(id)
		if err != nil {
			d.log.Warn("dropped a live stream's end kept on disk: it does not verify", "stream", id, "file", filepath.Join(d.dir, endFile), "err", err)
			d.removeFiles(endFile)
		} else {
			end = &e
		}
	}
	return out, end, nil
}

// loadSegment reads and checks one segment: its record (base + recordSuffix) and bytes (base).
func (d *windowStore) loadSegment(id StreamID, base string, maxSize uint64) (storedSegment, error) {
	js, err := readFileMax(filepath.Join(d.dir, base+recordSuffix), maxRecordBytes)
	if err != nil {
		return storedSegment{}, err
	}
	var rec segmentRecord
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return storedSegment{}, fmt.Errorf("record: %w", err)
	}
	if rec.Version != recordVersion {
		return storedSegment{}, fmt.Errorf("record version %d, want %d", rec.Version, recordVersion)
	}
	se := rec.Entry
	if SegmentName(se.Kind, se.Seq) != base {
		return storedSegment{}, fmt.Errorf("the record is of %s segment %d, not %s", se.Kind, se.Seq, base)
	}
	if err := Verify(id, se); err != nil {
		return storedSegment{}, err
	}
	if se.Size > maxSize {
		return storedSegment{}, se.reject(ErrTooLarge, "%d bytes, the limit is %d", se.Size, maxSize)
	}
	data, err := readFileMax(filepath.Join(d.dir, base), int64(se.Size))
	if err != nil {
		return storedSegment{}, err
	}
	if err := checkData(se.Entry, data); err != nil {
		return storedSegment{}, err
	}
	return storedSegment{rec: rec, data: data}, nil
}

func (d *windowStore) loadEnd(id StreamID) (End, error) {
	js, err := readFileMax(filepath.Join(d.dir, endFile), maxRecordBytes)
	if err != nil {
		return End{}, err
	}
	var e End
	if err := json.Unmarshal(js, &e); err != nil {
		return End{}, err
	}
	return e, VerifyEnd(id, e)
}

func (d *windowStore) removeFiles(names ...string) {
	for _, n := range names {
		if err := os.Remove(filepath.Join(d.dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("removing a file of a live stream", "file", filepath.Join(d.dir, n), "err", err)
		}
	}
}

// readFileMax reads a file of at most limit bytes; a longer one is an error (a segment's bytes
// longer than its entry says are not read in full).
func readFileMax(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: longer than %d bytes", filepath.Base(path), limit)
	}
	return b, nil
}

// writeFileSynced writes b to dir/name through a synced temporary file renamed into place.
func writeFileSynced(dir, name string, b []byte) error {
	return atomicfile.Write(filepath.Join(dir, name), b, tmpPrefix+"*")
}

// syncDir makes the renames in dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// maxTarget is the longest target duration an entry can make (DurationUS is a uint32).
const maxTarget = (1<<32-1)/1_000_000 + 1

// Load fills an empty window from its Dir, as it stood before a restart. As on Add, every
// record's entry must carry the stream's signature and the bytes must match it (size, SHA-256,
// infohash): a file that fails is deleted with a log line, never served. Then the window's bounds
// apply as they do after an Add: media segments older than Duration leave, and the oldest bytes
// over MaxBytes, from the disk too. The window goes on where it stood: an Add must come after the
// newest segment reloaded, the playlist keeps its media sequence numbers, discontinuity sequence
// and target duration, and a signed end still holds (unless a reloaded segment came after it).
// Where a segment was dropped, the playlist shows a gap. Load returns how many segments the
// window holds then; without a Dir it does nothing.
func (w *Window) Load() (int, error) {
	if w.store == nil {
		return 0, nil
	}
	w.addMu.Lock()
	defer w.addMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stats.Accepted > 0 || w.end != nil {
		return 0, fmt.Errorf("live: Load into a window of stream %s that holds entries already", w.cfg.Stream)
	}
	stored, end, err := w.store.load(w.cfg.Stream, w.cfg.MaxSegmentSize)
	if err != nil {
		return 0, fmt.Errorf("live: reading stream %s from %s: %w", w.cfg.Stream, w.cfg.Dir, err)
	}
	sort.Slice(stored, func(i, j int) bool { return before(stored[i].rec.Entry.Entry, stored[j].rec.Entry.Entry) })
	var prev *Segment // the last media segment
	for _, st := range stored {
		seg := &Segment{SignedEntry: st.rec.Entry, Data: st.data}
		switch seg.Kind {
		case KindInit:
			w.inits = append(w.inits, seg)
			w.newInit = true
		case KindMedia:
			if prev == nil {
				// What came before it is gone: its record says.
				seg.Missing, seg.Discontinuity, seg.discBefore = st.rec.Missing, st.rec.Discontinuity, st.rec.DiscBefore
				w.evictedDisc = seg.discBefore
			} else {
				// The kept segments tell, and a dropped one shows as a gap.
				if seg.Seq > prev.Seq+1 {
					seg.Missing = seg.Seq - prev.Seq - 1
				}
				seg.Discontinuity = seg.Missing > 0 || w.newInit
				seg.discBefore = prev.discBefore
				if prev.Discontinuity {
					seg.discBefore++
				}
			}
			if seg.Missing > 0 {
				w.stats.Gaps++
				w.stats.Missing += seg.Missing
			}
			w.media = append(w.media, seg)
			w.lastSeq, w.anyMedia, w.newInit = seg.Seq, true, false
			w.target = max(w.target, roundedSeconds(seg.DurationUS))
			prev = seg
		}
		w.target = max(w.target, min(st.rec.Target, maxTarget))
		w.bytes += int64(len(seg.Data))
		w.last = seg.Entry
		w.stats.Accepted++
	}
	if prev != nil {
		w.discTotal = prev.discBefore
		if prev.Discontinuity {
			w.discTotal++
		}
	}
	if end != nil {
		if w.anyMedia && w.lastSeq > end.LastSeq {
			w.store.removeEnd() // lifted by a later segment
		} else {
			w.end = end
		}
	}
	w.evict()
	w.trimBytes()
	return len(w.inits) + len(w.media), nil
}

// discard deletes the window's disk copy, and keeps nothing on disk from then on: the origin
// dropped the stream.
func (w *Window) discard() {
	w.addMu.Lock()
	defer w.addMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.store != nil {
		w.store.removeAll()
		w.store = nil
	}
}
