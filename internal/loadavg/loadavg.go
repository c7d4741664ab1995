// Package loadavg reads the machine's load averages, which benchmarks print beside their
// figures: on a shared machine they say how far to trust them.
package loadavg

import (
	"os"
	"strings"
)

// String is the 1, 5 and 15 minute load averages ("0.52 0.58 0.59"), or "?" where /proc has none.
func String() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
