package gateway

import (
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// torrentLog is the slog.Handler anacrolix/torrent and its DHT log through (ClientConfig.Slogger).
// Their records arrive as printf text with the logger's names in a "names" attr; torrentLog makes
// them read like ours and keeps an offline DHT from flooding the log:
//
//   - "<infohash>: msg" becomes msg with an infohash attr, and names a plain string;
//   - a value quoted twice (anacrolix %q-formats a Torrent whose String is already quoted:
//     `"\"1.m4s\""`) is quoted once;
//   - a failed DHT announce is debug: one per torrent per DHT server, so one per live segment;
//     the DHT-wide cause shows in the bootstrap failure, a warning (anacrolix says error, but a
//     gateway without DHT nodes still serves its HTTP, tracker and direct peers);
//   - records at info and above that repeat (alike but for numbers: addresses, infohashes) within
//     foldWindow are logged once; the next one after the window carries suppressed=N, how many
//     were left out in between.
type torrentLog struct {
	next  slog.Handler
	folds *folds
}

// foldWindow is how long repeats of one anacrolix record stay quiet after it was logged.
const foldWindow = 10 * time.Minute

func newTorrentLog(next slog.Handler) *torrentLog {
	return &torrentLog{next: next, folds: &folds{now: time.Now, seen: map[string]*fold{}}}
}

func (h *torrentLog) Enabled(ctx context.Context, level slog.Level) bool {
	// Records are only ever lowered here, so the next handler's answer for the level asked is
	// the most any record at it can need.
	return h.next.Enabled(ctx, level)
}

func (h *torrentLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &torrentLog{next: h.next.WithAttrs(attrs), folds: h.folds}
}

func (h *torrentLog) WithGroup(name string) slog.Handler {
	return &torrentLog{next: h.next.WithGroup(name), folds: h.folds}
}

var (
	infohashPrefix = regexp.MustCompile(`^([0-9a-f]{40}): `)
	goQuoted       = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	dhtAnnounce    = regexp.MustCompile(`^error announcing (.*) to DHT: (.*)$`)
	dhtBootstrap   = regexp.MustCompile(`^error bootstrapping during bucket refresh: (.*)$`)
)

func (h *torrentLog) Handle(ctx context.Context, r slog.Record) error {
	level, msg := r.Level, unquoteTwice(r.Message)
	var attrs []slog.Attr
	ih := ""
	if m := infohashPrefix.FindStringSubmatch(msg); m != nil {
		ih, msg = m[1], msg[len(m[0]):]
		attrs = append(attrs, slog.String("infohash", ih))
	}
	errText := ""
	switch {
	case dhtAnnounce.MatchString(msg):
		m := dhtAnnounce.FindStringSubmatch(msg)
		level, msg, errText = slog.LevelDebug, "DHT announce failed", m[2]
		if name, err := strconv.Unquote(m[1]); err == nil {
			attrs = append(attrs, slog.String("torrent", name))
		} else if m[1] != ih {
			attrs = append(attrs, slog.String("torrent", m[1]))
		}
	case dhtBootstrap.MatchString(msg):
		m := dhtBootstrap.FindStringSubmatch(msg)
		level, msg, errText = min(level, slog.LevelWarn), "DHT bootstrap failed", m[1]
	}
	if errText != "" {
		attrs = append(attrs, slog.String("err", errText))
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "names" {
			if a = slog.String("names", names(a.Value.Any(), ih)); a.Value.String() == "" {
				return true
			}
		}
		attrs = append(attrs, a)
		return true
	})
	if !h.next.Enabled(ctx, level) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, msg, r.PC)
	if level >= slog.LevelInfo {
		log, suppressed := h.folds.pass(level.String() + " " + foldKey(msg) + " " + foldKey(errText))
		if !log {
			return nil
		}
		if suppressed > 0 {
			attrs = append(attrs, slog.Int("suppressed", suppressed))
		}
	}
	out.AddAttrs(attrs...)
	return h.next.Handle(ctx, out)
}

// names is anacrolix's logger names as one string, without the infohash the record already has.
func names(v any, ih string) string {
	list, ok := v.([]string)
	if !ok {
		s, _ := v.(string)
		return s
	}
	keep := make([]string, 0, len(list))
	for _, n := range list {
		if n != ih {
			keep = append(keep, n)
		}
	}
	return strings.Join(keep, " ")
}

// unquoteTwice replaces each Go-quoted string in s whose content is itself a Go-quoted string
// by that inner string.
func unquoteTwice(s string) string {
	if !strings.Contains(s, `"\"`) {
		return s
	}
	return goQuoted.ReplaceAllStringFunc(s, func(q string) string {
		inner, err := strconv.Unquote(q)
		if err != nil || len(inner) < 2 || inner[0] != '"' {
			return q
		}
		if _, err := strconv.Unquote(inner); err != nil {
			return q
		}
		return inner
	})
}

// foldKey is s with every run of digits, hex letters and address punctuation that holds a digit
// replaced by "#": records that differ only in addresses, ports, infohashes or counts fold.
func foldKey(s string) string {
	var b strings.Builder
	run := func(r rune) bool { return unicode.Is(unicode.ASCII_Hex_Digit, r) || strings.ContainsRune(".:[]x", r) }
	for i := 0; i < len(s); {
		j := i
		digit := false
		for j < len(s) && run(rune(s[j])) {
			digit = digit || (s[j] >= '0' && s[j] <= '9')
			j++
		}
		switch {
		case j == i:
			b.WriteByte(s[i])
			i++
		case digit:
			b.WriteByte('#')
			i = j
		default:
			b.WriteString(s[i:j])
			i = j
		}
	}
	return b.String()
}

// folds remembers when each kind of record was last logged, and how many like it were not since.
type folds struct {
	now  func() time.Time
	mu   sync.Mutex
	seen map[string]*fold
}

type fold struct {
	logged     time.Time
	suppressed int
}

// maxFolds bounds the kinds of record remembered; past it, those logged over a window ago go.
const maxFolds = 1024

// pass says whether to log a record of this key now, and how many like it were left out since
// the last one logged.
func (f *folds) pass(key string) (log bool, suppressed int) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.seen[key]; ok && now.Sub(e.logged) < foldWindow {
		e.suppressed++
		return false, 0
	} else if ok {
		suppressed = e.suppressed
		e.logged, e.suppressed = now, 0
		return true, suppressed
	}
	if len(f.seen) >= maxFolds {
		for k, e := range f.seen {
			if now.Sub(e.logged) >= foldWindow {
				delete(f.seen, k)
			}
		}
	}
	if len(f.seen) < maxFolds {
		f.seen[key] = &fold{logged: now}
	}
	return true, 0
}
