package httpsrv

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// The rate floors on HTTP/2 streams.
//
// An HTTP/2 handler blocks in Write, Flush or Body.Read while its stream
// waits for the client: for flow-control window (a client that advertises
// a zero window, or never sends WINDOW_UPDATE) or for request body DATA.
// Nothing is queued for the socket meanwhile, so the connection's
// WriteByteTimeout never fires and the handler would wait for ever. The
// HTTP/2 server has per-stream deadlines, reached through the
// ResponseWriter's SetReadDeadline and SetWriteDeadline (golang.org/x/net's
// responseWriter, net/http's internal one on Go 1.27): an expired read
// deadline fails the stream's body reads with os.ErrDeadlineExceeded, an
// expired write deadline resets the stream. h2Floor uses them to apply
// MinRequestBodyRate and MinResponseRate per stream with the arithmetic of
// HTTP/1's (rateFloor): only the time blocked on the client counts, and one
// operation may block at most the grace period plus its size at the floor
// rate.
//
// Each deadline the server sets costs a message to the connection's serve
// goroutine and a timer, so h2Floor sets none while the handler runs.
// It times the operations that may block with a timer of its own, armed
// only for them, and on expiry sets a deadline in the past, which makes the
// server act at once on the calling goroutine (responseWriter's
// SetReadDeadline and SetWriteDeadline). Writes that only fill the
// server's buffer cannot block and are not timed. The one server deadline
// left is for the flush the server makes after the handler returns
// (responseWriter.handlerDone): h2Floor's timer may not touch the
// ResponseWriter then, so when bytes are left in the buffer, the stream's
// own write deadline is set for them; the server stops it when the stream
// closes.

// h2HandlerBuffer is the size of the buffer between an HTTP/2 handler's
// writes and its stream: golang.org/x/net's and net/http's
// handlerChunkWriteSize (see newResponseWriter). A write that fits in the
// buffer returns at once; one that overflows it first sends a full buffer
// as a DATA frame and waits until it is written, which flow control can
// hold up.
const h2HandlerBuffer = 4 << 10

// h2Piece is the most a write passed to the server while the response
// floor is on may send to the stream, and so the most one timed wait
// covers: a stream stalled after a fast start is cut after at most the
// grace period plus h2Piece at the floor (73 s at the defaults). It is
// one DATA frame of HTTP/2's default maximum size. HTTP/1's floorPiece is
// 4 KiB, but on HTTP/2 each piece costs a round trip to the connection's
// serve goroutine, and 4 KiB pieces made a 1 MiB write three times slower
// than one write (BenchmarkHTTP2Floor/big); 16 KiB pieces still take 1.3
// to 2 times as long as one write over loopback, where the round trips
// are all there is.
const h2Piece = 16 << 10

// h2BufferWrite returns what a write of n bytes does to the server's
// buffer when it holds b bytes: how many bytes it sends to the stream,
// waiting on flow control, and how many the buffer holds after it. These
// are bufio.Writer.Write's rules for a buffer of h2HandlerBuffer bytes: a
// write that fits is copied; otherwise the buffer is topped up and sent,
// and the rest is sent directly if it is larger than the buffer, or
// copied.
func h2BufferWrite(b, n int) (sent, after int) {
	const size = h2HandlerBuffer
	if b+n <= size {
		return 0, b + n
	}
	if b > 0 {
		n -= size - b
		sent = size
	}
	if n > size {
		return sent + n, 0
	}
	return sent, n
}

// h2ResponseWriter is the HTTP/2 server's ResponseWriter: the methods of
// golang.org/x/net's responseWriter, which are those of the type net/http
// gives handlers of its own HTTP/2 server (http2responseWriter on Go 1.26,
// http2ResponseWriter on Go 1.27, which x/net's server then passes on).
type h2ResponseWriter interface {
	http.ResponseWriter
	http.Flusher
	http.Pusher
	//lint:ignore SA1019 CloseNotifier is deprecated but still supported, as in net/http.
	http.CloseNotifier
	io.StringWriter
	FlushError() error
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
	EnableFullDuplex() error
}

// h2Floor is the ResponseWriter an HTTP/2 handler gets while a floor is
// on. Its methods are exactly those of the server's (h2ResponseWriter), so
// that handlers and http.ResponseController see what net/http's HTTP/2
// server gives them.
type h2Floor struct {
	rw    h2ResponseWriter // immutable
	stats *serverStats     // immutable; counts the cuts

	// body is the request body while the body floor is on.
	body h2FloorBody

	// readFloor enforces MinRequestBodyRate. Its counters are used by the
	// goroutine that reads the body.
	readFloor rateFloor

	// writeFloor enforces MinResponseRate. Its counters and buffered are
	// used by the goroutine that writes the response.
	writeFloor rateFloor
	// buffered is how many bytes the server's buffer holds, at most
	// h2HandlerBuffer. An int32 packs with mu and done into 16 bytes,
	// which keeps h2Floor, allocated for each request, in its size class.
	buffered int32

	// mu guards the fields below and is held while expire acts on rw, so
	// that it never does once the handler has returned.
	mu sync.Mutex
	// done is set when the handler returns: rw may no longer be used by
	// the timer.
	done bool
	// readCut and writeCut are set once a cut has been counted.
	readCut, writeCut bool
	// reading and writing are the operations blocked, or about to be.
	reading, writing h2Wait
	// timer runs expire; nil until first needed.
	timer *time.Timer
	// timerAt is when timer fires, zero when it is stopped or has fired.
	timerAt time.Time
}

// h2Wait is an operation that may block on the client.
type h2Wait struct {
	active   bool
	deadline time.Time
}

// h2FloorBody is the request body under the body floor. Its methods are
// those of the server's body (Read and Close).
type h2FloorBody struct {
	f  *h2Floor      // immutable
	rc io.ReadCloser // the server's body; immutable
}

// deadlinePast is a deadline in the past: the server acts on it at once.
var deadlinePast = time.Unix(1, 0)

// serveHTTP2Request routes an HTTP/2 request, under the rate floors when the
// request comes from the built-in HTTP/2 server and a floor is on.
//
// A handler's panic is counted for Stats here and passed on unchanged, value
// and all, to the HTTP/2 server, which recovers it, resets the stream and
// logs it as net/http's does (not http.ErrAbortHandler). The stack it logs
// then shows this function's deferred call above the handler's frames.
func (c *conn) serveHTTP2Request(w http.ResponseWriter, r *http.Request) {
	s := c.srv
	builtin := c.builtinHTTP2()
	if builtin {
		defer func() {
			if v := recover(); v != nil {
				s.stats.countPanic(v)
				panic(v)
			}
		}()
	}
	respRate, bodyRate := s.minResponseRate(), s.minRequestBodyRate()
	if respRate == 0 && bodyRate == 0 {
		s.serveHTTP(w, r)
		return
	}
	rw, ok := w.(h2ResponseWriter)
	if !ok || !builtin {
		s.serveHTTP(w, r)
		return
	}
	f := &h2Floor{rw: rw, stats: &s.stats}
	now := time.Now()
	var limit time.Time
	if t := s.WriteTimeout; t > 0 {
		// The server's own WriteTimeout deadline started with the
		// stream, a little earlier; see finish.
		limit = now.Add(t)
	}
	grace := s.minRateGracePeriod()
	f.writeFloor.start(respRate, grace, limit)
	// The server enforces ReadTimeout on the body itself, independently.
	f.readFloor.start(bodyRate, grace, time.Time{})
	if bodyRate > 0 && r.Body != http.NoBody {
		f.body = h2FloorBody{f: f, rc: r.Body}
		r.Body = &f.body
	}
	defer f.stop()
	s.serveHTTP(f, r)
	f.finish(r.Context())
}

// builtinHTTP2 reports whether the connection's requests come from the
// built-in HTTP/2 server rather than a TLSNextProto function of the
// caller's (see serveNextProto and maybeServeUnencryptedHTTP2).
func (c *conn) builtinHTTP2() bool {
	key := nextProtoUnencryptedHTTP2
	if c.tlsState != nil {
		key = c.tlsState.NegotiatedProtocol
	}
	return c.srv.TLSNextProto[key] == nil
}

// stop disarms the floors' timer once the handler has returned, or
// panicked.
func (f *h2Floor) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = true
	if f.timer != nil {
		f.timer.Stop()
		f.timerAt = time.Time{}
	}
}

// finish runs when the handler has returned. The server then flushes what
// its buffer holds (responseWriter.handlerDone), which flow control can
// hold up: the stream's own write deadline bounds that flush, as the floor
// would bound a write of that size. When the floor is off the handler's
// deadline, if any, stays.
func (f *h2Floor) finish(ctx context.Context) {
	f.stop()
	if f.buffered == 0 || !f.writeFloor.on.Load() {
		return
	}
	if ctx.Err() != nil {
		// The stream is closed (the client reset it, or the connection
		// ended): the server sends nothing more on it, and a deadline
		// would arm a timer on a dead stream whose expiry answers the
		// client's RST_STREAM with one (RFC 9113 §5.4.2 forbids it).
		return
	}
	// This replaces the server's WriteTimeout deadline, if any, with a
	// deadline no later than the one computed from the handler's start
	// (writeFloor's limit).
	f.rw.SetWriteDeadline(f.writeFloor.deadline(time.Now(), int(f.buffered)))
}

// begin records an operation of n bytes that may block on the client,
// under floor fl, and arms the timer for it. It returns when the operation
// started.
func (f *h2Floor) begin(w *h2Wait, fl *rateFloor, n int) time.Time {
	start := time.Now()
	dl := fl.deadline(start, n)
	f.mu.Lock()
	if !f.done && fl.on.Load() {
		w.active, w.deadline = true, dl
		if f.timerAt.IsZero() || dl.Before(f.timerAt) {
			f.armLocked(dl, start)
		}
	}
	f.mu.Unlock()
	return start
}

// end records the end of the operation begun at start, which moved n
// bytes under floor fl, and stops the timer if no other operation needs
// it.
func (f *h2Floor) end(w *h2Wait, fl *rateFloor, n int, start time.Time) {
	fl.done(n, time.Since(start))
	f.mu.Lock()
	w.active = false
	if !f.reading.active && !f.writing.active && !f.timerAt.IsZero() {
		f.timer.Stop()
		f.timerAt = time.Time{}
	}
	f.mu.Unlock()
}

// armLocked makes the timer fire at dl. It requires that f.mu is held.
func (f *h2Floor) armLocked(dl, now time.Time) {
	d := dl.Sub(now)
	if f.timer == nil {
		f.timer = time.AfterFunc(d, f.expire)
	} else {
		f.timer.Reset(d)
	}
	f.timerAt = dl
}

// expire runs on the timer's goroutine. An operation past its deadline
// gets the stream's deadline set in the past: the server resets the stream
// for a write, or fails the body's reads, which ends the operation. The
// timer is rearmed for an operation whose deadline is still ahead (it may
// have begun while the timer was firing).
func (f *h2Floor) expire() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.timerAt = time.Time{}
	if f.done {
		return
	}
	now := time.Now()
	var next time.Time
	if dl, cut := f.writing.expired(&f.writeFloor, now); cut {
		f.rw.SetWriteDeadline(deadlinePast)
		// A deadline that is WriteTimeout's is the HTTP/2 server's
		// too, which does not report its own cuts: not counted.
		if !f.writeCut && floorKind(&f.writeFloor, f.writing.deadline, timeoutWrite, floorResponse) == floorResponse {
			f.writeCut = true
			f.stats.timedOut(floorResponse)
		}
	} else if !dl.IsZero() {
		next = dl
	}
	if dl, cut := f.reading.expired(&f.readFloor, now); cut {
		f.rw.SetReadDeadline(deadlinePast)
		if !f.readCut {
			f.readCut = true
			f.stats.timedOut(floorBody)
		}
	} else if !dl.IsZero() && (next.IsZero() || dl.Before(next)) {
		next = dl
	}
	if !next.IsZero() {
		f.armLocked(next, now)
	}
}

// expired reports whether w, an operation under floor fl, is past its
// deadline at now, and ends it if so; otherwise it returns the deadline of
// w if it is in progress, or zero. The floor's h2Floor.mu must be held.
func (w *h2Wait) expired(fl *rateFloor, now time.Time) (time.Time, bool) {
	if !w.active || !fl.on.Load() {
		return time.Time{}, false
	}
	if now.Before(w.deadline) {
		return w.deadline, false
	}
	w.active = false
	return time.Time{}, true
}

func (f *h2Floor) Header() http.Header { return f.rw.Header() }

func (f *h2Floor) WriteHeader(code int) { f.rw.WriteHeader(code) }

// Write writes p to the server's buffer in pieces that send at most
// h2Piece bytes each, timing each wait for the client.
func (f *h2Floor) Write(p []byte) (int, error) {
	if !f.writeFloor.on.Load() || len(p) == 0 {
		return f.rw.Write(p)
	}
	written := 0
	for len(p) > 0 {
		piece := p[:f.pieceLen(len(p))]
		start, sent, after := f.beginPiece(len(piece))
		n, err := f.rw.Write(piece)
		f.endPiece(start, sent, after, n, err)
		written += n
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// WriteString is Write for a string, without a copy.
func (f *h2Floor) WriteString(s string) (int, error) {
	if !f.writeFloor.on.Load() || len(s) == 0 {
		return f.rw.WriteString(s)
	}
	written := 0
	for len(s) > 0 {
		piece := s[:f.pieceLen(len(s))]
		start, sent, after := f.beginPieceString(len(piece))
		n, err := f.rw.WriteString(piece)
		f.endPiece(start, sent, after, n, err)
		written += n
		if err != nil {
			return written, err
		}
		s = s[n:]
	}
	return written, nil
}

// h2BufferWriteString is h2BufferWrite for WriteString. The server's
// buffer writes to a writer without a WriteString method, so
// bufio.Writer.WriteString never writes around the buffer: it fills and
// sends it, h2HandlerBuffer bytes at a time, while what is left does not
// fit, and keeps the rest, which may be a whole buffer.
func h2BufferWriteString(b, n int) (sent, after int) {
	const size = h2HandlerBuffer
	total := b + n
	if total <= size {
		return 0, total
	}
	sent = (total - 1) / size * size
	return sent, total - sent
}

// pieceLen returns how much of a write of n bytes to pass to the server
// next: at most what, added to the buffered bytes, makes h2Piece, so that
// the piece sends at most h2Piece bytes and leaves the buffer empty if it
// sends any; what fits in the buffer goes at once.
func (f *h2Floor) pieceLen(n int) int {
	if int(f.buffered)+n <= h2HandlerBuffer {
		return n
	}
	return min(n, h2Piece-int(f.buffered))
}

// beginPieceString is beginPiece for WriteString, which the server's
// buffer handles by its own rules (h2BufferWriteString).
func (f *h2Floor) beginPieceString(n int) (start time.Time, sent, after int) {
	sent, after = h2BufferWriteString(int(f.buffered), n)
	if sent == 0 {
		return time.Time{}, 0, after
	}
	return f.begin(&f.writing, &f.writeFloor, sent), sent, after
}

// beginPiece prepares a write of n bytes chosen by pieceLen. If the
// server's buffer cannot take them, the write sends to the stream, and
// may wait on the client: it is timed. It returns when the write started,
// how many bytes it sends and how many the buffer holds after it.
func (f *h2Floor) beginPiece(n int) (start time.Time, sent, after int) {
	sent, after = h2BufferWrite(int(f.buffered), n)
	if sent == 0 {
		return time.Time{}, 0, after
	}
	return f.begin(&f.writing, &f.writeFloor, sent), sent, after
}

// endPiece records a write begun by beginPiece, which took n bytes.
func (f *h2Floor) endPiece(start time.Time, sent, after, n int, err error) {
	if sent > 0 {
		f.end(&f.writing, &f.writeFloor, sent, start)
	}
	switch {
	case err == nil:
		f.buffered = int32(after)
	case n == 0:
		// Refused before the buffer (a write past the declared
		// Content-Length): the buffer holds what it held.
	default:
		// The buffer's writer failed and keeps its error; later
		// flushes fail at once.
		f.buffered = 0
	}
}

// Flush sends the buffered data to the client.
func (f *h2Floor) Flush() { f.FlushError() }

// FlushError sends the buffered data to the client, timing the wait for
// it, and returns the first error. http.ResponseController.Flush calls it.
func (f *h2Floor) FlushError() error {
	n := int(f.buffered)
	if n == 0 || !f.writeFloor.on.Load() {
		// Nothing that waits for flow control: at most the response
		// head, which the connection's WriteByteTimeout bounds.
		return f.rw.FlushError()
	}
	start := f.begin(&f.writing, &f.writeFloor, n)
	err := f.rw.FlushError()
	f.buffered = 0
	f.end(&f.writing, &f.writeFloor, n, start)
	return err
}

func (f *h2Floor) CloseNotify() <-chan bool { return f.rw.CloseNotify() }

func (f *h2Floor) Push(target string, opts *http.PushOptions) error {
	return f.rw.Push(target, opts)
}

// SetReadDeadline sets the stream's read deadline, for
// http.ResponseController. As on HTTP/1, the handler's deadline replaces
// the body floor for the rest of the request.
func (f *h2Floor) SetReadDeadline(t time.Time) error {
	f.readFloor.off()
	return f.rw.SetReadDeadline(t)
}

// SetWriteDeadline sets the stream's write deadline, for
// http.ResponseController. As on HTTP/1, the handler's deadline replaces
// the response floor (and WriteTimeout, as in net/http) for the rest of
// the request.
func (f *h2Floor) SetWriteDeadline(t time.Time) error {
	f.writeFloor.off()
	return f.rw.SetWriteDeadline(t)
}

// EnableFullDuplex is http.ResponseController's EnableFullDuplex. A
// handler that calls it declares a stream both ways, whose request body
// may pause for as long as the conversation does (gRPC and other
// bidirectional streams): the body floor stops for the rest of the
// request, as a read deadline the handler sets would stop it.
func (f *h2Floor) EnableFullDuplex() error {
	f.readFloor.off()
	return f.rw.EnableFullDuplex()
}

// Read reads the request body, timing the read: it blocks only while the
// server holds no DATA for the stream.
func (b *h2FloorBody) Read(p []byte) (int, error) {
	f := b.f
	if !f.readFloor.on.Load() || len(p) == 0 {
		return b.rc.Read(p)
	}
	// A read returns with the first DATA there is, so it is allowed the
	// time of one piece however large p is: a large buffer must not let a
	// client that sent fast stall for the credit it earned.
	start := f.begin(&f.reading, &f.readFloor, min(len(p), h2Piece))
	n, err := b.rc.Read(p)
	f.end(&f.reading, &f.readFloor, n, start)
	return n, err
}

func (b *h2FloorBody) Close() error { return b.rc.Close() }
