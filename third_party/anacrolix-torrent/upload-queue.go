package torrent

import (
	"fmt"
	"time"
)

// swarmgate patch: a conn keeps its place in the upload cap's queue.
//
// Upstream reserves tokens for the next chunk and, when they are not there yet, cancels the
// reservation and tries again once they should be. Anything else that shares the limiter and
// waits its turn (rate.Limiter.WaitN: the gateway's HTTP answers) takes the tokens in between,
// every time: with one HTTP stream running under a saturated cap, the conns got nothing at all
// (BenchmarkOffload: five watch pages under the cap got every byte over HTTP, 0 over WebRTC).
// Here a conn holds its reservation until its time comes, as a waiter does, so each conn and each
// HTTP writer gets its turn in the order they asked.

// uploadDelay reserves n bytes of the upload cap for the conn's next chunk, unless a reservation
// of at least n is held already, and says how long until it may be sent; at 0 the reservation is
// spent. Called with the client lock held.
func (c *PeerConn) uploadDelay(n int) time.Duration {
	now := time.Now()
	if c.uploadReservation != nil && c.uploadReserved < n {
		c.cancelUploadReservation()
	}
	if c.uploadReservation == nil {
		res := c.t.cl.config.UploadRateLimiter.ReserveN(now, n)
		if !res.OK() {
			panic(fmt.Sprintf("upload rate limiter burst size < %d", n))
		}
		c.uploadReservation, c.uploadReserved = res, n
	}
	if d := c.uploadReservation.DelayFrom(now); d > 0 {
		return d
	}
	c.uploadReservation = nil
	return 0
}

// cancelUploadReservation gives back what the conn reserved and did not send (nothing to send any
// more, or the conn closed).
func (c *PeerConn) cancelUploadReservation() {
	if c.uploadReservation != nil {
		c.uploadReservation.Cancel()
		c.uploadReservation = nil
	}
}
