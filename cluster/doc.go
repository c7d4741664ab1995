// Package cluster makes several gateways act as one service, over NATS.
//
// A Node joins the cluster's NATS: an existing one (Config.NATSURL) or a NATS server embedded in
// this process whose routes join the other nodes' (Config.Listen, Config.Routes), authenticated
// by a shared secret so that no stranger joins. On it each node
//
//   - beats every second (membership): a node silent for Config.Timeout is gone, and the others
//     hear of it within seconds (Node.OnChange);
//   - names the home of every infohash by rendezvous hashing over the live members (Node.Home),
//     so that all nodes agree without asking each other and a membership change moves only the
//     infohashes whose winner came or went;
//   - carries its tracker's messages to the other nodes' trackers (SignalBus, a signaling.Bus):
//     a browser's websocket may land on any node and still meets its whole swarm.
//
// A gateway without cluster settings makes no Node at all: it runs as before, every swarm local.
// Nothing of NATS leaks out of this package; signaling and gateway see small interfaces.
package cluster
