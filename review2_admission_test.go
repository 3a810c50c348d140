package httpsrv

import (
	"context"
	"crypto"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Second review of the admission branch (issue 8 items 1 and 2: MaxConns
// and MaxConcurrentHandshakes, after the redesign): failing tests for the
// defects found. Each test fails on the branch as reviewed and passes once
// the defect it describes is fixed.

// handshakeWith starts a TLS handshake to addr with cfg, on the TCP
// connection wrap returns (nil: the connection itself), in the
// background; the result arrives on the returned channel.
func handshakeWith(t *testing.T, addr string, cfg *tls.Config, wrap func(net.Conn) net.Conn) (*tls.Conn, <-chan error) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, testTimeout())
	require.NoError(t, err)
	var nc net.Conn = raw
	if wrap != nil {
		nc = wrap(raw)
	}
	tc := tls.Client(nc, cfg)
	t.Cleanup(func() { tc.Close(); raw.Close() })
	done := make(chan error, 1)
	go func() {
		tc.SetDeadline(time.Now().Add(2 * testTimeout()))
		done <- tc.Handshake()
	}()
	return tc, done
}

// heldWritesConn lets its first write (the ClientHello) through and holds
// every later one until release is called; held is closed when the first
// of them arrives (the client got the server's answer to its ClientHello).
type heldWritesConn struct {
	net.Conn
	writes  atomic.Int32
	held    chan struct{}
	heldOne sync.Once
	gate    chan struct{}
	relOne  sync.Once
}

func newHeldWritesConn(c net.Conn) *heldWritesConn {
	return &heldWritesConn{Conn: c, held: make(chan struct{}), gate: make(chan struct{})}
}

func (c *heldWritesConn) Write(p []byte) (int, error) {
	if c.writes.Add(1) > 1 {
		c.heldOne.Do(func() { close(c.held) })
		<-c.gate
	}
	return c.Conn.Write(p)
}

func (c *heldWritesConn) release() { c.relOne.Do(func() { close(c.gate) }) }

// TestReviewAdm2CallbackPanicLeaksSlot: a TLS callback of the caller's
// that crypto/tls calls while the handshake holds its slot panics. In
// TLS 1.3 without client certificates that is VerifyConnection (called
// before the server reads the client's second flight) and WrapSession
// (called when the session ticket is made, in the server's flight); in
// TLS 1.2 resumption, VerifyConnection and UnwrapSession. conn.serve
// recovers the panic (as net/http does: "http: panic serving"), but the
// slot is given back by conn.handshake only after HandshakeContext
// returns, not in a defer, and countConn.Read is never reached: the slot
// is lost for the life of the server. With the default limit
// (GOMAXPROCS) a few such panics — one bad certificate policy, one nil
// map in a callback hit by one client — and every later ServeTLS
// handshake waits its whole handshake timeout for a slot and fails: the
// server is down for good. net/http logs the panic and goes on.
// Expected: after the panicking handshake, the slot is free and the next
// handshake completes.
func TestReviewAdm2CallbackPanicLeaksSlot(t *testing.T) {
	cert, _ := testCertificate(t)
	tickets := &tls.Config{} // encrypts the tickets of WrapSession
	for _, tc := range []struct {
		name  string
		setup func(cfg *tls.Config, panicOnce func())
	}{
		{"VerifyConnection", func(cfg *tls.Config, panicOnce func()) {
			cfg.VerifyConnection = func(tls.ConnectionState) error { panicOnce(); return nil }
		}},
		{"WrapSession", func(cfg *tls.Config, panicOnce func()) {
			cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
				panicOnce()
				return tickets.EncryptTicket(cs, ss)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var once sync.Once
			panicked := make(chan struct{})
			cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
			tc.setup(cfg, func() {
				first := false
				once.Do(func() { first = true })
				if first {
					close(panicked)
					panic("callback bug")
				}
			})
			srv := &Server{
				MaxConcurrentHandshakes: 1,
				TLSHandshakeTimeout:     time.Second,
				TLSConfig:               cfg,
				Handler:                 okHandler,
				ErrorLog:                discardLogger(),
			}
			addr := serveOn(t, localListener(t), func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }, srv.Close)

			// Browsers offer session resumption, so crypto/tls calls
			// WrapSession for them.
			ccfg := clientTLSConfig(t, "http/1.1")
			ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			handshakeWith(t, addr, ccfg, nil)
			waitSignal(t, panicked, "the callback to panic")
			// (The client's side of a TLS 1.3 handshake may complete
			// before the server's callback runs.)

			_, next := handshakeWith(t, addr, clientTLSConfig(t, "http/1.1"), nil)
			require.NoError(t, waitSignal(t, next, "the next handshake"),
				"a handshake after a callback panicked under the only slot (slots held now: %d)", len(srv.handshakeLimit().sem))
		})
	}
}

// TestReviewAdm2CallbackWaitHoldsSlot: GetCertificate gives its slot back
// while it runs, because a caller's callback may wait (a certificate
// store, an issuance), but the other callbacks crypto/tls calls inside
// the server's part of the handshake keep the slot while they wait:
// VerifyConnection in a TLS 1.3 handshake without client certificates
// (and in TLS 1.2 resumption), WrapSession (sessions kept in a shared
// store, e.g. Redis, so that every replica can resume them) and
// UnwrapSession. Those are exactly the callbacks that do I/O in practice
// (policy or revocation lookups, session stores). With the default limit
// (GOMAXPROCS: 1 or 2 in a small container) one store lookup that takes
// its time stops every other handshake of the server for as long, and a
// store that hangs for the handshake timeout makes every handshake fail;
// net/http has no such coupling. Expected: a handshake completes while
// another's VerifyConnection or WrapSession waits, as it does while a
// GetCertificate waits (TestHandshakeSlotFreeDuringGetCertificate).
func TestReviewAdm2CallbackWaitHoldsSlot(t *testing.T) {
	cert, _ := testCertificate(t)
	tickets := &tls.Config{}
	for _, tc := range []struct {
		name  string
		setup func(cfg *tls.Config, waitOnce func())
	}{
		{"VerifyConnection", func(cfg *tls.Config, waitOnce func()) {
			cfg.VerifyConnection = func(tls.ConnectionState) error { waitOnce(); return nil }
		}},
		{"WrapSession", func(cfg *tls.Config, waitOnce func()) {
			cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
				waitOnce()
				return tickets.EncryptTicket(cs, ss)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var once sync.Once
			entered, gate := make(chan struct{}), make(chan struct{})
			t.Cleanup(func() { close(gate) })
			cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
			tc.setup(cfg, func() {
				first := false
				once.Do(func() { first = true })
				if first {
					close(entered)
					<-gate
				}
			})
			srv := &Server{
				MaxConcurrentHandshakes: 1,
				TLSHandshakeTimeout:     time.Second,
				TLSConfig:               cfg,
				Handler:                 okHandler,
				ErrorLog:                discardLogger(),
			}
			addr := serveOn(t, localListener(t), func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }, srv.Close)

			ccfg := clientTLSConfig(t, "http/1.1")
			ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			handshakeWith(t, addr, ccfg, nil)
			waitSignal(t, entered, "the first handshake's callback to wait")
			_, next := handshakeWith(t, addr, clientTLSConfig(t, "http/1.1"), nil)
			require.NoError(t, waitSignal(t, next, "a handshake while another's callback waits"),
				"a handshake while another's %s waits (it holds the only slot)", tc.name)
		})
	}
}

// TestReviewAdm2HelloRetryBypassesLimit: a TLS 1.3 client whose key share
// is for no group the server accepts gets a HelloRetryRequest; the server
// reads the second ClientHello, which gives the slot back, and then does
// all of its work (key exchange, certificate signature) without a slot.
// The documentation admits it, but it defeats the limit: a flood that
// sends an X25519 key share to a server restricted to P-256 (or any key
// share for an unsupported group: a few bytes changed in a canned
// ClientHello) does all its cryptography outside the limit, and starves
// the requests on established connections exactly as without it. Here
// MaxConcurrentHandshakes is 1; the HRR client stops before its second
// ClientHello, a second client's handshake takes the slot and signs
// (slowly), then the HRR client's second ClientHello is let through: its
// handshake signs beside the first and completes while the first still
// holds the only slot. Expected: no two signatures at once; the
// handshake after a HelloRetryRequest waits for a slot to compute.
func TestReviewAdm2HelloRetryBypassesLimit(t *testing.T) {
	cert, g := gatedCertificate(t)
	srv := &Server{
		MaxConcurrentHandshakes: 1,
		TLSConfig:               &tls.Config{Certificates: []tls.Certificate{cert}, CurvePreferences: []tls.CurveID{tls.CurveP256}},
		Handler:                 okHandler,
		ErrorLog:                discardLogger(),
	}
	addr := serveOn(t, localListener(t), func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }, srv.Close)

	// The HRR client: an X25519 key share, P-256 among its groups.
	hrrCfg := clientTLSConfig(t, "http/1.1")
	hrrCfg.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	var hw *heldWritesConn
	_, hrrDone := handshakeWith(t, addr, hrrCfg, func(c net.Conn) net.Conn { hw = newHeldWritesConn(c); return hw })
	t.Cleanup(hw.release)
	waitSignal(t, hw.held, "the HRR client to get the HelloRetryRequest")

	// A plain client takes the only slot and signs, slowly.
	plainCfg := clientTLSConfig(t, "http/1.1")
	plainCfg.CurvePreferences = []tls.CurveID{tls.CurveP256}
	_, plainDone := handshakeWith(t, addr, plainCfg, nil)
	waitSignal(t, g.entered, "the plain handshake to sign under the only slot")

	hw.release()
	var hrrErr error
	hrrEnded := false
	select {
	case hrrErr = <-hrrDone:
		hrrEnded = true
		t.Errorf("the handshake after a HelloRetryRequest completed (err %v) while another held the only slot and signed", hrrErr)
	case <-time.After(notWithin):
	}
	g.open()
	require.NoError(t, waitSignal(t, plainDone, "the plain handshake"))
	if !hrrEnded {
		hrrErr = waitSignal(t, hrrDone, "the HRR handshake")
	}
	require.NoError(t, hrrErr)
	assert.Equal(t, int32(1), g.most.Load(), "signatures at once with MaxConcurrentHandshakes 1")
}

// TestReviewAdm2ShutdownAbortsQueuedHandshakes: a client whose connection
// was accepted before Shutdown, and whose handshake waits for a slot, has
// its handshake failed (an internal_error alert) the moment Shutdown
// starts, because take gives up when done is closed. Shutdown is graceful:
// the drain serves a new connection's first request within five seconds
// of accept (newConnGrace), and net/http completes a handshake in progress
// at Shutdown and answers the request that follows; a handshake waiting
// for a slot is one in progress, delayed by the server's own admission
// control. Under a flood — when handshakes queue — a rolling restart
// therefore drops every queued client, in the one feature (issue 8 item 4)
// whose point is that Shutdown loses nothing. Close may cut the wait; a
// graceful Shutdown should let the handshake wait, within its timeout and
// Shutdown's context, and then serve it. Expected: the queued handshake
// completes once the slot is given back, and its request is answered.
func TestReviewAdm2ShutdownAbortsQueuedHandshakes(t *testing.T) {
	cert, g := gatedCertificate(t)
	queued := make(chan struct{}, 4)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		// Called just before limitHandshakes takes the slot.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			queued <- struct{}{}
			return nil, nil
		},
	}
	srv := &Server{MaxConcurrentHandshakes: 1, TLSConfig: cfg, Handler: okHandler, ErrorLog: discardLogger()}
	shutdownStarted := make(chan struct{})
	srv.RegisterOnShutdown(func() { close(shutdownStarted) })
	addr := serveOn(t, localListener(t), func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }, srv.Close)

	// The first handshake holds the only slot while it signs.
	firstConn, first := pendingTLS(t, addr)
	waitSignal(t, g.entered, "the first handshake to sign")
	waitSignal(t, queued, "the first handshake's GetConfigForClient")
	// The second one, accepted, waits for the slot.
	second, secondDone := pendingTLS(t, addr)
	waitSignal(t, queued, "the second handshake to reach the slot")

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout())
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	waitSignal(t, shutdownStarted, "Shutdown to start")
	g.open()
	require.NoError(t, waitSignal(t, first, "the first handshake"))
	firstConn.Close() // nothing to drain on it
	require.NoError(t, waitSignal(t, secondDone, "the handshake that waited for a slot when Shutdown started"),
		"a connection accepted before Shutdown lost its handshake to the slot wait")
	assert.Equal(t, http.StatusOK, getOn(t, second, "/"))
	assert.NoError(t, waitSignal(t, shut, "Shutdown"))
}

// TestReviewAdm2IdleKeepAlivesHoldMaxConns: at MaxConns, connections that
// sit idle between requests (keep-alive; browsers and load balancers keep
// pools of them) keep their slots, and new clients wait in the backlog
// until one of them reaches its idle timeout (two minutes by default), or
// the backlog overflows and their SYNs are dropped. Closing an idle
// keep-alive connection costs its client a reconnect at most; leaving a
// new client unanswered for minutes is an outage. Servers with such a
// limit reclaim idle connections first when it is reached (nginx closes
// idle keep-alive connections when it runs out of worker connections),
// and httpsrv already has the safe way to close an idle HTTP/1 connection
// (the drain). Expected: with MaxConns 1 and the only connection idle, a
// new client's handshake completes without waiting for IdleTimeout.
func TestReviewAdm2IdleKeepAlivesHoldMaxConns(t *testing.T) {
	srv := &Server{MaxConns: 1, IdleTimeout: 10 * testTimeout(), Handler: okHandler, ErrorLog: discardLogger()}
	atLimit := hookConnLimitWait(t, srv)
	addr := startTLS(t, srv)

	idle := dialTLS(t, addr, "http/1.1")
	require.Equal(t, http.StatusOK, getOn(t, idle, "/"))
	waitSignal(t, atLimit, "the accept loop to wait at MaxConns")
	// idle now sits in the server's pool of idle keep-alive connections.

	c, done := pendingTLS(t, addr)
	require.NoError(t, waitSignal(t, done, "a new client's handshake while the only connection is idle"),
		"a new client waits for an idle keep-alive connection's IdleTimeout")
	assert.Equal(t, http.StatusOK, getOn(t, c, "/"))
}

// pipeFDs returns the number of descriptors of the kinds yields use, pipes
// and eventfds (on Linux), the process has open.
func pipeFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && (strings.HasPrefix(l, "pipe:") || l == "anon_inode:[eventfd]") {
			n++
		}
	}
	return n
}

// TestReviewAdm2YieldPipesOutliveServer: every handshake that waited for a
// slot yields on a pipe, and the pipes are kept on a package-level free
// list (up to 16, 32 descriptors) that nothing ever empties: after Close
// the process keeps descriptors the server opened, for good, and they
// count against the RLIMIT_NOFILE budget MaxConns's default is derived
// from without being part of its reserve (beyond 16 concurrent yields
// each further one opens and closes a pipe: two descriptors, pipe2,
// epoll_ctl add/del and two closes per handshake). net/http's Close leaves
// no descriptor behind; a process that starts and stops servers (tests,
// reloads) and checks for descriptor leaks sees these. Expected: once the
// server is closed, no pipe it opened stays open.
func TestReviewAdm2YieldPipesOutliveServer(t *testing.T) {
	// Pipes left by earlier tests' yields; the measure starts clean.
	before := pipeFDs(t)

	cert, _ := testCertificate(t)
	queued := make(chan struct{}, 4)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		// Called just before limitHandshakes takes the slot.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			queued <- struct{}{}
			return nil, nil
		},
	}
	srv := &Server{MaxConcurrentHandshakes: 1, TLSConfig: cfg, Handler: okHandler, ErrorLog: discardLogger()}
	addr := serveOn(t, localListener(t), func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }, func() error { return nil })
	lim := srv.handshakeLimit()
	lim.sem <- struct{}{} // the only slot, held: the handshakes below wait, then yield
	var waiting []<-chan error
	for range 3 {
		_, d := pendingTLS(t, addr)
		waiting = append(waiting, d)
		waitSignal(t, queued, "a handshake to reach the slot")
	}
	lim.give()
	for _, d := range waiting {
		require.NoError(t, waitSignal(t, d, "a handshake that waited for the slot"))
	}
	require.NoError(t, srv.Close())
	assert.LessOrEqual(t, pipeFDs(t), before, "yield descriptors (pipes, eventfds) open after the server is closed")
}

// countingSigner counts the signatures made with its key.
type countingSigner struct {
	crypto.Signer
	n atomic.Int32
}

func (s *countingSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.n.Add(1)
	return s.Signer.Sign(rand, digest, opts)
}

// TestReviewAdm2QueuedWorkForGoneClients: a handshake that waits for a
// slot has read its ClientHello; when it gets the slot it computes its
// whole flight (key exchange, signature) without looking at whether the
// client is still there. Under the overload the limit exists for, the
// queue of waiters grows until a wait approaches the handshake timeout
// (10 s by default), while real clients give up far sooner (browsers and
// load balancers retry after a few seconds): the slots, handed out in
// arrival order, then go to the clients that have waited longest, the
// ones most likely gone, and the server spends its handshake capacity
// on connections already closed — throughput of useful handshakes falls
// towards zero (congestion collapse). A closed connection is cheap to
// see before computing (its FIN or RST is in the socket: a non-blocking
// peek, or the read that yieldToNetwork's poll already makes possible).
// Expected: a handshake whose client closed the connection while it
// waited for a slot is dropped without computing (no signature).
func TestReviewAdm2QueuedWorkForGoneClients(t *testing.T) {
	cert, g := gatedCertificate(t)
	cs := &countingSigner{Signer: cert.PrivateKey.(crypto.Signer)}
	cert.PrivateKey = cs
	queued := make(chan struct{}, 4)
	closed := make(chan struct{}, 4)
	srv := &Server{
		MaxConcurrentHandshakes: 1,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			// Called just before limitHandshakes takes the slot.
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				queued <- struct{}{}
				return nil, nil
			},
		},
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed {
				closed <- struct{}{}
			}
		},
		Handler:  okHandler,
		ErrorLog: discardLogger(),
	}
	addr := serveOn(t, localListener(t), func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }, srv.Close)

	// The first handshake holds the only slot while it signs.
	_, first := pendingTLS(t, addr)
	waitSignal(t, g.entered, "the first handshake to sign")
	waitSignal(t, queued, "the first handshake's GetConfigForClient")

	// The second client sends its ClientHello, waits in the queue, and
	// gives up: it closes its connection.
	gone, goneDone := pendingTLS(t, addr)
	waitSignal(t, queued, "the second handshake's GetConfigForClient")
	// GetConfigForClient runs before the slot is taken: wait until the
	// handshake is waiting for it (on a loaded machine it may not be yet).
	require.Eventually(t, func() bool { return srv.Stats().HandshakeSlotWaits == 1 }, testTimeout(), time.Millisecond,
		"the second handshake to wait for the slot")
	gone.NetConn().Close()
	waitSignal(t, goneDone, "the second client to give up")

	g.open()
	require.NoError(t, waitSignal(t, first, "the first handshake"))
	waitSignal(t, closed, "the server to end the second client's connection")
	assert.Equal(t, int32(1), cs.n.Load(), "signatures made: the second was for a client that had closed its connection")
}
