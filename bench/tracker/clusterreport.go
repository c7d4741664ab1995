package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
)

type clusterReport struct {
	settings           settings
	cs                 clusterSettings
	nofile             uint64
	when               time.Time
	loadStart, loadEnd string
	order              []string
	results            map[string][]clusterResult
}

func (r *clusterReport) median(name string, f func(clusterResult) float64) (float64, bool) {
	var v []float64
	for _, res := range r.results[name] {
		v = append(v, f(res))
	}
	if len(v) == 0 {
		return 0, false
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2], true
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2, true
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *clusterReport) write(w io.Writer) {
	st, cs := r.settings, r.cs
	rounds := len(r.results[r.order[0]])
	fmt.Fprintf(w, "### Cluster cost, %s\n\n", r.when.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "%d swarms, each with 1 offering socket and %d answering ones (%d sockets from 127.0.0.1); "+
		"every announce carries %d offers of %d-byte SDP, every offer is answered at once, and the offerer waits for the reply and every answer "+
		"before its next announce. Paced phase: %.0f announces/s of all offerers together for %v; then every offerer as fast as it can for %v. "+
		"Nodes: child processes, each with an embedded NATS routed to the others. %d round(s), median shown. "+
		"Load average %s at the start, %s at the end; %d CPUs.\n\n",
		st.swarms, (st.sockets-st.announcers)/st.announcers, st.sockets, st.offers, st.sdpBytes,
		cs.pacedRate, cs.pacedDuration, st.duration, rounds, r.loadStart, r.loadEnd, runtime.NumCPU())

	type row struct {
		label   string
		f       func(clusterResult) float64
		format  string
		noRatio bool
	}
	rows := []row{
		{"announces/s (each with its answers)", func(x clusterResult) float64 { return x.announcesPerSec }, "%.0f", false},
		{"announces per CPU-second of the tracker processes", func(x clusterResult) float64 { return x.announcesPerCPUSec }, "%.0f", false},
		{"offer→answer p50 at that load (ms)", func(x clusterResult) float64 { return ms(x.loadLat.p50) }, "%.2f", false},
		{"offer→answer p99 at that load (ms)", func(x clusterResult) float64 { return ms(x.loadLat.p99) }, "%.2f", false},
		{fmt.Sprintf("offer→answer p50, paced at %.0f/s (ms)", cs.pacedRate), func(x clusterResult) float64 { return ms(x.pacedLat.p50) }, "%.2f", false},
		{fmt.Sprintf("offer→answer p99, paced at %.0f/s (ms)", cs.pacedRate), func(x clusterResult) float64 { return ms(x.pacedLat.p99) }, "%.2f", false},
		{"announce→reply p50, paced (ms)", func(x clusterResult) float64 { return ms(x.pacedReply.p50) }, "%.2f", false},
		{"announce→reply p99, paced (ms)", func(x clusterResult) float64 { return ms(x.pacedReply.p99) }, "%.2f", false},
		{"paced rate reached (announces/s)", func(x clusterResult) float64 { return x.pacedRate }, "%.0f", true},
		{"CPU of the tracker processes under load (cores)", func(x clusterResult) float64 { return x.trackerCores }, "%.2f", false},
		{"CPU of the clients under load (cores)", func(x clusterResult) float64 { return x.clientCores }, "%.2f", false},
		{"replies or answers missing", func(x clusterResult) float64 { return float64(x.missing) }, "%.0f", true},
		{"failure replies", func(x clusterResult) float64 { return float64(x.failures) }, "%.0f", true},
	}
	type ratio struct{ num, den string }
	var ratios []ratio
	for _, rt := range []ratio{{"across-nodes", "same-node"}, {"same-node", "alone"}, {"across-nodes", "alone"}} {
		if slices.Contains(r.order, rt.num) && slices.Contains(r.order, rt.den) {
			ratios = append(ratios, rt)
		}
	}
	fmt.Fprintf(w, "| | %s |", strings.Join(r.order, " | "))
	for _, rt := range ratios {
		fmt.Fprintf(w, " %s ÷ %s |", rt.num, rt.den)
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, "|---|")
	for range len(r.order) + len(ratios) {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, rw := range rows {
		fmt.Fprintf(w, "| %s |", rw.label)
		for _, name := range r.order {
			v, _ := r.median(name, rw.f)
			fmt.Fprintf(w, " "+rw.format+" |", v)
		}
		for _, rt := range ratios {
			num, _ := r.median(rt.num, rw.f)
			den, _ := r.median(rt.den, rw.f)
			if !rw.noRatio && den > 0 {
				fmt.Fprintf(w, " %.2f |", num/den)
			} else {
				fmt.Fprint(w, " – |")
			}
		}
		fmt.Fprintln(w)
	}
	if rounds > 1 {
		fmt.Fprintln(w, "\nEvery round (announces/s; offer→answer p50 / p99 ms at that load; paced p50 / p99 ms):")
		for _, name := range r.order {
			var parts []string
			for _, res := range r.results[name] {
				parts = append(parts, fmt.Sprintf("%.0f; %.2f / %.2f; %.2f / %.2f", res.announcesPerSec,
					ms(res.loadLat.p50), ms(res.loadLat.p99), ms(res.pacedLat.p50), ms(res.pacedLat.p99)))
			}
			fmt.Fprintf(w, "- %s: %s\n", name, strings.Join(parts, " · "))
		}
	}
}
