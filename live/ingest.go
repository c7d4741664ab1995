package live

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// EntryHeader carries the signed entry of an uploaded segment: its JSON form (see SignedEntry's
// MarshalJSON), base64url-encoded (padding optional).
const EntryHeader = "X-Swarmgate-Entry"

// Results of an upload, as counted by Origin.Counts (the metric's result label).
const (
	ResultAccepted         = "accepted"
	ResultUnauthorized     = "unauthorized"
	ResultIngestOff        = "ingest_off"
	ResultMalformed        = "malformed"
	ResultTooLarge         = "too_large"
	ResultBadSignature     = "bad_signature"
	ResultWrongStream      = "wrong_stream"
	ResultContentMismatch  = "content_mismatch"
	ResultInfoHashMismatch = "infohash_mismatch"
	ResultReplay           = "replay"
	ResultOutOfOrder       = "out_of_order"
	ResultTooOld           = "too_old"
	ResultFuture           = "future"
	ResultStreamLimit      = "stream_limit"
	ResultRelayedStream    = "relayed_stream"
	ResultMissingInit      = "missing_init"
)

// Results lists every result label, so that a metric can report zeros.
var Results = []string{
	ResultAccepted, ResultUnauthorized, ResultIngestOff, ResultMalformed, ResultTooLarge,
	ResultBadSignature, ResultWrongStream, ResultContentMismatch, ResultInfoHashMismatch,
	ResultReplay, ResultOutOfOrder, ResultTooOld, ResultFuture, ResultStreamLimit, ResultRelayedStream, ResultMissingInit,
}

// IngestResult is the JSON answer to an upload (201 when accepted).
type IngestResult struct {
	Result  string `json:"result"`
	Stream  string `json:"stream,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Seq     uint64 `json:"seq"`
	Missing uint64 `json:"missing,omitempty"`
}

// httpError is an answer with a status, a reason and the result it counts as.
type httpError struct {
	status int
	result string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func fail(status int, result, format string, args ...any) *httpError {
	return &httpError{status: status, result: result, msg: fmt.Sprintf(format, args...)}
}

// errUploadPath answers a PUT that no upload route takes.
var errUploadPath = fail(http.StatusNotFound, ResultMalformed, "upload to /live/{stream}/init/{seq} or /live/{stream}/media/{seq}")

// ingest makes the handler of an upload route: the ingest token first, then take; every upload
// is counted with its result, and a refused one also on its stream when the stream is here.
func (o *Origin) ingest(take func(*http.Request, *IngestResult) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		res := &IngestResult{}
		err := o.authorize(r)
		if err == nil {
			err = take(r, res)
		}
		var he *httpError
		switch {
		case errors.As(err, &he):
			res.Result = he.result
		case err == nil:
			res.Result = ResultAccepted
		default:
			res.Result = ResultMalformed
		}
		o.count(res.Result)
		if err == nil {
			writeJSON(w, http.StatusCreated, res)
			return
		}
		if id, perr := ParseStreamID(res.Stream); perr == nil {
			if s := o.stream(id); s != nil {
				s.mu.Lock()
				s.rejections[res.Result]++
				s.mu.Unlock()
			}
		}
		if he == nil {
			writeError(w, r, http.StatusInternalServerError, err.Error())
			return
		}
		o.log.Debug("live upload refused", "path", r.URL.Path, "result", he.result, "err", he.msg)
		if he.status == http.StatusUnauthorized {
			writeError(w, r, he.status, he.msg)
			return
		}
		// The result label too, for broadcasters to act on (see ResultMissingInit).
		writeJSON(w, he.status, map[string]string{"error": he.msg, "result": he.result})
	}
}

// upload takes a segment: PUT /live/{stream}/{kind}/{seq}.
func (o *Origin) upload(r *http.Request, res *IngestResult) error {
	var kind Kind
	if err := kind.UnmarshalText([]byte(r.PathValue("kind"))); err != nil {
		return errUploadPath
	}
	id, err := ParseStreamID(r.PathValue("stream"))
	if err != nil {
		return fail(http.StatusBadRequest, ResultMalformed, "%v", err)
	}
	rawSeq := r.PathValue("seq")
	seq, err := strconv.ParseUint(rawSeq, 10, 64)
	if err != nil || strconv.FormatUint(seq, 10) != rawSeq {
		return fail(http.StatusBadRequest, ResultMalformed, "seq %q: want a decimal number", rawSeq)
	}
	res.Stream, res.Kind, res.Seq = id.String(), kind.String(), seq

	hdr := strings.TrimSpace(r.Header.Get(EntryHeader))
	if hdr == "" {
		return fail(http.StatusBadRequest, ResultMalformed, "no %s header: it carries the signed entry (its JSON, base64url)", EntryHeader)
	}
	js, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(hdr, "="))
	if err != nil {
		return fail(http.StatusBadRequest, ResultMalformed, "%s: not base64url: %v", EntryHeader, err)
	}
	var se SignedEntry
	if err := json.Unmarshal(js, &se); err != nil {
		return fail(http.StatusBadRequest, ResultMalformed, "%s: %v", EntryHeader, err)
	}
	if se.Kind != kind || se.Seq != seq {
		return fail(http.StatusBadRequest, ResultMalformed, "the URL says %s segment %d, the entry says %s segment %d", kind, seq, se.Kind, se.Seq)
	}
	if se.Size > o.cfg.MaxSegmentSize || r.ContentLength > int64(o.cfg.MaxSegmentSize) {
		return fail(http.StatusRequestEntityTooLarge, ResultTooLarge, "segment larger than the limit of %d bytes", o.cfg.MaxSegmentSize)
	}
	// The signature needs no body: check it before reading one.
	if err := Verify(id, se); err != nil {
		return rejected(err)
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, int64(o.cfg.MaxSegmentSize)+1))
	if err != nil {
		return fail(http.StatusBadRequest, ResultMalformed, "reading the body: %v", err)
	}
	if uint64(len(data)) > o.cfg.MaxSegmentSize {
		return fail(http.StatusRequestEntityTooLarge, ResultTooLarge, "segment larger than the limit of %d bytes", o.cfg.MaxSegmentSize)
	}
	if s := o.stream(id); s != nil && s.relay != nil {
		return fail(http.StatusConflict, ResultRelayedStream, "this gateway relays stream %s from elsewhere: upload to its origin", id)
	}
	if kind == KindMedia {
		// A media segment is only playable after its init segment. A gateway that lost the
		// stream (restarted without its data folder, or the init was dropped from it) gets media
		// first: it asks for the init again.
		if s := o.stream(id); s == nil || !s.hasInitFor(seq) {
			return fail(http.StatusConflict, ResultMissingInit, "media segment %d has no init segment before it here (a new stream, or the gateway lost it): upload its init segment first", seq)
		}
	}
	s, added, err := o.add(id, se, data)
	if err != nil {
		return err
	}
	res.Missing = added.Missing
	o.accepted(id, s, se, data)
	return nil
}

// end takes a broadcaster's signed End: PUT /live/{stream}/end.
func (o *Origin) end(r *http.Request, res *IngestResult) error {
	id, err := ParseStreamID(r.PathValue("stream"))
	if err != nil {
		return fail(http.StatusBadRequest, ResultMalformed, "%v", err)
	}
	res.Stream, res.Kind = id.String(), "end"
	var e End
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&e); err != nil {
		return fail(http.StatusBadRequest, ResultMalformed, "the body must be the signed end's JSON: %v", err)
	}
	res.Seq = e.LastSeq
	s := o.stream(id)
	switch {
	case s == nil:
		return fail(http.StatusNotFound, ResultMalformed, "no live stream %s here", id)
	case s.relay != nil:
		return fail(http.StatusConflict, ResultRelayedStream, "this gateway relays stream %s from elsewhere: end it at its origin", id)
	}
	if err := s.w.End(e); err != nil {
		return rejected(err)
	}
	o.log.Info("live stream ended by its broadcaster", "stream", id, "last_seq", e.LastSeq)
	return nil
}

// ResultOf is the result label (one of Results) of a window's refusal.
func ResultOf(err error) string {
	var he *httpError
	if errors.As(rejected(err), &he) {
		return he.result
	}
	return ResultMalformed
}

// rejected maps a window's RejectError to an answer.
func rejected(err error) error {
	status, result := http.StatusBadRequest, ResultMalformed
	for _, m := range []struct {
		err    error
		status int
		result string
	}{
		{ErrBadSignature, http.StatusUnprocessableEntity, ResultBadSignature},
		{ErrWrongStream, http.StatusUnprocessableEntity, ResultWrongStream},
		{ErrContentMismatch, http.StatusUnprocessableEntity, ResultContentMismatch},
		{ErrInfoHashMismatch, http.StatusUnprocessableEntity, ResultInfoHashMismatch},
		{ErrTooLarge, http.StatusRequestEntityTooLarge, ResultTooLarge},
		{ErrReplay, http.StatusConflict, ResultReplay},
		{ErrOutOfOrder, http.StatusConflict, ResultOutOfOrder},
		{ErrTooOld, http.StatusConflict, ResultTooOld},
		{ErrFuture, http.StatusUnprocessableEntity, ResultFuture},
	} {
		if errors.Is(err, m.err) {
			status, result = m.status, m.result
			break
		}
	}
	return fail(status, result, "%s", strings.TrimPrefix(err.Error(), "live: "))
}
