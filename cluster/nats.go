package cluster

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// routeUser is the user name of the embedded servers' routes; the secret is its password.
const routeUser = "swarmgate"

// routeURL makes a route URL of host:port or nats-route://host:port, with the route credentials.
func routeURL(route, user, password string) (*url.URL, error) {
	if !strings.Contains(route, "://") {
		route = "nats-route://" + route
	}
	u, err := url.Parse(route)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "nats-route" && u.Scheme != "nats" {
		return nil, fmt.Errorf("scheme %q: want host:port or nats-route://host:port", u.Scheme)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
		return nil, fmt.Errorf("want host:port")
	}
	if user != "" {
		u.User = url.UserPassword(user, password)
	}
	return u, nil
}

// startEmbedded starts this node's NATS server: routes on cfg.Listen to the other nodes'
// servers, authenticated by the secret.
func startEmbedded(cfg Config) (*server.Server, error) {
	host, portStr, _ := net.SplitHostPort(cfg.Listen)
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("cluster listen %q: %w", cfg.Listen, err)
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		// The server routes only once its client port is open (DontListen would keep it from
		// routing at all): a random loopback port, behind the secret like the routes. The
		// gateway itself connects in process.
		Host:     "127.0.0.1",
		Port:     server.RANDOM_PORT,
		Username: routeUser,
		Password: cfg.Secret,
		NoSigs:   true,
		NoLog:    true,
		Cluster: server.ClusterOpts{
			Name:     "swarmgate",
			Host:     host,
			Port:     port,
			Username: routeUser,
			Password: cfg.Secret,
			// Routes come and go with nodes: keep trying the seed list.
			ConnectRetries: -1,
			NoAdvertise:    true,
		},
	}
	for _, r := range cfg.Routes {
		u, err := routeURL(r, routeUser, cfg.Secret)
		if err != nil {
			return nil, fmt.Errorf("cluster route %q: %w", r, err)
		}
		opts.Routes = append(opts.Routes, u)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS: not ready in 10 s (is %s free?)", cfg.Listen)
	}
	return srv, nil
}

// connect opens the node's NATS connection: in process to the embedded server, or to cfg.NATSURL.
func connect(cfg Config, srv *server.Server) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("swarmgate " + cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.PingInterval(5 * time.Second),
	}
	if srv != nil {
		return nats.Connect("", append(opts, nats.InProcessServer(srv), nats.UserInfo(routeUser, cfg.Secret))...)
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	nc, err := nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster NATS %s: %w", redactURL(cfg.NATSURL), err)
	}
	return nc, nil
}

// redactURL hides the passwords of a NATS URL list for logs and errors.
func redactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}
