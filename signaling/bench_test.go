package signaling

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// jsonAnnounce is a pre-encoded announce for raw writers.
func jsonAnnounce(ih, pid ID, offers int) ([]byte, error) {
	ol := []msg{}
	for i := range offers {
		ol = append(ol, msg{"offer_id": bin(randomID()), "offer": msg{"type": "offer", "sdp": fmt.Sprintf("v=0 bench %d", i)}})
	}
	return json.Marshal(announceMsg(ih, pid, msg{"left": 1, "numwant": offers, "offers": ol}))
}

// BenchmarkAnnounce measures announces/s over real loopback sockets: 32
// sockets in 4 swarms, each waiting for its reply before the next announce.
func BenchmarkAnnounce(b *testing.B) {
	for _, offers := range []int{0, 2} {
		b.Run(fmt.Sprintf("offers=%d", offers), func(b *testing.B) {
			cfg := DefaultConfig()
			s, err := New(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			ts := newLoopbackServer(b, s)
			url := "ws" + strings.TrimPrefix(ts, "http")
			const sockets = 32
			var conns []*websocket.Conn
			for i := range sockets {
				ws, resp, err := websocket.DefaultDialer.Dial(url, nil)
				if err != nil {
					b.Fatal(err)
				}
				_ = resp.Body.Close()
				conns = append(conns, ws)
				msg, _ := jsonAnnounce(testID(byte(i%4)), testID(byte(100+i)), 0)
				_ = ws.WriteMessage(websocket.TextMessage, msg)
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/sockets + 1
			for i, ws := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					msg, _ := jsonAnnounce(testID(byte(i%4)), testID(byte(100+i)), offers)
					for range per {
						if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
							return
						}
						for { // skip relayed offers until our reply
							_, data, err := ws.ReadMessage()
							if err != nil {
								return
							}
							if bytes.Contains(data, []byte(`"interval"`)) {
								break
							}
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(per*sockets)/b.Elapsed().Seconds(), "announces/s")
			for _, ws := range conns {
				_ = ws.Close()
			}
			_ = s.Close()
		})
	}
}

// BenchmarkHandle measures Server.handle alone for an announce with 2 offers of 600-byte SDPs
// into a swarm of 100 peers: parsing, the swarm tables and the messages made, no sockets.
func BenchmarkHandle(b *testing.B) {
	s, err := New(DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ih := testID(1)
	var conns []*conn
	for i := range 100 {
		c := fuzzConn(s, fmt.Sprintf("c%d", i))
		msg, _ := jsonAnnounce(ih, testID(byte(100+i)), 0)
		s.handle(c, msg)
		drain(c)
		conns = append(conns, c)
	}
	sdp := strings.Repeat("a=candidate:1 1 udp 2113937151 127.0.0.1 5000 typ host\r\n", 11)[:600]
	var msgs [][]byte
	for range 8 {
		m, _ := json.Marshal(announceMsg(ih, testID(100), msg{"left": 1, "numwant": 2,
			"offers": []msg{{"offer_id": bin(randomID()), "offer": msg{"type": "offer", "sdp": sdp}}, {"offer_id": bin(randomID()), "offer": msg{"type": "offer", "sdp": sdp}}}}))
		msgs = append(msgs, m)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		s.handle(conns[0], msgs[i%len(msgs)])
		if i%32 == 31 {
			for _, c := range conns {
				drain(c)
			}
		}
	}
}
