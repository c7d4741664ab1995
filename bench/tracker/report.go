package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
)

type report struct {
	settings           settings
	nofile             uint64
	when               time.Time
	loadStart, loadEnd string
	order              []string
	versions           map[string]string
	results            map[string][]result
}

// median of one figure over a tracker's rounds.
func (r *report) median(name string, f func(result) float64) float64 {
	var v []float64
	for _, res := range r.results[name] {
		v = append(v, f(res))
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func (r *report) write(w io.Writer) {
	st := r.settings
	rounds := len(r.results[r.order[0]])
	fmt.Fprintf(w, "### Tracker capacity, %s\n\n", r.when.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "%d sockets from 127.0.0.1 in %d swarms, each announced once; then %d of them announce with %d offers of %d-byte SDP for %v, "+
		"each waiting for its reply; every socket reads what it is sent. Open-file limit %d. %d round(s), median shown. "+
		"Load average %s at the start, %s at the end; %d CPUs.\n\n",
		st.sockets, st.swarms, st.announcers, st.offers, st.sdpBytes, st.duration, r.nofile, rounds, r.loadStart, r.loadEnd, runtime.NumCPU())
	for _, name := range r.order {
		fmt.Fprintf(w, "- %s: %s\n", name, r.versions[name])
	}
	fmt.Fprintln(w)

	type row struct {
		label   string
		f       func(result) float64
		format  string
		noRatio bool // the trackers' figures measure different things
	}
	rows := []row{
		{"announces/s", func(x result) float64 { return x.announcesPerSec }, "%.0f", false},
		{"announces per CPU-second of the tracker process", func(x result) float64 { return x.announcesPerCPUSec }, "%.0f", false},
		{"memory per socket (RSS slope, KiB)", func(x result) float64 { return x.bytesPerSocket / 1024 }, "%.1f", false},
		{"of which heap (KiB)", func(x result) float64 { return x.heapPerSocket / 1024 }, "%.1f", false},
		{"of which stacks (Go) / external buffers (node) (KiB)", func(x result) float64 { return x.otherPerSocket / 1024 }, "%.1f", true},
		{"RSS with every socket open (MiB)", func(x result) float64 { return float64(x.rssFull) / (1 << 20) }, "%.1f", false},
		{"RSS after the load (MiB)", func(x result) float64 { return float64(x.rssLoaded) / (1 << 20) }, "%.1f", false},
		{"offers received per announce", func(x result) float64 { return x.offersPerAnnounce }, "%.2f", false},
		{"failure replies", func(x result) float64 { return float64(x.failures) }, "%.0f", true},
		{"time to open and announce every socket (s)", func(x result) float64 { return x.openTime.Seconds() }, "%.1f", false},
	}
	// Every other tracker is compared with bittorrent-tracker when it ran.
	const ref = "bittorrent-tracker"
	var others []string
	if slices.Contains(r.order, ref) {
		for _, name := range r.order {
			if name != ref {
				others = append(others, name)
			}
		}
	}
	fmt.Fprintf(w, "| | %s |", strings.Join(r.order, " | "))
	for _, name := range others {
		fmt.Fprintf(w, " %s ÷ %s |", name, ref)
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, "|---|")
	for range len(r.order) + len(others) {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, rw := range rows {
		fmt.Fprintf(w, "| %s |", rw.label)
		for _, name := range r.order {
			fmt.Fprintf(w, " "+rw.format+" |", r.median(name, rw.f))
		}
		for _, name := range others {
			if v, base := r.median(name, rw.f), r.median(ref, rw.f); !rw.noRatio && v >= 0 && base > 0 {
				fmt.Fprintf(w, " %.2f |", v/base)
			} else {
				fmt.Fprint(w, " – |")
			}
		}
		fmt.Fprintln(w)
	}
	if rounds > 1 {
		fmt.Fprintln(w, "\nEvery round (announces/s, KiB per socket):")
		for _, name := range r.order {
			var parts []string
			for _, res := range r.results[name] {
				parts = append(parts, fmt.Sprintf("%.0f / %.1f", res.announcesPerSec, res.bytesPerSocket/1024))
			}
			fmt.Fprintf(w, "- %s: %s\n", name, strings.Join(parts, ", "))
		}
	}
}
