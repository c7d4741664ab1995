package trackerclient

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/swarmgate/swarmgate/signaling"
)

// FuzzClientDispatch feeds one tracker message to Client.dispatch and checks that at most one
// handler runs, and never with an empty SDP.
func FuzzClientDispatch(f *testing.F) {
	ih, a, oid := binaryString(testID(1)), binaryString(testID(2)), binaryString(testID(4))
	type msg = map[string]any
	j := func(v any) []byte { b, _ := json.Marshal(v); return b }
	f.Add(j(msg{"action": "announce", "info_hash": ih, "peer_id": a, "offer_id": oid,
		"offer": msg{"type": "offer", "sdp": "v=0 offer"}}))
	f.Add(j(msg{"action": "announce", "info_hash": ih, "peer_id": a, "to_peer_id": oid,
		"offer_id": oid, "answer": msg{"type": "answer", "sdp": "v=0 answer"}}))
	f.Add(j(msg{"action": "announce", "info_hash": ih, "failure reason": "swarm is full"}))
	f.Add(j(msg{"action": "announce", "info_hash": ih, "interval": 120, "complete": 1, "incomplete": 0}))
	f.Add([]byte(`{"info_hash":"short","offer":{"sdp":"x"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var mu sync.Mutex
		var calls []string
		record := func(kind string) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, kind)
		}
		ctx, cancel := context.WithCancel(context.Background())
		c := &Client{log: slog.New(slog.DiscardHandler), ctx: ctx, cancel: cancel, h: Handlers{
			Offer: func(_ context.Context, o signaling.Offer) (string, error) {
				if o.SDP == "" {
					t.Errorf("offer with an empty SDP from %q", data)
				}
				record("offer")
				return "", errors.New("not answering in a fuzz test") // so nothing is written
			},
			Answer: func(_, _, _ signaling.ID, sdp string) {
				if sdp == "" {
					t.Errorf("answer with an empty SDP from %q", data)
				}
				record("answer")
			},
			Failure: func(signaling.ID, string) { record("failure") },
		}}
		c.dispatch(data)
		c.wg.Wait()
		cancel()
		if len(calls) > 1 {
			t.Fatalf("%q ran %d handlers: %v", data, len(calls), calls)
		}
	})
}
