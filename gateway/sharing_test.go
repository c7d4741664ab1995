package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"golang.org/x/time/rate"

	"github.com/swarmgate/swarmgate/internal/peertest"
	"github.com/swarmgate/swarmgate/registry"
)

// Wire message ids (BEP 3, BEP 6).
const (
	msgUnchoke    = 1
	msgHave       = 4
	msgBitfield   = 5
	msgHaveAll    = 14
	msgHaveNone   = 15
	msgInterested = 2
	msgRequest    = 6
	msgCancel     = 8
	msgPiece      = 7
	msgReject     = 16
	msgExtended   = 20
)

func writeMsg(t *testing.T, c net.Conn, id byte, payload ...uint32) {
	t.Helper()
	b := make([]byte, 5+4*len(payload))
	binary.BigEndian.PutUint32(b, uint32(1+4*len(payload)))
	b[4] = id
	for i, v := range payload {
		binary.BigEndian.PutUint32(b[5+4*i:], v)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// readMsg reads the next message but keepalives, and returns its id and payload.
func readMsg(c net.Conn) (byte, []byte, error) {
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return 0, nil, err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 {
			continue // keepalive
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(c, b); err != nil {
			return 0, nil, err
		}
		return b[0], b[1:], nil
	}
}

// readUntil reads messages until one of ids comes, and returns it and its payload.
func readUntil(t *testing.T, c net.Conn, within time.Duration, ids ...byte) (byte, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	defer c.SetReadDeadline(time.Time{})
	for {
		id, p, err := readMsg(c)
		if err != nil {
			t.Fatalf("waiting for message %v: %v", ids, err)
		}
		if bytes.IndexByte(ids, id) >= 0 {
			return id, p
		}
	}
}

// joinBrowser has a real anacrolix client join the torrent as a browser (over WebRTC through
// r's tracker) and returns its torrent, for the test to select pieces on.
func joinBrowser(ctx context.Context, t *testing.T, r *running, mi *metainfo.MetaInfo) *torrent.Torrent {
	t.Helper()
	tor, err := newWebRTCPeer(ctx, t, r, false).Join(mi)
	if err != nil {
		t.Fatal(err)
	}
	return tor
}

// demoMetainfo is the demo torrent's metainfo, from the gateway's API, and its info.
func demoMetainfo(t *testing.T, r *running) (*metainfo.MetaInfo, metainfo.Info) {
	t.Helper()
	res := r.get(t, "/api/torrents/"+demoInfoHash(t, r)+"/metainfo", nil)
	mi, err := metainfo.Load(bytes.NewReader(res.body))
	if err != nil {
		t.Fatalf("metainfo: %v (%d)", err, res.status)
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		t.Fatal(err)
	}
	return mi, info
}

// fillCap reaches the upload cap of r's gateway (256 KiB/s) for the next 16 s: 4 MiB owed.
func fillCap(r *running) {
	for range 16 {
		r.g.uploadLimit.ReserveN(time.Now(), uploadBurst)
	}
}

// dialRawBrowser connects a raw wire to r's gateway over WebRTC, a browser speaking BitTorrent
// by hand, and exchanges handshakes: the fast extension on, and the extension protocol too when
// ltep is 0x10 (reserved byte 5). It fails the test unless the gateway speaks the fast
// extension. The conn closes with the test.
func dialRawBrowser(ctx context.Context, t *testing.T, r *running, mi *metainfo.MetaInfo, info metainfo.Info, ltep byte) net.Conn {
	t.Helper()
	b := newWebRTCPeer(ctx, t, r, true)
	conn, err := b.Connect(ctx, mi.HashInfoBytes(), info.TotalLength())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	theirs := exchangeHandshake(t, conn, mi.HashInfoBytes(), b.PeerID(), [8]byte{5: ltep, 7: 0x04})
	if theirs[27]&0x04 == 0 {
		t.Fatal("the gateway's handshake has no fast extension")
	}
	return conn
}

// exchangeHandshake writes a BitTorrent handshake with the reserved bytes given and reads the
// other side's, which it returns whole (reserved bytes at 20–27, peer id at 48–67).
func exchangeHandshake(t *testing.T, conn net.Conn, ih metainfo.Hash, pid [20]byte, reserved [8]byte) [68]byte {
	t.Helper()
	hs := append([]byte("\x13BitTorrent protocol"), reserved[:]...)
	hs = append(append(hs, ih[:]...), pid[:]...)
	if _, err := conn.Write(hs); err != nil {
		t.Fatal(err)
	}
	var theirs [68]byte
	if _, err := io.ReadFull(conn, theirs[:]); err != nil {
		t.Fatal(err)
	}
	return theirs
}

// readOffers reads conn's messages until the deadline and notes in into when each Have came.
func readOffers(conn net.Conn, until time.Time, into map[uint32]time.Time) {
	conn.SetReadDeadline(until)
	defer conn.SetReadDeadline(time.Time{})
	for {
		id, p, err := readMsg(conn)
		if err != nil {
			return
		}
		if id == msgHave && len(p) == 4 {
			into[binary.BigEndian.Uint32(p)] = time.Now()
		}
	}
}

// spanPieces is how many pieces of info a span of bytes is for upload sharing: at least two.
func spanPieces(bytes int, info metainfo.Info) int {
	pl := int(info.PieceLength)
	return max(2, (bytes+pl-1)/pl)
}

// TestUploadSharing: with upload sharing, a browser hears that the gateway has nothing
// (HaveNone) and then only the pieces the gateway offers it: while the cap is reached, pieces
// nobody else has first; a piece another browser holds only once the browser has gone without it
// for UploadSharingStuckAfter (it may not be connected to that browser). A request for a piece
// not offered is rejected (BEP 6). With --upload-sharing off the browser hears HaveAll and is
// served anything.
func TestUploadSharing(t *testing.T) {
	for _, sharing := range []bool{true, false} {
		name := map[bool]string{true: "on", false: "off"}[sharing]
		t.Run(name, func(t *testing.T) {
			r := startGateway(t, func(c *Config) { c.Demo = true; c.UploadRate = 256 << 10; c.UploadSharing = sharing })
			mi, info := demoMetainfo(t, r)
			if info.NumPieces() < 8 {
				t.Fatalf("the demo has %d pieces", info.NumPieces())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()

			// Browser a fetches piece 0 only, and stays (it is no seed).
			ta := joinBrowser(ctx, t, r, mi)
			ta.CancelPieces(1, info.NumPieces())
			waitFor(t, 60*time.Second, "browser a holding piece 0", func() bool { return ta.Piece(0).State().Complete })

			fillCap(r)

			// Browser b: a raw wire, fast extension on.
			conn := dialRawBrowser(ctx, t, r, mi, info, 0)
			connected := time.Now()
			id, _ := readUntil(t, conn, 30*time.Second, msgHaveAll, msgHaveNone, msgBitfield)
			if !sharing {
				if id != msgHaveAll {
					t.Fatalf("sharing off: message %d, want HaveAll (%d)", id, msgHaveAll)
				}
				writeMsg(t, conn, msgInterested)
				readUntil(t, conn, 30*time.Second, msgUnchoke)
				writeMsg(t, conn, msgRequest, 0, 0, 16<<10)
				if id, _ := readUntil(t, conn, 60*time.Second, msgPiece, msgReject); id != msgPiece {
					t.Fatalf("sharing off: message %d, want the piece", id)
				}
				return
			}
			if id != msgHaveNone {
				t.Fatalf("sharing on: message %d, want HaveNone (%d)", id, msgHaveNone)
			}
			// Every offer, and when it came; read reads on until one of ids comes.
			offered := map[uint32]time.Time{}
			read := func(within time.Duration, ids ...byte) (byte, []byte) {
				deadline := time.Now().Add(within)
				for {
					id, p := readUntil(t, conn, time.Until(deadline), append(ids, msgHave)...)
					if id != msgHave || bytes.IndexByte(ids, msgHave) >= 0 {
						return id, p
					}
					offered[binary.BigEndian.Uint32(p)] = time.Now()
				}
			}
			// The first offers: fresh pieces, not piece 0 (browser a holds it).
			_, p := read(30*time.Second, msgHave)
			first := binary.BigEndian.Uint32(p)
			offered[first] = time.Now()
			if first == 0 {
				t.Fatal("piece 0, which browser a holds, offered first while the cap is reached")
			}
			writeMsg(t, conn, msgInterested)
			// Not offered: rejected.
			if _, ok := offered[0]; !ok {
				writeMsg(t, conn, msgRequest, 0, 0, 16<<10)
				if id, p := read(30*time.Second, msgReject, msgPiece); id != msgReject || binary.BigEndian.Uint32(p) != 0 {
					t.Fatalf("piece 0, not offered: message %d, want a reject", id)
				}
			}
			// Offered: served, cap or not.
			writeMsg(t, conn, msgRequest, first, 0, 16<<10)
			if id, p := read(60*time.Second, msgPiece, msgReject); id != msgPiece || binary.BigEndian.Uint32(p) != first {
				t.Fatalf("piece %d, offered: message %d, want the piece", first, id)
			}
			// b goes without piece 0: offered after UploadSharingStuckAfter, not before.
			for {
				if _, ok := offered[0]; ok {
					break
				}
				_, p := read(30*time.Second, msgHave)
				offered[binary.BigEndian.Uint32(p)] = time.Now()
			}
			if waited := offered[0].Sub(connected); waited < torrent.UploadSharingStuckAfter {
				t.Fatalf("piece 0 offered %v after b came, before UploadSharingStuckAfter (%v)", waited, torrent.UploadSharingStuckAfter)
			}
			st := r.g.client.UploadSharingStats()
			t.Logf("upload sharing: %+v", st)
			if st.Declined != 1 || st.Escalated < 1 || st.Withheld != 2 {
				t.Errorf("stats %+v: want 1 declined, 2 withheld, some escalated", st)
			}
		})
	}
}

// TestUploadSharingNeeds: a browser that says where its player reads (the sg_needs extension,
// web/static/needs.js) gets the pieces from there at its front, not the file's first: with the
// cap reached and another browser holding all but the last piece, the gateway offers the piece it said
// once it has gone UploadSharingStuckAfter without it, and not the file's first pieces, which
// it would have offered instead without the message.
func TestUploadSharingNeeds(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.Demo = true; c.UploadRate = 256 << 10; c.UploadSharing = true })
	mi, info := demoMetainfo(t, r)
	n := info.NumPieces()
	front := spanPieces(torrent.UploadSharingFront, info)
	if n < 2*front+2 {
		t.Fatalf("the demo has %d pieces, fronts span %d", n, front)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	// Browser a holds every piece but the last (a seed would leave the seeding gateway), and
	// stays.
	ta := joinBrowser(ctx, t, r, mi)
	ta.CancelPieces(n-1, n)
	ta.DownloadPieces(0, n-1)
	waitFor(t, 60*time.Second, "browser a holding all pieces but the last", func() bool {
		for i := range n - 1 {
			if !ta.Piece(i).State().Complete {
				return false
			}
		}
		return true
	})

	fillCap(r)

	// Browser b: a raw wire speaking the fast and extension protocols.
	conn := dialRawBrowser(ctx, t, r, mi, info, 0x10)
	// The gateway's extended handshake names its id for sg_needs; HaveNone comes too.
	var needsID byte
	sawHaveNone := false
	for needsID == 0 || !sawHaveNone {
		id, p := readUntil(t, conn, 30*time.Second, msgExtended, msgHaveNone, msgHaveAll, msgBitfield)
		switch {
		case id == msgHaveNone:
			sawHaveNone = true
		case id == msgExtended && len(p) > 0 && p[0] == 0:
			var h struct {
				M map[string]int `bencode:"m"`
			}
			if err := bencode.Unmarshal(p[1:], &h); err != nil {
				t.Fatalf("the gateway's extended handshake: %v", err)
			}
			if h.M[string(torrent.UploadSharingNeedsExtension)] <= 0 {
				t.Fatalf("the gateway's extended handshake has no %s: %v", torrent.UploadSharingNeedsExtension, h.M)
			}
			needsID = byte(h.M[string(torrent.UploadSharingNeedsExtension)])
		case id != msgExtended:
			t.Fatalf("message %d, want HaveNone (%d)", id, msgHaveNone)
		}
	}
	// b's player waits on a piece near the end, which a holds.
	want := uint32(n - 3)
	msg := append([]byte{msgExtended, needsID}, bencode.MustMarshal(map[string]int{"piece": int(want)})...)
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(msg)))
	if _, err := conn.Write(append(frame, msg...)); err != nil {
		t.Fatal(err)
	}
	told := time.Now()
	offered := map[uint32]time.Time{}
	for {
		_, p := readUntil(t, conn, 30*time.Second, msgHave)
		offered[binary.BigEndian.Uint32(p)] = time.Now()
		if _, ok := offered[want]; ok {
			break
		}
	}
	if waited := offered[want].Sub(told); waited < torrent.UploadSharingStuckAfter {
		t.Errorf("piece %d offered %v after b said it needs it, before UploadSharingStuckAfter (%v): another browser holds it", want, waited, torrent.UploadSharingStuckAfter)
	}
	// The file's first pieces are not where b reads: not offered meanwhile, nor in the second
	// after.
	readOffers(conn, time.Now().Add(time.Second), offered)
	for p := range uint32(front) {
		if _, ok := offered[p]; ok {
			t.Errorf("piece %d, at the file's start, offered though b said its player reads at %d (offers: %v)", p, want, offered)
		}
	}
	if st := r.g.client.UploadSharingStats(); st.Told != 1 {
		t.Errorf("stats %+v: want 1 told", st)
	}
}

// TestUploadSharingStuckAfterRate: while the cap is reached, a browser that does not say where
// its player reads (a downloader, as far as the gateway can tell) is offered a piece another
// browser holds once it has gone without it for the time two pieces took it so far, at least
// UploadSharingStuckAfter, and UploadSharingSlowAfter until it has got two: browser b says it got
// nothing, browser c says it got two pieces a tenth of a second apart.
func TestUploadSharingStuckAfterRate(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.Demo = true; c.UploadRate = 256 << 10; c.UploadSharing = true })
	mi, info := demoMetainfo(t, r)
	n := info.NumPieces()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	// Browser a fetches piece 0 only, and stays.
	ta := joinBrowser(ctx, t, r, mi)
	ta.CancelPieces(1, n)
	waitFor(t, 60*time.Second, "browser a holding piece 0", func() bool { return ta.Piece(0).State().Complete })
	fillCap(r)

	// offeredZero reads conn's offers until piece 0 comes, and says when (it runs beside the
	// test's goroutine: no t.Fatal).
	offeredZero := func(conn net.Conn) (time.Time, error) {
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		for {
			id, p, err := readMsg(conn)
			if err != nil {
				return time.Time{}, err
			}
			if id == msgHave && len(p) == 4 && binary.BigEndian.Uint32(p) == 0 {
				return time.Now(), nil
			}
		}
	}
	type result struct {
		name   string
		waited time.Duration
		err    error
	}
	results := make(chan result, 2)
	for _, name := range []string{"b", "c"} {
		conn := dialRawBrowser(ctx, t, r, mi, info, 0)
		connected := time.Now()
		readUntil(t, conn, 30*time.Second, msgHaveNone)
		if name == "c" {
			writeMsg(t, conn, msgHave, uint32(n-1))
			time.Sleep(100 * time.Millisecond)
			writeMsg(t, conn, msgHave, uint32(n-2))
		}
		go func() {
			at, err := offeredZero(conn)
			results <- result{name, at.Sub(connected), err}
		}()
	}
	for range 2 {
		res := <-results
		if res.err != nil {
			t.Fatalf("%s waiting for piece 0: %v", res.name, res.err)
		}
		t.Logf("%s offered piece 0 %v after it came", res.name, res.waited)
		switch {
		case res.name == "b" && res.waited < torrent.UploadSharingSlowAfter:
			t.Errorf("b, which got nothing yet, offered piece 0 after %v, before UploadSharingSlowAfter (%v)", res.waited, torrent.UploadSharingSlowAfter)
		case res.name == "c" && (res.waited < torrent.UploadSharingStuckAfter || res.waited >= torrent.UploadSharingSlowAfter):
			t.Errorf("c, which got two pieces fast, offered piece 0 after %v, want between UploadSharingStuckAfter (%v) and UploadSharingSlowAfter (%v)",
				res.waited, torrent.UploadSharingStuckAfter, torrent.UploadSharingSlowAfter)
		}
	}
}

// TestUploadSharingFreshBudget: under the upload cap, the fresh pieces on their way to all
// browsers together are about UploadSharingFreshTime of the cap's time, not UploadSharingFresh
// bytes for each browser: the cap then sends them one after another, each entering the swarm as
// soon as it can. With the cap reached, browser a is offered the pieces at its front and asks for
// them; browser b, coming next, hears of no fresh piece while a's are on their way, and of fresh
// ones once a cancels its requests (an offer nobody asks for does not hold the budget).
func TestUploadSharingFreshBudget(t *testing.T) {
	const capRate, chunk = 256 << 10, 16 << 10
	r := startGateway(t, func(c *Config) { c.Demo = true; c.UploadRate = capRate; c.UploadSharing = true })
	mi, info := demoMetainfo(t, r)
	n, pl := info.NumPieces(), int(info.PieceLength)
	front, fresh := spanPieces(torrent.UploadSharingFront, info), spanPieces(torrent.UploadSharingFresh, info)
	budget := max(2, int(capRate*torrent.UploadSharingFreshTime.Seconds())/pl)
	if front < budget || n < front+fresh+1 || pl%chunk != 0 {
		t.Fatalf("the demo has %d pieces of %d bytes: fronts span %d, the fresh budget %d, fresh per browser %d", n, pl, front, budget, fresh)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	fillCap(r) // 16 s owed: nothing asked now is sent during the test

	a := dialRawBrowser(ctx, t, r, mi, info, 0)
	readUntil(t, a, 30*time.Second, msgHaveNone)
	_, p := readUntil(t, a, 30*time.Second, msgHave)
	toA := map[uint32]time.Time{binary.BigEndian.Uint32(p): time.Now()}
	readOffers(a, time.Now().Add(500*time.Millisecond), toA)
	if len(toA) != front {
		t.Fatalf("browser a was offered %d pieces, want its front's %d: %v", len(toA), front, toA)
	}
	writeMsg(t, a, msgInterested)
	for piece := range toA {
		for begin := 0; begin < pl; begin += chunk {
			writeMsg(t, a, msgRequest, piece, uint32(begin), chunk)
		}
	}

	b := dialRawBrowser(ctx, t, r, mi, info, 0)
	readUntil(t, b, 30*time.Second, msgHaveNone)
	toB := map[uint32]time.Time{}
	readOffers(b, time.Now().Add(3*time.Second), toB)
	if len(toB) > 0 {
		t.Fatalf("browser b was offered %v while a's %d pieces were on their way (the budget is %d)", toB, front, budget)
	}
	// a no longer asks: its pieces no longer hold the budget, b hears of fresh ones.
	for piece := range toA {
		for begin := 0; begin < pl; begin += chunk {
			writeMsg(t, a, msgCancel, piece, uint32(begin), chunk)
		}
	}
	cancelled := time.Now()
	for {
		_, p := readUntil(t, b, 10*time.Second, msgHave)
		if piece := binary.BigEndian.Uint32(p); piece >= uint32(front) {
			t.Logf("b offered fresh piece %d %v after a cancelled", piece, time.Since(cancelled))
			break
		}
	}
}

// TestUploadCapTakesTurns: under the upload cap, HTTP answers and peer conns take turns for its
// tokens. An HTTP stream of the demo runs again and again while a browser (a real WebRTC peer)
// fetches the demo: the browser must complete before the HTTP stream has taken four times its
// share. (Before: the HTTP writer waited in the limiter's queue while the conn gave its place up
// and tried later, and the browser got nothing while any HTTP stream ran.)
func TestUploadCapTakesTurns(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.Demo = true; c.UploadRate = 256 << 10; c.UploadSharing = true })
	demo := demoInfoHash(t, r)
	res := r.get(t, "/api/torrents/"+demo+"/metainfo", nil)
	mi, err := metainfo.Load(bytes.NewReader(res.body))
	if err != nil {
		t.Fatalf("metainfo: %v (%d)", err, res.status)
	}
	info, _ := mi.UnmarshalInfo()
	size := info.TotalLength()
	e, _ := r.g.torrents.Get(mustHash(t, demo))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The HTTP stream, over and over, from before the browser comes until it is done.
	streamCtx, stopStream := context.WithCancel(ctx)
	streamDone := make(chan error, 1)
	go func() {
		for streamCtx.Err() == nil {
			req, _ := http.NewRequestWithContext(streamCtx, http.MethodGet, r.base+"/stream/"+demo+"/0", nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				streamDone <- err
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		streamDone <- nil
	}()
	defer func() {
		stopStream()
		<-streamDone
	}()
	waitFor(t, 30*time.Second, "the HTTP stream under way", func() bool { return httpSent(e) > 0 })

	tp := joinBrowser(ctx, t, r, mi)
	httpBefore := httpSent(e)
	waitFor(t, 4*time.Minute, "the browser complete, or the HTTP stream taking four times its share", func() bool {
		return tp.BytesCompleted() == size || httpSent(e)-httpBefore > 4*size
	})
	got, sent := tp.BytesCompleted(), httpSent(e)-httpBefore
	t.Logf("while the browser fetched %d of %d bytes, the HTTP stream took %d", got, size, sent)
	if got != size {
		t.Fatalf("the browser got %d of %d bytes while the HTTP stream took %d: the cap's turns went to HTTP", got, size, sent)
	}
}

func httpSent(e *registry.Entry) int64 {
	b, _ := e.Counts()
	return b.ToHTTP
}

// TestQuickStartAssumesBitrateUnprobed: until a probe says a file's bitrate (here there is no
// probe at all), the quick start assumes quickProbingBitrate (8 Mbit/s), as README's
// --upload-rate row says: a 256 KiB/s cap has no room for it, a cap of quickCapRoom times that
// has.
func TestQuickStartAssumesBitrateUnprobed(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.Demo, c.UploadRate, c.UploadSharing = true, 256<<10, false })
	demo := demoInfoHash(t, r)
	if rate, probing := r.g.fileBitrate(mustHash(t, demo), 0, int64(len(demoVideo))); rate != 0 || probing {
		t.Fatalf("the demo has a bitrate (%.0f B/s, probing %v) without ffprobe", rate, probing)
	}
	src := func() string {
		_, src := playerVideo(t, "/watch/"+demo, r.get(t, "/watch/"+demo, nil).body)
		return src
	}
	if got := src(); got != "" {
		t.Errorf("under a cap of 256 KiB/s, bitrate unknown: video src %q, want none", got)
	}
	r.g.uploadLimit.SetLimit(rate.Limit(quickCapRoom * quickProbingBitrate))
	if got := src(); !strings.Contains(got, "/stream/"+demo+"/0") {
		t.Errorf("under a cap of %.0f B/s, bitrate unknown: video src %q, want the file's stream", quickCapRoom*quickProbingBitrate, got)
	}
}

// TestNoQuickStartWhileUplinkBusy: the watch and embed pages start their video on the file's
// /stream (the quick start) while the upload cap has room, and not while it is reached or was
// within uplinkCalmFor (the gateway notes it by itself, upload sharing off).
func TestNoQuickStartWhileUplinkBusy(t *testing.T) {
	needTools(t, "ffmpeg", "ffprobe")
	r := startGateway(t, func(c *Config) {
		c.Demo, c.FFprobe, c.UploadRate, c.UploadSharing = true, "ffprobe", 256<<10, false
	})
	demo := demoInfoHash(t, r)
	src := func(page string) string {
		_, src := playerVideo(t, page, r.get(t, page, nil).body)
		return src
	}
	// Before the probe says the bitrate, 8 Mbit/s is assumed: more than a 256 KiB/s cap has
	// room for. (The probe may be done already when the demo is in the cache.)
	if got := src("/watch/" + demo); got != "" {
		if _, probing := r.g.fileBitrate(mustHash(t, demo), 0, int64(len(demoVideo))); probing {
			t.Errorf("while probing, under a cap of 256 KiB/s: video src %q, want none", got)
		}
	}
	bitrate := waitBitrate(t, r, demo)
	if float64(r.g.uploadLimit.Limit()) < quickCapRoom*bitrate {
		t.Fatalf("the demo's bitrate (%.0f B/s) is too high for this test's cap", bitrate)
	}
	for _, page := range []string{"/watch/", "/embed/"} {
		if got := src(page + demo); !strings.Contains(got, "/stream/"+demo+"/0") {
			t.Errorf("%s with room on the uplink: video src %q, want the file's stream", page, got)
		}
	}
	// A cap of 1.5× the bitrate has room only for the swarm: no quick start.
	limit := r.g.uploadLimit.Limit()
	r.g.uploadLimit.SetLimit(rate.Limit(1.5 * bitrate))
	if got := src("/watch/" + demo); got != "" {
		t.Errorf("under a cap of 1.5× the file's bitrate: video src %q, want none", got)
	}
	r.g.uploadLimit.SetLimit(limit)
	fillCap(r)
	// Noticed with no page asking and no upload sharing (no peer conns here): the gateway looks every uplinkLookEvery.
	waitFor(t, 5*time.Second, "the gateway to note the cap reached", func() bool { return r.g.uplinkBusyAt.Load() != 0 })
	for _, page := range []string{"/watch/", "/embed/"} {
		if got := src(page + demo); got != "" {
			t.Errorf("%s while the cap is reached: video src %q, want none", page, got)
		}
	}
	// The cap has room again (its debt paid back at once: a moment at a far higher rate), but
	// was reached a moment ago: still none; once it has had room for uplinkCalmFor, the quick
	// start again.
	r.g.uploadLimit.SetLimit(rate.Limit(1 << 40))
	waitFor(t, 5*time.Second, "the cap's debt paid back", func() bool { return !r.g.uplinkBusy() })
	r.g.uploadLimit.SetLimit(limit)
	if r.g.uplinkBusy() {
		t.Fatalf("the cap is reached again at once (%.0f tokens)", r.g.uploadLimit.Tokens())
	}
	if got := src("/watch/" + demo); got != "" {
		t.Errorf("with room, the cap reached a moment ago: video src %q, want none", got)
	}
	r.g.uplinkBusyAt.Store(time.Now().Add(-uplinkCalmFor - time.Second).UnixNano())
	if got := src("/watch/" + demo); !strings.Contains(got, "/stream/"+demo+"/0") {
		t.Errorf("with room for %v: video src %q, want the file's stream", uplinkCalmFor, got)
	}
}

// TestUploadSharingFrontFirst: the pieces at a browser's front (the first it lacks: where a
// player reads) go before other uploads. A native peer fetches the whole demo all along under the
// cap; while the raw browser b fetches its front, the native peer gets little.
func TestUploadSharingFrontFirst(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.Demo = true; c.UploadRate = 128 << 10; c.UploadSharing = true })
	demo := demoInfoHash(t, r)
	res := r.get(t, "/api/torrents/"+demo+"/metainfo", nil)
	mi, err := metainfo.Load(bytes.NewReader(res.body))
	if err != nil {
		t.Fatalf("metainfo: %v (%d)", err, res.status)
	}
	info, _ := mi.UnmarshalInfo()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	// The native peer, over TCP.
	cl, err := torrent.NewClient(peertest.LoopbackClientConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ta, err := cl.AddTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}
	ta.AddPeers([]torrent.PeerInfo{{Addr: r.g.BTAddr()}})
	ta.DownloadAll()
	waitFor(t, 60*time.Second, "the native peer fetching", func() bool { return ta.BytesCompleted() > 0 })

	conn := dialRawBrowser(ctx, t, r, mi, info, 0)
	writeMsg(t, conn, msgInterested)
	// b's front: the first pieces, offered at once (no other browser holds them).
	front := spanPieces(torrent.UploadSharingFront, info)
	offered := map[uint32]bool{}
	for len(offered) < front {
		_, p := readUntil(t, conn, 30*time.Second, msgHave)
		offered[binary.BigEndian.Uint32(p)] = true
	}
	for i := range front {
		if !offered[uint32(i)] {
			t.Fatalf("offered %v, want b's front, pieces 0 to %d", offered, front-1)
		}
	}
	if ta.BytesCompleted() == ta.Length() {
		t.Fatal("the native peer is done already: nothing to compete with")
	}
	chunk := uint32(16 << 10)
	before := ta.Stats().BytesReadData
	want := 0
	for i := range front {
		for off := uint32(0); off < uint32(info.PieceLength); off += chunk {
			writeMsg(t, conn, msgRequest, uint32(i), off, chunk)
			want++
		}
	}
	for range want {
		if id, _ := readUntil(t, conn, 60*time.Second, msgPiece, msgReject); id != msgPiece {
			t.Fatalf("b's front: message %d, want its chunks", id)
		}
	}
	after := ta.Stats().BytesReadData
	got, bGot := after.Int64()-before.Int64(), int64(want)*int64(chunk)
	t.Logf("while b got %d bytes of its front, the native peer got %d bytes", bGot, got)
	if got > bGot/3 {
		t.Errorf("the native peer got %d bytes while b got %d of its front: the cap's turns were not left to b", got, bGot)
	}
}
