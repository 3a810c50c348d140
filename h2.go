package httpsrv

// All of httpsrv's HTTP/2 wiring lives in this file.
//
// HTTP/2 is served by golang.org/x/net/http2 rather than by net/http's own
// copy, which a third-party server cannot reach. x/net's server API
// (ConfigureServer, Server, ServeConn) is deprecated upstream from v0.59,
// and on Go 1.27 it is built as a thin wrapper over net/http's own HTTP/2
// server (x/net's server_wrap.go) instead of the standalone implementation
// (server.go). The two builds read their settings from different places,
// so the wiring differs in one respect, chosen by h2WrapsNetHTTP (set by
// build tags that mirror x/net's own):
//
//   - Standalone (Go 1.26, or the http2legacy build tag): ServeConn reads
//     timeouts, MaxHeaderBytes, ConnState, ErrorLog and HTTP2 from
//     ServeConnOpts.BaseConfig, so we pass our stand-in *http.Server.
//   - Wrapper (Go 1.27): a non-nil BaseConfig makes x/net copy it into a
//     throwaway http.Server for every connection, which no shutdown can
//     reach; with a nil BaseConfig it serves through the http.Server given
//     to ConfigureServer. So we pass nil, and ConfigureServer gets the same
//     stand-in, which holds our settings.
//
// Either way the stand-in is ConfigureServer'd once per Server. That is
// what makes graceful shutdown reach HTTP/2 connections: ConfigureServer
// registers x/net's GOAWAY function with the stand-in's RegisterOnShutdown,
// and Server.Shutdown calls the stand-in's Shutdown, which runs it. The
// stand-in never listens, so nothing of the caller's is modified.

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"

	"golang.org/x/net/http2"
)

// h2Server is a Server's HTTP/2 engine.
type h2Server struct {
	srv *http2.Server // immutable after setupHTTP2
	hs  *http.Server  // the stand-in given to ConfigureServer; see httpServer
}

// setupHTTP2 creates the HTTP/2 engine once, and returns the error that
// creating it gave.
func (s *Server) setupHTTP2() error {
	s.h2Once.Do(func() {
		hs := s.httpServer()
		h2 := &http2.Server{IdleTimeout: s.idleTimeout()}
		if err := http2.ConfigureServer(hs, h2); err != nil {
			s.h2Err = fmt.Errorf("httpsrv: configuring HTTP/2: %w", err)
			return
		}
		s.h2.Store(&h2Server{srv: h2, hs: hs})
		// After the store, so that a concurrent SetKeepAlivesEnabled
		// either sees the engine or has set the flag read here.
		if s.disableKeepAlives.Load() {
			hs.SetKeepAlivesEnabled(false)
		}
	})
	return s.h2Err
}

// serveHTTP2 serves an HTTP/2 connection until it ends.
func (c *conn) serveHTTP2(ctx context.Context, tc *tls.Conn) {
	// net/http keeps HTTP/2 connections in StateActive until they close, so
	// that Shutdown waits for their GOAWAY instead of closing them. x/net
	// reports the finer states to the ConnState hook (h2ConnState).
	c.setState(http.StateActive, skipHooks)
	opts := &http2.ServeConnOpts{
		Context: ctx,
		Handler: alpnHandler{ctx: ctx, c: c},
	}
	h2 := c.srv.h2.Load()
	if !h2WrapsNetHTTP {
		opts.BaseConfig = h2.hs
	}
	h2.srv.ServeConn(&h2NetConn{Conn: tc, h2Owner: &h2Owner{c: c}}, opts)
}

// serveUnencryptedHTTP2 serves an unencrypted HTTP/2 connection, whose
// client preface has been read, until it ends.
func (c *conn) serveUnencryptedHTTP2(ctx context.Context, h2 *h2Server) {
	opts := &http2.ServeConnOpts{
		Context:          ctx,
		Handler:          alpnHandler{ctx: ctx, c: c},
		SawClientPreface: true,
	}
	if !h2WrapsNetHTTP {
		opts.BaseConfig = h2.hs
	}
	h2.srv.ServeConn(&h2cNetConn{Conn: c.rwc, h2Owner: &h2Owner{c: c}}, opts)
}

// h2cNetConn is the net.Conn handed to x/net for unencrypted HTTP/2.
type h2cNetConn struct {
	net.Conn
	*h2Owner
}

// h2Owner ties a connection handed to x/net back to its conn.
type h2Owner struct {
	c *conn // immutable

	// lateGoAway guards the repeat of Shutdown's GOAWAY broadcast for a
	// connection that x/net registered after it; see h2ConnState.
	lateGoAway sync.Once
}

func (o *h2Owner) owner() *h2Owner { return o }

// h2NetConn is the net.Conn handed to x/net for HTTP/2 over TLS: the
// *tls.Conn (x/net finds its ConnectionState method for the TLS checks and
// Request.TLS) plus its owner, so that the ConnState callback can tell
// which connection it is about.
type h2NetConn struct {
	*tls.Conn
	*h2Owner
}

// h2ConnState receives x/net's connection states and passes them to the
// ConnState hook with the connection the hook saw in StateNew.
//
// It also closes a gap in graceful shutdown. Shutdown's GOAWAY reaches the
// connections x/net has registered, and x/net registers a connection when
// ServeConn starts, so one handed off while or after the broadcast runs
// would never get GOAWAY, and Shutdown would wait for its idle timeout or
// its context. x/net reports StateActive first once it has read the
// client preface, after registering the connection; if shutdown has
// started by then, the broadcast is repeated, which reaches this
// connection (x/net sends GOAWAY once per connection, so the others see
// nothing new). Either the broadcast ran after the registration, or this
// check sees shutdown started: inShutdown is set before the broadcast.
func (s *Server) h2ConnState(nc net.Conn, state http.ConnState) {
	if o, ok := nc.(interface{ owner() *h2Owner }); ok {
		ow := o.owner()
		if state == http.StateActive && s.shuttingDown() {
			ow.lateGoAway.Do(func() {
				if h2 := s.h2.Load(); h2 != nil {
					h2.shutdown()
				}
			})
		}
		nc = ow.c.rwc
	}
	if hook := s.ConnState; hook != nil {
		hook(nc, state)
	}
}

// shutdown makes every HTTP/2 connection send GOAWAY and close once its
// streams are done. It does not wait.
func (h *h2Server) shutdown() {
	// The stand-in has no listeners or tracked connections, so its
	// Shutdown just starts the GOAWAY functions and returns.
	_ = h.hs.Shutdown(context.Background())
}

// setKeepAlivesEnabled passes SetKeepAlivesEnabled on. The Go 1.27 engine
// then sends GOAWAY when a connection goes idle; the standalone one cannot
// see the setting.
func (h *h2Server) setKeepAlivesEnabled(v bool) {
	h.hs.SetKeepAlivesEnabled(v)
}
