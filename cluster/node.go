package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Subjects. Node names are subject tokens (Config.Validate).
const (
	subjectBeat    = "sg.beat"    // heartbeats of every node
	subjectBye     = "sg.bye"     // a node leaving on purpose
	subjectSignalP = "sg.signal." // + node name: tracker messages for that node
)

// Member is one live node of the cluster as it last described itself.
type Member struct {
	Name    string
	HTTPURL string
	BTAddr  string
	// Since is when this node first heard of it (for a restarted node: since the restart).
	Since time.Time
}

// beat is a heartbeat's body.
type beat struct {
	Name     string `json:"name"`
	Instance string `json:"instance"` // changes with each start: a restart, or two nodes sharing a name
	HTTPURL  string `json:"http,omitempty"`
	BTAddr   string `json:"bt,omitempty"`
	// SocketsPerIP holds the client addresses with two or more tracker sockets on the node.
	SocketsPerIP map[string]int `json:"ips,omitempty"`
}

type member struct {
	Member
	instance     string
	seen         time.Time
	socketsPerIP map[string]int
}

// Node is this gateway's place in the cluster.
type Node struct {
	cfg      Config
	log      *slog.Logger
	srv      *server.Server // the embedded NATS; nil with Config.NATSURL
	nc       *nats.Conn
	instance string
	started  time.Time

	mu           sync.Mutex
	members      map[string]*member // other nodes
	names        []string           // live members' names, this node's included, sorted
	watchers     []func()
	socketsPerIP func() map[string]int

	catalog         map[string]Torrent  // by hex infohash; see catalog.go
	pins            map[[20]byte]string // the catalog's pinned torrents' nodes
	torrentWatchers []func(Torrent)

	joinOnce sync.Once
	stop     chan struct{}
	done     chan struct{} // closed when run ends (or by Close if it never ran)
	subs     []*nats.Subscription
}

// Start connects to the cluster cfg describes and hears the other nodes; Join makes it one of them.
func Start(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var inst [8]byte
	_, _ = rand.Read(inst[:])
	n := &Node{
		cfg:      cfg,
		log:      log.With("component", "cluster", "node", cfg.Name),
		instance: hex.EncodeToString(inst[:]),
		started:  time.Now(),
		members:  make(map[string]*member),
		catalog:  make(map[string]Torrent),
		pins:     make(map[[20]byte]string),
		names:    []string{cfg.Name},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if cfg.Listen != "" {
		srv, err := startEmbedded(cfg)
		if err != nil {
			return nil, err
		}
		n.srv = srv
	}
	nc, err := connect(cfg, n.srv)
	if err != nil {
		n.shutdownServer()
		return nil, err
	}
	n.nc = nc
	for subj, h := range map[string]nats.MsgHandler{subjectBeat: n.onBeat, subjectBye: n.onBye, subjectTorrents: n.onCatalog} {
		sub, err := nc.Subscribe(subj, h)
		if err != nil {
			_ = n.Close()
			return nil, fmt.Errorf("cluster: subscribe %s: %w", subj, err)
		}
		n.subs = append(n.subs, sub)
	}
	return n, nil
}

// Join starts beating: the other nodes count this one as a member from its first beat, and may
// send it messages from then on. Call it once what takes them (SignalBus) is subscribed; NATS
// passes a connection's subscriptions on to the other servers before its later messages.
func (n *Node) Join() {
	n.joinOnce.Do(func() {
		n.publishBeat()
		go n.run()
		n.log.Info("joined the cluster", "nats", n.describeNATS())
	})
}

func (n *Node) describeNATS() string {
	if n.srv != nil {
		return fmt.Sprintf("embedded, routes on %s, %d seed route(s)", n.cfg.Listen, len(n.cfg.Routes))
	}
	return redactURL(n.cfg.NATSURL)
}

// Self is this node's name.
func (n *Node) Self() string { return n.cfg.Name }

// Members returns the live nodes, this one included, by name.
func (n *Node) Members() []Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []Member{{Name: n.cfg.Name, HTTPURL: n.cfg.HTTPURL, BTAddr: n.cfg.BTAddr, Since: n.started}}
	for _, m := range n.members {
		out = append(out, m.Member)
	}
	slices.SortFunc(out, func(a, b Member) int { return cmpString(a.Name, b.Name) })
	return out
}

// Member returns the live node name, if it is one.
func (n *Node) Member(name string) (Member, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if name == n.cfg.Name {
		return Member{Name: name, HTTPURL: n.cfg.HTTPURL, BTAddr: n.cfg.BTAddr, Since: n.started}, true
	}
	m, ok := n.members[name]
	if !ok {
		return Member{}, false
	}
	return m.Member, true
}

// Home names the live node that holds key (an infohash): the node its data is pinned to while
// that one lives (Torrent.Pinned), else the one with the highest rendezvous score. Every node
// with the same view of the members and the catalog names the same one.
func (n *Node) Home(key [20]byte) string {
	n.mu.Lock()
	if name, ok := n.pinnedHomeLocked(key); ok {
		n.mu.Unlock()
		return name
	}
	names := n.names
	n.mu.Unlock()
	return Rendezvous(names, key)
}

// OnChange registers f, called (on the node's own goroutine, never concurrently) after members
// join or leave.
func (n *Node) OnChange(f func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.watchers = append(n.watchers, f)
}

// SetHTTPURL sets the HTTP base URL this node's beats carry (known once its listener is up).
func (n *Node) SetHTTPURL(u string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cfg.HTTPURL = u
}

// ShareSocketsPerIP sets where the node reads its tracker's per-address socket counts to put in
// its heartbeats (see SignalBus.SocketsElsewhere).
func (n *Node) ShareSocketsPerIP(f func() map[string]int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.socketsPerIP = f
}

// Close says goodbye to the other nodes, stops beating and leaves NATS.
func (n *Node) Close() error {
	select {
	case <-n.stop:
		return nil
	default:
	}
	close(n.stop)
	n.joinOnce.Do(func() { close(n.done) }) // never joined: nothing runs
	<-n.done
	if n.nc != nil {
		_ = n.nc.Publish(subjectBye, []byte(n.cfg.Name+" "+n.instance))
		_ = n.nc.Drain() // delivers what is in flight, then closes
		for !n.nc.IsClosed() {
			time.Sleep(5 * time.Millisecond)
		}
	}
	n.shutdownServer()
	return nil
}

func (n *Node) shutdownServer() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	}
}

// run beats and drops the members that stopped beating.
func (n *Node) run() {
	defer close(n.done)
	t := time.NewTicker(n.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case now := <-t.C:
			n.publishBeat()
			n.expire(now)
			n.pruneTombstones(now)
		}
	}
}

func (n *Node) publishBeat() {
	n.mu.Lock()
	counts := n.socketsPerIP
	b := beat{Name: n.cfg.Name, Instance: n.instance, HTTPURL: n.cfg.HTTPURL, BTAddr: n.cfg.BTAddr}
	n.mu.Unlock()
	if counts != nil {
		b.SocketsPerIP = counts()
	}
	data, _ := json.Marshal(b)
	if err := n.nc.Publish(subjectBeat, data); err != nil {
		n.log.Warn("heartbeat not sent", "err", err)
	}
}

func (n *Node) onBeat(msg *nats.Msg) {
	var b beat
	if err := json.Unmarshal(msg.Data, &b); err != nil || !validName.MatchString(b.Name) {
		n.log.Warn("bad heartbeat", "err", err, "name", b.Name)
		return
	}
	if b.Name == n.cfg.Name {
		if b.Instance != n.instance {
			n.log.Error("another node has this node's name: give each node its own --node-name", "name", b.Name)
		}
		return
	}
	now := time.Now()
	n.mu.Lock()
	m := n.members[b.Name]
	joined := m == nil || m.instance != b.Instance
	if joined {
		m = &member{Member: Member{Name: b.Name, Since: now}}
		n.members[b.Name] = m
	}
	m.instance, m.seen, m.socketsPerIP = b.Instance, now, b.SocketsPerIP
	m.HTTPURL, m.BTAddr = b.HTTPURL, b.BTAddr
	var watchers []func()
	if joined {
		n.renameLocked()
		watchers = slices.Clone(n.watchers)
	}
	n.mu.Unlock()
	if joined {
		n.log.Info("node joined", "member", b.Name, "http", b.HTTPURL, "bt", b.BTAddr)
		n.publishSnapshot() // what it missed while away
		notify(watchers)
	}
}

func (n *Node) onBye(msg *nats.Msg) {
	var name, instance string
	if _, err := fmt.Sscan(string(msg.Data), &name, &instance); err != nil {
		return
	}
	n.mu.Lock()
	m := n.members[name]
	if m == nil || m.instance != instance {
		n.mu.Unlock()
		return
	}
	delete(n.members, name)
	n.renameLocked()
	watchers := slices.Clone(n.watchers)
	n.mu.Unlock()
	n.log.Info("node left", "member", name)
	notify(watchers)
}

// expire drops the members silent for Timeout.
func (n *Node) expire(now time.Time) {
	var gone []string
	n.mu.Lock()
	for name, m := range n.members {
		if now.Sub(m.seen) > n.cfg.Timeout {
			delete(n.members, name)
			gone = append(gone, name)
		}
	}
	var watchers []func()
	if len(gone) > 0 {
		n.renameLocked()
		watchers = slices.Clone(n.watchers)
	}
	n.mu.Unlock()
	for _, name := range gone {
		n.log.Warn("node gone: no heartbeat", "member", name, "timeout", n.cfg.Timeout)
	}
	notify(watchers)
}

// renameLocked remakes the sorted list of live names. Caller holds n.mu.
func (n *Node) renameLocked() {
	names := []string{n.cfg.Name}
	for name := range n.members {
		names = append(names, name)
	}
	slices.Sort(names)
	n.names = names // a new slice: Home reads the old one without the lock
}

// notify runs the watchers. NATS calls a subscription's handler from one goroutine and run is
// another; watchers are told from both, so they must be safe for concurrent use.
func notify(watchers []func()) {
	for _, f := range watchers {
		f()
	}
}

// socketsElsewhere sums what the other nodes last said ip holds.
func (n *Node) socketsElsewhere(ip string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	total := 0
	for _, m := range n.members {
		total += m.socketsPerIP[ip]
	}
	return total
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
