package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/swarmgate/swarmgate/live"
)

const broadcastUsage = `Usage: swarmgate broadcast --gateway URL --token TOKEN --key FILE [--loop] [--segment-seconds 1] INPUT

Runs ffmpeg on INPUT (a file or URL ffmpeg reads, played in real time) into H.264/AAC fMP4 HLS
segments, signs each with the stream's key (swarmgate live keygen) and uploads it to the
gateway's live origin (started with --ingest-token). Prints the stream id and the watch URL.
Stop with Ctrl-C. Every flag has an environment twin (--gateway is SWARMGATE_GATEWAY; --token
falls back to SWARMGATE_INGEST_TOKEN).

Flags:
`

// broadcastCmd runs "swarmgate broadcast": the uploader in live.Broadcast, with flags.
func broadcastCmd(args []string, stdout, stderr io.Writer) int {
	var (
		cfg      live.BroadcastConfig
		keyFile  string
		logLevel = "info"
	)
	cfg.SegmentSeconds = 1
	fs := flag.NewFlagSet("broadcast", flag.ContinueOnError)
	fs.StringVar(&cfg.Gateway, "gateway", "", "base `URL` of the gateway to upload to, e.g. https://tv.example.org")
	fs.StringVar(&cfg.Token, "token", "", "the gateway's ingest `token` (its --ingest-token)")
	fs.StringVar(&keyFile, "key", "", "the stream's private key `FILE` (swarmgate live keygen --out FILE)")
	fs.BoolVar(&cfg.Loop, "loop", false, "play INPUT over and over (ffmpeg -stream_loop -1)")
	fs.Float64Var(&cfg.SegmentSeconds, "segment-seconds", cfg.SegmentSeconds, "segment `duration` in seconds, each starting with a keyframe (0.5..10)")
	fs.StringVar(&cfg.FFmpeg, "ffmpeg", "ffmpeg", "the ffmpeg `binary`")
	fs.StringVar(&logLevel, "log-level", logLevel, "log `level`: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(stderr, broadcastUsage)
		printFlags(stderr, fs)
	}
	fs.SetOutput(io.Discard)
	env := func(name string) string {
		v := os.Getenv(name)
		if v == "" && name == envName("token") {
			v = os.Getenv(envName("ingest-token"))
		}
		return v
	}
	if err := parseFlags(fs, args, env); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.Usage()
			return exitOK
		}
		fmt.Fprintf(stderr, "swarmgate: %v\nRun \"swarmgate broadcast --help\" for the flags.\n", err)
		return exitUsage
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "swarmgate: broadcast: "+format+"\n", a...)
		return exitUsage
	}
	u, err := url.Parse(cfg.Gateway)
	switch {
	case fs.NArg() == 0:
		return usageErr("needs an INPUT (a media file or URL)")
	case fs.NArg() > 1:
		return usageErr("takes one INPUT, got %q (flags go before it)", fs.Args())
	case cfg.Gateway == "":
		return usageErr("needs --gateway URL")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return usageErr("--gateway %q: want an http(s) URL such as https://tv.example.org", cfg.Gateway)
	case cfg.Token == "":
		return usageErr("needs --token TOKEN, the gateway's ingest token (or SWARMGATE_INGEST_TOKEN)")
	case keyFile == "":
		return usageErr("needs --key FILE (make one with swarmgate live keygen --out FILE)")
	case math.IsNaN(cfg.SegmentSeconds) || cfg.SegmentSeconds < 0.5 || cfg.SegmentSeconds > 10:
		return usageErr("--segment-seconds %v: want 0.5 to 10", cfg.SegmentSeconds)
	}
	cfg.Input = fs.Arg(0)
	if !strings.Contains(cfg.Input, "://") {
		if _, err := os.Stat(cfg.Input); err != nil {
			return usageErr("%v", err)
		}
	}
	log, err := newLogger(logLevel, "text", stderr)
	if err != nil {
		return usageErr("%v", err)
	}
	if cfg.Key, err = live.ReadKeyFile(keyFile); err != nil {
		fmt.Fprintln(stderr, "swarmgate:", err)
		return exitFailure
	}
	cfg.Out, cfg.Log = stdout, log

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := live.Broadcast(ctx, cfg)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("broadcast stopped", "uploaded", st.Uploaded, "refused", st.Refused, "skipped", st.Failed)
	if err != nil {
		fmt.Fprintln(stderr, "swarmgate:", err)
		return exitFailure
	}
	return exitOK
}
