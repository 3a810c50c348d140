package httpsrv

// Graceful drain of idle HTTP/1 connections.
//
// HTTP/1.1 has no way to tell a client that an idle connection is about to
// close, so closing one races a client that is sending a request on it at
// that moment: the request is lost, and for a POST the client cannot know
// whether to send it again. net/http's Server.Shutdown (and
// SetKeepAlivesEnabled(false)) closes idle connections from another
// goroutine (closeIdleConns), and so loses such requests; a connection that
// has received part of its next request is idle too until the request's
// head has been read, and is closed with those bytes unread, which resets
// it.
//
// httpsrv lets each idle HTTP/1 connection's own goroutine decide instead,
// so nothing else closes it under a request. Once keep-alives are over, the
// connection stays open until it has been idle for idleDrainPeriod (or
// longer already): a request that arrives meanwhile (a byte of it, or part
// of its TLS record; a stray CRLF after a POST body does not count) is
// answered, with Connection: close, and the connection then closes as any
// connection that the server closes after a response. A connection that
// stayed idle through the period has received nothing that could be left
// unread: it is closed at once, with close_notify (a FIN on plaintext),
// without a lingering read. Shutdown waits for those closes as for the
// ones it starts itself; when its context ends, it ends the drains at once
// (cutDrain), waits briefly for those closes, and cuts short what is left.
// While Shutdown runs, a new connection waiting for its first request is
// drained the same way, with five seconds from accept instead of the drain
// period (net/http's closeIdleConns counts a connection in StateNew as
// idle after five seconds), so that one whose first request has started
// to arrive is answered too. SetKeepAlivesEnabled(false) drains the idle
// connections but not new ones: it is a lasting setting, and must not cut
// the first-request window of connections accepted after it.
//
// The race cannot vanish: a client may pick up a connection that has been
// idle for a long time at the very moment the server closes it, sooner or
// later. The drain removes it for connections in use, whose next request
// is at most a round trip and the client's turnaround away, and leaves it
// as it is for connections parked in a client's pool, where closing later
// would not make it smaller.

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// idleDrainPeriod is how long an idle HTTP/1 connection must have been idle
// before Shutdown or SetKeepAlivesEnabled(false) closes it. A client that
// uses the connection sends its next request about one round trip, plus
// its own turnaround, after the last response went out; 500 ms covers
// intercontinental round trips (up to about 300 ms) with room to spare, the
// scale net/http also gives a client to finish sending before a close (its
// rstAvoidanceDelay). A connection idle for longer is taken to be parked in
// a client's pool: it is closed at once. The cost is at most this much
// more time in Shutdown after the last request, and only when a
// connection was in use within it. Shutdown's context bounds it further;
// see boundDrain.
const idleDrainPeriod = 500 * time.Millisecond

// boundDrain makes the drain of idle connections end, at the latest, half
// way between now and ctx's deadline, if it has one, so that the closes
// have the other half to finish and Shutdown can still return nil. Of
// several Shutdown calls, the earliest bound holds.
func (s *Server) boundDrain(ctx context.Context) {
	dl, ok := ctx.Deadline()
	if !ok {
		return
	}
	now := time.Now()
	limit := now.Add(dl.Sub(now) / 2).UnixNano()
	for {
		old := s.drainLimit.Load()
		if old != 0 && old <= limit || s.drainLimit.CompareAndSwap(old, limit) {
			return
		}
	}
}

// drainEnd returns when a drain that would end at end ends, given
// Shutdown's bound.
func (s *Server) drainEnd(end time.Time) time.Time {
	if l := s.drainLimit.Load(); l != 0 && l < end.UnixNano() {
		return time.Unix(0, l)
	}
	return end
}

// newConnGrace is how long a new connection may take to send its first
// request before a drain closes it: net/http's closeIdleConns counts a
// connection in StateNew as idle after five seconds, so Shutdown waits
// that long for a first request.
const newConnGrace = 5 * time.Second

// waitFirstRequest waits, under the header deadline, for the first bytes
// of the connection's first request, as waitNextRequest waits for the
// next ones: on an idle read, so that Shutdown can drain a new connection
// as it drains an idle one, instead of closing it from another goroutine
// with request bytes unread (net/http closes a connection still in
// StateNew after five seconds, whatever it has received). It reports
// whether a request may follow, and takes the connection's buffers if so.
func (h *h1conn) waitFirstRequest() bool {
	srv := h.srv
	headLimit := h.c.headDeadline
	if headLimit.IsZero() {
		if d := srv.readHeaderTimeout(); d > 0 {
			headLimit = time.Now().Add(d)
		}
	}
	draining, err := h.cr.waitIdle(true, time.Time{}, headLimit)
	if err != nil && !h.cr.byteWaiting() {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			if draining {
				h.closeDrained()
			} else {
				srv.stats.timedOut(timeoutHeader)
			}
		}
		return false
	}
	if draining {
		// Request bytes have arrived: the head is read under its own
		// deadline, not the drain's.
		h.dl.setRead(headLimit)
	}
	h.acquireBuffers()
	return true
}

// drainIdle brings the deadline of the connection's idle read forward to
// the end of its drain, if it is waiting for the next request and
// keep-alives are over for it (or, for a new connection, Shutdown has
// started). It may be called with s.mu held: the lock order is s.mu, then
// cr.mu.
func (h *h1conn) drainIdle() {
	cr := &h.cr
	cr.mu.Lock()
	defer cr.mu.Unlock()
	// The waiter looks at doKeepAlives and the drain's bound under the
	// lock when its wait starts: a change made before this call is seen
	// either there or here, and no drain is lost.
	if cr.idle && cr.drainLocked() {
		h.dl.setRead(cr.idleLimit)
	}
}

// waitIdle makes the idle read, the wait for the first byte of a request,
// and returns the error that ended it, if any: on the connection's
// goroutine, or, when a background read is still under way, by waiting
// for that one, which serves instead. idleLimit is the read deadline to
// put in force (zero for none); the drain may bring it forward (see
// drainLocked), and draining then reports that it did. The drain of an
// idle connection ends idleDrainPeriod after idleStart; that of a new
// connection (first) newConnGrace after accept.
func (cr *connReader) waitIdle(first bool, idleStart, idleLimit time.Time) (draining bool, err error) {
	cr.mu.Lock()
	cr.idle, cr.idleFirst, cr.draining = true, first, false
	cr.idleStart, cr.idleLimit = idleStart, idleLimit
	cr.drainLocked()
	switch {
	case cr.bgRead:
		cr.h.dl.setRead(cr.idleLimit)
		for cr.bgRead {
			cr.cond.Wait()
		}
	case !cr.hasByte && !cr.released && !cr.stopped:
		cr.h.dl.setRead(cr.idleLimit)
		cr.inRead = true
		cr.mu.Unlock()
		if testHookIdleRead != nil {
			testHookIdleRead(cr.h)
		}
		before := cr.rawCount()
		n, rerr := cr.rwc.Read(cr.byteBuf[:])
		cr.mu.Lock()
		cr.endReadLocked(n, rerr, before)
	}
	cr.idle = false
	draining = cr.draining
	err, cr.readErr = cr.readErr, nil
	cr.mu.Unlock()
	return draining, err
}

// testHookIdleRead, when set, is called on the connection's goroutine as
// its idle read starts.
var testHookIdleRead func(*h1conn)

// drainLocked moves the idle read's deadline, idleLimit, to the end of
// the drain, or Shutdown's bound (drainEnd) if that is sooner, once
// keep-alives are over; it reports whether it moved it, for the caller to
// put it in force. A new connection (idleFirst) drains only once Shutdown
// has started, not for SetKeepAlivesEnabled(false), which is lasting and
// should not cut the first-request window of connections accepted after
// it (net/http's closeIdleConns runs once, at the call); its drain ends
// newConnGrace after accept (its StateNew time, in whole seconds, rounded
// up as net/http counts them). Each call looks again, for a later Shutdown
// whose context bounds the drain more. It requires that cr.mu is held.
func (cr *connReader) drainLocked() (moved bool) {
	h, srv := cr.h, cr.h.srv
	if cr.idleFirst && !srv.shuttingDown() || !cr.idleFirst && h.keepAlives() {
		return false
	}
	cr.draining = true
	var drainAt time.Time
	if cr.idleFirst {
		_, sec := h.c.getState()
		drainAt = time.Unix(sec+1, 0).Add(newConnGrace)
	} else {
		drainAt = cr.idleStart.Add(idleDrainPeriod)
	}
	if end := srv.drainEnd(drainAt); cr.idleLimit.IsZero() || end.Before(cr.idleLimit) {
		cr.idleLimit = end
		return true
	}
	return false
}

// byteWaiting reports whether the background read has a byte for the next
// Read; no background read is under way then.
func (cr *connReader) byteWaiting() bool {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.hasByte
}

// skipStrayCRLF discards, without blocking, the CR and LF bytes that have
// arrived, at most *budget of them (counted down): RFC 9112 §2.2 lets a
// server ignore the CRLF an old client sends after a POST body, as
// readRequest does, so they do not start a request. It reports whether it
// discarded any.
func (h *h1conn) skipStrayCRLF(budget *int) (skipped bool) {
	for *budget > 0 {
		if h.buffered() == 0 {
			if !h.cr.byteWaiting() {
				return skipped
			}
			h.bufr.Peek(1) // takes the background read's byte at once
		}
		b, _ := h.bufr.Peek(1)
		if len(b) == 0 || b[0] != '\r' && b[0] != '\n' {
			return skipped
		}
		h.bufr.Discard(1)
		*budget--
		skipped = true
	}
	return skipped
}

// inHTTP1 reports whether the HTTP/1 engine serves c.
func (c *conn) inHTTP1() bool { return c.h1.Load() != nil }

// closeDrained closes a connection that stayed idle through its drain
// period, as one of the closes Shutdown waits for and cuts short when its
// context ends (see startCloseLocked). Its background read saw no byte
// (and no part of a TLS record, see countConn), so no request byte can be
// left unread: it sends close_notify (a FIN on plaintext) and closes at
// once, without the lingering read of closeWriteAndWait, which would make
// Shutdown wait for a client that keeps the connection in its pool. If
// Close is closing the connection already, it is left to it.
func (h *h1conn) closeDrained() {
	done := h.srv.closingSelf(h.c)
	if done == nil {
		return
	}
	defer done()
	if h.bufw != nil {
		h.bufw.Flush()
	}
	h.c.closeRWC()
}

// closingSelf moves c, whose own goroutine is about to close it, from the
// tracked connections to those being closed, and returns the function to
// call when the close has ended; nil if c is no longer tracked (Close is
// closing it).
func (s *Server) closingSelf(c *conn) (done func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.activeConn[c]; !ok {
		return nil
	}
	delete(s.activeConn, c)
	if s.closing == nil {
		s.closing = make(map[*conn]chan struct{})
	}
	ch := make(chan struct{})
	s.closing[c] = ch
	return func() {
		s.mu.Lock()
		delete(s.closing, c)
		s.closeEndedLocked()
		s.mu.Unlock()
		close(ch)
	}
}

// cutDrain ends the drain of idle connections now, when Shutdown's context
// has ended: it moves the drain's bound to now, wakes the idle and new
// HTTP/1 connections so that they close themselves, and waits, for at
// most closeNotifyGrace, until none is left and the closes in progress
// have ended (wake tells it one has). What is still closing then is left
// to finishClosing. So Shutdown does not return with an idle connection
// still open, as net/http's does not.
func (s *Server) cutDrain(wake <-chan struct{}) {
	now := time.Now().UnixNano()
	for {
		old := s.drainLimit.Load()
		if old != 0 && old <= now || s.drainLimit.CompareAndSwap(old, now) {
			break
		}
	}
	grace := time.NewTimer(closeNotifyGrace)
	defer grace.Stop()
	for {
		s.mu.Lock()
		pending := len(s.closing) > 0
		for c := range s.activeConn {
			if h := c.h1.Load(); h != nil {
				if st, _ := c.getState(); st == http.StateIdle || st == http.StateNew {
					h.drainIdle()
					pending = true
				}
			}
		}
		s.mu.Unlock()
		if !pending {
			return
		}
		select {
		case <-wake:
		case <-grace.C:
			return
		}
	}
}

// countConn counts the bytes read from the network connection under a TLS
// layer. crypto/tls keeps a record that has half arrived when a read
// deadline passes, and returns the timeout: without the count, a drain
// deadline that passes while a request's record is arriving would look
// like a connection that stayed idle, and the request would be lost. A
// background read that times out after the count moved is taken as a
// request arriving (see backgroundRead). The cost is one atomic add per
// read from the network. Only ServeTLS (and ListenAndServeTLS) put it
// there: TLS connections from a listener given to Serve are built
// elsewhere, and keep the gap.
type countConn struct {
	net.Conn
	n atomic.Uint64

	// The MaxConcurrentHandshakes state of the connection's TLS handshake
	// (see handshakelimit.go), used only by the goroutine running it: hs
	// is the limiter, once a slot has been taken, and hsHeld whether the
	// handshake holds one now; hsDeadline is the handshake's deadline,
	// set when the limit is on; hrr follows the client's second
	// ClientHello after a HelloRetryRequest.
	hs         *handshakeLimiter
	hsHeld     bool
	hsDeadline time.Time
	hrr        hrrWatch

	// windows, once the HTTP/1 engine has timed a write by windows on
	// the connection (and until a hijack), writes under the TLS layer
	// for it, so that a write the window's deadline interrupted can go
	// on (connDeadlines.writeUnder).
	windows atomic.Pointer[connDeadlines]
}

func (c *countConn) Read(p []byte) (int, error) {
	if c.hsHeld {
		// The server is done computing its part of the handshake and
		// waits for the client: the slot goes to another handshake.
		c.giveHandshakeSlot()
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.n.Add(uint64(n))
		if c.hrr.active {
			if herr := c.handshakeRead(p[:n]); herr != nil {
				return n, herr
			}
		}
	}
	return n, err
}

func (c *countConn) Write(p []byte) (int, error) {
	if c.hsHeld {
		c.handshakeWrite(p)
	}
	if d := c.windows.Load(); d != nil {
		return d.writeUnder(c.Conn, p)
	}
	return c.Conn.Write(p)
}

// tlsCountListener is tls.NewListener's listener, with a countConn
// under each TLS connection.
type tlsCountListener struct {
	net.Listener
	config *tls.Config
}

func (l tlsCountListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(&countConn{Conn: c}, l.config), nil
}
