package signaling

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// The fast JSON reading and writing must match encoding/json exactly; these compare them with
// the encoding/json code they replace.

// The messages jsonwrite.go writes, as structs for json.Marshal.

type sdpMsg struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

type announceReply struct {
	Action     string `json:"action"`
	InfoHash   string `json:"info_hash"`
	Interval   int    `json:"interval"`
	Complete   int    `json:"complete"`
	Incomplete int    `json:"incomplete"`
}

type offerMsg struct {
	Action   string `json:"action"`
	InfoHash string `json:"info_hash"`
	PeerID   string `json:"peer_id"`
	OfferID  string `json:"offer_id"`
	Offer    sdpMsg `json:"offer"`
}

type answerMsg struct {
	Action   string `json:"action"`
	InfoHash string `json:"info_hash"`
	PeerID   string `json:"peer_id"`
	ToPeerID string `json:"to_peer_id"`
	OfferID  string `json:"offer_id"`
	Answer   sdpMsg `json:"answer"`
}

func refStringField(raw json.RawMessage, name string) (s string, ok bool, err error) {
	if isAbsent(raw) {
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, fmt.Errorf("%w: %s is not a string", ErrBadMessage, name)
	}
	return s, true, nil
}

func refSDPField(raw json.RawMessage, name, wantType string) (string, error) {
	var m struct {
		Type *string `json:"type"`
		SDP  *string `json:"sdp"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", fmt.Errorf("%w: %s is not an object with a string sdp", ErrBadMessage, name)
	}
	if m.SDP == nil || *m.SDP == "" {
		return "", fmt.Errorf("%w: %s.sdp missing", ErrBadMessage, name)
	}
	if m.Type != nil && *m.Type != wantType {
		return "", fmt.Errorf("%w: %s.type is %q, want %q", ErrBadMessage, name, *m.Type, wantType)
	}
	return *m.SDP, nil
}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// checkDecodeMatches fails when the fast readers and encoding/json read data differently.
func checkDecodeMatches(t *testing.T, data []byte) {
	t.Helper()
	var want, got inMessage
	wantErr := json.Unmarshal(data, &want)
	gotErr := decodeMessage(data, &got)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%q: encoding/json error %v, fast %v", data, wantErr, gotErr)
	}
	if wantErr != nil {
		return
	}
	for i, name := range inMessageFields {
		w, g := *want.field(i), *got.field(i)
		if !bytes.Equal(w, g) {
			t.Fatalf("%q: field %s: encoding/json %q, fast %q", data, name, w, g)
		}
		checkValueMatches(t, w)
	}
}

// checkValueMatches compares every field reader on one raw value (valid JSON).
func checkValueMatches(t *testing.T, raw json.RawMessage) {
	t.Helper()
	if len(raw) == 0 {
		return
	}
	ws, wok, werr := refStringField(raw, "f")
	gs, gok, gerr := stringField(raw, "f")
	if ws != gs || wok != gok || errText(werr) != errText(gerr) {
		t.Fatalf("stringField(%q): encoding/json %q %v %v, fast %q %v %v", raw, ws, wok, werr, gs, gok, gerr)
	}
	var wf *float64
	wnErr := json.Unmarshal(raw, &wf)
	gf, gnok := number(raw)
	if !isAbsent(raw) && ((wnErr == nil) != gnok || (gnok && *wf != gf)) {
		t.Fatalf("number(%q): encoding/json %v %v, fast %v %v", raw, wf, wnErr, gf, gnok)
	}
	wsdp, wserr := refSDPField(raw, "offer", "offer")
	gsdp, gserr := sdpField(raw, "offer", "offer")
	if errText(wserr) != errText(gserr) || (wserr == nil && wsdp != gsdp.String()) {
		t.Fatalf("sdpField(%q): encoding/json %q %v, fast %q %v", raw, wsdp, wserr, gsdp.String(), gserr)
	}
	if gserr == nil {
		// What is sent on decodes to the same SDP.
		var back string
		if err := json.Unmarshal(gsdp.appendJSON(nil), &back); err != nil || back != wsdp {
			t.Fatalf("sdp %q sent on as %q", wsdp, gsdp.appendJSON(nil))
		}
	}
	var wo rawOfferEntry
	woErr := json.Unmarshal(raw, &wo)
	if isAbsent(raw) {
		woErr = nil
	}
	gotEntry, goErr := offerEntry(raw)
	if (woErr == nil) != (goErr == nil) || !bytes.Equal(wo.OfferID, gotEntry.OfferID) || !bytes.Equal(wo.Offer, gotEntry.Offer) {
		t.Fatalf("offerEntry(%q): encoding/json %+v %v, fast %+v %v", raw, wo, woErr, gotEntry, goErr)
	}
	if raw[0] == '[' || raw[0] == '{' {
		var members []json.RawMessage
		if raw[0] == '[' {
			_ = json.Unmarshal(raw, &members)
		} else {
			var obj map[string]json.RawMessage
			_ = json.Unmarshal(raw, &obj)
			for _, v := range obj {
				members = append(members, v)
			}
		}
		for _, m := range members {
			checkValueMatches(t, m)
		}
	}
	var js string
	if json.Unmarshal(raw, &js) == nil {
		want, _ := json.Marshal(js)
		if got := appendJSONString(nil, js); !bytes.Equal(got, want) {
			t.Fatalf("appendJSONString(%q) = %s, json.Marshal %s", js, got, want)
		}
	}
}

var decodeSeeds = []string{
	`{"action":"announce","info_hash":"\u0001abc\u00ff","peer_id":"-WW0208-abcdefghijkl","left":12.5e3,"uploaded":-1,"offers":[{"offer_id":"x","offer":{"type":"offer","sdp":"v=0\r\nx"}},null,1]}`,
	`{"ACTION":"announce"}`, `{"Action":"x","action":"y"}`, `{"actıon":"x"}`, `{"\u0061ction":"x"}`,
	`{"action":"a","action":null}`, ` {"event" : "started" } `, `{"offers":{"offer_id":"x"}}`,
	`{"answer":{"type":"answer","sdp":"a","sdp":5}}`, `{"answer":{"sdp":"\ud800"}}`, `{"answer":{"sdp":"\ud83d\ude00 <&>"}}`,
	`{"answer":{"type":null,"sdp":"x","SDP":"y"}}`, `{"answer":{"type":"offer","sdp":"x"}}`, `{"answer":{"Type":"answer","sdp":"x"}}`,
	"{\"action\":\"\xff\xfe\"}", `{"left":1e400}`, `{"left":-0}`, `{"left":"1"}`, `{"left":true}`, `[1,2]`, `null`, `"x"`,
	`{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, `{"a":1,}`, `{"a":01}`, `{"a":"\x01"}`, `{}`, `{"a":{}}`,
	`{"offers":[{"offer_id":"a","offer_id":"b","OFFER":{}}]}`, `{"info_hash":"\u2028\u2029"}`,
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, s := range decodeSeeds {
		checkDecodeMatches(t, []byte(s))
	}
	for _, s := range fuzzSeedMessages() {
		for line := range bytes.SplitSeq(s, []byte("\n")) {
			checkDecodeMatches(t, line)
		}
	}
}

// FuzzMessageDecode compares the fast message readers with encoding/json on any input:
//
//	go test -run '^$' -fuzz '^FuzzMessageDecode$' -fuzztime 60s -parallel 1 ./signaling/
func FuzzMessageDecode(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecodeMatches(t, data)
		want, _ := json.Marshal(string(data))
		if got := appendJSONString(nil, data); !bytes.Equal(got, want) {
			t.Fatalf("appendJSONString(%q) = %s, json.Marshal %s", data, got, want)
		}
	})
}

func TestMessageWriters(t *testing.T) {
	var all [256]byte
	for i := range all {
		all[i] = byte(i)
	}
	var ids []ID
	for i := 0; i < len(all); i += 20 {
		var id ID
		copy(id[:], all[i:])
		ids = append(ids, id)
	}
	ids = append(ids, testID(7))
	sdps := []string{"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n", "<&>\u2028\u2029\x00\x7f\xff\"\\", string(all[:])}
	for i, ih := range ids {
		a, b, o := ids[(i+1)%len(ids)], ids[(i+2)%len(ids)], ids[(i+3)%len(ids)]
		want := mustMarshal(announceReply{Action: actionAnnounce, InfoHash: ih.binary(), Interval: 120, Complete: i, Incomplete: -i})
		if got := announceReplyJSON(ih, 120, i, -i); !bytes.Equal(got, want) {
			t.Fatalf("announce reply\n got %s\nwant %s", got, want)
		}
		for _, sdp := range sdps {
			want := mustMarshal(offerMsg{Action: actionAnnounce, InfoHash: ih.binary(), PeerID: a.binary(), OfferID: o.binary(),
				Offer: sdpMsg{Type: "offer", SDP: sdp}})
			if got := offerJSON(ih, a, o, sdpText{str: sdp}); !bytes.Equal(got, want) {
				t.Fatalf("offer\n got %s\nwant %s", got, want)
			}
			want = mustMarshal(answerMsg{Action: actionAnnounce, InfoHash: ih.binary(), PeerID: a.binary(), ToPeerID: b.binary(),
				OfferID: o.binary(), Answer: sdpMsg{Type: "answer", SDP: sdp}})
			if got := answerJSON(ih, a, b, o, sdpText{str: sdp}); !bytes.Equal(got, want) {
				t.Fatalf("answer\n got %s\nwant %s", got, want)
			}
			// An SDP spliced in as it came reads back the same.
			token, _ := json.Marshal(sdp)
			in, err := sdpField([]byte(`{"type":"offer","sdp":`+string(token)+`}`), "offer", "offer")
			if err != nil {
				t.Fatal(err)
			}
			var sent string
			_ = json.Unmarshal(token, &sent)
			var back offerMsg
			if err := json.Unmarshal(offerJSON(ih, a, o, in), &back); err != nil || back.Offer.SDP != sent {
				t.Fatalf("spliced sdp %q reads back as %q (%v)", sdp, back.Offer.SDP, err)
			}
		}
	}
}
