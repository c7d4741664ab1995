package transcode

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// subtitleRun is one extraction, shared by the requests that wait for it.
type subtitleRun struct {
	done chan struct{}
	path string
	err  error
}

// subtitleTimeout bounds one extraction: ffmpeg reads the whole file for it.
const subtitleTimeout = 30 * time.Minute

// Subtitles returns the path of a WebVTT file holding text subtitle stream stream of the file
// at src (torrent ih, file file), converted by ffmpeg (SRT, ASS/SSA, mov_text, WebVTT) once and
// kept with the segments. The subtitles of a whole film are spread through the file, so the
// first request waits for ffmpeg to read all of it.
func (m *Manager) Subtitles(ctx context.Context, ih string, file, stream int, src string) (string, error) {
	key := fmt.Sprintf("%s-%d-sub%d", strings.ToLower(ih), file, stream)
	path := filepath.Join(m.cfg.Dir, key+".vtt")
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return "", ErrClosed
	}
	run, ok := m.subs[key]
	if !ok {
		if _, err := os.Stat(path); err == nil {
			m.mu.Unlock()
			return path, nil
		}
		run = &subtitleRun{done: make(chan struct{}), path: path}
		m.subs[key] = run
		m.wg.Add(1)
		go m.extract(key, run, stream, src)
	}
	m.mu.Unlock()
	select {
	case <-run.done:
		return run.path, run.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (m *Manager) extract(key string, run *subtitleRun, stream int, src string) {
	defer m.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), subtitleTimeout)
	defer cancel()
	go func() {
		select {
		case <-m.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	tmp := run.path + ".tmp"
	cmd := exec.CommandContext(ctx, m.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
		"-rw_timeout", "120000000", "-i", src, "-map", fmt.Sprintf("0:%d", stream),
		"-c:s", "webvtt", "-f", "webvtt", "-y", tmp)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		err = os.Rename(tmp, run.path)
	} else {
		os.Remove(tmp)
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 300 {
			msg = msg[len(msg)-300:]
		}
		err = fmt.Errorf("ffmpeg making WebVTT of stream %d: %v: %s", stream, err, msg)
	}
	m.mu.Lock()
	run.err = err
	if err != nil {
		delete(m.subs, key) // the next request tries again
	}
	m.mu.Unlock()
	close(run.done)
}
