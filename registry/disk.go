package registry

import (
	"time"

	"github.com/anacrolix/torrent/metainfo"
)

// WriteFailed is told of a failed piece write (by the storage, and by anacrolix for every chunk
// it could not store). Downloading pauses for the torrent for WriteRetry (anacrolix would
// otherwise fetch the same chunks again at once) and the error shows in DiskError until a write
// succeeds.
func (r *Registry) WriteFailed(ih metainfo.Hash, err error) {
	e, ok := r.Get(ih)
	if !ok {
		return
	}
	if e.recordDiskError(err) {
		r.log.Error("disk write failed; downloading paused for this torrent", "infohash", ih.HexString(),
			"retry_in", r.cfg.WriteRetry, "err", err)
	}
}

// WriteSucceeded is told of a piece written: a disk error shown until now is gone.
func (r *Registry) WriteSucceeded(ih metainfo.Hash) {
	if e, ok := r.Get(ih); ok {
		e.clearDiskError()
	}
}

// retryWrites lets a torrent whose writes failed download again after WriteRetry.
func (r *Registry) retryWrites(e *Entry, now time.Time) {
	if at, paused := e.downloadPaused(); paused && now.Sub(at) >= r.cfg.WriteRetry {
		e.resumeDownload()
	}
}

// dropIfIdle drops a downloaded torrent nobody watched for IdleTimeout, with its data.
func (r *Registry) dropIfIdle(e *Entry, now time.Time) {
	if r.cfg.IdleTimeout <= 0 || !e.OwnsData() || e.src.Ephemeral || e.Watched(now) {
		return
	}
	idle := now.Sub(time.Unix(0, e.lastWatched.Load()))
	if idle < r.cfg.IdleTimeout {
		return
	}
	ih := e.t.InfoHash()
	r.log.Info("dropping idle torrent", "infohash", ih.HexString(), "name", e.t.Name(), "idle", idle.Round(time.Second))
	if err := r.Remove(ih, true); err != nil {
		r.log.Warn("dropping idle torrent", "infohash", ih.HexString(), "err", err)
	}
	r.droppedIdle.Add(1)
}
