package gateway

import (
	"context"
	"time"

	"github.com/anacrolix/torrent/metainfo"
)

// The quick start (pages.go, quickStream) starts a page's <video> on the gateway's /stream, and
// the player hands the picture over to webtorrent once it holds what comes next. Until then the
// browser reads the stream as far ahead as it likes: with a fast uplink, a whole film, every byte
// of which webtorrent fetches again (five watch pages on a busy machine took 132 MiB of a 29 MiB
// film over HTTP, BenchmarkOffload). So the quick start's stream (?quick=1) is paced: a head
// start of a few seconds of the film at full speed for the first frame, then a little faster than
// the film plays. That keeps the video playing, and a hand-over that comes late costs what was
// played, not the file. A page that falls back to the stream plays on from it.

// quickParam is the query parameter that marks a /stream request as a page's quick start.
const quickParam = "quick"

const (
	// quickHeadStart is how much of the film is sent at once: the first frame and what the
	// browser wants buffered before it plays.
	quickHeadStart = 4 * time.Second
	// quickMinHeadStart is the least head start in bytes (a low-bitrate file's moov and first
	// frames).
	quickMinHeadStart = 1 << 20
	// quickPace is how much faster than the film plays the rest is sent: the buffer grows by
	// half a second a second, for the bitrate's peaks.
	quickPace = 1.5
	// quickProbingBitrate (bytes/s: 8 Mbit/s, more than most web video) stands in for the
	// bitrate while the probe runs: on a cold gateway that takes a second or more, in which a
	// browser reading as fast as it can took 14 MiB.
	quickProbingBitrate = 1e6
)

// quickCapRoom: under an upload cap, a page starts on the quick start only if the cap is at
// least this many times the file's bitrate: the quick start's pace, and as much again for the
// swarm. Its bytes do not enter the swarm (the page's webtorrent fetches them again), so under a
// cap of 1.5× the bitrate a first viewer's quick start left the swarm half the film's bitrate
// of fresh pieces, and every viewer after it stalled at the same moments of the film
// (BenchmarkOffload). Under such a cap the first frame comes from webtorrent, as it does for
// every viewer while the cap is reached.
const quickCapRoom = 2 * quickPace

// capRoomForQuickStart says whether the upload cap, if any, has room for a quick start of the
// file (quickCapRoom), taking the bitrate from its probe, or quickProbingBitrate while that
// runs or says nothing.
func (g *Gateway) capRoomForQuickStart(ih metainfo.Hash, file int, length int64) bool {
	if g.uploadLimit == nil {
		return true
	}
	rate, _ := g.fileBitrate(ih, file, length)
	if rate <= 0 {
		rate = quickProbingBitrate
	}
	return float64(g.uploadLimit.Limit()) >= quickCapRoom*rate
}

// streamPace paces one quick-start answer by the file's bitrate, until done is closed (the
// gateway's shutdown: the drain waits for answers to end, so the rest goes at full speed).
type streamPace struct {
	done <-chan struct{}
	// bitrate is the film's in bytes per second; probing says it may yet be known. Neither:
	// nothing will say (probing is off, or failed), and the answer is not paced.
	bitrate func() (rate float64, probing bool)
	start   time.Time
	sent    int64
	rate    float64 // 0 until known; -1 once pacing has stopped
}

func newStreamPace(bitrate func() (float64, bool), done <-chan struct{}) *streamPace {
	return &streamPace{bitrate: bitrate, done: done, start: time.Now()}
}

// wait blocks until n more bytes may go, or ctx ends.
func (p *streamPace) wait(ctx context.Context, n int) error {
	rate := p.rate
	if rate < 0 {
		return nil
	}
	if rate == 0 {
		known, probing := p.bitrate()
		switch {
		case known > 0:
			p.rate, rate = known, known
		case probing:
			rate = quickProbingBitrate
		}
	}
	p.sent += int64(n)
	if rate <= 0 {
		return nil
	}
	head := max(float64(quickMinHeadStart), rate*quickHeadStart.Seconds())
	due := time.Duration((float64(p.sent) - head) / (quickPace * rate) * float64(time.Second))
	d := time.Until(p.start.Add(due))
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-p.done:
		p.rate = -1 // no more pacing
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fileBitrate is a file's bitrate in bytes per second from its probe, 0 when it is not known;
// probing says the probe runs.
func (g *Gateway) fileBitrate(ih metainfo.Hash, file int, length int64) (rate float64, probing bool) {
	v := g.probes.view(ih, file)
	switch {
	case v == nil:
		return 0, false
	case v.State == "probing":
		return 0, true
	case v.Info == nil:
		return 0, false
	case v.Info.Bitrate > 0:
		return float64(v.Info.Bitrate) / 8, false
	case v.Info.Duration > 0:
		return float64(length) / v.Info.Duration, false
	}
	return 0, false
}
