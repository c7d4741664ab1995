// Package gatewaytest starts real gateways for the e2e tests and the bench command: on loopback
// only, serving in the background until closed.
//
// A loopback gateway (Config) listens for HTTP and BitTorrent on 127.0.0.1 with ports the system
// picks, keeps WebRTC on the loopback interface (mDNS off), and asks no DHT and no router (UPnP):
// nothing leaves the machine. Start serves one and returns once it answers; New is Start for
// tests, closed at the test's cleanup.
//
// The gateway package's own tests cannot use this package (it imports gateway, so gateway's
// internal tests importing it would be a cycle); they keep a helper of their own that sets the
// same fields (gateway/api_test.go).
package gatewaytest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/gateway"
)

// Config is gateway.DefaultConfig on loopback only, with its data in dataDir. An empty dataDir
// makes Start use a temporary folder that Close removes.
func Config(dataDir string) gateway.Config {
	cfg := gateway.DefaultConfig()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DataDir = dataDir
	cfg.BTHost = "127.0.0.1"
	cfg.BTPort = 0
	cfg.NoDHT = true
	cfg.NoUPnP = true
	cfg.LoopbackWebRTC = true
	return cfg
}

// How long Start waits for the gateway to answer, and Close for Serve to return beyond the
// config's ShutdownTimeout. On loopback both take milliseconds: these only keep a broken gateway
// from hanging its test or the bench.
const (
	answerWithin = 10 * time.Second
	closeMargin  = 30 * time.Second
)

// Server is a gateway serving in the background.
type Server struct {
	// Gateway is the gateway itself (its Close stops it at once; Server's Close drains first).
	Gateway *gateway.Gateway
	// URL is the base URL of the gateway's HTTP listener: http://127.0.0.1:<port>, no trailing /.
	URL string

	tempDir  string // removed by Close; empty when the caller owns DataDir
	within   time.Duration
	cancel   context.CancelFunc
	served   chan error
	stopOnce sync.Once
	stopErr  error
}

// Start builds a gateway from cfg (usually Config's, changed as needed), serves it, and returns
// once GET /readyz answers 200. When cfg.DataDir is empty it makes a temporary folder for it.
func Start(cfg gateway.Config, log *slog.Logger) (*Server, error) {
	s := &Server{served: make(chan error, 1), within: cfg.ShutdownTimeout + closeMargin}
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "swarmgate-gateway-*")
		if err != nil {
			return nil, err
		}
		cfg.DataDir, s.tempDir = dir, dir
	}
	g, err := gateway.New(cfg, log)
	if err != nil {
		s.removeTemp()
		return nil, err
	}
	s.Gateway, s.URL = g, "http://"+g.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.served <- g.Serve(ctx) }()
	if err := s.waitAnswer(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// waitAnswer polls /readyz until it answers 200, Serve returns, or answerWithin passes. New has
// bound the listener already, so the first request normally waits in its backlog and is the
// only one.
func (s *Server) waitAnswer() error {
	ctx, cancel := context.WithTimeout(context.Background(), answerWithin)
	defer cancel()
	// No keep-alive: no idle connection (and its goroutines) outlives the check.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
		if err != nil {
			return err
		}
		res, err := c.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /readyz: %s", res.Status)
		}
		select {
		case serr := <-s.served:
			s.served <- serr // for Close
			return fmt.Errorf("gateway stopped serving before it answered: %w", errors.Join(serr, err))
		case <-ctx.Done():
			return fmt.Errorf("gateway does not answer within %v: %w", answerWithin, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close shuts the gateway down as a signal to the command does (Serve's graceful shutdown),
// waits for Serve to return and removes the temporary data folder Start made. It returns Serve's
// error, the same on every call.
func (s *Server) Close() error {
	_, err := s.stop()
	return err
}

// stop is Close, also saying whether this call was the one that stopped the gateway.
func (s *Server) stop() (first bool, err error) {
	s.stopOnce.Do(func() {
		first = true
		s.cancel()
		select {
		case s.stopErr = <-s.served:
		case <-time.After(s.within):
			s.stopErr = fmt.Errorf("gateway Serve did not return within %v of shutdown", s.within)
		}
		s.removeTemp()
	})
	return first, s.stopErr
}

func (s *Server) removeTemp() {
	if s.tempDir != "" {
		os.RemoveAll(s.tempDir)
	}
}

// New is Start for tests: a loopback gateway with its data in a folder of tb's (tb.TempDir),
// its config changed first by change (nil: no change), closed at tb's cleanup. It fails the test
// if the gateway does not start, and reports an error if it does not stop cleanly at cleanup
// (when the test has not closed it itself: then Close's result is the test's to check).
func New(tb testing.TB, log *slog.Logger, change func(*gateway.Config)) *Server {
	tb.Helper()
	cfg := Config(tb.TempDir())
	if change != nil {
		change(&cfg)
	}
	s, err := Start(cfg, log)
	if err != nil {
		tb.Fatalf("gatewaytest: %v", err)
	}
	tb.Cleanup(func() {
		if first, err := s.stop(); first && err != nil {
			tb.Errorf("gatewaytest: gateway serve: %v", err)
		}
	})
	return s
}
