// Command tracker measures the capacity of swarmgate's websocket tracker (package signaling) next
// to bittorrent-tracker's (the npm package webtorrent ships, run with node), the same way one
// after the other in one run: each runs alone in a child process on loopback; this process opens
// -sockets websockets to it, each announcing once into one of -swarms swarms (so each is a real
// peer), then -announcers of them announce again and again with -offers offers each for
// -duration, every one waiting for its reply before the next. Every socket reads what it is sent,
// so relayed offers drain. It prints a Markdown report: announces/s, announces per CPU-second of
// the tracker process, and memory per socket from the tracker process's RSS (both after a full
// garbage collection), the slope between -sockets/5 and -sockets open sockets, so fixed costs
// (runtime, JIT, first buffers) drop out.
//
//	make web   # once: installs web/node_modules (bittorrent-tracker comes with webtorrent)
//	go run ./bench/tracker [-sockets 5000] [-announcers 200] [-offers 2] [-swarms 50] [-duration 10s] [-rounds 1] [-out report.md]
//
// Run it from the repository root (or give -node-pkg). Our tracker's child is this same binary
// started with -serve; bittorrent-tracker's is bench/tracker/bittorrent-tracker.mjs (embedded).
// -baseline runs another build of this command's tracker as well, for a before/after in one run.
// Figures and how to read them: docs/bench.md, "Benchmark: tracker capacity".
//
// With -cluster it measures instead what a cluster costs (issue 13): one tracker alone, three
// nodes with the sockets on their swarms' home, and three nodes with the sockets away from it,
// side by side: announces/s and offer→answer latency (cluster.go; docs/bench.md, "Benchmark:
// cluster cost").
//
//	go run ./bench/tracker -cluster [-sockets 2000] [-announcers 100] [-offers 2] [-duration 10s] [-paced-rate 200] [-paced-duration 5s] [-rounds 1]
package main

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/swarmgate/swarmgate/internal/loadavg"
	"github.com/swarmgate/swarmgate/signaling"
)

type settings struct {
	sockets, announcers, offers, swarms int
	duration                            time.Duration
	sdpBytes                            int
}

func main() {
	var st settings
	flag.IntVar(&st.sockets, "sockets", 5000, "websockets open to the tracker, each a peer of one swarm")
	flag.IntVar(&st.announcers, "announcers", 200, "of them, how many announce again and again during the load")
	flag.IntVar(&st.offers, "offers", 2, "offers in each of those announces")
	flag.IntVar(&st.swarms, "swarms", 50, "swarms the sockets are spread over (bittorrent-tracker keeps at most 1000 peers per swarm; with -cluster, one per announcer)")
	flag.DurationVar(&st.duration, "duration", 10*time.Second, "how long the announcers announce")
	flag.IntVar(&st.sdpBytes, "sdp-bytes", 600, "size of each offer's SDP")
	rounds := flag.Int("rounds", 1, "rounds of every tracker, the order reversed every other round; the report gives the median")
	trackers := flag.String("trackers", "swarmgate,bittorrent-tracker", "trackers to run")
	nodeBin := flag.String("node", "node", "node executable")
	baseline := flag.String("baseline", "", "also run the tracker of this other build of this command (e.g. from an older commit), as swarmgate-baseline")
	nodePkg := flag.String("node-pkg", "web/node_modules/bittorrent-tracker", "bittorrent-tracker package directory (`make web` installs it)")
	out := flag.String("out", "", "write the report here (default stdout)")
	serve := flag.Bool("serve", false, "internal: be the child process that runs swarmgate's tracker")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of swarmgate's tracker process (whole run) here; with -cluster one per tracker process, here.<scenario>.<node>")
	memprofile := flag.String("memprofile", "", "write a heap profile of swarmgate's tracker process, taken with every socket open, here")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up (exit 1) after this long")
	clientProfile := flag.String("client-cpuprofile", "", "write a CPU profile of this process (the clients) here")
	clusterMode := flag.Bool("cluster", false, "measure what the cluster costs instead: one tracker alone, a 3-node cluster with sockets on their swarms' home, and across nodes (see cluster.go)")
	var cs clusterSettings
	flag.Float64Var(&cs.pacedRate, "paced-rate", 200, "-cluster: announces per second (all offerers together) of the paced phase, which measures latency without queueing")
	flag.DurationVar(&cs.pacedDuration, "paced-duration", 5*time.Second, "-cluster: how long the paced phase lasts")
	flag.StringVar(&cs.scenarios, "scenarios", "alone,same-node,across-nodes", "-cluster: scenarios to run")
	var nf nodeFlags
	flag.StringVar(&nf.name, "node-name", "", "internal, with -serve: be this node of a cluster")
	flag.StringVar(&nf.listen, "cluster-listen", "", "internal, with -serve: the embedded NATS's route address")
	flag.StringVar(&nf.routes, "cluster-routes", "", "internal, with -serve: every node's route address, comma-separated")
	flag.Parse()

	if *serve {
		if err := serveOurs(*cpuprofile, *memprofile, nf); err != nil {
			fmt.Fprintln(os.Stderr, "bench/tracker -serve:", err)
			os.Exit(1)
		}
		return
	}
	if *clusterMode {
		clusterDefaults(&st)
	}
	if st.sockets < 10 || st.announcers < 1 || st.announcers > st.sockets || st.swarms < 1 || st.offers < 0 || *rounds < 1 {
		fmt.Fprintln(os.Stderr, "bench/tracker: need -sockets ≥ 10, 1 ≤ -announcers ≤ -sockets, -swarms ≥ 1, -offers ≥ 0, -rounds ≥ 1")
		os.Exit(2)
	}
	time.AfterFunc(*timeout, func() {
		fmt.Fprintf(os.Stderr, "bench/tracker: timed out after %v\n", *timeout)
		os.Exit(1)
	})

	// Both ends of every socket live on this machine: the client ends here, the server ends in
	// the child, which inherits the limit.
	nofile, err := raiseFileLimit()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/tracker:", err)
		os.Exit(1)
	}
	if nofile < uint64(st.sockets)+256 {
		fmt.Fprintf(os.Stderr, "bench/tracker: open-file limit %d is too low for %d sockets\n", nofile, st.sockets)
		os.Exit(1)
	}

	if *clientProfile != "" {
		f, err := os.Create(*clientProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/tracker:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}

	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/tracker:", err)
		os.Exit(1)
	}
	if *clusterMode {
		cs.cpuprofile = *cpuprofile
		if err := runCluster(self, st, cs, *rounds, nofile, *out); err != nil {
			fmt.Fprintln(os.Stderr, "bench/tracker -cluster:", err)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
		return
	}
	var kinds []trackerKind
	if *baseline != "" {
		*trackers += ",swarmgate-baseline"
	}
	for name := range strings.SplitSeq(*trackers, ",") {
		switch name = strings.TrimSpace(name); name {
		case "swarmgate":
			kinds = append(kinds, trackerKind{name: name, cmd: func() *exec.Cmd {
				return exec.Command(self, "-serve", "-cpuprofile", *cpuprofile, "-memprofile", *memprofile)
			}})
		case "swarmgate-baseline":
			kinds = append(kinds, trackerKind{name: name, cmd: func() *exec.Cmd { return exec.Command(*baseline, "-serve") }})
		case "bittorrent-tracker":
			pkg, err := filepath.Abs(*nodePkg)
			if err == nil {
				_, err = os.Stat(filepath.Join(pkg, "server.js"))
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench/tracker: no bittorrent-tracker at %s (run `make web` first, or give -node-pkg): %v\n", *nodePkg, err)
				os.Exit(1)
			}
			script, err := writeRunner()
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench/tracker:", err)
				os.Exit(1)
			}
			defer os.Remove(script)
			kinds = append(kinds, trackerKind{name: name, cmd: func() *exec.Cmd {
				return exec.Command(*nodeBin, "--expose-gc", script, pkg)
			}})
		default:
			fmt.Fprintf(os.Stderr, "bench/tracker: unknown tracker %q\n", name)
			os.Exit(2)
		}
	}

	rep := &report{settings: st, nofile: nofile, when: time.Now(), loadStart: loadavg.String(), results: map[string][]result{}, versions: map[string]string{}}
	for round := range *rounds {
		order := slices.Clone(kinds)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, k := range order {
			fmt.Fprintf(os.Stderr, "bench/tracker: round %d: %s\n", round+1, k.name)
			res, err := measure(k, st)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench/tracker: %s: FAILED: %v\n", k.name, err)
				os.Exit(1)
			}
			fmt.Fprintf(os.Stderr, "bench/tracker: %s: %.0f announces/s, %.0f per CPU-second, %.1f KiB per socket\n",
				k.name, res.announcesPerSec, res.announcesPerCPUSec, res.bytesPerSocket/1024)
			rep.results[k.name] = append(rep.results[k.name], res)
			if !slices.Contains(rep.order, k.name) {
				rep.order = append(rep.order, k.name)
			}
			rep.versions[k.name] = res.version
		}
	}
	rep.loadEnd = loadavg.String()
	var w io.Writer = os.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/tracker:", err)
			os.Exit(1)
		}
		defer f.Close()
		w = f
	}
	rep.write(w)
}

//go:embed bittorrent-tracker.mjs
var runnerScript []byte

// writeRunner writes the node runner to a temporary file, so the command runs from any directory.
func writeRunner() (string, error) {
	f, err := os.CreateTemp("", "bittorrent-tracker-runner-*.mjs")
	if err != nil {
		return "", err
	}
	if _, err := f.Write(runnerScript); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), f.Close()
}

func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("setrlimit: %w", err)
		}
	}
	return lim.Cur, nil
}

// serveOurs is the child: signaling.DefaultConfig (no per-IP or offer-rate limit, as
// bittorrent-tracker has none) on a loopback port, answering "mem" on stdin like the node runner.
// With nf.name it is a node of a cluster (see serveNode) and answers more commands.
func serveOurs(cpuprofile, memprofile string, nf nodeFlags) error {
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	mems := 0
	cfg := signaling.DefaultConfig()
	var nd *benchNode
	if nf.name != "" {
		var err error
		if nd, err = startBenchNode(nf); err != nil {
			return err
		}
		defer nd.close()
		cfg.Bus = nd.bus
	}
	s, err := signaling.New(cfg, nil)
	if err != nil {
		return err
	}
	if nd != nil {
		nd.join(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("listening ws://%s swarmgate %s\n", ln.Addr(), runtime.Version())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch strings.TrimSpace(in.Text()) {
		case "mem":
			// A full collection that also returns freed pages, as node's gc() does.
			debug.FreeOSMemory()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			// The second reading is the one with every socket open.
			if mems++; mems == 2 && memprofile != "" {
				if err := writeHeapProfile(memprofile); err != nil {
					return err
				}
			}
			fmt.Printf(`{"heap":%d,"other":%d,"goroutines":%d}`+"\n", m.HeapAlloc, m.StackInuse, runtime.NumGoroutine())
		case "stats":
			b, _ := json.Marshal(s.Stats())
			fmt.Printf("%s\n", b)
		default:
			if nd != nil && nd.command(in.Text()) {
				continue
			}
			fmt.Printf(`{"error":"unknown command"}` + "\n")
		}
	}
	_ = s.Close()
	return srv.Close()
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type trackerKind struct {
	name string
	cmd  func() *exec.Cmd
}

// child is a running tracker process.
type child struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Reader
	url     string
	version string
}

func startChild(k trackerKind) (*child, error) {
	cmd := k.cmd()
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	line, err := c.readLine(30 * time.Second)
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("waiting for its address: %w", err)
	}
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "listening" {
		c.stop()
		return nil, fmt.Errorf("unexpected first line %q", line)
	}
	c.url, c.version = f[1], strings.Join(f[2:], " ")
	return c, nil
}

func (c *child) readLine(timeout time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := c.out.ReadString('\n')
		ch <- res{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(timeout):
		c.stop() // ends the read too
		return "", errors.New("no answer")
	}
}

// mem asks the child to collect garbage, then reads its RSS.
type memReading struct {
	RSS        int64 // from /proc, the same way for both
	Heap       int64 `json:"heap"`  // live heap (node: heapUsed; Go: HeapAlloc)
	Other      int64 `json:"other"` // node: external + array buffers; Go: goroutine stacks
	Goroutines int   `json:"goroutines"`
}

func (c *child) mem() (memReading, error) {
	var m memReading
	if _, err := io.WriteString(c.in, "mem\n"); err != nil {
		return m, err
	}
	line, err := c.readLine(60 * time.Second)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return m, fmt.Errorf("mem reply %q: %w", line, err)
	}
	m.RSS, err = procRSS(c.cmd.Process.Pid)
	return m, err
}

func (c *child) stop() {
	_ = c.in.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// procCPU is the process's user+system CPU time.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name; utime and stime are fields 14 and 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticksPerSecond, nil
}

type result struct {
	version            string
	announces          int
	elapsed            time.Duration
	announcesPerSec    float64
	announcesPerCPUSec float64
	offersPerAnnounce  float64 // offers the sockets received ÷ load announces
	bytesPerSocket     float64 // RSS slope
	heapPerSocket      float64
	otherPerSocket     float64
	goroutinesPerSock  float64
	rssFull, rssLoaded int64
	openTime           time.Duration
	failures           int64
}

// clientSock is the far end of one tracker websocket.
type clientSock struct {
	ws      *websocket.Conn
	swarm   int
	peerID  string
	replies chan struct{} // one token per announce reply (or failure)
}

type clientStats struct {
	offers, failures atomic.Int64
}

func (cs *clientSock) readLoop(stats *clientStats) {
	for {
		_, data, err := cs.ws.ReadMessage()
		if err != nil {
			return
		}
		switch {
		case bytes.Contains(data, []byte(`"failure reason"`)):
			stats.failures.Add(1)
			select {
			case cs.replies <- struct{}{}:
			default:
			}
		case bytes.Contains(data, []byte(`"offer_id"`)):
			stats.offers.Add(1)
		case bytes.Contains(data, []byte(`"interval"`)):
			select {
			case cs.replies <- struct{}{}:
			default:
			}
		}
	}
}

func (cs *clientSock) waitReply(timeout time.Duration) error {
	select {
	case <-cs.replies:
		return nil
	case <-time.After(timeout):
		return errors.New("no announce reply")
	}
}

// binary is a protocol "binary string": one code point per byte.
func binary(b []byte) string {
	out := make([]byte, 0, 2*len(b))
	for _, v := range b {
		out = utf8.AppendRune(out, rune(v))
	}
	return string(out)
}

func randomBinary(r *rand.Rand) string {
	var b [20]byte
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return binary(b[:])
}

type offerJSON struct {
	OfferID string `json:"offer_id"`
	Offer   struct {
		Type string `json:"type"`
		SDP  string `json:"sdp"`
	} `json:"offer"`
}

type announceJSON struct {
	Action     string      `json:"action"`
	InfoHash   string      `json:"info_hash"`
	PeerID     string      `json:"peer_id"`
	Event      string      `json:"event,omitempty"`
	Left       int         `json:"left"`
	Uploaded   int         `json:"uploaded"`
	Downloaded int         `json:"downloaded"`
	NumWant    int         `json:"numwant"`
	Offers     []offerJSON `json:"offers,omitempty"`
}

func fakeSDP(r *rand.Rand, size int) string {
	var sb strings.Builder
	sb.WriteString("v=0\r\no=- ")
	for sb.Len() < size {
		fmt.Fprintf(&sb, "%d a=candidate:%d 1 udp 2113937151 127.0.0.1 %d typ host\r\n", r.Uint32(), r.UintN(1000), 1024+r.UintN(60000))
	}
	return sb.String()[:size]
}

func measure(k trackerKind, st settings) (result, error) {
	var res result
	c, err := startChild(k)
	if err != nil {
		return res, err
	}
	defer c.stop()
	res.version = c.version
	pid := c.cmd.Process.Pid

	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	infoHashes := make([]string, st.swarms)
	for i := range infoHashes {
		infoHashes[i] = randomBinary(r)
	}
	socks := make([]*clientSock, st.sockets)
	for i := range socks {
		socks[i] = &clientSock{swarm: i % st.swarms, peerID: randomBinary(r), replies: make(chan struct{}, 1)}
	}
	var stats clientStats
	dialer := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 2048, WriteBufferSize: 2048}
	defer func() {
		for _, s := range socks {
			if s.ws != nil {
				_ = s.ws.Close()
			}
		}
	}()

	// open dials and announces socks[from:to], 32 at a time, each waiting for its reply.
	open := func(from, to int) error {
		return inParallel(from, to, func(i int) error {
			s := socks[i]
			ws, resp, err := dialer.Dial(c.url, nil)
			if err != nil {
				return fmt.Errorf("socket %d: dial: %w", i, err)
			}
			_ = resp.Body.Close()
			s.ws = ws
			go s.readLoop(&stats)
			msg, _ := json.Marshal(announceJSON{Action: "announce", InfoHash: infoHashes[s.swarm], PeerID: s.peerID, Event: "started", Left: 1 << 20})
			if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
				return fmt.Errorf("socket %d: %w", i, err)
			}
			if err := s.waitReply(30 * time.Second); err != nil {
				return fmt.Errorf("socket %d: %w", i, err)
			}
			return nil
		})
	}

	start := time.Now()
	first := st.sockets / 5
	if err := open(0, first); err != nil {
		return res, err
	}
	m1, err := c.mem()
	if err != nil {
		return res, fmt.Errorf("memory at %d sockets: %w", first, err)
	}
	if err := open(first, st.sockets); err != nil {
		return res, err
	}
	res.openTime = time.Since(start)
	m2, err := c.mem()
	if err != nil {
		return res, fmt.Errorf("memory at %d sockets: %w", st.sockets, err)
	}
	n := float64(st.sockets - first)
	res.bytesPerSocket = float64(m2.RSS-m1.RSS) / n
	res.heapPerSocket = float64(m2.Heap-m1.Heap) / n
	res.otherPerSocket = float64(m2.Other-m1.Other) / n
	res.goroutinesPerSock = float64(m2.Goroutines-m1.Goroutines) / n
	res.rssFull = m2.RSS
	if f := stats.failures.Load(); f > 0 {
		return res, fmt.Errorf("%d failure replies to the first announces", f)
	}

	// The load: announcers spread over every swarm, each with a few pre-encoded announces of
	// fresh offer_ids, sent in turn.
	const variants = 8
	msgs := make([][][]byte, st.announcers)
	for a := range msgs {
		s := socks[a*st.sockets/st.announcers]
		for range variants {
			m := announceJSON{Action: "announce", InfoHash: infoHashes[s.swarm], PeerID: s.peerID, Left: 1 << 20, NumWant: st.offers}
			for range st.offers {
				o := offerJSON{OfferID: randomBinary(r)}
				o.Offer.Type, o.Offer.SDP = "offer", fakeSDP(r, st.sdpBytes)
				m.Offers = append(m.Offers, o)
			}
			b, _ := json.Marshal(m)
			msgs[a] = append(msgs[a], b)
		}
	}
	offers0 := stats.offers.Load()
	cpu0, err := procCPU(pid)
	if err != nil {
		return res, err
	}
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, st.announcers)
	loadStart := time.Now()
	deadline := loadStart.Add(st.duration)
	for a := range st.announcers {
		s := socks[a*st.sockets/st.announcers]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; time.Now().Before(deadline); j++ {
				if err := s.ws.WriteMessage(websocket.TextMessage, msgs[a][j%variants]); err != nil {
					errs <- err
					return
				}
				if err := s.waitReply(30 * time.Second); err != nil {
					errs <- err
					return
				}
				total.Add(1)
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(loadStart)
	cpu1, err := procCPU(pid)
	if err != nil {
		return res, err
	}
	close(errs)
	if err := <-errs; err != nil {
		return res, fmt.Errorf("load: %w", err)
	}
	res.announces = int(total.Load())
	res.announcesPerSec = float64(res.announces) / res.elapsed.Seconds()
	if cpu := (cpu1 - cpu0).Seconds(); cpu > 0 {
		res.announcesPerCPUSec = float64(res.announces) / cpu
	}
	// Let the offers still in flight land: wait until the count stops moving (bounded).
	for prev, i := int64(-1), 0; i < 50; i++ {
		cur := stats.offers.Load()
		if cur == prev {
			break
		}
		prev = cur
		time.Sleep(100 * time.Millisecond)
	}
	res.offersPerAnnounce = float64(stats.offers.Load()-offers0) / float64(res.announces)
	res.failures = stats.failures.Load()
	m3, err := c.mem()
	if err != nil {
		return res, fmt.Errorf("memory after the load: %w", err)
	}
	res.rssLoaded = m3.RSS
	return res, nil
}

// inParallel runs job(i) for i in [from, to), 32 at a time; the first error stops the workers
// that see it and is returned.
func inParallel(from, to int, job func(i int) error) error {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if err := job(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
