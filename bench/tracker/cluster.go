package main

// The -cluster mode measures what a cluster (package cluster, issue 13) costs the tracker, in one
// run side by side:
//
//   - alone: one tracker without a bus, as a single gateway runs it;
//   - same-node: three nodes, each a child process with its embedded NATS, its routes to the
//     others and its tracker wired to the bus as the gateway wires it; every socket on node1,
//     every swarm's home node1, so nothing crosses NATS;
//   - across-nodes: the same three nodes, every swarm homed on node1, the offering sockets on
//     node2 and the answering ones on node3: an announce goes node2 → node1, its reply back,
//     each offer node1 → node3, each answer node3 → node1 → node2 (six NATS hops for one
//     announce with its answers).
//
// Each swarm has one offerer and (sockets − announcers) ÷ announcers answerers, so every offer
// goes from one node to the other in across-nodes. Answerers answer each offer at once, from
// their reader. An offerer announces with -offers offers and waits for the reply and every
// answer before its next announce. Two phases: paced (-paced-rate announces/s of all offerers
// together, for latency without queueing) and then saturated (every offerer as fast as it can,
// for -duration: announces/s and announces per CPU-second of the tracker processes).
//
// IDs are 20 lowercase hex characters, so that the clients find them in the tracker's JSON with
// a byte search: an offer_id carries the time its announce was sent (16 hex digits of
// nanoseconds since the phase's base), the offer's index and the announce's sequence number,
// which is how an answer's latency is known without a table.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/swarmgate/swarmgate/cluster"
	"github.com/swarmgate/swarmgate/internal/loadavg"
	"github.com/swarmgate/swarmgate/signaling"
)

type clusterSettings struct {
	pacedRate     float64
	pacedDuration time.Duration
	scenarios     string
	cpuprofile    string // the tracker children's, one file each
}

// nodeFlags make a -serve child a node of a cluster.
type nodeFlags struct{ name, listen, routes string }

// clusterSecretEnv passes the route secret to the node children (not on their command line).
const clusterSecretEnv = "SWARMGATE_BENCH_CLUSTER_SECRET"

// answerTimeout bounds the wait for an announce's reply and answers; what has not come by then
// counts as missing (a correct run has none).
const answerTimeout = 10 * time.Second

// clusterDefaults sets the -cluster sizes of the flags not given: fewer sockets than the
// capacity mode (the point is the path, not the socket count), one offerer per swarm.
func clusterDefaults(st *settings) {
	given := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if !given["sockets"] {
		st.sockets = 2000
	}
	if !given["announcers"] {
		st.announcers = 100
	}
	st.swarms = st.announcers
}

// ---- the child side: a node of the cluster ----

// benchNode is a -serve child's place in the cluster, wired as gateway/cluster.go wires the
// gateway's (no node leaves during a run, so NodeGone is not needed).
type benchNode struct {
	node    *cluster.Node
	bus     *cluster.SignalBus
	tracker atomic.Pointer[signaling.Server]
}

func startBenchNode(nf nodeFlags) (*benchNode, error) {
	cc := cluster.DefaultConfig()
	cc.Name, cc.Listen, cc.Secret = nf.name, nf.listen, os.Getenv(clusterSecretEnv)
	cc.Routes = strings.Split(nf.routes, ",")
	n, err := cluster.Start(cc)
	if err != nil {
		return nil, err
	}
	b := &benchNode{node: n}
	b.bus, err = n.SignalBus(func(m signaling.BusMessage) {
		if t := b.tracker.Load(); t != nil {
			t.Deliver(m)
		}
	})
	if err != nil {
		_ = n.Close()
		return nil, err
	}
	return b, nil
}

// join makes the node a member once its tracker exists.
func (b *benchNode) join(s *signaling.Server) {
	b.tracker.Store(s)
	b.node.ShareSocketsPerIP(func() map[string]int { return s.SocketsPerIP(2) })
	b.node.OnChange(s.OwnersChanged)
	b.node.Join()
}

func (b *benchNode) close() {
	_ = b.bus.Close()
	_ = b.node.Close()
}

// command answers the node's own stdin commands: "members" (the live names, comma-separated)
// and "home HEX…" (the home of each 40-hex-digit infohash, space-separated).
func (b *benchNode) command(line string) bool {
	f := strings.Fields(line)
	switch {
	case len(f) == 1 && f[0] == "members":
		var names []string
		for _, m := range b.node.Members() {
			names = append(names, m.Name)
		}
		fmt.Println(strings.Join(names, ","))
		return true
	case len(f) >= 1 && f[0] == "home":
		homes := make([]string, 0, len(f)-1)
		for _, h := range f[1:] {
			var key [20]byte
			if n, err := hex.Decode(key[:], []byte(h)); err != nil || n != 20 {
				homes = append(homes, "?")
				continue
			}
			homes = append(homes, b.node.Home(key))
		}
		fmt.Println(strings.Join(homes, " "))
		return true
	}
	return false
}

// ---- the parent side ----

type scenario struct {
	name string
	// nodes is 0 for one tracker without a bus, else the cluster's size; the swarms' home is
	// always the first node, offerers and answerers connect to the nodes of these indexes.
	nodes                 int
	offerNode, answerNode int
}

var allScenarios = []scenario{
	{name: "alone"},
	{name: "same-node", nodes: 3},
	{name: "across-nodes", nodes: 3, offerNode: 1, answerNode: 2},
}

type clusterResult struct {
	announces          int
	elapsed            time.Duration
	announcesPerSec    float64
	announcesPerCPUSec float64
	trackerCores       float64 // the tracker processes' CPU-seconds ÷ the load's seconds
	clientCores        float64 // this process's
	loadLat            latencies
	pacedLat           latencies
	pacedReply         latencies
	pacedRate          float64 // achieved
	missing, failures  int64
	unexpected         int64 // messages a client did not expect (offers to an offerer, bad IDs)
}

type latencies struct{ p50, p99 time.Duration }

func percentiles(d []time.Duration) latencies {
	if len(d) == 0 {
		return latencies{}
	}
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return latencies{at(0.50), at(0.99)}
}

func runCluster(self string, st settings, cs clusterSettings, rounds int, nofile uint64, out string) error {
	if st.offers < 1 || (st.sockets-st.announcers)/st.announcers < st.offers {
		return fmt.Errorf("need -offers ≥ 1 and at least -offers answerers per swarm: (sockets − announcers) ÷ announcers = %d, offers %d",
			(st.sockets-st.announcers)/st.announcers, st.offers)
	}
	if cs.pacedRate <= 0 || cs.pacedDuration <= 0 {
		return errors.New("need -paced-rate > 0 and -paced-duration > 0")
	}
	var scens []scenario
	for name := range strings.SplitSeq(cs.scenarios, ",") {
		i := slices.IndexFunc(allScenarios, func(s scenario) bool { return s.name == strings.TrimSpace(name) })
		if i < 0 {
			return fmt.Errorf("unknown scenario %q (have alone, same-node, across-nodes)", name)
		}
		scens = append(scens, allScenarios[i])
	}
	rep := &clusterReport{settings: st, cs: cs, nofile: nofile, when: time.Now(), loadStart: loadavg.String(), results: map[string][]clusterResult{}}
	for round := range rounds {
		order := slices.Clone(scens)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, sc := range order {
			fmt.Fprintf(os.Stderr, "bench/tracker -cluster: round %d: %s (load average %s)\n", round+1, sc.name, loadavg.String())
			res, err := measureCluster(self, sc, st, cs)
			if err != nil {
				return fmt.Errorf("%s: %w", sc.name, err)
			}
			fmt.Fprintf(os.Stderr, "bench/tracker -cluster: %s: %.0f announces/s, %.0f per CPU-second, offer→answer p50 %v p99 %v (paced p50 %v p99 %v)\n",
				sc.name, res.announcesPerSec, res.announcesPerCPUSec, res.loadLat.p50, res.loadLat.p99, res.pacedLat.p50, res.pacedLat.p99)
			rep.results[sc.name] = append(rep.results[sc.name], res)
			if !slices.Contains(rep.order, sc.name) {
				rep.order = append(rep.order, sc.name)
			}
		}
	}
	rep.loadEnd = loadavg.String()
	var w io.Writer = os.Stdout
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	rep.write(w)
	// Figures of a run that lost messages are not worth reading: say so with the exit status.
	for name, rs := range rep.results {
		for _, r := range rs {
			if r.missing > 0 || r.failures > 0 || r.unexpected > 0 {
				return fmt.Errorf("%s: %d replies or answers missing, %d failure replies, %d unexpected messages", name, r.missing, r.failures, r.unexpected)
			}
		}
	}
	return nil
}

// startTrackers starts the scenario's tracker children: one without a bus, or a cluster whose
// members all see each other.
// With cpuprofile, each child writes its CPU profile to cpuprofile.<scenario>.<node>.
func startTrackers(self string, sc scenario, cpuprofile string) ([]*child, error) {
	profile := func(node string) string {
		if cpuprofile == "" {
			return ""
		}
		return cpuprofile + "." + sc.name + "." + node
	}
	if sc.nodes == 0 {
		c, err := startChild(trackerKind{name: "swarmgate", cmd: func() *exec.Cmd { return exec.Command(self, "-serve", "-cpuprofile", profile("node1")) }})
		if err != nil {
			return nil, err
		}
		return []*child{c}, nil
	}
	addrs, err := freeLoopbackAddrs(sc.nodes)
	if err != nil {
		return nil, err
	}
	var secret [16]byte
	for i := range secret {
		secret[i] = byte(rand.UintN(256))
	}
	names := make([]string, sc.nodes)
	for i := range names {
		names[i] = fmt.Sprintf("node%d", i+1)
	}
	var children []*child
	stopAll := func() {
		for _, c := range children {
			c.stop()
		}
	}
	for i, name := range names {
		c, err := startChild(trackerKind{name: name, cmd: func() *exec.Cmd {
			cmd := exec.Command(self, "-serve", "-cpuprofile", profile(name), "-node-name", name, "-cluster-listen", addrs[i], "-cluster-routes", strings.Join(addrs, ","))
			cmd.Env = append(os.Environ(), clusterSecretEnv+"="+hex.EncodeToString(secret[:]))
			return cmd
		}})
		if err != nil {
			stopAll()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		children = append(children, c)
	}
	want := strings.Join(names, ",")
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range children {
		for {
			got, err := c.command("members")
			if err != nil {
				stopAll()
				return nil, err
			}
			if got == want {
				break
			}
			if time.Now().After(deadline) {
				stopAll()
				return nil, fmt.Errorf("the nodes did not all see each other in 30 s: one sees %q", got)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return children, nil
}

// command sends one line to a child and returns its one-line answer.
func (c *child) command(line string) (string, error) {
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		return "", err
	}
	return c.readLine(30 * time.Second)
}

func (c *child) stats() (signaling.Stats, error) {
	var st signaling.Stats
	line, err := c.command("stats")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(line), &st); err != nil {
		return st, fmt.Errorf("stats reply %q: %w", line, err)
	}
	return st, nil
}

func freeLoopbackAddrs(n int) ([]string, error) {
	var addrs []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// hexID makes a random 20-character ID of hex digits: a valid protocol ID (one byte per
// character) that JSON carries as it is.
func hexID(r *rand.Rand) string {
	var b [10]byte
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return hex.EncodeToString(b[:])
}

// pickInfoHashes returns n infohashes whose home is the first child's node (any n alone).
func pickInfoHashes(r *rand.Rand, children []*child, sc scenario, n int) ([]string, error) {
	var out []string
	for len(out) < n {
		cands := make([]string, 4*(n-len(out)))
		query := []string{"home"}
		for i := range cands {
			cands[i] = hexID(r)
			query = append(query, hex.EncodeToString([]byte(cands[i])))
		}
		if sc.nodes == 0 {
			return cands[:n], nil
		}
		line, err := children[0].command(strings.Join(query, " "))
		if err != nil {
			return nil, err
		}
		homes := strings.Fields(line)
		if len(homes) != len(cands) {
			return nil, fmt.Errorf("home: %d answers to %d infohashes", len(homes), len(cands))
		}
		for i, h := range homes {
			if h == "node1" && len(out) < n {
				out = append(out, cands[i])
			}
		}
	}
	return out, nil
}

func measureCluster(self string, sc scenario, st settings, cs clusterSettings) (clusterResult, error) {
	var res clusterResult
	children, err := startTrackers(self, sc, cs.cpuprofile)
	if err != nil {
		return res, err
	}
	defer func() {
		for _, c := range children {
			c.stop()
		}
	}()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	ihs, err := pickInfoHashes(r, children, sc, st.swarms)
	if err != nil {
		return res, err
	}
	var cst clientCounters
	socks := make([]*benchSock, st.sockets)
	for i := range socks {
		s := &benchSock{pid: hexID(r), events: make(chan sockEvent, 64), cst: &cst}
		if i < st.announcers {
			s.ih, s.url = ihs[i], children[sc.offerNode].url
			s.offerTmpl, s.offerIDAt = announceTemplate(s.ih, s.pid, st.offers, r, st.sdpBytes)
		} else {
			s.ih, s.url = ihs[(i-st.announcers)%st.swarms], children[sc.answerNode].url
			s.answerTmpl, s.answerAt = answerTemplate(s.ih, s.pid, fakeSDP(r, st.sdpBytes))
		}
		socks[i] = s
	}
	defer func() {
		for _, s := range socks {
			if s.ws != nil {
				_ = s.ws.Close()
			}
		}
	}()
	// Answerers first, so that every swarm has them when offers come.
	if err := openSocks(socks[st.announcers:]); err != nil {
		return res, err
	}
	if err := openSocks(socks[:st.announcers]); err != nil {
		return res, err
	}
	offerers := socks[:st.announcers]

	// Paced: latency without queueing.
	paced := runOffers(offerers, st.offers, cs.pacedDuration, cs.pacedRate)
	res.pacedLat, res.pacedReply = percentiles(paced.answerLat), percentiles(paced.replyLat)
	res.pacedRate = float64(paced.announces) / cs.pacedDuration.Seconds()

	// Saturated: throughput, and latency at that load.
	cpu0, err := childrenCPU(children)
	if err != nil {
		return res, err
	}
	self0, _ := procCPU(os.Getpid())
	load := runOffers(offerers, st.offers, st.duration, 0)
	cpu1, err := childrenCPU(children)
	if err != nil {
		return res, err
	}
	self1, _ := procCPU(os.Getpid())
	res.announces, res.elapsed = load.announces, load.elapsed
	res.announcesPerSec = float64(load.announces) / load.elapsed.Seconds()
	if cpu := (cpu1 - cpu0).Seconds(); cpu > 0 {
		res.announcesPerCPUSec = float64(load.announces) / cpu
		res.trackerCores = cpu / load.elapsed.Seconds()
	}
	res.clientCores = (self1 - self0).Seconds() / load.elapsed.Seconds()
	res.loadLat = percentiles(load.answerLat)
	res.missing = paced.missing + load.missing
	res.failures = cst.failures.Load()
	res.unexpected = cst.unexpected.Load()
	if err := checkRouting(children, sc, st, paced.announces+load.announces); err != nil {
		return res, err
	}
	return res, nil
}

func childrenCPU(children []*child) (time.Duration, error) {
	var total time.Duration
	for _, c := range children {
		t, err := procCPU(c.cmd.Process.Pid)
		if err != nil {
			return 0, err
		}
		total += t
	}
	return total, nil
}

// checkRouting checks from the trackers' own counters that the scenario ran as meant: every swarm
// on the home, nothing forwarded with the sockets on the home, everything forwarded across
// nodes, no swarm moved, and the home relayed every answer.
func checkRouting(children []*child, sc scenario, st settings, announces int) error {
	var stats []signaling.Stats
	for _, c := range children {
		s, err := c.stats()
		if err != nil {
			return err
		}
		stats = append(stats, s)
	}
	home := stats[0]
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if home.Swarms != st.swarms || home.Peers != st.sockets {
		bad("the home holds %d swarms and %d peers, want %d and %d", home.Swarms, home.Peers, st.swarms, st.sockets)
	}
	if want := uint64(announces * st.offers); home.AnswersRelayed < want {
		bad("the home relayed %d answers for %d answered offers", home.AnswersRelayed, want)
	}
	for i, s := range stats {
		if s.Replayed > 0 {
			bad("node%d replayed %d announces: membership changed during the run", i+1, s.Replayed)
		}
	}
	switch {
	case sc.nodes > 0 && sc.offerNode == 0:
		for i, s := range stats {
			if s.Forwarded > 0 || s.RemoteSockets > 0 {
				bad("node%d forwarded %d messages and holds %d remote sockets with every socket on the home", i+1, s.Forwarded, s.RemoteSockets)
			}
		}
	case sc.nodes > 0:
		if home.Forwarded > 0 || home.RemoteSockets != st.sockets {
			bad("the home forwarded %d messages and holds %d remote sockets, want 0 and %d", home.Forwarded, home.RemoteSockets, st.sockets)
		}
		for i, s := range stats[1:] {
			if s.Swarms > 0 || s.Forwarded == 0 {
				bad("node%d holds %d swarms and forwarded %d messages", i+2, s.Swarms, s.Forwarded)
			}
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// ---- the clients ----

type clientCounters struct {
	failures, unexpected, dropped atomic.Int64
}

const (
	evReply = iota + 1
	evAnswer
)

// sockEvent is what an offerer's reader hands its announcing goroutine.
type sockEvent struct {
	kind     uint8
	seq      uint8         // evAnswer: the announce the answered offer came with
	at, sent time.Duration // arrival, and (evAnswer) when the offer was sent, both since clientBase
}

// clientBase is the clients' clock origin: offer IDs carry times since it.
var clientBase = time.Now()

// benchSock is the client end of one tracker websocket: an offerer (offerTmpl set) or an
// answerer (answerTmpl set) of swarm ih.
type benchSock struct {
	ws      *websocket.Conn
	wmu     sync.Mutex
	url     string
	ih, pid string
	cst     *clientCounters
	events  chan sockEvent

	offerTmpl  []byte // an announce with offers whose offer_ids are filled in per announce
	offerIDAt  []int
	answerTmpl []byte // an answer whose to_peer_id and offer_id are filled in per offer
	answerAt   [2]int
}

var (
	keyFailure  = []byte(`"failure reason"`)
	keyAnswer   = []byte(`"answer":`)
	keyOffer    = []byte(`"offer":`)
	keyInterval = []byte(`"interval"`)
	keyPeerID   = []byte(`"peer_id":"`)
	keyOfferID  = []byte(`"offer_id":"`)
)

func (s *benchSock) write(msg []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.ws.SetWriteDeadline(time.Now().Add(answerTimeout))
	return s.ws.WriteMessage(websocket.TextMessage, msg) // copies msg into the frame
}

func (s *benchSock) event(e sockEvent) {
	select {
	case s.events <- e:
	default:
		s.cst.dropped.Add(1)
	}
}

// readLoop reads what the tracker sends until the socket closes: an answerer answers each offer
// at once; an offerer hands replies and answers to its announcing goroutine.
func (s *benchSock) readLoop() {
	var buf, answer []byte
	if s.answerTmpl != nil {
		answer = slices.Clone(s.answerTmpl)
	}
	for {
		_, r, err := s.ws.NextReader()
		if err != nil {
			return
		}
		if buf, err = readAll(r, buf[:0]); err != nil {
			return
		}
		at := time.Since(clientBase)
		switch {
		case bytes.Contains(buf, keyFailure):
			s.cst.failures.Add(1)
			s.event(sockEvent{kind: evReply, at: at})
		case bytes.Contains(buf, keyAnswer):
			oid := idAfter(buf, keyOfferID)
			sent, seq, ok := parseOfferID(oid)
			if !ok || s.offerTmpl == nil {
				s.cst.unexpected.Add(1)
				continue
			}
			s.event(sockEvent{kind: evAnswer, seq: seq, at: at, sent: sent})
		case bytes.Contains(buf, keyOffer):
			from, oid := idAfter(buf, keyPeerID), idAfter(buf, keyOfferID)
			if answer == nil || from == nil || oid == nil {
				s.cst.unexpected.Add(1)
				continue
			}
			copy(answer[s.answerAt[0]:], from)
			copy(answer[s.answerAt[1]:], oid)
			if s.write(answer) != nil {
				return
			}
		case bytes.Contains(buf, keyInterval):
			s.event(sockEvent{kind: evReply, at: at})
		}
	}
}

func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(cap(buf), 2048))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// idAfter returns the 20-character string value that follows key, or nil.
func idAfter(msg, key []byte) []byte {
	i := bytes.Index(msg, key)
	if i < 0 {
		return nil
	}
	v := msg[i+len(key):]
	if len(v) < 21 || v[20] != '"' {
		return nil
	}
	return v[:20]
}

const hexDigits = "0123456789abcdef"

// putOfferID writes an offer_id: the send time, the offer's index, the announce's sequence.
func putOfferID(dst []byte, sent time.Duration, i int, seq uint8) {
	v := uint64(sent)
	for k := 15; k >= 0; k-- {
		dst[k] = hexDigits[v&15]
		v >>= 4
	}
	dst[16], dst[17] = hexDigits[i>>4&15], hexDigits[i&15]
	dst[18], dst[19] = hexDigits[seq>>4], hexDigits[seq&15]
}

func parseOfferID(oid []byte) (sent time.Duration, seq uint8, ok bool) {
	if len(oid) != 20 {
		return 0, 0, false
	}
	var b [10]byte
	if _, err := hex.Decode(b[:], oid); err != nil {
		return 0, 0, false
	}
	var v uint64
	for _, x := range b[:8] {
		v = v<<8 | uint64(x)
	}
	return time.Duration(v), b[9], true
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// announceTemplate is an announce of ih by pid with n offers of fresh SDPs, and where each
// offer_id's 20 characters start.
func announceTemplate(ih, pid string, n int, r *rand.Rand, sdpBytes int) ([]byte, []int) {
	b := fmt.Appendf(nil, `{"action":"announce","info_hash":%s,"peer_id":%s,"left":1048576,"uploaded":0,"downloaded":0,"numwant":%d,"offers":[`,
		jsonString(ih), jsonString(pid), n)
	var at []int
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"offer_id":"`...)
		at = append(at, len(b))
		b = append(b, strings.Repeat("0", 20)...)
		b = append(b, `","offer":{"type":"offer","sdp":`...)
		b = append(b, jsonString(fakeSDP(r, sdpBytes))...)
		b = append(b, "}}"...)
	}
	return append(b, "]}"...), at
}

// answerTemplate is pid's answer in swarm ih, and where to_peer_id and offer_id start.
func answerTemplate(ih, pid, sdp string) ([]byte, [2]int) {
	var at [2]int
	b := fmt.Appendf(nil, `{"action":"announce","info_hash":%s,"peer_id":%s,"to_peer_id":"`, jsonString(ih), jsonString(pid))
	at[0] = len(b)
	b = append(b, strings.Repeat("0", 20)+`","offer_id":"`...)
	at[1] = len(b)
	b = append(b, strings.Repeat("0", 20)+`","answer":{"type":"answer","sdp":`...)
	b = append(b, jsonString(sdp)...)
	return append(b, "}}"...), at
}

// openSocks dials each socket to its tracker and announces it (started, no offers), 32 at a
// time, each waiting for its reply.
func openSocks(socks []*benchSock) error {
	dialer := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 2048, WriteBufferSize: 2048}
	return inParallel(0, len(socks), func(i int) error {
		s := socks[i]
		ws, resp, err := dialer.Dial(s.url, nil)
		if err != nil {
			return fmt.Errorf("dial %s: %w", s.url, err)
		}
		_ = resp.Body.Close()
		s.ws = ws
		go s.readLoop()
		left := 0 // answerers are seeders
		if s.offerTmpl != nil {
			left = 1 << 20
		}
		msg := fmt.Appendf(nil, `{"action":"announce","info_hash":%s,"peer_id":%s,"event":"started","left":%d,"uploaded":0,"downloaded":0,"numwant":0}`,
			jsonString(s.ih), jsonString(s.pid), left)
		if err := s.write(msg); err != nil {
			return err
		}
		return s.waitReply()
	})
}

func (s *benchSock) waitReply() error {
	t := time.NewTimer(answerTimeout)
	defer t.Stop()
	for {
		select {
		case e := <-s.events:
			if e.kind == evReply {
				return nil
			}
		case <-t.C:
			return errors.New("no announce reply")
		}
	}
}

type phaseResult struct {
	announces           int // with the reply and every answer
	elapsed             time.Duration
	answerLat, replyLat []time.Duration
	missing             int64
}

// runOffers has every offerer announce with n offers, waiting for the reply and every answer
// before its next, for d: at rate announces/s of all of them together, or as fast as each can
// with rate 0.
func runOffers(offerers []*benchSock, n int, d time.Duration, rate float64) phaseResult {
	var mu sync.Mutex
	var pr phaseResult
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(len(offerers)) / rate * float64(time.Second))
	}
	for k, s := range offerers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := slices.Clone(s.offerTmpl)
			var answerLat, replyLat []time.Duration
			var done int
			var missing int64
			next := start.Add(time.Duration(k) * interval / time.Duration(len(offerers)))
			t := time.NewTimer(time.Hour)
			defer t.Stop()
			for seq := uint8(0); ; seq++ {
				if interval > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(interval)
				}
				if !time.Now().Before(deadline) {
					break
				}
				// A late message of an earlier announce is not this one's.
				for len(s.events) > 0 {
					<-s.events
				}
				sent := time.Since(clientBase)
				for i, at := range s.offerIDAt {
					putOfferID(msg[at:], sent, i, seq)
				}
				if s.write(msg) != nil {
					missing += int64(1 + n)
					break
				}
				t.Reset(answerTimeout)
				replied, answers := false, 0
			wait:
				for !replied || answers < n {
					select {
					case e := <-s.events:
						switch {
						case e.kind == evReply && !replied:
							replied = true
							replyLat = append(replyLat, e.at-sent)
						case e.kind == evAnswer && e.seq == seq && e.sent == sent:
							answers++
							answerLat = append(answerLat, e.at-e.sent)
						}
					case <-t.C:
						break wait
					}
				}
				t.Stop()
				if replied && answers == n {
					done++
				} else {
					missing += int64(n - answers)
					if !replied {
						missing++
					}
				}
			}
			mu.Lock()
			pr.announces += done
			pr.missing += missing
			pr.answerLat = append(pr.answerLat, answerLat...)
			pr.replyLat = append(pr.replyLat, replyLat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	pr.elapsed = time.Since(start)
	return pr
}
