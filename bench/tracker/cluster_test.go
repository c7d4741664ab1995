package main

import (
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/swarmgate/swarmgate/signaling"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOfferIDRoundTrip(t *testing.T) {
	for _, sent := range []time.Duration{0, time.Microsecond, 90 * time.Minute, 1<<63 - 1} {
		for _, seq := range []uint8{0, 7, 255} {
			oid := make([]byte, 20)
			putOfferID(oid, sent, 3, seq)
			got, gotSeq, ok := parseOfferID(oid)
			if !ok || got != sent || gotSeq != seq {
				t.Fatalf("%q: %v %d %v, want %v %d", oid, got, gotSeq, ok, sent, seq)
			}
		}
	}
	if _, _, ok := parseOfferID([]byte("not an offer id!!!!!")); ok {
		t.Fatal("a non-hex offer_id parsed")
	}
}

// TestTemplates: the messages the clients send are the protocol's, whatever IDs are filled in.
func TestTemplates(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	msg, at := announceTemplate("0123456789abcdef0123", "fedcba9876543210fedc", 3, r, 600)
	for i, a := range at {
		putOfferID(msg[a:], time.Second, i, 9)
	}
	var ann struct {
		Action   string
		InfoHash string `json:"info_hash"`
		PeerID   string `json:"peer_id"`
		Offers   []struct {
			OfferID string `json:"offer_id"`
			Offer   struct{ Type, SDP string }
		}
	}
	if err := json.Unmarshal(msg, &ann); err != nil {
		t.Fatalf("announce %s: %v", msg, err)
	}
	if ann.Action != "announce" || ann.InfoHash != "0123456789abcdef0123" || ann.PeerID != "fedcba9876543210fedc" || len(ann.Offers) != 3 || ann.Offers[2].OfferID != "000000003b9aca000209" || len(ann.Offers[0].Offer.SDP) != 600 {
		t.Fatalf("announce: %+v", ann)
	}
	ans, aat := answerTemplate("0123456789abcdef0123", "fedcba9876543210fedc", "v=0")
	copy(ans[aat[0]:], "aaaaaaaaaaaaaaaaaaaa")
	copy(ans[aat[1]:], "bbbbbbbbbbbbbbbbbbbb")
	var a map[string]any
	if err := json.Unmarshal(ans, &a); err != nil || a["to_peer_id"] != "aaaaaaaaaaaaaaaaaaaa" || a["offer_id"] != "bbbbbbbbbbbbbbbbbbbb" {
		t.Fatalf("answer %s: %v", ans, err)
	}
}

// TestClientsAgainstTracker runs the cluster mode's clients against a real tracker in this
// process: every announce is replied to and every offer answered, and latencies come out.
func TestClientsAgainstTracker(t *testing.T) {
	sig, err := signaling.New(signaling.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sig)
	defer ts.Close()
	defer sig.Close()
	url := "ws" + strings.TrimPrefix(ts.URL, "http")
	const swarms, perSwarm, offers = 3, 4, 2
	r := rand.New(rand.NewPCG(3, 4))
	var cst clientCounters
	var socks []*benchSock
	for i := range swarms * (1 + perSwarm) {
		s := &benchSock{url: url, ih: hexID(r), pid: hexID(r), events: make(chan sockEvent, 64), cst: &cst}
		if i < swarms {
			s.offerTmpl, s.offerIDAt = announceTemplate(s.ih, s.pid, offers, r, 300)
		} else {
			s.ih = socks[(i-swarms)%swarms].ih
			s.answerTmpl, s.answerAt = answerTemplate(s.ih, s.pid, fakeSDP(r, 300))
		}
		socks = append(socks, s)
	}
	defer func() {
		for _, s := range socks {
			if s.ws != nil {
				s.ws.Close()
			}
		}
	}()
	if err := openSocks(socks[swarms:]); err != nil {
		t.Fatal(err)
	}
	if err := openSocks(socks[:swarms]); err != nil {
		t.Fatal(err)
	}
	pr := runOffers(socks[:swarms], offers, 300*time.Millisecond, 50)
	if pr.announces < 5 || pr.missing > 0 || len(pr.answerLat) != offers*pr.announces || len(pr.replyLat) < pr.announces {
		t.Fatalf("paced: %d announces, %d missing, %d answer and %d reply latencies", pr.announces, pr.missing, len(pr.answerLat), len(pr.replyLat))
	}
	pr = runOffers(socks[:swarms], offers, 200*time.Millisecond, 0)
	if pr.announces < 5 || pr.missing > 0 {
		t.Fatalf("saturated: %d announces, %d missing", pr.announces, pr.missing)
	}
	if l := percentiles(pr.answerLat); l.p50 <= 0 || l.p99 < l.p50 {
		t.Fatalf("latencies %+v", l)
	}
	if f, u := cst.failures.Load(), cst.unexpected.Load(); f > 0 || u > 0 {
		t.Fatalf("%d failure replies, %d unexpected messages", f, u)
	}
	if st := sig.Stats(); st.AnswersRelayed < uint64(offers*pr.announces) {
		t.Fatalf("tracker relayed %d answers", st.AnswersRelayed)
	}
}
