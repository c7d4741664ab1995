package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/pion/logging"
)

// slogFactory bridges pion's leveled loggers into slog. pion is chatty below warn (every ICE
// check), so its levels are demoted: info becomes debug (ICE states and the selected pair, for
// --log-level debug), debug and trace go below slog's debug, where no usual handler writes them.
// Levels under min are dropped before formatting.
type slogFactory struct {
	log *slog.Logger
	min slog.Level
}

func (f slogFactory) NewLogger(scope string) logging.LeveledLogger {
	return slogLeveled{log: f.log.With("pion", scope), min: f.min}
}

type slogLeveled struct {
	log *slog.Logger
	min slog.Level
}

// Where pion's levels land in slog.
const (
	levelPionTrace = slog.LevelDebug - 8
	levelPionDebug = slog.LevelDebug - 4
	levelPionInfo  = slog.LevelDebug
)

// newSlogFactory is the bridge's default: everything a debug handler shows.
func newSlogFactory(log *slog.Logger) slogFactory {
	return slogFactory{log: log, min: slog.LevelDebug}
}

// routine are pion warnings that every healthy PeerConnection produces (ICE checks starting
// before the SDP's candidates are added; SCTP and ICE reading or writing during teardown; a STUN
// answer reaching the shared UDP port after its pair closed; a datagram dropped because the
// pair's receive buffer is full, which SCTP retransmits and which a busy gateway logs once per
// packet). At thousands of peers they would drown real warnings, so they are logged at debug.
var routine = []string{
	"Failed to ping without candidate pairs",
	"failed to write packets on netConn: dtls fatal: conn is closed",
	"io: read/write on closed pipe",
	"no such remote",
	"packetio.Buffer is full, discarding write",
}

func (l slogLeveled) emit(level slog.Level, msg string) {
	if level == slog.LevelWarn {
		for _, r := range routine {
			if strings.Contains(msg, r) {
				level = slog.LevelDebug
				break
			}
		}
	}
	if level < l.min || !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, msg)
}

func (l slogLeveled) emitf(level slog.Level, format string, args ...any) {
	if level < l.min || !l.log.Enabled(context.Background(), level) {
		return
	}
	l.emit(level, fmt.Sprintf(format, args...))
}

func (l slogLeveled) Trace(msg string)                  { l.emit(levelPionTrace, msg) }
func (l slogLeveled) Tracef(format string, args ...any) { l.emitf(levelPionTrace, format, args...) }
func (l slogLeveled) Debug(msg string)                  { l.emit(levelPionDebug, msg) }
func (l slogLeveled) Debugf(format string, args ...any) { l.emitf(levelPionDebug, format, args...) }
func (l slogLeveled) Info(msg string)                   { l.emit(levelPionInfo, msg) }
func (l slogLeveled) Infof(format string, args ...any)  { l.emitf(levelPionInfo, format, args...) }
func (l slogLeveled) Warn(msg string)                   { l.emit(slog.LevelWarn, msg) }
func (l slogLeveled) Warnf(format string, args ...any)  { l.emitf(slog.LevelWarn, format, args...) }
func (l slogLeveled) Error(msg string)                  { l.emit(slog.LevelError, msg) }
func (l slogLeveled) Errorf(format string, args ...any) { l.emitf(slog.LevelError, format, args...) }
