package httpsrv

import (
	"crypto/tls"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// floorPiece sets how much a client that blocks a response write must
// take, and how soon, under the response rate floor: a write may block
// at most the grace period plus floorPiece bytes at the floor rate without
// the client taking floorPiece bytes (about 22 s at the default floor),
// however much credit a fast start earned, which slowhttptest's
// slow-read attack needs to be cut within its run (16 KiB, one TLS
// record, gave 73 s and let it through). One deadline for a whole
// multi-megabyte write would either cut an honest client reading well
// above the floor or let a stalled one hold the connection for hours.
//
// Where a write that a deadline interrupted can go on (a plaintext TCP
// connection, or the TCP connection under a TLS layer that ServeTLS
// made: see windowsLocked), a write larger than floorPiece goes to the
// connection whole and is timed in windows of 1/windowParts of that
// time: at the end of each, once the write has had windowParts-1 of them,
// the client must have taken over the last windowParts-1 windows what
// their length needs at floorPiece per piece's time (see
// rateFloor.window, windowNeed): so crypto/tls sends it in full-size
// records, one write system call each, as under net/http, a client that
// stops reading is cut within one piece's time, and one that reads in
// bursts may pause for up to (windowParts-1)/windowParts of it between
// them (pieces allowed a whole piece's time; half windows, each needing
// half a piece, had cut a client pausing 12 s). Elsewhere (another TLS layer, and
// sendfile), the write goes out in pieces of floorPiece bytes, each
// with its own deadline.
const floorPiece = 4 << 10

// phaseDeadline bounds a phase of a connection before a protocol engine
// takes it over (the TLS handshake, the wait for an h2c preface): both
// deadlines are set timeout from now, or cleared when timeout is not
// positive. The engines then own the deadlines: connDeadlines for HTTP/1,
// x/net for HTTP/2.
func phaseDeadline(c net.Conn, timeout time.Duration) {
	var t time.Time
	if timeout > 0 {
		t = time.Now().Add(timeout)
	}
	c.SetDeadline(t)
}

// phaseReadDeadline puts the read deadline t (zero for none) on a
// connection before a protocol engine takes it over.
func phaseReadDeadline(c net.Conn, t time.Time) { c.SetReadDeadline(t) }

// connDeadlines is the one owner of an HTTP/1 connection's read and write
// deadlines: the phase limits (ReadHeaderTimeout, IdleTimeout,
// ReadTimeout, WriteTimeout), the rate floors (MinRequestBodyRate,
// MinResponseRate), the deadlines a handler sets through
// http.ResponseController, and sendfile all set them here, never on the
// connection directly. Each read and write of a request body or response
// computes the deadline it must run under and puts it on the connection,
// so no deadline set for one purpose lingers into another.
//
// The read side is used by the connection's goroutine between requests,
// and by whichever goroutine reads the request body or does the background
// read while a handler runs. The write side is used by the goroutine that
// writes the response (the handler, then the connection's goroutine; the
// response's lock serialises the handler's goroutines), and by any
// goroutine of the handler's that sets a deadline through
// http.ResponseController, which must be able to interrupt a blocked write:
// wmu guards it, and is never held across a read or write.
type connDeadlines struct {
	rwc   net.Conn     // immutable
	stats *serverStats // immutable; counts the deadlines that fire

	// wmu guards the write side's fields and gen.
	wmu sync.Mutex
	// gen numbers the request in progress; it changes when a request
	// starts and when it ends, so that a late deadline setter cannot
	// reach the next phase.
	gen uint64

	// readFloor enforces MinRequestBodyRate on the current request body.
	readFloor rateFloor
	// readSet is set when a read deadline may be in force on rwc, so
	// that clearing one that is not costs nothing.
	readSet atomic.Bool
	// bodyLimit is set while ReadTimeout bounds the request body's reads:
	// from startBody, if ReadTimeout is set, until the handler sets its
	// own read deadline or the request ends. read consults it when the
	// body floor is off.
	bodyLimit atomic.Bool
	// readCut is set once a body read of the current request has been
	// counted as cut by a deadline; startBody clears it. Used by the
	// goroutine that reads the body.
	readCut bool
	// writeByHandler is set when writeLimit is the handler's deadline,
	// not WriteTimeout's; writeCut, once a write of the current response
	// has been counted as cut by a deadline. Guarded by wmu. (Next to
	// readCut, so that the three bools share one word.)
	writeByHandler, writeCut bool

	// writeFloor enforces MinResponseRate on the current response; while
	// it is off, writeLimit applies. Its counters are guarded by wmu.
	writeFloor rateFloor
	// writeLimit is the write deadline when the floor is off: the
	// WriteTimeout deadline of the request, or the handler's; zero for
	// none.
	writeLimit time.Time
	// writeSet is the write deadline in force on rwc.
	writeSet time.Time

	// The windows of a long write under the response floor (see
	// floorPiece), guarded by wmu. winKnown is set once windowsLocked has
	// looked at rwc; then winUnder is the countConn under rwc's TLS layer,
	// through which writeUnder times the write, or winPlain says that
	// rwc itself can resume a write (plaintext TCP), if either. winActive
	// is set while a write is timed by windows; the window in progress
	// started at winStart, when underBytes was winFrom, and ends at winEnd
	// (the deadline in force). winMarks holds the starts of the last
	// windowParts-1 windows of the write (window i's at i modulo its
	// length), winCount how many windows the write has started.
	winKnown, winPlain, winActive bool
	winUnder                      *countConn
	winStart, winEnd              time.Time
	winFrom                       int64
	winMarks                      [windowParts - 1]winMark
	winCount                      int
	// underBytes counts the bytes writeUnder wrote: the TLS records, or
	// the plaintext, of the connection's windowed writes.
	underBytes atomic.Int64
}

// winMark is the start of a window of a write timed by windows: when, and
// underBytes then.
type winMark struct {
	at    time.Time
	bytes int64
}

// setRead puts the read deadline t (zero for none) on the connection.
func (d *connDeadlines) setRead(t time.Time) {
	if t.IsZero() && !d.readSet.Load() {
		return
	}
	d.readSet.Store(!t.IsZero())
	d.rwc.SetReadDeadline(t)
}

// readAfter puts a read deadline timeout from now on the connection, or
// none when timeout is not positive.
func (d *connDeadlines) readAfter(timeout time.Duration) {
	if timeout > 0 {
		d.setRead(time.Now().Add(timeout))
	} else {
		d.setRead(time.Time{})
	}
}

// startRequest sets the deadlines of a request whose head began to be read
// at headStart and was read by now: the whole-request read deadline
// (ReadTimeout, from headStart, as net/http's readRequest counts it) and
// the response's (WriteTimeout, from now), and arms the response floor
// under it. It returns the read deadline, for startBody, and the request's
// generation, for the handler's deadline setters.
func (d *connDeadlines) startRequest(srv *Server, headStart, now time.Time) (readLimit time.Time, gen uint64) {
	if t := srv.ReadTimeout; t > 0 {
		readLimit = headStart.Add(t)
	}
	d.setRead(readLimit)
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.gen++
	d.writeLimit = time.Time{}
	d.writeByHandler, d.writeCut = false, false
	if t := srv.WriteTimeout; t > 0 {
		d.writeLimit = now.Add(t)
	}
	d.writeFloor.start(srv.minResponseRate(), srv.minRateGracePeriod(), d.writeLimit)
	if !d.writeFloor.on.Load() {
		d.applyWriteLocked(d.writeLimit)
	}
	return readLimit, d.gen
}

// startBody arms the request body floor under the request's read
// deadline.
func (d *connDeadlines) startBody(srv *Server, readLimit time.Time) {
	d.readCut = false
	d.bodyLimit.Store(!readLimit.IsZero())
	d.readFloor.start(srv.minRequestBodyRate(), srv.minRateGracePeriod(), readLimit)
}

// endRequest disarms the floors once a response is complete. On a
// plaintext connection the write deadline of the response stays on the
// connection until the next write replaces it (every write of the engine
// goes through write or readFrom, which put the deadline it needs in
// force), so that back-to-back requests cost no deadline change to clear
// it; a hijack clears it. On a TLS connection it is cleared: crypto/tls
// writes on its own between requests (the answer to a client's KeyUpdate,
// from inside a read), under whatever deadline is in force, and a write of
// its that fails breaks the connection for every later Write. The read
// deadline is the next phase's to set.
func (d *connDeadlines) endRequest() {
	d.readFloor.off()
	d.bodyLimit.Store(false)
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.gen++
	d.writeFloor.off()
	d.writeLimit = time.Time{}
	d.writeByHandler = false
	if _, ok := d.rwc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		d.applyWriteLocked(time.Time{})
	}
}

// read reads request body bytes from the connection, under the body floor
// while it is armed, else under the deadline already in force.
func (d *connDeadlines) read(p []byte) (int, error) {
	f := &d.readFloor
	if !f.on.Load() {
		n, err := d.rwc.Read(p)
		if err != nil && d.bodyLimit.Load() {
			d.readTimedOut(err, timeoutRead)
		}
		return n, err
	}
	start := time.Now()
	d.readSet.Store(true)
	// A read returns with the first bytes there are, so it is allowed the
	// time of one piece however large p is: a large buffer must not let a
	// client that sent fast stall for the credit it earned.
	dl := f.deadline(start, min(len(p), floorPiece))
	d.rwc.SetReadDeadline(dl)
	n, err := d.rwc.Read(p)
	f.done(n, time.Since(start))
	if err != nil && f.on.Load() {
		// Still the floor's deadline, not one the handler set
		// meanwhile: the floor's, or ReadTimeout's when that came first.
		d.readTimedOut(err, floorKind(f, dl, timeoutRead, floorBody))
	}
	return n, err
}

// floorKind returns which deadline dl, computed by the floor f, is:
// limitKind when it is the floor's outer limit (ReadTimeout,
// WriteTimeout), else floorKind.
func floorKind(f *rateFloor, dl time.Time, limitKind, floorKind timeoutKind) timeoutKind {
	if !f.limit.IsZero() && !dl.Before(f.limit) {
		return limitKind
	}
	return floorKind
}

// readTimedOut counts a request body read that failed with err, if err
// is a timeout of the deadline k, once per request.
func (d *connDeadlines) readTimedOut(err error, k timeoutKind) {
	if !d.readCut && isTimeout(err) {
		d.readCut = true
		d.stats.timedOut(k)
	}
}

// writeTimedOutLocked counts a response write that failed with err, if err
// is a timeout of the deadline k, once per request. It requires that d.wmu
// is held.
func (d *connDeadlines) writeTimedOutLocked(err error, k timeoutKind) {
	if !d.writeCut && isTimeout(err) {
		d.writeCut = true
		d.stats.timedOut(k)
	}
}

// writeFailed counts a write that failed with err under the deadline that
// applyWriteLocked put in force, writeLimit, when that is WriteTimeout's.
func (d *connDeadlines) writeFailed(err error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if !d.writeByHandler && !d.writeLimit.IsZero() && !d.writeFloor.on.Load() {
		d.writeTimedOutLocked(err, timeoutWrite)
	}
}

// pieceFailed counts a piece written under the floor's deadline dl that
// failed with err, unless the handler has set its own deadline since.
func (d *connDeadlines) pieceFailed(err error, dl time.Time) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if f := &d.writeFloor; f.on.Load() {
		d.writeTimedOutLocked(err, floorKind(f, dl, timeoutWrite, floorResponse))
	}
}

// handlerSetRead is http.ResponseController's SetReadDeadline for the
// request of generation gen: the handler's deadline replaces the body
// floor for the rest of the request.
func (d *connDeadlines) handlerSetRead(gen uint64, t time.Time) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if gen != d.gen {
		return errResponseDone
	}
	d.readFloor.off()
	d.bodyLimit.Store(false)
	d.readSet.Store(true)
	return d.rwc.SetReadDeadline(t)
}

// applyWriteLocked puts the write deadline t on the connection unless it
// is there already. It requires that d.wmu is held.
func (d *connDeadlines) applyWriteLocked(t time.Time) error {
	if t.Equal(d.writeSet) {
		return nil
	}
	d.writeSet = t
	return d.rwc.SetWriteDeadline(t)
}

// write writes response bytes to the connection: under the response floor
// while it is armed, whole and timed by windows when p is larger than
// floorPiece and the connection allows it, else in pieces of at most
// floorPiece bytes each with its own deadline; under writeLimit when the
// floor is off.
func (d *connDeadlines) write(p []byte) (int, error) {
	f := &d.writeFloor
	written := 0
	for len(p) > 0 {
		d.wmu.Lock()
		if !f.on.Load() {
			d.applyWriteLocked(d.writeLimit)
			d.wmu.Unlock()
			n, err := d.rwc.Write(p)
			if err != nil {
				d.writeFailed(err)
			}
			return written + n, err
		}
		if len(p) > floorPiece && d.windowsLocked() {
			n, err := d.writeWindowsLocked(p)
			return written + n, err
		}
		piece := p[:min(len(p), floorPiece)]
		start, dl := d.pieceDeadlineLocked(len(piece))
		d.wmu.Unlock()
		n, err := d.rwc.Write(piece)
		d.pieceDone(n, start)
		written += n
		if err != nil {
			d.pieceFailed(err, dl)
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// windowsLocked reports whether a write can be timed by windows on this
// connection: whether a write that the window's deadline interrupts can
// go on. A TLS layer cannot (crypto/tls fails every later write once one
// has timed out), but the connection under it can, where the server made
// the layer and so can watch its writes (countConn, under ServeTLS); so
// can a plaintext TCP or Unix connection. It requires that d.wmu is held.
func (d *connDeadlines) windowsLocked() bool {
	if !d.winKnown {
		d.winKnown = true
		if tc, ok := d.rwc.(*tls.Conn); ok {
			if cc, ok := tc.NetConn().(*countConn); ok {
				d.winUnder = cc
				cc.windows.Store(d)
			}
		} else {
			d.winPlain = resumableConn(d.rwc)
		}
	}
	return d.winUnder != nil || d.winPlain
}

// resumableConn reports whether c is a connection whose write, once
// interrupted by its deadline, goes on when the deadline is moved: a TCP
// or Unix connection, possibly under the server's own wrappers. (The
// net.Conn contract promises it of every connection; this trusts it only
// where the connection is known.)
func resumableConn(c net.Conn) bool {
	if pc, ok := c.(*prefaceConn); ok {
		c = pc.Conn
	}
	if pc, ok := c.(*proxyConn); ok {
		c = pc.Conn
	}
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	}
	return false
}

// writeWindowsLocked writes p, larger than floorPiece, to the connection
// whole, timed by windows under the response floor: crypto/tls (or the
// kernel) then sends it in full-size records and system calls, and
// writeUnder decides at the end of each window whether the write goes on.
// It requires that d.wmu is held, and releases it.
func (d *connDeadlines) writeWindowsLocked(p []byte) (int, error) {
	f := &d.writeFloor
	d.winActive = true
	d.winCount = 0
	from := d.underBytes.Load()
	d.startWindowLocked(time.Now())
	d.wmu.Unlock()
	var n int
	var err error
	if d.winUnder != nil {
		n, err = d.rwc.Write(p)
	} else {
		n, err = d.writeUnder(d.rwc, p)
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.winActive = false
	if f.on.Load() {
		// Still the floor's write, not one whose deadline the handler
		// took over meanwhile.
		moved := d.underBytes.Load()
		f.done(int(moved-d.winFrom), time.Since(d.winStart))
		// The credit is earned by what the handler wrote, not by the
		// TLS layer's overhead.
		f.bytes += int64(n) - (moved - from)
		if err != nil {
			d.writeTimedOutLocked(err, floorKind(f, d.winEnd, timeoutWrite, floorResponse))
		}
	}
	return n, err
}

// startWindowLocked starts a window at now and puts its end on the
// connection as the write deadline. It reports whether the window has any
// time. It requires that d.wmu is held.
func (d *connDeadlines) startWindowLocked(now time.Time) bool {
	d.winStart, d.winFrom = now, d.underBytes.Load()
	d.winMarks[d.winCount%len(d.winMarks)] = winMark{now, d.winFrom}
	d.winCount++
	d.winEnd = d.writeFloor.window(now, floorPiece)
	d.writeSet = d.winEnd
	d.rwc.SetWriteDeadline(d.winEnd)
	return d.winEnd.After(now)
}

// writeUnder writes p to nc, the connection under rwc's TLS layer (called
// by countConn.Write, once per record) or rwc itself. While a write is
// timed by windows, a write that the window's deadline interrupts goes on
// under the next window if the client took the bytes the window needed.
// Outside of one (the engine's other writes, crypto/tls's close_notify,
// and after a hijack none come here), it is nc.Write.
func (d *connDeadlines) writeUnder(nc net.Conn, p []byte) (int, error) {
	written := 0
	for {
		n, err := nc.Write(p[written:])
		written += n
		d.underBytes.Add(int64(n))
		if err == nil || written == len(p) || !d.nextWindow(err) {
			return written, err
		}
	}
}

// nextWindow reports whether a windowed write that failed with err goes
// on: err is the deadline of the window in progress, the floor is still
// armed, and, once the write has had windowParts-1 windows, the client
// took what they needed (windowNeed over their length); it then records
// the window in the floor and starts the next. The first windows of a
// write are bounded by the credit alone: a client that stops is cut when
// the last windowParts-1 windows since have passed, within one piece's
// time.
func (d *connDeadlines) nextWindow(err error) bool {
	if !isTimeout(err) {
		return false
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if !d.winActive || !d.writeFloor.on.Load() || !d.writeSet.Equal(d.winEnd) {
		// The handler's deadline, or not a windowed write's.
		return false
	}
	now := time.Now()
	if now.Before(d.winEnd) {
		return false
	}
	under := d.underBytes.Load()
	if d.winCount >= len(d.winMarks) {
		// The start of the oldest of the last windowParts-1 windows.
		old := d.winMarks[d.winCount%len(d.winMarks)]
		if under-old.bytes < d.writeFloor.windowNeed(now.Sub(old.at), floorPiece) {
			return false
		}
	}
	moved := under - d.winFrom
	d.writeFloor.done(int(moved), now.Sub(d.winStart))
	return d.startWindowLocked(now)
}

// readFrom copies src to the connection with rf, the connection's own
// ReadFrom (sendfile or splice on TCP), under the same deadlines as write:
// in pieces of floorPiece bytes while the response floor is armed.
func (d *connDeadlines) readFrom(rf io.ReaderFrom, src io.Reader) (int64, error) {
	// Keep the innermost reader visible to rf: sendfile and splice look
	// through one *io.LimitedReader (as io.CopyN and http.ServeContent
	// make) but not two.
	outer, ok := src.(*io.LimitedReader)
	if !ok {
		outer = &io.LimitedReader{R: src, N: math.MaxInt64}
	}
	lr := &io.LimitedReader{R: outer.R}
	var written int64
	for outer.N > 0 {
		d.wmu.Lock()
		lr.N = outer.N
		var start, dl time.Time
		floor := d.writeFloor.on.Load()
		if floor {
			lr.N = min(lr.N, floorPiece)
			start, dl = d.pieceDeadlineLocked(int(lr.N))
		} else {
			d.applyWriteLocked(d.writeLimit)
		}
		d.wmu.Unlock()
		piece := lr.N
		n, err := rf.ReadFrom(lr)
		if floor {
			d.pieceDone(int(n), start)
		}
		if err != nil {
			if floor {
				d.pieceFailed(err, dl)
			} else {
				d.writeFailed(err)
			}
		}
		written += n
		outer.N -= n
		if err != nil || n < piece {
			// A short piece with no error is the end of src.
			return written, err
		}
	}
	return written, nil
}

// hijacked clears both deadlines as the handler takes the connection
// over, as net/http's Hijack does.
func (d *connDeadlines) hijacked() {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.gen++
	d.rwc.SetDeadline(time.Time{})
	d.readSet.Store(false)
	d.writeSet = time.Time{}
	if d.winUnder != nil {
		d.winUnder.windows.Store(nil)
	}
}

// pieceDeadlineLocked puts the floor's deadline for a piece of n bytes
// starting now on the connection, and returns now and the deadline. It
// requires that d.wmu is held.
//
// A deadline already in force that is earlier than the floor's by less
// than 1/64 of the piece's time is kept instead (78 ms for a response's
// first write at the defaults, whose time is the 5 s grace period): the
// piece is allowed up to 1.6% less, and writes that follow each other
// closely, a response after another on a busy keep-alive connection,
// change the deadline once every 78 ms instead of once each.
func (d *connDeadlines) pieceDeadlineLocked(n int) (start, dl time.Time) {
	start = time.Now()
	dl = d.writeFloor.deadline(start, n)
	if set := d.writeSet; !set.IsZero() && !set.After(dl) && dl.Sub(set) <= dl.Sub(start)/64 {
		return start, set
	}
	d.writeSet = dl
	d.rwc.SetWriteDeadline(dl)
	return start, dl
}

// pieceDone records a piece that moved n bytes since start.
func (d *connDeadlines) pieceDone(n int, start time.Time) {
	elapsed := time.Since(start)
	d.wmu.Lock()
	d.writeFloor.done(n, elapsed)
	d.wmu.Unlock()
}

// handlerSetWrite is http.ResponseController's SetWriteDeadline for the
// request of generation gen: the handler's deadline replaces the response
// floor and WriteTimeout for the rest of the request. It takes effect at
// once, interrupting a write that is blocked.
func (d *connDeadlines) handlerSetWrite(gen uint64, t time.Time) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if gen != d.gen {
		return errResponseDone
	}
	d.writeFloor.off()
	d.writeLimit = t
	d.writeByHandler = true
	d.writeSet = t
	return d.rwc.SetWriteDeadline(t)
}
