package signaling

import (
	"bytes"
	"encoding/json"
	"unicode/utf16"
	"unicode/utf8"
)

// A fast path for reading client messages: one validating pass over the message splits it into
// the raw values encoding/json would hand out, and strings are unquoted without reflection.
// Whenever a message strays from what the fast path handles exactly as encoding/json does (a key
// that would only match a field case-insensitively, a key with escapes or non-ASCII bytes, deep
// nesting), the caller falls back to encoding/json, so both read every message alike;
// FuzzMessageDecode checks that.

// maxFastDepth bounds the nesting the fast scanner follows; deeper documents go to encoding/json.
const maxFastDepth = 32

// scanValue returns the end of the JSON value starting at data[i] (no leading whitespace), or
// -1 when it is invalid or nests deeper than maxFastDepth.
func scanValue(data []byte, i, depth int) int {
	if i >= len(data) {
		return -1
	}
	switch c := data[i]; {
	case c == '"':
		return scanString(data, i)
	case c == '{':
		if depth >= maxFastDepth {
			return -1
		}
		i = skipSpace(data, i+1)
		if i < len(data) && data[i] == '}' {
			return i + 1
		}
		for {
			if i >= len(data) || data[i] != '"' {
				return -1
			}
			if i = scanString(data, i); i < 0 {
				return -1
			}
			i = skipSpace(data, i)
			if i >= len(data) || data[i] != ':' {
				return -1
			}
			if i = scanValue(data, skipSpace(data, i+1), depth+1); i < 0 {
				return -1
			}
			i = skipSpace(data, i)
			if i >= len(data) {
				return -1
			}
			if data[i] == '}' {
				return i + 1
			}
			if data[i] != ',' {
				return -1
			}
			i = skipSpace(data, i+1)
		}
	case c == '[':
		if depth >= maxFastDepth {
			return -1
		}
		i = skipSpace(data, i+1)
		if i < len(data) && data[i] == ']' {
			return i + 1
		}
		for {
			if i = scanValue(data, i, depth+1); i < 0 {
				return -1
			}
			i = skipSpace(data, i)
			if i >= len(data) {
				return -1
			}
			if data[i] == ']' {
				return i + 1
			}
			if data[i] != ',' {
				return -1
			}
			i = skipSpace(data, i+1)
		}
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(data, i)
	case c == 't':
		return scanLiteral(data, i, "true")
	case c == 'f':
		return scanLiteral(data, i, "false")
	case c == 'n':
		return scanLiteral(data, i, "null")
	}
	return -1
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func scanLiteral(data []byte, i int, lit string) int {
	if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// scanString validates the string starting at data[i] == '"' as encoding/json's scanner does
// (any byte ≥ 0x20, valid escapes) and returns the index after its closing quote.
func scanString(data []byte, i int) int {
	for i++; ; i++ {
		for i < len(data) && plainByte[data[i]] {
			i++
		}
		if i >= len(data) {
			return -1
		}
		switch data[i] {
		case '"':
			return i + 1
		case '\\':
			i++
			if i >= len(data) {
				return -1
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(data)-i < 5 {
					return -1
				}
				for _, h := range data[i+1 : i+5] {
					if !isHex(h) {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		default: // a control character
			return -1
		}
	}
}

// plainByte marks the bytes a JSON string holds as they are: not a quote, a backslash or a
// control character.
var plainByte = func() (t [256]bool) {
	for b := 0x20; b < 256; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// hex4 reads four hex digits (already validated).
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanNumber follows JSON's number grammar.
func scanNumber(data []byte, i int) int {
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		for i++; i < len(data) && isDigit(data[i]); i++ {
		}
	default:
		return -1
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || !isDigit(data[i]) {
			return -1
		}
		for ; i < len(data) && isDigit(data[i]); i++ {
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || !isDigit(data[i]) {
			return -1
		}
		for ; i < len(data) && isDigit(data[i]); i++ {
		}
	}
	return i
}

// skipValue returns the end of the valid JSON value starting at data[i], without checking it
// again: every raw value the readers get is valid, from a message decodeMessage scanned or from
// encoding/json.
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = skipString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(data) {
		switch data[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// skipString returns the index after the closing quote of the valid string at data[i]: the
// first quote not escaped, that is after an even run of backslashes.
func skipString(data []byte, i int) int {
	for i++; i < len(data); {
		j := bytes.IndexByte(data[i:], '"')
		if j < 0 {
			return len(data)
		}
		q := i + j
		k := q
		for k > i && data[k-1] == '\\' {
			k--
		}
		if (q-k)%2 == 0 {
			return q + 1
		}
		i = q + 1
	}
	return len(data)
}

// eachMember calls f with the raw key (quotes included) and raw value of every member of the
// valid JSON object obj, in order.
func eachMember(obj []byte, f func(key, value []byte)) {
	i := skipSpace(obj, 1)
	for i < len(obj) && obj[i] == '"' {
		k := skipString(obj, i)
		key := obj[i:k]
		v := skipSpace(obj, skipSpace(obj, k)+1) // past the colon
		end := skipValue(obj, v)
		f(key, obj[v:end])
		i = skipSpace(obj, end)
		if obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
}

// eachElement calls f with every raw element of the valid JSON array arr until f returns false.
func eachElement(arr []byte, f func(elem []byte) bool) {
	i := skipSpace(arr, 1)
	for i < len(arr) && arr[i] != ']' {
		end := skipValue(arr, i)
		if !f(arr[i:end]) {
			return
		}
		i = skipSpace(arr, end)
		if arr[i] == ',' {
			i = skipSpace(arr, i+1)
		}
	}
}

// fieldIndex finds key (raw, quoted) in names the way the fast path may: an exact match gives
// its index, a key no field could match gives -1, and ok is false for a key only
// encoding/json's case-insensitive matching can place (or one with escapes or non-ASCII bytes).
func fieldIndex(key []byte, names []string) (idx int, ok bool) {
	k := key[1 : len(key)-1]
	for _, c := range k {
		if c == '\\' || c >= utf8.RuneSelf {
			return -1, false
		}
	}
	for i, n := range names {
		if string(k) == n {
			return i, true
		}
	}
	for _, n := range names {
		if bytes.EqualFold(k, []byte(n)) {
			return -1, false
		}
	}
	return -1, true
}

var inMessageFields = []string{"action", "info_hash", "peer_id", "to_peer_id", "offer_id", "event",
	"left", "uploaded", "downloaded", "offers", "answer", "offer", "failure reason"}

func (m *inMessage) field(i int) *json.RawMessage {
	return [...]*json.RawMessage{&m.Action, &m.InfoHash, &m.PeerID, &m.ToPeerID, &m.OfferID, &m.Event,
		&m.Left, &m.Uploaded, &m.Downloaded, &m.Offers, &m.Answer, &m.Offer, &m.Failure}[i]
}

// decodeMessage fills m as json.Unmarshal(data, m) would, and returns its error. The raw fields
// alias data.
func decodeMessage(data []byte, m *inMessage) error {
	if obj, ok := trimmedObject(data); ok && scanValue(obj, 0, 0) == len(obj) {
		fast := true
		eachMember(obj, func(key, value []byte) {
			if !fast {
				return
			}
			i, ok := fieldIndex(key, inMessageFields)
			switch {
			case !ok:
				fast = false
			case i >= 0:
				*m.field(i) = value
			}
		})
		if fast {
			return nil
		}
		*m = inMessage{}
	}
	return json.Unmarshal(data, m)
}

// trimmedObject returns data without the whitespace around it when it starts like an object.
func trimmedObject(data []byte) ([]byte, bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	j := len(data)
	for j > i && (data[j-1] == ' ' || data[j-1] == '\t' || data[j-1] == '\n' || data[j-1] == '\r') {
		j--
	}
	return data[i:j], true
}

// unquote appends the decoded JSON string token raw (quotes included, already valid) to dst.
// It reports false where encoding/json would differ from a plain decode: invalid UTF-8 or a
// surrogate escape, which encoding/json turns into U+FFFD.
func unquote(dst, raw []byte) ([]byte, bool) {
	s := raw[1 : len(raw)-1]
	for len(s) > 0 {
		i := bytes.IndexByte(s, '\\')
		if i < 0 {
			i = len(s)
		}
		if !utf8.Valid(s[:i]) {
			return dst, false
		}
		dst = append(dst, s[:i]...)
		s = s[i:]
		if len(s) == 0 {
			break
		}
		switch s[1] {
		case 'u':
			r := hex4(s[2:6])
			if utf16.IsSurrogate(r) {
				return dst, false
			}
			dst = utf8.AppendRune(dst, r)
			s = s[6:]
			continue
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		default: // " \ /
			dst = append(dst, s[1])
		}
		s = s[2:]
	}
	return dst, true
}

// plainString reports whether the JSON string token raw decodes as unquote would decode it,
// so that it may be sent on as it is: valid UTF-8 and no surrogate escape.
func plainString(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	for i := bytes.IndexByte(raw, '\\'); i >= 0 && i+1 < len(raw); {
		if raw[i+1] == 'u' {
			if utf16.IsSurrogate(hex4(raw[i+2 : i+6])) {
				return false
			}
		}
		j := bytes.IndexByte(raw[i+2:], '\\')
		if j < 0 {
			break
		}
		i += 2 + j
	}
	return true
}

// isString reports whether raw is a JSON string token.
func isString(raw json.RawMessage) bool { return len(raw) >= 2 && raw[0] == '"' }

// isNumber reports whether raw is a JSON number token.
func isNumber(raw json.RawMessage) bool {
	return len(raw) > 0 && (raw[0] == '-' || isDigit(raw[0]))
}
