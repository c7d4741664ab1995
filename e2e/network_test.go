package e2e

import (
	"os"
	"strings"
	"testing"
)

// needDefaultRoute skips a test of two browsers connecting to each other on a machine (or in a
// network namespace) without a default route: Chromium then gathers no ICE host candidates at all
// (../shared/REFERENCE.md §7), so two browsers never connect, whatever swarmgate does. A browser
// and the gateway still do (pion's candidates are its own), so the other tests run. To run these
// tests in a namespace, give it an on-link default route onto its own veth
// (ip route add default dev sg0): nothing leaves.
func needDefaultRoute(t testing.TB) {
	t.Helper()
	v4, _ := os.ReadFile("/proc/net/route")
	v6, _ := os.ReadFile("/proc/net/ipv6_route")
	if hasDefaultRoute(string(v4), string(v6)) {
		return
	}
	t.Skip("no default route here: Chromium gathers no ICE candidates, so two browsers cannot connect to each other (add an on-link default route, e.g. ip route add default dev <veth>, to run this test)")
}

// hasDefaultRoute reads the kernel's IPv4 and IPv6 routing tables (/proc/net/route and
// /proc/net/ipv6_route) for a default route on an interface other than lo.
func hasDefaultRoute(v4, v6 string) bool {
	for _, line := range strings.Split(v4, "\n") {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		f := strings.Fields(line)
		if len(f) >= 8 && f[0] != "lo" && f[1] == "00000000" && f[7] == "00000000" {
			return true
		}
	}
	for _, line := range strings.Split(v6, "\n") {
		// destination prefixlen source prefixlen nexthop metric refcnt use flags device
		f := strings.Fields(line)
		if len(f) >= 10 && f[9] != "lo" && strings.Trim(f[0], "0") == "" && f[1] == "00" {
			return true
		}
	}
	return false
}

func TestHasDefaultRoute(t *testing.T) {
	const (
		v4Header  = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
		v4Default = "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
		v4Link    = "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
		v6Default = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth0\n"
		v6Lo      = "00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n"
		v6Link    = "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0\n"
	)
	for _, tc := range []struct {
		name   string
		v4, v6 string
		want   bool
	}{
		{"IPv4 default", v4Header + v4Link + v4Default, v6Lo + v6Link, true},
		{"IPv6 default only", v4Header + v4Link, v6Lo + v6Default, true},
		{"links only (a namespace with a veth and no default route)", v4Header + v4Link, v6Lo + v6Link, false},
		{"nothing (a fresh namespace)", v4Header, v6Lo, false},
	} {
		if got := hasDefaultRoute(tc.v4, tc.v6); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
