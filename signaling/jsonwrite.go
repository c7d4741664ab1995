package signaling

import (
	"strconv"
	"sync"
	"unicode/utf8"
)

// The messages the tracker sends most (announce replies, relayed offers and answers) are
// written by hand, without reflection and with the SDP spliced in as it came: the same bytes
// json.Marshal makes of the message structs in json_test.go (TestMessageWriters checks).

const hexDigits = "0123456789abcdef"

// Message buffers are recycled once written (conn.write): a relayed offer is as large as its
// SDP, and the tracker makes two or more per announce.
var msgBufs = sync.Pool{New: func() any { return new([]byte) }}

// newMsg returns an empty buffer of at least size bytes for one outgoing message.
func newMsg(size int) []byte {
	p := msgBufs.Get().(*[]byte)
	b := (*p)[:0]
	if cap(b) < size {
		b = make([]byte, 0, size)
	}
	return b
}

// recycleMsg takes back a message nothing refers to any more.
func recycleMsg(b []byte) {
	if cap(b) > 16<<10 {
		return
	}
	b = b[:0]
	msgBufs.Put(&b)
}

// appendJSONString appends s as a JSON string the way encoding/json writes it (HTML-safe).
func appendJSONString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = appendEscape(dst, b)
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(string(s[i:min(len(s), i+utf8.UTFMax)]))
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendEscape appends the escape of ASCII byte b in a JSON string, as encoding/json writes it.
func appendEscape(dst []byte, b byte) []byte {
	switch b {
	case '\\', '"':
		return append(dst, '\\', b)
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
}

// appendID appends id as a JSON binary string: byte b is the code point U+00bb, so bytes from
// 0x80 take two UTF-8 bytes, and the rest are escaped as appendJSONString escapes them.
func appendID(dst []byte, id ID) []byte {
	dst = append(dst, '"')
	for _, b := range id {
		switch {
		case b >= utf8.RuneSelf:
			dst = append(dst, 0xC0|b>>6, 0x80|b&0x3F)
		case b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&':
			dst = append(dst, b)
		default:
			dst = appendEscape(dst, b)
		}
	}
	return append(dst, '"')
}

// announceReplyJSON is json.Marshal(announceReply{...}) with action announce.
func announceReplyJSON(ih ID, interval, complete, incomplete int) []byte {
	b := newMsg(160)
	b = append(b, `{"action":"announce","info_hash":`...)
	b = appendID(b, ih)
	b = append(b, `,"interval":`...)
	b = strconv.AppendInt(b, int64(interval), 10)
	b = append(b, `,"complete":`...)
	b = strconv.AppendInt(b, int64(complete), 10)
	b = append(b, `,"incomplete":`...)
	b = strconv.AppendInt(b, int64(incomplete), 10)
	return append(b, '}')
}

// offerJSON is json.Marshal(offerMsg{...}) with action announce and offer type "offer".
func offerJSON(ih, from, oid ID, sdp sdpText) []byte {
	b := newMsg(256 + len(sdp.raw) + len(sdp.str))
	b = append(b, `{"action":"announce","info_hash":`...)
	b = appendID(b, ih)
	b = append(b, `,"peer_id":`...)
	b = appendID(b, from)
	b = append(b, `,"offer_id":`...)
	b = appendID(b, oid)
	b = append(b, `,"offer":{"type":"offer","sdp":`...)
	b = sdp.appendJSON(b)
	return append(b, '}', '}')
}

// answerJSON is json.Marshal(answerMsg{...}) with action announce and answer type "answer".
func answerJSON(ih, from, to, oid ID, sdp sdpText) []byte {
	b := newMsg(320 + len(sdp.raw) + len(sdp.str))
	b = append(b, `{"action":"announce","info_hash":`...)
	b = appendID(b, ih)
	b = append(b, `,"peer_id":`...)
	b = appendID(b, from)
	b = append(b, `,"to_peer_id":`...)
	b = appendID(b, to)
	b = append(b, `,"offer_id":`...)
	b = appendID(b, oid)
	b = append(b, `,"answer":{"type":"answer","sdp":`...)
	b = sdp.appendJSON(b)
	return append(b, '}', '}')
}
