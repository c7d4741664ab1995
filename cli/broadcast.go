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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/swarmgate/swarmgate/live"
)

const broadcastUsage = `Usage: swarmgate broadcast --gateway URL --token TOKEN --key FILE [--loop] [--segment-seconds 1] [--duration D] INPUT
       swarmgate broadcast --gateway URL --token TOKEN [--key FILE] --test-source

Runs ffmpeg on INPUT (a file or URL ffmpeg reads, played in real time) into H.264/AAC fMP4 HLS
segments, signs each with the stream's key (swarmgate live keygen) and uploads it to the
gateway's live origin (started with --ingest-token). Prints the stream id and the watch URL.
Stop with Ctrl-C. --test-source broadcasts ffmpeg's test pattern and a tone instead of INPUT,
with a throwaway key unless --key is given. Every flag has an environment twin (--gateway is
SWARMGATE_GATEWAY; --token falls back to SWARMGATE_INGEST_TOKEN).

Flags:
`

const seeBroadcastHelp = "Run \"swarmgate broadcast --help\" for the flags.\n"

// broadcastCmd runs "swarmgate broadcast": the uploader in live.Broadcast, with flags.
func broadcastCmd(args []string, stdout, stderr io.Writer) int {
	var (
		cfg        = live.DefaultBroadcastConfig()
		keyFile    string
		logLevel   = "info"
		testSource bool
		duration   time.Duration
	)
	fs := flag.NewFlagSet("broadcast", flag.ContinueOnError)
	fs.StringVar(&cfg.Gateway, "gateway", "", "base `URL` of the gateway to upload to, e.g. https://tv.example.org")
	fs.StringVar(&cfg.Token, "token", "", "the gateway's ingest `token` (its --ingest-token)")
	fs.StringVar(&keyFile, "key", "", "the stream's private key `FILE` (swarmgate live keygen --out FILE)")
	fs.BoolVar(&cfg.Loop, "loop", false, "play INPUT over and over (ffmpeg -stream_loop -1)")
	fs.BoolVar(&testSource, "test-source", false, "broadcast ffmpeg's test pattern and a 440 Hz tone instead of an INPUT")
	fs.BoolVar(&cfg.KeepOpen, "keep-open", false, "when stopping, leave the stream open (viewers see it stalled until a broadcast with the key goes on) instead of ending it")
	fs.DurationVar(&duration, "duration", 0, "stop after this long (`duration`, e.g. 10m; default: at the end of INPUT or on Ctrl-C)")
	fs.Float64Var(&cfg.SegmentSeconds, "segment-seconds", cfg.SegmentSeconds, "segment `duration` in seconds, each starting with a keyframe (0.5..10)")
	fs.StringVar(&cfg.FFmpeg, "ffmpeg", cfg.FFmpeg, "the ffmpeg `binary`")
	fs.StringVar(&logLevel, "log-level", logLevel, "log `level`: debug, info, warn or error")
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
			fmt.Fprint(stdout, broadcastUsage)
			printFlags(stdout, fs, true)
			return exitOK
		}
		fmt.Fprintf(stderr, "swarmgate: broadcast: %v\n%s", err, seeBroadcastHelp)
		return exitUsage
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "swarmgate: broadcast: "+format+"\n"+seeBroadcastHelp, a...)
		return exitUsage
	}
	u, err := url.Parse(cfg.Gateway)
	switch {
	case testSource && fs.NArg() > 0:
		return usageErr("--test-source takes no INPUT, got %q", fs.Args())
	case testSource && cfg.Loop:
		return usageErr("--loop is for an INPUT; --test-source runs until stopped")
	case !testSource && fs.NArg() == 0:
		return usageErr("needs an INPUT (a media file or URL), or --test-source")
	case fs.NArg() > 1:
		return usageErr("takes one INPUT, got %q (flags go before it)", fs.Args())
	case cfg.Gateway == "":
		return usageErr("needs --gateway URL")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return usageErr("--gateway %q: want an http(s) URL such as https://tv.example.org", cfg.Gateway)
	case cfg.Token == "":
		return usageErr("needs --token TOKEN, the gateway's ingest token (or SWARMGATE_INGEST_TOKEN)")
	case keyFile == "" && !testSource:
		return usageErr("needs --key FILE (make one with swarmgate live keygen --out FILE)")
	case duration < 0:
		return usageErr("--duration %v: want a positive duration", duration)
	case math.IsNaN(cfg.SegmentSeconds) || cfg.SegmentSeconds < 0.5 || cfg.SegmentSeconds > 10:
		return usageErr("--segment-seconds %v: want 0.5 to 10", cfg.SegmentSeconds)
	}
	cfg.Input = fs.Arg(0)
	if !testSource && !strings.Contains(cfg.Input, "://") {
		if _, err := os.Stat(cfg.Input); err != nil {
			return usageErr("%v", err)
		}
	}
	cfg.InputArgs = broadcastInputArgs(cfg.Input, cfg.Loop, testSource, duration)
	log, err := newLogger(logLevel, "text", stderr)
	if err != nil {
		return usageErr("%v", err)
	}
	if keyFile == "" {
		if cfg.Key, err = live.GenerateKey(); err != nil {
			fmt.Fprintln(stderr, "swarmgate:", err)
			return exitFailure
		}
		log.Warn("using a throwaway key: the stream id changes with every run (make a lasting one with swarmgate live keygen --out FILE)")
	} else if cfg.Key, err = live.ReadKeyFile(keyFile); err != nil {
		fmt.Fprintln(stderr, "swarmgate:", keyFileError(keyFile, err))
		return exitFailure
	}
	cfg.Out = stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := live.Broadcast(ctx, cfg, log)
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

// broadcastInputArgs are ffmpeg's input arguments for the test source or a bounded run; nil
// leaves live.Broadcast's own ("-re [-stream_loop -1] -i INPUT").
func broadcastInputArgs(input string, loop, testSource bool, duration time.Duration) []string {
	var args []string
	switch {
	case testSource:
		args = []string{"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
			"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"}
	case duration > 0:
		args = []string{"-re"}
		if loop {
			args = append(args, "-stream_loop", "-1")
		}
		args = append(args, "-i", input)
	default:
		return nil
	}
	if duration > 0 {
		args = append(args, "-t", strconv.FormatFloat(duration.Seconds(), 'f', -1, 64))
	}
	return args
}
