package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/swarmgate/swarmgate/internal/loadavg"
)

// goal is what the whole path should reach, as a fraction of the raw data channel.
const goal = 0.8

type rowID int

const (
	rowRaw rowID = iota
	rowConn
	rowWireColdJoin
	rowWireColdFirst
	rowWireWarmJoin
	rowWireWarmHandshake
	rowClientCold
	rowClientWarm
	rowGatewayFetch

	rowTTFBMeta
	rowTTFBOpen
	rowTTFBFirst
	rowWarmOpen
	rowWarmFirst
	rowTTFBGateway

	rowStallConn
	rowStallCold
	rowStallWarm
)

var rowNames = map[rowID]string{
	rowRaw:               "raw pion data channel (ceiling)",
	rowConn:              "bridge Conn → Conn (two Bridges)",
	rowWireColdJoin:      "**cold**, raw wire peer, join → complete",
	rowWireColdFirst:     "cold, raw wire peer, first piece → complete",
	rowWireWarmJoin:      "**warm**, raw wire peer, join → complete",
	rowWireWarmHandshake: "warm, raw wire peer, handshake → complete",
	rowClientCold:        "cold, anacrolix WebRTC peer, join → complete",
	rowClientWarm:        "warm, anacrolix WebRTC peer, join → complete",
	rowGatewayFetch:      "cold: the gateway's own fetch from the seeder (TCP), first data → complete",

	rowTTFBMeta:    "POST → gateway has metadata (GET …/metainfo returns)",
	rowTTFBOpen:    "POST → data channel open at the peer",
	rowTTFBGateway: "POST → gateway's first data from the native seeder",
	rowTTFBFirst:   "**POST → first `piece` message at the peer**",
	rowWarmOpen:    "warm: join → data channel open",
	rowWarmFirst:   "warm: join → first `piece` message",

	rowStallConn: "bridge Conn → Conn: longest gap between reads",
	rowStallCold: "cold, raw wire peer: longest gap between pieces",
	rowStallWarm: "warm, raw wire peer: longest gap between pieces",
}

type report struct {
	when           time.Time
	size, piece    int64
	runs           int
	values         map[rowID][]float64
	maxOutstanding int
	chokes         int
	udpDrops       map[string]int64
	udpOrder       []string
	loadStart      string
	loadEnd        string
}

func newReport(size, piece int64, runs int) *report {
	return &report{when: time.Now(), size: size, piece: piece, runs: runs, values: map[rowID][]float64{}, udpDrops: map[string]int64{}, loadStart: loadavg.String()}
}

func (r *report) add(id rowID, v float64)         { r.values[id] = append(r.values[id], v) }
func (r *report) addMS(id rowID, d time.Duration) { r.add(id, float64(d)/float64(time.Millisecond)) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *report) write(w io.Writer) {
	fmt.Fprintf(w, "# swarmgate bench, %s\n\n", r.when.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- machine: %s/%s, %d CPUs (GOMAXPROCS %d), %s%s\n", runtime.GOOS, runtime.GOARCH,
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), cpuModel())
	fmt.Fprintf(w, "- load average (1, 5, 15 min) at start: %s, at end: %s\n", r.loadStart, r.loadEnd)
	fmt.Fprintf(w, "- file: %s, pieces of %s; %d run(s); everything on loopback in one process\n",
		formatSize(r.size), formatSize(r.piece), r.runs)
	fmt.Fprintf(w, "- MB/s = 10⁶ bytes per second; every download verified by SHA-256 (and each piece by SHA-1)\n\n")

	raw := median(r.values[rowRaw])
	header := func(unit string, withRatio bool) {
		fmt.Fprintf(w, "| %s |", unit)
		for i := range r.runs {
			fmt.Fprintf(w, " run %d |", i+1)
		}
		fmt.Fprint(w, " median |")
		if withRatio {
			fmt.Fprint(w, " ÷ raw |")
		}
		fmt.Fprint(w, "\n|---|")
		for range r.runs {
			fmt.Fprint(w, "---:|")
		}
		fmt.Fprint(w, "---:|")
		if withRatio {
			fmt.Fprint(w, "---:|")
		}
		fmt.Fprintln(w)
	}
	row := func(id rowID, format string, withRatio bool) {
		v, ok := r.values[id]
		if !ok {
			return
		}
		fmt.Fprintf(w, "| %s |", rowNames[id])
		for i := range r.runs {
			if i < len(v) {
				fmt.Fprintf(w, " "+format+" |", v[i])
			} else {
				fmt.Fprint(w, " – |")
			}
		}
		fmt.Fprintf(w, " "+format+" |", median(v))
		if withRatio {
			if raw > 0 {
				fmt.Fprintf(w, " %.2f× |", median(v)/raw)
			} else {
				fmt.Fprint(w, " – |")
			}
		}
		fmt.Fprintln(w)
	}

	throughput := []rowID{rowRaw, rowConn, rowWireColdJoin, rowWireColdFirst, rowGatewayFetch, rowWireWarmJoin, rowWireWarmHandshake, rowClientCold, rowClientWarm}
	if r.has(throughput...) {
		fmt.Fprintln(w, "## Throughput")
		fmt.Fprintln(w)
		header("MB/s", raw > 0)
		for _, id := range throughput {
			row(id, "%.1f", raw > 0)
		}
		fmt.Fprintln(w)
		if r.maxOutstanding > 0 {
			fmt.Fprintf(w, "Raw wire peers kept up to %d requests in flight (goal %d); chokes seen: %d.\n\n", r.maxOutstanding, pipelineDepth, r.chokes)
		}
	}
	if raw > 0 && r.has(rowWireColdJoin, rowWireWarmJoin, rowClientCold, rowClientWarm) {
		fmt.Fprintf(w, "**Whole path ÷ raw (goal ≥ %.2f×):**\n\n", goal)
		for _, c := range []struct {
			id   rowID
			name string
		}{
			{rowWireWarmJoin, "warm, raw wire peer (the bridge path)"},
			{rowWireColdJoin, "cold, raw wire peer (native fetch + bridge)"},
			{rowClientWarm, "warm, anacrolix peer"},
			{rowClientCold, "cold, anacrolix peer"},
		} {
			if v, ok := r.values[c.id]; ok {
				ratio := median(v) / raw
				verdict := "meets the goal"
				if ratio < goal {
					verdict = "BELOW the goal"
				}
				fmt.Fprintf(w, "- %s: **%.2f×** (%.1f of %.1f MB/s), %s; run by run %s\n", c.name, ratio, median(v), raw, verdict, r.perRun(c.id))
			}
		}
		fmt.Fprintln(w)
	}
	latency := []rowID{rowTTFBMeta, rowTTFBOpen, rowTTFBGateway, rowTTFBFirst, rowWarmOpen, rowWarmFirst}
	if r.has(latency...) {
		fmt.Fprintln(w, "## Time to first byte (raw wire peer)")
		fmt.Fprintln(w)
		header("ms", false)
		for _, id := range latency {
			row(id, "%.0f", false)
		}
		fmt.Fprintln(w)
	}
	stalls := []rowID{rowStallConn, rowStallCold, rowStallWarm}
	if r.has(stalls...) {
		fmt.Fprintln(w, "## Stalls (pion SCTP's minimum retransmission timeout is 1 s)")
		fmt.Fprintln(w)
		header("ms", false)
		for _, id := range stalls {
			row(id, "%.0f", false)
		}
		fmt.Fprintln(w)
	}
	if len(r.udpDrops) > 0 {
		fmt.Fprint(w, "UDP receive-buffer drops (RcvbufErrors in /proc/net/snmp, whole machine) during:")
		for i, p := range r.udpOrder {
			if i > 0 {
				fmt.Fprint(w, ",")
			}
			fmt.Fprintf(w, " %s %d", p, r.udpDrops[p])
		}
		fmt.Fprintln(w, ".")
		fmt.Fprintln(w)
	}
}

// udpRcvbufErrors is the machine's count of UDP datagrams dropped for a full socket receive
// buffer (Linux), or -1.
func udpRcvbufErrors() int64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return -1
	}
	var names []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, err := strconv.ParseInt(f[i], 10, 64)
				if err != nil {
					return -1
				}
				return v
			}
		}
	}
	return -1
}

// countDrops adds the UDP drops seen while f runs to phase.
func (r *report) countDrops(phase string, f func() error) error {
	before := udpRcvbufErrors()
	err := f()
	if after := udpRcvbufErrors(); before >= 0 && after >= 0 {
		if _, ok := r.udpDrops[phase]; !ok {
			r.udpOrder = append(r.udpOrder, phase)
		}
		r.udpDrops[phase] += after - before
	}
	return err
}

// perRun is each run's figure of id over the same run's raw channel, and their median: the runs
// measure raw and the paths back to back, so a ratio within a run shares that run's load.
func (r *report) perRun(id rowID) string {
	raw, v := r.values[rowRaw], r.values[id]
	var ratios []float64
	var b strings.Builder
	for i := range min(len(raw), len(v)) {
		if raw[i] <= 0 {
			continue
		}
		ratios = append(ratios, v[i]/raw[i])
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%.2f", v[i]/raw[i])
	}
	if len(ratios) == 0 {
		return "–"
	}
	return fmt.Sprintf("%s (median %.2f×)", b.String(), median(ratios))
}

func (r *report) has(ids ...rowID) bool {
	for _, id := range ids {
		if len(r.values[id]) > 0 {
			return true
		}
	}
	return false
}

// cpuModel is ", <model name>" from /proc/cpuinfo on Linux, or "".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return ", " + strings.TrimSpace(v)
		}
	}
	return ""
}
