package httpsrv

// All of httpsrv's HTTP/2 wiring lives in this file.
//
// HTTP/2 is served by golang.org/x/net/http2 rather than by net/http's own
// copy, which a third-party server cannot reach. x/net's server API
// (ConfigureServer, Server, ServeConn) is deprecated upstream from v0.59,
// and on Go 1.27 it is built as a thin wrapper over net/http's own HTTP/2
// server (x/net's server_wrap.go) instead of the standalone implementation
// (server.go). The two builds read their settings from different places,
// so the wiring differs in two respects:
//
//   - Standalone (Go 1.26, the http2legacy build tag, or an x/net older
//     than the wrapper): ServeConn reads timeouts, MaxHeaderBytes,
//     ConnState, ErrorLog and HTTP2 from ServeConnOpts.BaseConfig, so we
//     pass our stand-in *http.Server. It has no limit on the number of
//     header fields, so httpsrv applies MaxHeaderValueCount itself
//     (h2CountLimit).
//   - Wrapper (Go 1.27): a non-nil BaseConfig makes x/net copy it into a
//     throwaway http.Server for every connection, which no shutdown can
//     reach; with a nil BaseConfig it serves through the http.Server given
//     to ConfigureServer. So we pass nil, and ConfigureServer gets the same
//     stand-in, which holds our settings, MaxHeaderValueCount included.
//
// Which build is in use is not guessed from build tags, which a replace
// pinning another x/net would silently contradict (and then every setting
// but IdleTimeout would be lost): h2ProbeEngine observes it once per
// process, by serving a connection with a nil BaseConfig and reading the
// SETTINGS frame, which shows whether the settings given to
// ConfigureServer's http.Server are the ones served.
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
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// h2Server is a Server's HTTP/2 engine.
type h2Server struct {
	srv *http2.Server // immutable after setupHTTP2
	hs  *http.Server  // the stand-in given to ConfigureServer; see httpServer

	// wraps is whether x/net's server wraps net/http's (h2ProbeEngine);
	// if not, BaseConfig is passed and h2CountLimit applied.
	wraps bool
}

// setupHTTP2 creates the HTTP/2 engine once, and returns the error that
// creating it gave.
func (s *Server) setupHTTP2() error {
	s.h2Once.Do(func() {
		wraps, err := h2EngineWraps()
		if err != nil {
			s.h2Err = fmt.Errorf("httpsrv: probing the HTTP/2 server of golang.org/x/net/http2: %w", err)
			return
		}
		hs := s.httpServer()
		h2 := &http2.Server{IdleTimeout: s.idleTimeout()}
		if err := http2.ConfigureServer(hs, h2); err != nil {
			s.h2Err = fmt.Errorf("httpsrv: configuring HTTP/2: %w", err)
			return
		}
		s.h2.Store(&h2Server{srv: h2, hs: hs, wraps: wraps})
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
	c.h2State.Store(1 + uint32(http.StateNew))
	c.setState(http.StateActive, skipHooks)
	h2 := c.srv.h2.Load()
	o := h2.newOwner(c, tc)
	defer o.stopWrites()
	h2.srv.ServeConn(&h2NetConn{Conn: tc, h2Owner: o}, h2.connOpts(ctx, c))
}

// serveUnencryptedHTTP2 serves an unencrypted HTTP/2 connection, whose
// client preface has been read, until it ends.
func (c *conn) serveUnencryptedHTTP2(ctx context.Context, h2 *h2Server) {
	opts := h2.connOpts(ctx, c)
	opts.SawClientPreface = true
	o := h2.newOwner(c, c.rwc)
	defer o.stopWrites()
	h2.srv.ServeConn(&h2cNetConn{Conn: c.rwc, h2Owner: o}, opts)
}

// newOwner returns the owner of c, served over nc, with its
// WriteByteTimeout watch when the timeout is on.
func (h *h2Server) newOwner(c *conn, nc net.Conn) *h2Owner {
	o := &h2Owner{c: c}
	if h.hs.HTTP2 != nil && h.hs.HTTP2.WriteByteTimeout > 0 {
		o.writes = &h2WriteWatch{conn: nc}
	}
	return o
}

// connOpts returns the ServeConn options for c, whose context is ctx.
func (h *h2Server) connOpts(ctx context.Context, c *conn) *http2.ServeConnOpts {
	opts := &http2.ServeConnOpts{
		Context: ctx,
		Handler: alpnHandler{ctx: ctx, c: c},
	}
	if !h.wraps {
		opts.BaseConfig = h.hs
		opts.Handler = h2CountLimit{h: opts.Handler, max: c.srv.maxHeaderValueCount()}
	}
	return opts
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

	// writes takes the HTTP/2 server's write deadlines when
	// WriteByteTimeout is on; nil otherwise. Immutable.
	writes *h2WriteWatch
}

func (o *h2Owner) owner() *h2Owner { return o }

// stopWrites stops the write watch, if any, when the connection is done.
func (o *h2Owner) stopWrites() {
	if o.writes != nil {
		o.writes.stop()
	}
}

// setWriteDeadline is the SetWriteDeadline of the connection handed to
// x/net, which calls it around each write when WriteByteTimeout is on
// (h2WriteWatch); nc is the connection under it.
func (o *h2Owner) setWriteDeadline(nc net.Conn, t time.Time) error {
	if o.writes == nil {
		return nc.SetWriteDeadline(t)
	}
	return o.writes.setWriteDeadline(t)
}

func (c *h2cNetConn) SetWriteDeadline(t time.Time) error {
	return c.setWriteDeadline(c.Conn, t)
}

func (c *h2NetConn) SetWriteDeadline(t time.Time) error {
	return c.setWriteDeadline(c.Conn, t)
}

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
		ow.c.h2State.Store(1 + uint32(state))
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

// h2CountLimit applies MaxHeaderValueCount to HTTP/2 requests for x/net's
// standalone server, which has no such limit: a request with more header
// fields than max gets what Go 1.27's HTTP/2 server sends (net/http's
// handleHeaderListTooLong, for a header block its Framer truncated): 431
// Request Header Fields Too Large with that body, the handler not called,
// the connection kept.
type h2CountLimit struct {
	h   http.Handler
	max int
}

func (l h2CountLimit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if tooManyHTTP2Fields(r, l.max) {
		w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
		_, _ = io.WriteString(w, "<h1>HTTP Error 431</h1><p>Request Header Field(s) Too Large</p>")
		return
	}
	l.h.ServeHTTP(w, r)
}

// tooManyHTTP2Fields reports whether the HTTP/2 request r had more than max
// header fields, counted as Go 1.27 counts them while decoding (net/http's
// Framer.readMetaFrame): every field, pseudo-header fields included, except
// the trailer fields, whose listed names are counted apart against the same
// limit. The count is rebuilt from the request x/net made, so it can fall
// short of Go 1.27's, never exceed it: x/net joins repeated cookie fields
// into one, drops "expect: 100-continue", and keeps a host field sent along
// with :authority in Header without saying whether :authority was sent;
// duplicate and invalid trailer names are dropped.
func tooManyHTTP2Fields(r *http.Request, max int) bool {
	n := 1 // :method
	if r.Method != http.MethodConnect || r.Header[":protocol"] != nil {
		n += 2 // :scheme and :path; a CONNECT without :protocol has neither
	}
	if r.Host != "" && r.Header["Host"] == nil {
		n++ // :authority
	}
	for _, vv := range r.Header {
		n += len(vv) // :protocol among them
	}
	return n > max || len(r.Trailer) > max
}

// h2EngineWraps reports whether x/net's server wraps net/http's, as
// h2ProbeEngine observed it; the probe runs once per process.
var h2EngineWraps = sync.OnceValues(func() (bool, error) {
	return h2ProbeEngine(h2ProbeTimeout)
})

// h2ProbeTimeout bounds the probe. The connection is in memory, so only a
// broken engine makes it take more than a moment.
const h2ProbeTimeout = 10 * time.Second

// h2ProbeStreams is the SETTINGS_MAX_CONCURRENT_STREAMS the probe sets on
// the http.Server only; it differs from x/net's default.
const h2ProbeStreams = 7

// h2ProbeEngine reports whether http2.Server.ServeConn, given no
// BaseConfig, serves with the settings of the http.Server given to
// ConfigureServer, as the Go 1.27 wrapper does; the standalone server then
// uses a zero http.Server. It serves one in-memory connection and reads the
// SETTINGS frame the server sends first.
//
// The probe logs nothing, except with x/net's debug logs on
// (GODEBUG=http2debug=1 or 2, http2.VerboseLogs) on the standalone engine:
// its zero http.Server has no ErrorLog, so the probe connection appears in
// that debug output, through the standard logger, once per process.
func h2ProbeEngine(timeout time.Duration) (bool, error) {
	hs := &http.Server{
		HTTP2:    &http.HTTP2Config{MaxConcurrentStreams: h2ProbeStreams},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	srv := new(http2.Server)
	if err := http2.ConfigureServer(hs, srv); err != nil {
		return false, err
	}
	client, server := net.Pipe()
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.ServeConn(server, &http2.ServeConnOpts{Handler: http.NotFoundHandler()})
	}()
	wrote := make(chan struct{})
	go func() {
		// The server may read the preface before writing SETTINGS. An
		// error here shows in the read below.
		defer close(wrote)
		_, _ = io.WriteString(client, http2.ClientPreface)
	}()
	defer func() {
		client.Close()
		<-wrote
		<-served
	}()
	if err := client.SetDeadline(time.Now().Add(timeout)); err != nil {
		return false, err
	}
	f, err := http2.NewFramer(nil, client).ReadFrame()
	if err != nil {
		return false, fmt.Errorf("reading the server's SETTINGS: %w", err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		return false, fmt.Errorf("the server sent %v before its SETTINGS", f.Header())
	}
	v, ok := sf.Value(http2.SettingMaxConcurrentStreams)
	return ok && v == h2ProbeStreams, nil
}
