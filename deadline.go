package httpsrv

import (
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// floorPiece is the largest single write made under the response rate
// floor. A larger write is split, so that each piece gets a deadline
// sized for it and the credit earned by the pieces before it: one
// deadline for a whole multi-megabyte write would either cut an honest
// client reading well above the floor or let a stalled one hold the
// connection for hours. A piece may block at most the grace period plus
// its size at the floor rate, so the piece size is also how long a
// stalled reader that earned credit is kept: 4 KiB, the size of the
// connection's write buffer, gives about 22 s at the default floor,
// which slowhttptest's slow-read attack needs to be cut within its run
// (16 KiB pieces, one TLS record each, gave 73 s and let it through).
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

// endRequest disarms the floors and clears the write deadline once a
// response is complete. The read deadline is the next phase's to set.
func (d *connDeadlines) endRequest() {
	d.readFloor.off()
	d.bodyLimit.Store(false)
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.gen++
	d.writeFloor.off()
	d.writeLimit = time.Time{}
	d.writeByHandler = false
	d.applyWriteLocked(time.Time{})
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
// while it is armed, in pieces of at most floorPiece bytes each with its
// own deadline; else under writeLimit.
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
}

// pieceDeadlineLocked puts the floor's deadline for a piece of n bytes
// starting now on the connection, and returns now and the deadline. It
// requires that d.wmu is held.
func (d *connDeadlines) pieceDeadlineLocked(n int) (start, dl time.Time) {
	start = time.Now()
	dl = d.writeFloor.deadline(start, n)
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
