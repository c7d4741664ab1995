package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// cpuProfile writes CPU profiles: of the whole run (part "all"), or of each cold or warm raw wire
// peer download alone (part "cold" or "warm": POST or join → the peer's last piece), one file per
// run, path.1, path.2 …, which `go tool pprof` merges when given them all.
type cpuProfile struct {
	path, part string
	n          int
}

// window starts a profile if part is the one asked for; the function it returns stops it.
func (c *cpuProfile) window(part string) (stop func()) {
	if c == nil || c.path == "" || c.part != part {
		return func() {}
	}
	c.n++
	f, err := os.Create(fmt.Sprintf("%s.%d", c.path, c.n))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: cpu profile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "bench: cpu profile:", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
