package httpsrv

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Admission control: the connection limit (MaxConns) and the handshake
// limit (MaxConcurrentHandshakes). net/http has neither; it accepts every
// connection as soon as the kernel has it and starts every TLS handshake at
// once.

// admission is the Server's state for MaxConns and MaxConcurrentHandshakes,
// set up from the fields when the first Serve starts and shared by every
// Serve call on the Server.
type admission struct {
	connOnce sync.Once
	conns    *connLimiter // nil: no limit

	hsOnce sync.Once
	hs     *handshakeLimiter // nil: no limit
}

// connLimiter bounds the connections a Server holds open.
type connLimiter struct {
	max  int
	sem  chan struct{} // one element per slot taken
	last atomic.Int64  // Unix nanoseconds of the last at-limit log line
}

// minFileReserve is the fewest descriptors the default MaxConns leaves to
// the program besides its client connections.
const minFileReserve = 64

// defaultMaxConns returns the connection limit when MaxConns is zero, given
// the process's RLIMIT_NOFILE soft limit (as read by rlimitNoFile), or zero
// for no limit when there is no such limit. A quarter of the descriptors,
// and at least minFileReserve, are left to the program (never more than
// half of them); see the MaxConns documentation.
func defaultMaxConns(soft uint64, err error) int {
	if err != nil || soft == 0 || soft >= math.MaxInt32 {
		// No RLIMIT_NOFILE on this platform, or an unlimited one.
		return 0
	}
	reserve := max(soft/4, minFileReserve)
	reserve = min(reserve, soft/2)
	return int(soft - reserve)
}

// rlimitNoFile returns the RLIMIT_NOFILE soft limit; tests replace it.
var rlimitNoFile = getRlimitNoFile

// maxConns resolves MaxConns: the limit, or zero for none.
func (s *Server) maxConns() int {
	switch {
	case s.MaxConns > 0:
		return s.MaxConns
	case s.MaxConns < 0:
		return 0
	}
	return defaultMaxConns(rlimitNoFile())
}

// connLimit returns the Server's connection limiter, or nil when MaxConns
// turns the limit off. It is set up once, when serving starts.
func (s *Server) connLimit() *connLimiter {
	a := &s.adm
	a.connOnce.Do(func() {
		if n := s.maxConns(); n > 0 {
			a.conns = &connLimiter{max: n, sem: make(chan struct{}, n)}
		}
	})
	return a.conns
}

// testHookConnLimitWait, if non-nil, is called when an accept loop starts
// waiting for a connection to end because the server is at MaxConns.
var testHookConnLimitWait func(*Server)

// acquire takes a connection slot for the next Accept, waiting while the
// server is at its limit. It reports false, without a slot, if done is
// closed first (Shutdown or Close).
func (l *connLimiter) acquire(s *Server, done <-chan struct{}) bool {
	select {
	case l.sem <- struct{}{}:
		return true
	default:
	}
	// At the limit: the listener is left alone, so new connections wait
	// in the kernel's backlog until a connection ends.
	if fn := testHookConnLimitWait; fn != nil {
		fn(s)
	}
	l.logAtLimit(s)
	select {
	case l.sem <- struct{}{}:
		return true
	case <-done:
		return false
	}
}

// release gives a slot back.
func (l *connLimiter) release() { <-l.sem }

// atLimitLogInterval is the least time between two log lines saying that
// the server is at MaxConns.
const atLimitLogInterval = time.Minute

// logAtLimit logs, at most once per atLimitLogInterval, that the server is
// at its connection limit.
func (l *connLimiter) logAtLimit(s *Server) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if last != 0 && now-last < int64(atLimitLogInterval) {
		return
	}
	if !l.last.CompareAndSwap(last, now) {
		return
	}
	s.logAtf(slog.LevelWarn, "httpsrv: at MaxConns (%d connections); new connections wait in the listen backlog until one ends", l.max)
}

// releaseConnSlot gives the connection's MaxConns slot back, once, when it
// is closed or hijacked.
func (c *conn) releaseConnSlot() {
	if c.connSlot != nil && c.connSlotFreed.CompareAndSwap(false, true) {
		c.connSlot.release()
	}
}

// handshakeLimiter bounds the TLS handshakes doing their cryptography at
// once.
type handshakeLimiter struct {
	sem   chan struct{}
	lease time.Duration // handshakeSlotLease when the limiter was made
}

// maxConcurrentHandshakes resolves MaxConcurrentHandshakes: the limit, or
// zero for none.
func (s *Server) maxConcurrentHandshakes() int {
	switch {
	case s.MaxConcurrentHandshakes > 0:
		return s.MaxConcurrentHandshakes
	case s.MaxConcurrentHandshakes < 0:
		return 0
	}
	return runtime.GOMAXPROCS(0)
}

// handshakeLimit returns the Server's handshake limiter, or nil when
// MaxConcurrentHandshakes turns the limit off.
func (s *Server) handshakeLimit() *handshakeLimiter {
	a := &s.adm
	a.hsOnce.Do(func() {
		if n := s.maxConcurrentHandshakes(); n > 0 {
			a.hs = &handshakeLimiter{sem: make(chan struct{}, n), lease: handshakeSlotLease}
		}
	})
	return a.hs
}

// handshakeSlotLease is the longest a handshake keeps its slot. crypto/tls
// gives a signal (VerifyConnection) once the server has sent its flight
// only in a TLS 1.3 full or resumed handshake without client certificates;
// in the others (TLS 1.2, or a client certificate requested) the server
// next waits a round trip for the client, still inside the handshake. The
// slot must not be held across that wait: with a few slots, clients far
// away would bound the handshake rate to a few per round trip, and clients
// that send a ClientHello and nothing more would hold the slots. 20 ms is
// ten times a full RSA-2048 handshake's server work in crypto/tls on one
// core of a current machine, and still lets each slot start at least 50
// handshakes a second when every client is slow to answer. A variable for
// tests only.
var handshakeSlotLease = 20 * time.Millisecond

// hsSlot is a connection's hold on a handshake slot.
type hsSlot struct {
	lim      *handshakeLimiter
	deadline time.Time   // the handshake's deadline; zero for none
	held     atomic.Bool // the slot is taken and not yet given back
	lease    *time.Timer // gives the slot back after handshakeSlotLease
}

// errHandshakeSlotTimeout fails a handshake whose deadline passed while it
// waited for a slot. It is a timeout (os.ErrDeadlineExceeded), so that
// HandshakeErrors counts it with the handshakes cut by the timeout.
var errHandshakeSlotTimeout = fmt.Errorf("httpsrv: no TLS handshake slot free (MaxConcurrentHandshakes) within the handshake timeout: %w", os.ErrDeadlineExceeded)

// errHandshakeSlotClosed fails a handshake that waited for a slot when the
// server was shut down.
var errHandshakeSlotClosed = fmt.Errorf("httpsrv: server closed while the TLS handshake waited for a slot: %w", net.ErrClosed)

// acquire waits for a slot until the handshake's deadline or done.
func (h *hsSlot) acquire(done <-chan struct{}) error {
	select {
	case h.lim.sem <- struct{}{}:
	default:
		var expired <-chan time.Time
		if !h.deadline.IsZero() {
			t := time.NewTimer(time.Until(h.deadline))
			defer t.Stop()
			expired = t.C
		}
		select {
		case h.lim.sem <- struct{}{}:
		case <-expired:
			return errHandshakeSlotTimeout
		case <-done:
			return errHandshakeSlotClosed
		}
	}
	h.held.Store(true)
	h.lease = time.AfterFunc(h.lim.lease, h.release)
	// Let the requests waiting on established connections go first: a
	// slot given back wakes its next waiter ahead of every other runnable
	// goroutine, and a chain of handshakes handing slots to each other
	// would keep those requests waiting behind them. See yieldToNetwork.
	yieldToNetwork()
	return nil
}

// release gives the slot back if it is held. It may run on the lease's
// goroutine.
func (h *hsSlot) release() {
	if h.held.CompareAndSwap(true, false) {
		<-h.lim.sem
	}
}

// finish gives the slot back at the end of the handshake.
func (h *hsSlot) finish() {
	if h.lease != nil {
		h.lease.Stop()
	}
	h.release()
}

// hsConnKey is the context key under which conn.handshake passes its conn
// to the handshake's GetConfigForClient.
type hsConnKey struct{}

// limitHandshakes returns the GetConfigForClient for base, the TLS
// configuration ServeTLS serves with, whose own GetConfigForClient is next
// (possibly nil): it takes a handshake slot once the ClientHello has
// arrived, then returns next's configuration (or base) with a
// VerifyConnection that gives the slot back first. Without a handshake
// limit it returns next.
//
// The slot is taken in GetConfigForClient, after the ClientHello has been
// read, rather than when the connection is accepted, so that clients that
// connect and send nothing, or send slowly, hold no slot: only handshakes
// that are ready to compute wait for one.
func (s *Server) limitHandshakes(base *tls.Config, next func(*tls.ClientHelloInfo) (*tls.Config, error)) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	lim := s.handshakeLimit()
	if lim == nil {
		return next
	}
	done := s.doneChan()
	return func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c, _ := hello.Context().Value(hsConnKey{}).(*conn)
		if c == nil || c.srv != s {
			// Not a handshake conn.handshake runs.
			if next == nil {
				return nil, nil
			}
			return next(hello)
		}
		c.hs.lim = lim
		if err := c.hs.acquire(done); err != nil {
			return nil, err
		}
		cfg := base
		if next != nil {
			nc, err := next(hello)
			if err != nil {
				return nil, err
			}
			if nc != nil {
				cfg = nc
			}
		}
		// A copy for this handshake: VerifyConnection is the first
		// callback after the server's flight is written (TLS 1.3 without
		// client certificates), and it has no other way to find c.
		cfg = cfg.Clone()
		verify := cfg.VerifyConnection
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			c.hs.release()
			if verify != nil {
				return verify(cs)
			}
			return nil
		}
		return cfg, nil
	}
}

// handshakeContext returns the context for c's TLS handshake: ctx, with c
// for limitHandshakes when the handshake limit is on.
func (c *conn) handshakeContext(ctx context.Context, timeout time.Duration) context.Context {
	if c.srv.handshakeLimit() == nil {
		return ctx
	}
	if timeout > 0 {
		c.hs.deadline = time.Now().Add(timeout)
	}
	return context.WithValue(ctx, hsConnKey{}, c)
}
