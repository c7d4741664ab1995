// Command bench measures swarmgate's throughput on loopback, in one process: the raw pion
// data-channel ceiling, the bridge's Conn, and the whole path native seeder (TCP) → gateway →
// WebRTC peer, cold (the gateway fetches while the peer downloads) and warm (the gateway already
// has the file), plus the time from POST /api/torrents to the first byte at a WebRTC peer. It
// prints a Markdown report; a download with wrong bytes, or any failure, exits 1.
//
//	go run ./bench [-size 32MiB] [-runs 3] [-piece 256KiB] [-out report.md] [-cpuprofile cpu.out [-profile all|cold|warm]]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/swarmgate/swarmgate/internal/loadavg"
	"github.com/swarmgate/swarmgate/internal/peertest"
)

func main() {
	size := byteSize(32 << 20)
	piece := byteSize(256 << 10)
	flag.Var(&size, "size", "file size (bytes, or with KiB/MiB/GiB)")
	flag.Var(&piece, "piece", "piece length (bytes, or with KiB/MiB)")
	runs := flag.Int("runs", 3, "runs of every measurement")
	out := flag.String("out", "", "write the report here (default stdout)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here (see -profile)")
	profilePart := flag.String("profile", "all", "what -cpuprofile covers: all (the whole run), cold or warm (each raw wire peer's cold or warm download alone, one file per run: FILE.1, FILE.2 …)")
	phases := flag.String("phases", "raw,conn,wire,client", "measurements to run: raw (pion channel), conn (bridge Conn), wire (raw wire peer, cold+warm, first byte), client (anacrolix peer, cold+warm)")
	timeout := flag.Duration("timeout", 20*time.Minute, "give up (exit 1) after this long")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	slog.SetDefault(log)

	if *runs < 1 || size < 1<<10 || piece < 16<<10 || piece&(piece-1) != 0 {
		fmt.Fprintln(os.Stderr, "bench: need -runs ≥ 1, -size ≥ 1 KiB and a power-of-two -piece ≥ 16 KiB")
		os.Exit(2)
	}
	want := map[string]bool{}
	for p := range strings.SplitSeq(*phases, ",") {
		switch p = strings.TrimSpace(p); p {
		case "raw", "conn", "wire", "client":
			want[p] = true
		default:
			fmt.Fprintf(os.Stderr, "bench: unknown phase %q\n", p)
			os.Exit(2)
		}
	}

	// A watchdog: whatever hangs, the command ends by itself. Temp dirs of a hung run may remain.
	time.AfterFunc(*timeout, func() {
		fmt.Fprintf(os.Stderr, "bench: timed out after %v\n", *timeout)
		os.Exit(1)
	})

	switch *profilePart {
	case "all", "cold", "warm":
	default:
		fmt.Fprintf(os.Stderr, "bench: -profile is all, cold or warm, not %q\n", *profilePart)
		os.Exit(2)
	}
	prof = &cpuProfile{path: *cpuprofile, part: *profilePart}
	if *cpuprofile != "" && *profilePart == "all" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}

	rep, err := run(int64(size), int64(piece), *runs, want, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: FAILED:", err)
		if errors.Is(err, errCorrupt) {
			fmt.Fprintln(os.Stderr, "bench: a peer received wrong bytes")
		}
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	var w io.Writer = os.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer f.Close()
		w = f
	}
	rep.loadEnd = loadavg.String()
	rep.write(w)
}

// prof is the -cpuprofile of a part of the run, or nothing.
var prof *cpuProfile

func run(size, piece int64, runs int, want map[string]bool, log *slog.Logger) (*report, error) {
	rep := newReport(size, piece, runs)
	progress := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	}

	// The seeder is shared by every run; made first, so that its hashing is not timed.
	var seeder *peertest.Seeder
	if want["wire"] || want["client"] {
		dir, err := os.MkdirTemp("", "swarmgate-bench-seeder-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if seeder, err = peertest.NewSeeder(dir, "movie.bin", size, piece, log); err != nil {
			return nil, fmt.Errorf("seeder: %w", err)
		}
		defer seeder.Close()
	}

	// Each run measures the ceiling and then the paths, back to back: on a shared machine the
	// load changes from minute to minute, and a ratio of figures taken minutes apart would
	// measure that change.
	for i := range runs {
		if want["raw"] {
			var bps float64
			err := rep.countDrops("raw", func() (err error) { bps, err = measureRaw(size); return err })
			if err != nil {
				return nil, fmt.Errorf("raw data channel: %w", err)
			}
			rep.add(rowRaw, bps/1e6)
			progress("run %d: raw data channel %.1f MB/s", i+1, bps/1e6)
		}
		if want["conn"] {
			var bps float64
			var stall time.Duration
			err := rep.countDrops("conn", func() (err error) { bps, stall, err = measureConn(size, log); return err })
			if err != nil {
				return nil, fmt.Errorf("bridge conn: %w", err)
			}
			rep.add(rowConn, bps/1e6)
			rep.addMS(rowStallConn, stall)
			progress("run %d: bridge Conn %.1f MB/s (longest stall %v)", i+1, bps/1e6, stall.Round(time.Millisecond))
		}
		if want["wire"] {
			var cold, warm rawRun
			err := rep.countDrops("wire", func() (err error) { cold, warm, err = rawScenario(seeder, log); return err })
			if err != nil {
				return nil, fmt.Errorf("run %d, raw wire peer: %w", i+1, err)
			}
			rep.add(rowWireColdJoin, cold.joinToDone()/1e6)
			rep.add(rowWireColdFirst, cold.firstPieceToDone()/1e6)
			rep.add(rowWireWarmJoin, warm.joinToDone()/1e6)
			rep.add(rowWireWarmHandshake, warm.handshakeToDone()/1e6)
			rep.addMS(rowTTFBMeta, cold.Metadata.Sub(cold.Posted))
			rep.addMS(rowTTFBOpen, cold.Open.Sub(cold.Posted))
			rep.addMS(rowTTFBFirst, cold.Wire.FirstPiece.Sub(cold.Posted))
			rep.addMS(rowWarmOpen, warm.Open.Sub(warm.Join))
			rep.addMS(rowWarmFirst, warm.Wire.FirstPiece.Sub(warm.Join))
			rep.addMS(rowTTFBGateway, cold.GWFirst.Sub(cold.Posted))
			rep.add(rowGatewayFetch, float64(size)/cold.GWDone.Sub(cold.GWFirst).Seconds()/1e6)
			rep.addMS(rowStallCold, cold.Wire.MaxGap)
			rep.addMS(rowStallWarm, warm.Wire.MaxGap)
			rep.maxOutstanding = max(rep.maxOutstanding, cold.Wire.MaxOutstanding, warm.Wire.MaxOutstanding)
			rep.chokes += cold.Wire.Chokes + warm.Wire.Chokes
			progress("run %d: raw wire peer cold %.1f MB/s (first piece %v after POST), warm %.1f MB/s",
				i+1, cold.joinToDone()/1e6, cold.Wire.FirstPiece.Sub(cold.Posted).Round(time.Millisecond), warm.joinToDone()/1e6)
		}
		if want["client"] {
			var cold, warm clientRun
			err := rep.countDrops("client", func() (err error) { cold, warm, err = clientScenario(seeder, log); return err })
			if err != nil {
				return nil, fmt.Errorf("run %d, anacrolix peer: %w", i+1, err)
			}
			rep.add(rowClientCold, cold.joinToDone()/1e6)
			rep.add(rowClientWarm, warm.joinToDone()/1e6)
			progress("run %d: anacrolix peer cold %.1f MB/s, warm %.1f MB/s", i+1, cold.joinToDone()/1e6, warm.joinToDone()/1e6)
		}
	}
	return rep, nil
}

// byteSize is a flag taking 33554432, 32MiB, 256KiB or 1GiB; KB, MB and GB are decimal.
type byteSize int64

func (b *byteSize) String() string { return formatSize(int64(*b)) }

func (b *byteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("want a size like 33554432, 32MiB or 256KiB")
	}
	*b = byteSize(n * mult)
	return nil
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
