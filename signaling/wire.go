package signaling

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Wire format of the WebTorrent tracker protocol. IDs travel as binary
// strings (see ID.binary), so every ID field here is a string.

const (
	actionAnnounce = "announce"
	actionScrape   = "scrape"

	// minScrapeInterval is the flags.min_request_interval of scrape replies (seconds), as bittorrent-tracker sends.
	minScrapeInterval = 600
)

type sdpMsg struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

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
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, fmt.Errorf("%w: %s is not a string", ErrBadMessage, name)
	}
	return s, true, nil
}

// idField decodes a required binary-string ID field.
func idField(raw json.RawMessage, name string) (ID, error) {
	s, ok, err := stringField(raw, name)
	if err != nil {
		return ID{}, err
	}
	if !ok {
		return ID{}, fmt.Errorf("%w: %s missing", ErrBadMessage, name)
	}
	id, err := parseBinaryID(s)
	if err != nil {
		return ID{}, fmt.Errorf("%w: %s: %w", ErrBadMessage, name, err)
	}
	return id, nil
}

// sdpField decodes {type, sdp} and checks its type.
func sdpField(raw json.RawMessage, name, wantType string) (string, error) {
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
	var f float64
	if isAbsent(raw) || json.Unmarshal(raw, &f) != nil || f < 0 || f > 1<<62 {
		return 0
	}
	return int64(f)
}

// leftBytes reads an announce's left: -1 when absent, null (size not known yet) or not a sane
// byte count.
func leftBytes(left *float64) int64 {
	if left == nil || *left < 0 || *left > 1<<62 || *left != *left {
		return -1
	}
	return int64(*left)
}
