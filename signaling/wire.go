package signaling

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Wire format of the WebTorrent tracker protocol. IDs travel as binary
// strings (see ID.binary), so every ID field here is a string.

const (
	actionAnnounce = "announce"
	actionScrape   = "scrape"

	// minScrapeInterval is the flags.min_request_interval of scrape replies (seconds), as bittorrent-tracker sends.
	minScrapeInterval = 600
)

// inMessage is any client message with every field left raw, so that one
// field of the wrong type still leaves action and info_hash readable for the
// failure reply.
type inMessage struct {
	Action     json.RawMessage `json:"action"`
	InfoHash   json.RawMessage `json:"info_hash"`
	PeerID     json.RawMessage `json:"peer_id"`
	ToPeerID   json.RawMessage `json:"to_peer_id"`
	OfferID    json.RawMessage `json:"offer_id"`
	Event      json.RawMessage `json:"event"`
	Left       json.RawMessage `json:"left"`
	Uploaded   json.RawMessage `json:"uploaded"`
	Downloaded json.RawMessage `json:"downloaded"`
	Offers     json.RawMessage `json:"offers"`
	Answer     json.RawMessage `json:"answer"`
	Offer      json.RawMessage `json:"offer"`
	Failure    json.RawMessage `json:"failure reason"`
}

type failureMsg struct {
	Action   string `json:"action"`
	InfoHash string `json:"info_hash"`
	Reason   string `json:"failure reason"`
}

type scrapeFile struct {
	Complete   int    `json:"complete"`
	Incomplete int    `json:"incomplete"`
	Downloaded uint64 `json:"downloaded"`
}

type scrapeReply struct {
	Action string                `json:"action"`
	Files  map[string]scrapeFile `json:"files"`
	Flags  struct {
		MinRequestInterval int `json:"min_request_interval"`
	} `json:"flags"`
}

func isAbsent(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

// stringField decodes a JSON string field; ok is false when it is absent or null.
func stringField(raw json.RawMessage, name string) (s string, ok bool, err error) {
	if isAbsent(raw) {
		return "", false, nil
	}
	if isString(raw) {
		var buf [64]byte
		if b, ok := unquote(buf[:0], raw); ok {
			return string(b), true, nil
		}
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, fmt.Errorf("%w: %s is not a string", ErrBadMessage, name)
	}
	return s, true, nil
}

// idField decodes a required binary-string ID field.
func idField(raw json.RawMessage, name string) (ID, error) {
	var buf [64]byte
	var b []byte
	ok := false
	if isString(raw) {
		b, ok = unquote(buf[:0], raw)
	}
	if !ok {
		s, present, err := stringField(raw, name)
		if err != nil {
			return ID{}, err
		}
		if !present {
			return ID{}, fmt.Errorf("%w: %s missing", ErrBadMessage, name)
		}
		b = []byte(s)
	}
	id, err := parseBinaryID(b)
	if err != nil {
		return ID{}, fmt.Errorf("%w: %s: %w", ErrBadMessage, name, err)
	}
	return id, nil
}

// sdpText is an SDP as read off the wire: its JSON string token when that can be sent on as it
// is (most of the time: no re-encoding), else the decoded string.
type sdpText struct {
	raw []byte // a plainString token; aliases the message it came in
	str string // when raw is nil
}

// String decodes the SDP.
func (t sdpText) String() string {
	if t.raw == nil {
		return t.str
	}
	b, _ := unquote(nil, t.raw) // plainString: always decodes
	return string(b)
}

func (t sdpText) appendJSON(dst []byte) []byte {
	if t.raw != nil {
		return append(dst, t.raw...)
	}
	return appendJSONString(dst, t.str)
}

// sdpField decodes {type, sdp} and checks its type.
func sdpField(raw json.RawMessage, name, wantType string) (sdpText, error) {
	if t, err, ok := sdpFieldFast(raw, name, wantType); ok {
		return t, err
	}
	var m struct {
		Type *string `json:"type"`
		SDP  *string `json:"sdp"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return sdpText{}, fmt.Errorf("%w: %s is not an object with a string sdp", ErrBadMessage, name)
	}
	if m.SDP == nil || *m.SDP == "" {
		return sdpText{}, fmt.Errorf("%w: %s.sdp missing", ErrBadMessage, name)
	}
	if m.Type != nil && *m.Type != wantType {
		return sdpText{}, fmt.Errorf("%w: %s.type is %q, want %q", ErrBadMessage, name, *m.Type, wantType)
	}
	return sdpText{str: *m.SDP}, nil
}

var sdpFields = []string{"type", "sdp"}

// sdpFieldFast is sdpField without encoding/json; ok is false when it cannot tell.
func sdpFieldFast(raw json.RawMessage, name, wantType string) (t sdpText, err error, ok bool) {
	if len(raw) == 0 || raw[0] != '{' {
		return sdpText{}, nil, false
	}
	var typ, sdp []byte
	fast, wrongType := true, false
	eachMember(raw, func(key, value []byte) {
		i, ok := fieldIndex(key, sdpFields)
		switch {
		case !ok:
			fast = false
			return
		case i < 0:
			return
		}
		// A string or null is what a *string takes; anything else fails the whole decode.
		if !isString(value) && !isAbsent(value) {
			wrongType = true
		}
		if i == 0 {
			typ = value
		} else {
			sdp = value
		}
	})
	if !fast {
		return sdpText{}, nil, false
	}
	if wrongType {
		return sdpText{}, fmt.Errorf("%w: %s is not an object with a string sdp", ErrBadMessage, name), true
	}
	if isAbsent(sdp) || len(sdp) == 2 { // null, or ""
		return sdpText{}, fmt.Errorf("%w: %s.sdp missing", ErrBadMessage, name), true
	}
	if !isAbsent(typ) {
		var buf [32]byte
		got, ok := unquote(buf[:0], typ)
		if !ok {
			return sdpText{}, nil, false
		}
		if string(got) != wantType {
			return sdpText{}, fmt.Errorf("%w: %s.type is %q, want %q", ErrBadMessage, name, got, wantType), true
		}
	}
	if !plainString(sdp) {
		return sdpText{}, nil, false
	}
	return sdpText{raw: sdp}, nil, true
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own fixed structs of strings and ints reach here.
		panic(fmt.Sprintf("signaling: marshal %T: %v", v, err))
	}
	return b
}

// counter reads a byte counter a client reports; anything but a non-negative number reads as 0,
// since the counts are informational and must not fail an announce.
func counter(raw json.RawMessage) int64 {
	f, ok := number(raw)
	if !ok || f < 0 || f > 1<<62 {
		return 0
	}
	return int64(f)
}

// number decodes a JSON number as json.Unmarshal into a float64 does; ok is false for anything
// else, or a number out of range.
func number(raw json.RawMessage) (float64, bool) {
	if !isNumber(raw) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return f, err == nil
}

// leftBytes reads an announce's left: -1 when absent, null (size not known yet) or not a sane
// byte count.
func leftBytes(left *float64) int64 {
	if left == nil || *left < 0 || *left > 1<<62 || *left != *left {
		return -1
	}
	return int64(*left)
}
