package httpsrv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"
)

// conn is one accepted connection. Its serve method runs on the goroutine
// that owns it.
type conn struct {
	// srv is the server the connection arrived on. Immutable; never nil.
	srv *Server

	// rwc is the underlying network connection, a *tls.Conn under
	// ServeTLS. Immutable; never nil. Other goroutines may only Close it.
	rwc net.Conn

	// remoteAddr is rwc.RemoteAddr().String(). Set by serve before any
	// request is read; read-only afterwards.
	remoteAddr string

	// tlsState is the TLS connection state after the handshake, or nil for
	// a plaintext connection. Set by serve before any request is read;
	// shared, read-only, by every request on the connection.
	tlsState *tls.ConnectionState

	// curState packs the http.ConnState (low 8 bits) and the Unix second
	// it was entered (the rest). Written by the owner, read by Shutdown.
	curState atomic.Uint64

	// headDeadline, when set, bounds the first request head instead of
	// a fresh ReadHeaderTimeout: the look for an h2c preface started the
	// clock. Set by serve before the HTTP/1 engine starts.
	headDeadline time.Time

	// hijacked is set when the HTTP/1 engine hands the connection to a
	// handler; the connection is then neither closed nor tracked.
	hijacked atomic.Bool

	// resetOnClose is set when a write timed out: the client stopped
	// reading, and the connection is reset rather than closed; see
	// closeRWC.
	resetOnClose atomic.Bool

	// connSlot is the MaxConns limiter whose slot the connection holds,
	// or nil. Set before serve starts; connSlotFreed is set when the slot
	// is given back, on close or hijack (releaseConnSlot).
	connSlot      *connLimiter
	connSlotFreed atomic.Bool

	// h1 is the HTTP/1 engine serving the connection, once it has
	// started; closeIdleConns wakes it to drain (see drainIdle).
	h1 atomic.Pointer[h1conn]

	// raw counts the bytes read under rwc's TLS layer, when ServeTLS
	// made it (see countConn); nil otherwise. Immutable.
	raw *countConn

	// h2State is, for a connection the built-in HTTP/2 server serves, 1 +
	// the last http.ConnState it reported (h2ConnState), or 1 + StateNew
	// before its first report; 0 for other connections. Written by the
	// HTTP/2 server's goroutine, read by Stats.
	h2State atomic.Uint32

	// proxy is the connection under rwc that reads its PROXY header, when
	// Server.ProxyProtocol is set (see proxy.go); nil otherwise. Immutable.
	proxy *proxyConn
}

// newConn returns a connection for rwc, not yet tracked.
func (s *Server) newConn(rwc net.Conn) *conn {
	c := &conn{srv: s, rwc: rwc}
	if tc, ok := rwc.(*tls.Conn); ok {
		c.raw, _ = tc.NetConn().(*countConn)
	}
	c.proxy = proxyConnOf(rwc)
	return c
}

const (
	runHooks  = true
	skipHooks = false
)

// setState records a state change, tracks or untracks the connection, and
// runs the ConnState hook if runHook is set.
func (c *conn) setState(state http.ConnState, runHook bool) {
	switch state {
	case http.StateNew, http.StateHijacked, http.StateClosed:
		c.srv.trackConn(c, state)
		if state != http.StateNew {
			c.releaseConnSlot()
		}
	}
	c.curState.Store(uint64(time.Now().Unix())<<8 | uint64(state&0xff))
	if !runHook {
		return
	}
	if hook := c.srv.ConnState; hook != nil {
		hook(c.rwc, state)
	}
}

// getState returns the connection's state and the Unix second it was
// entered.
func (c *conn) getState() (http.ConnState, int64) {
	packed := c.curState.Load()
	return http.ConnState(packed & 0xff), int64(packed >> 8)
}

// closeFromServer closes the connection on the server's initiative, from
// a goroutine other than its owner's, which then sees its reads and writes
// fail and winds down. A TLS connection sends close_notify first, unless a
// write is in progress on it: crypto/tls bounds that by 5 s, and abort,
// from another goroutine, cuts it short. The network connection is closed
// when closeFromServer returns, even when another goroutine was already
// closing the *tls.Conn (the owner's closeRWC, whose close_notify may be
// waiting on the peer): crypto/tls then returns net.ErrClosed at once,
// without closing anything.
func (c *conn) closeFromServer() {
	if err := c.rwc.Close(); errors.Is(err, net.ErrClosed) {
		c.abort()
	}
}

// abort closes the network connection under the TLS layer, if any, at
// once: a close_notify or any other write blocked on it fails, and the
// peer gets no close_notify. The bytes already queued are still delivered
// before the FIN.
func (c *conn) abort() {
	c.netConn().Close()
}

// netConn returns the connection under rwc's TLS layer (and under its
// byte counter, countConn), or under the plaintext wrapper that kept the bytes read for the HTTP/2 preface
// (prefaceConn); otherwise rwc. Under all of these, it returns the
// accepted connection under the PROXY protocol reader (proxyConn).
func (c *conn) netConn() net.Conn {
	nc := c.rwc
	if u, ok := c.rwc.(interface{ NetConn() net.Conn }); ok {
		if inner := u.NetConn(); inner != nil {
			nc = inner
			if cc, ok := nc.(*countConn); ok {
				nc = cc.Conn
			}
		}
	}
	if pc, ok := nc.(*proxyConn); ok {
		return pc.Conn
	}
	return nc
}

// closeRWC closes the network connection at the end of serve. A
// connection whose writes timed out is reset (SO_LINGER 0): a plain close
// would queue the FIN behind the bytes a slow reader has not taken, and the
// kernel would keep the connection, and the client its hold on it, until
// they drain.
//
// Otherwise a TLS connection sends close_notify first, which may wait up to
// crypto/tls's 5 s for a peer that stopped reading (after the idle timeout,
// say). That wait is on the connection's own goroutine, with no lock held;
// Close, and Shutdown if the connection was idle, cut it short (see
// closeFromServer).
func (c *conn) closeRWC() {
	if c.resetOnClose.Load() {
		if tcp, ok := c.netConn().(*net.TCPConn); ok {
			tcp.SetLinger(0)
			tcp.Close()
			return
		}
	}
	c.rwc.Close()
}

// maxStackLog bounds the stack trace logged for a panicking handler.
const maxStackLog = 64 << 10

// logPanic counts a recovered panic value for Stats, and logs it with its
// stack, as net/http does, staying quiet for http.ErrAbortHandler.
func (c *conn) logPanic(v any, prefix string) {
	c.srv.stats.countPanic(v)
	if v == http.ErrAbortHandler {
		return
	}
	buf := make([]byte, maxStackLog)
	buf = buf[:runtime.Stack(buf, false)]
	c.srv.logf("%s: panic serving %v: %v\n%s", prefix, c.remoteAddr, v, buf)
}

// serve serves the connection until it is done, then closes it.
//
// A TLS connection is served by two goroutines in turn: this one runs the
// handshake, and a new one (serveRequests) serves the requests. The
// handshake's cryptography grows a goroutine's stack to 8 KiB, which the
// runtime does not shrink while a quarter of it is in use, and which a
// connection would otherwise keep for as long as it stays open, idle or
// not; a new goroutine's stack starts at 2 KiB and grows only as far as
// the request loop and its handlers need. Starting it costs one goroutine
// per connection, against a handshake of hundreds of microseconds (the
// handshake cells of bench/load showed no difference), and saves about
// 4 KiB for each idle HTTP/1.1 connection (bench/README.md, "Third run").
func (c *conn) serve(ctx context.Context) {
	if c.proxy != nil {
		var ok bool
		if ctx, ok = c.serveProxyHeader(ctx); !ok {
			return
		}
	}
	if ra := c.rwc.RemoteAddr(); ra != nil {
		c.remoteAddr = ra.String()
	}
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.rwc.LocalAddr())
	tc, ok := c.rwc.(*tls.Conn)
	if !ok {
		c.serveRequests(ctx, nil)
		return
	}
	handedOff := false
	defer func() {
		if handedOff {
			return
		}
		if v := recover(); v != nil {
			c.logPanic(v, "http")
			if c.tlsState == nil {
				// A callback of the TLS configuration panicked: the
				// handshake failed, and is counted as one.
				c.srv.logHandshakeError(c.remoteAddr, fmt.Errorf("httpsrv: panic during the TLS handshake: %v", v))
			}
		}
		c.endServe()
	}()
	if !c.handshake(ctx, tc) {
		return
	}
	handedOff = true
	go c.serveRequests(ctx, tc)
}

// serveRequests serves the requests of the connection, whose TLS
// handshake, if tc is not nil, has completed, until it is done, then
// closes it.
func (c *conn) serveRequests(ctx context.Context, tc *tls.Conn) {
	defer func() {
		if v := recover(); v != nil {
			c.logPanic(v, "http")
		}
		c.endServe()
	}()
	if tc != nil {
		if proto := c.tlsState.NegotiatedProtocol; validNextProto(proto) {
			c.serveNextProto(ctx, tc, proto)
			return
		}
	}
	protos := c.srv.protocols()
	if c.tlsState == nil && protos.UnencryptedHTTP2() {
		if c.maybeServeUnencryptedHTTP2(ctx) {
			return
		}
	}
	if !protos.HTTP1() {
		return
	}
	c.serveHTTP1(ctx)
}

// endServe closes the connection and reports it closed, unless it was
// hijacked. It runs when the connection's goroutine ends, in success,
// failure or panic.
func (c *conn) endServe() {
	if !c.hijacked.Load() {
		c.closeRWC()
		c.setState(http.StateClosed, runHooks)
	}
}

// handshake runs the TLS handshake under the handshake deadline and
// reports whether it succeeded. Failures are logged, and plaintext HTTP
// requests get net/http's 400 answer.
func (c *conn) handshake(ctx context.Context, tc *tls.Conn) bool {
	timeout := c.srv.tlsHandshakeTimeout()
	var deadline time.Time
	if p := c.proxy; p != nil && p.info == nil {
		// No PROXY header: the handshake timeout runs from the start of
		// the wait for it, as it would from accept without one.
		deadline = p.handshakeDeadline(timeout)
		c.rwc.SetDeadline(deadline)
	} else {
		phaseDeadline(c.rwc, timeout)
		if timeout > 0 {
			deadline = time.Now().Add(timeout)
		}
	}
	if c.raw != nil {
		if c.srv.handshakeLimit() != nil {
			// A MaxConcurrentHandshakes slot is waited for within the
			// handshake's deadline; see limitHandshakes.
			c.raw.hsDeadline = deadline
		}
		// The MaxConcurrentHandshakes slot, if the handshake still holds
		// one (it failed, or a callback panicked, before it wrote to or
		// read from the client again), goes back.
		defer c.raw.endHandshake()
	}
	err := tc.HandshakeContext(ctx)
	if err != nil {
		// If the handshake failed due to the client not speaking TLS,
		// assume they're speaking plaintext HTTP and write a 400 response
		// on the TLS conn's underlying net.Conn.
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && tlsRecordHeaderLooksLikeHTTP(re.RecordHeader) {
			io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			re.Conn.Close()
			err = errPlaintextHTTP
		}
		c.srv.logHandshakeError(c.remoteAddr, err)
		return false
	}
	phaseDeadline(c.rwc, 0)
	c.srv.stats.handshakes.Add(1)
	st := tc.ConnectionState()
	c.tlsState = &st
	return true
}

// serveNextProto hands the connection to the server for the ALPN protocol
// proto: a TLSNextProto function, or the built-in HTTP/2 server. A protocol
// with no server is closed without a word, as in net/http.
func (c *conn) serveNextProto(ctx context.Context, tc *tls.Conn, proto string) {
	if fn := c.srv.TLSNextProto[proto]; fn != nil {
		h := alpnHandler{ctx: ctx, c: c}
		// Mark as active without running the hook: the protocol's server
		// reports its own states (golang.org/issue/39776).
		c.setState(http.StateActive, skipHooks)
		fn(c.srv.httpServer(), tc, h)
		return
	}
	if proto == "h2" && c.srv.h2.Load() != nil && c.srv.protocols().HTTP2() {
		c.serveHTTP2(ctx, tc)
	}
}

// alpnHandler is the handler given to the servers of ALPN protocols. It
// fills in the Request fields such servers may leave empty, then routes
// the request as the HTTP/1 engine does.
type alpnHandler struct {
	ctx context.Context
	c   *conn
}

// BaseContext returns the connection context. golang.org/x/net/http2 looks
// for this method to find the context of connections handed to it through
// TLSNextProto.
func (h alpnHandler) BaseContext() context.Context { return h.ctx }

func (h alpnHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		r.TLS = h.c.tlsState
	}
	if r.Body == nil {
		r.Body = http.NoBody
	}
	if r.RemoteAddr == "" {
		r.RemoteAddr = h.c.remoteAddr
	}
	if r.ProtoMajor == 2 {
		h.c.srv.stats.requestsHTTP2.Add(1)
		h.c.serveHTTP2Request(w, r)
		return
	}
	h.c.srv.stats.requestsOther.Add(1)
	h.c.srv.serveHTTP(w, r)
}

// defaultTLSHandshakeTimeout bounds a TLS handshake when no timeout is set.
// net/http has no bound then, so a client that connects and sends nothing
// holds its connection and goroutine for ever. Ten seconds is far above a
// real handshake's round trips and stays below common load-balancer idle
// timeouts.
const defaultTLSHandshakeTimeout = 10 * time.Second

// tlsHandshakeTimeout returns the limit on the TLS handshake, or zero for
// none: TLSHandshakeTimeout if set; else, as in net/http, the smallest
// positive of ReadHeaderTimeout, ReadTimeout and WriteTimeout; else
// defaultTLSHandshakeTimeout.
func (s *Server) tlsHandshakeTimeout() time.Duration {
	switch {
	case s.TLSHandshakeTimeout > 0:
		return s.TLSHandshakeTimeout
	case s.TLSHandshakeTimeout < 0:
		return 0
	}
	var d time.Duration
	for _, v := range [...]time.Duration{s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout} {
		if v > 0 && (d == 0 || v < d) {
			d = v
		}
	}
	if d == 0 {
		return defaultTLSHandshakeTimeout
	}
	return d
}
