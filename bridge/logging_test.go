package bridge

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

type logRecord struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	Pion  string `json:"pion"`
}

func records(t *testing.T, buf *bytes.Buffer) []logRecord {
	t.Helper()
	var out []logRecord
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r logRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out = append(out, r)
	}
	buf.Reset()
	return out
}

// TestPionLogsGoToSlog: pion's leveled loggers write to the bridge's slog logger with their scope;
// pion's levels are demoted (info to debug, lower ones out of sight), so are routine warnings, and
// levels below the factory's floor are dropped.
func TestPionLogsGoToSlog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: levelPionTrace}))
	l := slogFactory{log: log, min: slog.LevelWarn}.NewLogger("ice")

	l.Trace("t")
	l.Tracef("t %d", 1)
	l.Debug("d")
	l.Debugf("d %d", 1)
	l.Info("i")
	l.Infof("i %d", 1)
	if got := records(t, &buf); len(got) != 0 {
		t.Errorf("below warn written: %+v", got)
	}
	l.Warn("w")
	l.Warnf("w %d", 2)
	l.Error("e")
	l.Errorf("e %s", "x")
	want := []logRecord{{"WARN", "w", "ice"}, {"WARN", "w 2", "ice"}, {"ERROR", "e", "ice"}, {"ERROR", "e x", "ice"}}
	if got := records(t, &buf); len(got) != len(want) {
		t.Errorf("got %+v, want %+v", got, want)
	} else {
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("record %d = %+v, want %+v", i, got[i], want[i])
			}
		}
	}

	// Routine warnings: debug, so dropped at the bridge's warn floor...
	for _, r := range routine {
		l.Warn("pingAllCandidates: " + r)
		l.Warnf("%s (%d)", r, 3)
	}
	if got := records(t, &buf); len(got) != 0 {
		t.Errorf("routine warnings written at warn: %+v", got)
	}
	// ... and there at debug when the floor is lower.
	dl := slogFactory{log: log, min: slog.LevelDebug}.NewLogger("sctp")
	dl.Warnf("%s", routine[0])
	dl.Warn("a real warning")
	got := records(t, &buf)
	if len(got) != 2 || got[0] != (logRecord{"DEBUG", routine[0], "sctp"}) || got[1] != (logRecord{"WARN", "a real warning", "sctp"}) {
		t.Errorf("at a debug floor: %+v", got)
	}

	// The bridge's default: pion's info at debug, its debug and trace not written by a debug
	// handler, nothing below warn by an info one.
	var dbg bytes.Buffer
	def := newSlogFactory(slog.New(slog.NewJSONHandler(&dbg, &slog.HandlerOptions{Level: slog.LevelDebug}))).NewLogger("ice")
	def.Trace("t")
	def.Debugf("d %d", 1)
	def.Infof("ICE connection state changed: %s", "checking")
	def.Warn("w")
	got = records(t, &dbg)
	if len(got) != 2 || got[0] != (logRecord{"DEBUG", "ICE connection state changed: checking", "ice"}) || got[1] != (logRecord{"WARN", "w", "ice"}) {
		t.Errorf("default factory at debug: %+v", got)
	}
	def = newSlogFactory(slog.New(slog.NewJSONHandler(&dbg, &slog.HandlerOptions{Level: slog.LevelInfo}))).NewLogger("ice")
	def.Info("i")
	def.Warn(routine[0])
	def.Error("e")
	if got := records(t, &dbg); len(got) != 1 || got[0] != (logRecord{"ERROR", "e", "ice"}) {
		t.Errorf("default factory at info: %+v", got)
	}

	// The slog logger's own level still applies.
	quiet := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError}))
	ql := slogFactory{log: quiet, min: slog.LevelWarn}.NewLogger("dtls")
	ql.Warn("hidden")
	ql.Error("shown")
	if got := records(t, &buf); len(got) != 1 || got[0].Msg != "shown" {
		t.Errorf("slog level error: %+v", got)
	}
}

// TestBridgeLogsPionThroughSlog: a bridge with no LoggerFactory sends pion's logs to its slog
// logger, tagged with the bridge component.
func TestBridgeLogsPionThroughSlog(t *testing.T) {
	var buf bytes.Buffer
	b, err := New(loopbackConfig(), slog.New(slog.NewJSONHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	buf.Reset()
	b.pionLogs.NewLogger("pc").Warn("from pion")
	var r struct {
		Component, Pion, Msg string
	}
	if err := json.Unmarshal(buf.Bytes(), &r); err != nil || r.Component != "bridge" || r.Pion != "pc" || r.Msg != "from pion" {
		t.Errorf("bridge log %q: %+v %v", buf.String(), r, err)
	}
}
