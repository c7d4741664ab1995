package gateway

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2"
	"github.com/anacrolix/torrent"
)

// anacrolixRecord logs msg as anacrolix/log's slog bridge (SlogHandlerAsHandler) does: printf
// text, the logger's names in a "names" attr.
func anacrolixRecord(log *slog.Logger, level slog.Level, msg string, names ...string) {
	log.LogAttrs(context.Background(), level, msg, slog.Any("names", names))
}

// TestTorrentLogFoldsRepeats: a burst of alike records (differing in addresses) is one record;
// the first after the window says how many were left out; other records are not held back.
func TestTorrentLogFoldsRepeats(t *testing.T) {
	logs, base := newLogBuffer(slog.LevelDebug)
	h := newTorrentLog(base.Handler())
	now := time.Unix(1_700_000_000, 0)
	h.folds.now = func() time.Time { return now }
	log := slog.New(h).With("component", "torrent")

	const burst = 50
	for i := range burst {
		anacrolixRecord(log, slog.LevelError, "error bootstrapping during bucket refresh: getting starting nodes: nothing resolved",
			"dht", "0.0.0.0:6881", "github.com/anacrolix/dht/v2", "server.go:1422")
		anacrolixRecord(log, slog.LevelWarn, "error replying to \"10.0.0."+string(rune('1'+i%9))+":6881\": write: no route to host", "dht")
		now = now.Add(5 * time.Second) // 50 × 5 s: still inside the 10 min window
	}
	anacrolixRecord(log, slog.LevelWarn, "something else")
	for range 3 {
		anacrolixRecord(log, slog.LevelDebug, "refreshing bucket 0", "dht") // debug is never folded
	}

	count := func(msg string) (n int, last logRecord) {
		for _, r := range logs.records(t) {
			if r.str("msg") == msg {
				n++
				last = r
			}
		}
		return n, last
	}
	n, r := count("DHT bootstrap failed")
	if n != 1 {
		t.Fatalf("%d bootstrap records from a burst of %d, want 1", n, burst)
	}
	if r.str("level") != "WARN" || r.str("err") != "getting starting nodes: nothing resolved" || r.fields["suppressed"] != nil {
		t.Errorf("first bootstrap record: %s", r.line)
	}
	if r.str("names") != "dht 0.0.0.0:6881 github.com/anacrolix/dht/v2 server.go:1422" {
		t.Errorf("names: %s", r.line)
	}
	if n, _ := count(`error replying to "10.0.0.1:6881": write: no route to host`); n != 1 {
		t.Errorf("%d 'error replying' records, want 1 (alike but for the address)", n)
	}
	if n, _ := count("something else"); n != 1 {
		t.Errorf("another message was held back")
	}
	if n, _ := count("refreshing bucket 0"); n != 3 {
		t.Errorf("%d debug records, want all 3", n)
	}

	now = now.Add(foldWindow)
	anacrolixRecord(log, slog.LevelError, "error bootstrapping during bucket refresh: getting starting nodes: nothing resolved", "dht")
	n, r = count("DHT bootstrap failed")
	if n != 2 || r.fields["suppressed"] != float64(burst-1) {
		t.Errorf("after the window: %d records, the last %s; want 2, the last with suppressed=%d", n, r.line, burst-1)
	}
	for _, r := range logs.records(t) {
		if c := strings.Count(r.line, `"component":`); c != 1 {
			t.Errorf("component %d times: %s", c, r.line)
		}
	}
}

// TestTorrentLogRewrites: anacrolix's printf text becomes a message with attrs, quoted once.
func TestTorrentLogRewrites(t *testing.T) {
	logs, base := newLogBuffer(slog.LevelDebug)
	log := slog.New(newTorrentLog(base.Handler()))
	const ih = "39093682ce91229501486a201a2b4e0beb532f8c"
	// Torrent.String quotes the name and the announcer formats it with %q again.
	anacrolixRecord(log, slog.LevelWarn, ih+`: error announcing "\"init-17.mp4\"" to DHT: getting starting nodes: nothing resolved`,
		ih, "github.com/anacrolix/torrent", "torrent.go:2414")
	anacrolixRecord(log, slog.LevelWarn, ih+`: error using torrent source "\"a \\\"b\\\"\""`, ih)
	anacrolixRecord(log, slog.LevelInfo, "no names")
	recs := logs.records(t)
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	if _, ok := recs[2].fields["names"]; ok {
		t.Errorf("an empty names attr: %s", recs[2].line)
	}
	want := map[string]string{
		"level": "DEBUG", "msg": "DHT announce failed", "infohash": ih, "torrent": "init-17.mp4",
		"err": "getting starting nodes: nothing resolved", "names": "github.com/anacrolix/torrent torrent.go:2414",
	}
	for k, v := range want {
		if got := recs[0].str(k); got != v {
			t.Errorf("%s = %q, want %q (%s)", k, got, v, recs[0].line)
		}
	}
	if got := recs[1].str("msg"); got != `error using torrent source "a \"b\""` {
		t.Errorf("msg %q, want the source quoted once", got)
	}
	if recs[1].str("infohash") != ih {
		t.Errorf("no infohash attr: %s", recs[1].line)
	}
}

func TestUnquoteTwice(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:                    `plain`,
		`name "x.mp4" once`:        `name "x.mp4" once`,
		`name "\"x.mp4\"" twice`:   `name "x.mp4" twice`,
		`"\"a\"" and "\"b\""`:      `"a" and "b"`,
		`"\"a" not quoted inside`:  `"\"a" not quoted inside`,
		`to "1.2.3.4:6881": error`: `to "1.2.3.4:6881": error`,
	} {
		if got := unquoteTwice(in); got != want {
			t.Errorf("unquoteTwice(%s) = %s, want %s", in, got, want)
		}
	}
}

// offlineDHT turns the DHT on with no way to find nodes, as a gateway without internet (or DNS)
// has it, without a packet leaving loopback.
func offlineDHT(c *Config) {
	c.NoDHT = false
	c.tuneTorrent = func(tc *torrent.ClientConfig) {
		tc.DhtStartingNodes = func(string) dht.StartingNodesGetter {
			return func() ([]dht.Addr, error) { return nil, errors.New("nothing resolved") }
		}
	}
}

// TestLiveBroadcastOfflineDHTNoWarnings: a broadcast into a gateway whose DHT has no nodes logs
// no warning per segment (anacrolix announced each segment's torrent to the DHT and warned when
// that failed, once per DHT server), only the one bootstrap warning; and each record names its
// component once.
func TestLiveBroadcastOfflineDHTNoWarnings(t *testing.T) {
	logs, log := newLogBuffer(slog.LevelDebug)
	r := startGatewayLog(t, func(c *Config) {
		c.IngestToken = testIngestToken
		offlineDHT(c)
	}, log)
	feed := newLiveFeed(t, r)
	const media = 6
	feed.push(true, media)

	announces := func() (n int) {
		for _, rec := range logs.records(t) {
			if m := rec.str("msg"); strings.Contains(m, "announc") && strings.Contains(m, "DHT") {
				n++
			}
		}
		return n
	}
	waitFor(t, 20*time.Second, "a DHT announce of each segment's torrent", func() bool { return announces() >= 1+media })
	r.stop()

	warnings := 0
	for _, rec := range logs.records(t) {
		if c := strings.Count(rec.line, `"component":`); c != 1 {
			t.Errorf("component %d times: %s", c, rec.line)
		}
		if rec.str("msg") == "new live stream" && rec.str("component") != "live" {
			t.Errorf("new live stream logged as component %q, want live", rec.str("component"))
		}
		if rec.str("msg") == "DHT announce failed" && (!strings.HasSuffix(rec.str("torrent"), ".m4s") && !strings.HasSuffix(rec.str("torrent"), ".mp4") || strings.Contains(rec.str("torrent"), `"`)) {
			t.Errorf("announce failure names the torrent %q, want the segment's file name unquoted", rec.str("torrent"))
		}
		switch lv := rec.str("level"); {
		case lv == "WARN" && rec.str("msg") == "DHT bootstrap failed":
		case lv == "WARN" || lv == "ERROR":
			warnings++
			t.Errorf("warning: %s", rec.line)
		}
	}
	if warnings > 0 {
		t.Errorf("%d warnings from a broadcast of %d segments", warnings, media+1)
	}
}
