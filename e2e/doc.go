// Package e2e holds end-to-end tests that run real parts together on loopback: native anacrolix
// peers, the gateway, WebRTC peers built on pion, and (later) headless Chromium.
package e2e
