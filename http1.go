package httpsrv

// The HTTP/1.x engine: everything a connection does after the TLS handshake
// when ALPN did not pick another protocol. The behaviour is Go 1.26
// net/http's (server.go conn.serve, readRequest, connReader, response), with
// these deliberate departures:
//
//   - A request read after shutdown started is answered, with
//     "Connection: close"; net/http drops it without a word.
//   - Shutdown and SetKeepAlivesEnabled(false) do not close an idle
//     connection from another goroutine, under a client that may be
//     sending on it: the connection drains and closes itself (drain.go).
//   - An HTTP/1.0 client is never told "Connection: keep-alive" on a
//     connection about to close, and never gets 1xx responses (RFC 9110
//     §15.2); net/http does both.
//   - A 100-continue body the handler did not read is not drained when the
//     connection closes anyway; Go 1.26 blocks reading it.
//   - A body that cannot be drained cleanly after the handler closes the
//     connection; net/http may reuse it.
//   - After an oversized body, the wait before closing ends when the client
//     closes (at most 500 ms) instead of being a fixed 500 ms sleep.
//   - Writes after the handler returned fail with errResponseDone, and
//     FlushError after a hijack with http.ErrHijacked; net/http writes into
//     a pooled buffer, or panics.
//
// Performance: one 4 KiB reader, one 4 KiB writer and one 2 KiB response
// buffer per busy connection, from pools, given back while the connection
// waits for its next request, so that an idle connection holds one
// goroutine and what crypto/tls holds; the handler's header is snapshotted
// into bytes rather than cloned; Date is formatted once a second; the
// background read that watches for the client going away runs only for a
// handler that can observe it (see connReader).

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxHeaderBytes is MaxHeaderBytes, or http.DefaultMaxHeaderBytes when it is
// zero or negative.
func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return http.DefaultMaxHeaderBytes
}

// connTracked reports whether c is still among the tracked connections,
// that is, whether closeIdleConns has not closed it.
func (s *Server) connTracked(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.activeConn[c]
	return ok
}

// setH1State records an HTTP/1 state change that neither tracks nor
// untracks the connection (StateActive, StateIdle), stamped with the
// second sec, and runs the ConnState hook if runHook is set. It saves the
// clock read that setState makes.
func (c *conn) setH1State(state http.ConnState, sec int64, runHook bool) {
	c.curState.Store(uint64(sec)<<8 | uint64(state&0xff))
	if runHook {
		if hook := c.srv.ConnState; hook != nil {
			hook(c.rwc, state)
		}
	}
}

const (
	// maxPostHandlerReadBytes is the most unread request body the server
	// reads and discards to keep a connection open, as in net/http.
	maxPostHandlerReadBytes = 256 << 10

	// bufferBeforeChunkingSize is the response buffer: a handler's whole
	// output that fits in it, written without a Flush, gets a
	// Content-Length instead of chunking. It must be ≥ 512 for sniffing.
	bufferBeforeChunkingSize = 2048

	// maxUnsentBytes caps the response bytes the kernel may hold unsent
	// for a connection when the response rate floor is on; see
	// limitUnsentBytes. 128 KiB is several milliseconds of data at
	// gigabit rates, so the server refills the socket long before it runs
	// dry.
	maxUnsentBytes = 128 << 10

	// rstAvoidanceDelay bounds the wait for the client's close after a
	// connection is shut down with request bytes possibly unread.
	rstAvoidanceDelay = 500 * time.Millisecond
)

// Per-connection buffers, shared through pools as in net/http.
var (
	bufioReaderPool sync.Pool // *bufio.Reader, 4 KiB
	bufioWriterPool sync.Pool // *bufio.Writer, 4 KiB
	respBufPool     = sync.Pool{New: func() any { return new([bufferBeforeChunkingSize]byte) }}
	copyBufPool     = sync.Pool{New: func() any { return new([32 << 10]byte) }}
)

func newBufioReader(r io.Reader) *bufio.Reader {
	if v := bufioReaderPool.Get(); v != nil {
		br := v.(*bufio.Reader)
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, 4<<10)
}

func newBufioWriter(w io.Writer) *bufio.Writer {
	if v := bufioWriterPool.Get(); v != nil {
		bw := v.(*bufio.Writer)
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriterSize(w, 4<<10)
}

// h1conn is the HTTP/1 state of one connection. It is owned by the
// connection's goroutine unless a field comment says otherwise.
type h1conn struct {
	c   *conn   // immutable
	srv *Server // immutable
	rwc net.Conn

	// reclaimed is set when the server, at MaxConns, takes the
	// connection back while it is idle: keep-alives end for it alone, and
	// it drains as at Shutdown (see Server.reclaimIdleConns).
	reclaimed atomic.Bool

	cr   connReader    // between bufr and rwc; see connReader
	bufr *bufio.Reader // nil once released
	bufw *bufio.Writer // writes through connErrorWriter; nil once released

	// cancel is cancelConn, as a func value for the writers. Immutable.
	cancel context.CancelFunc

	// gone is set once the connection has failed (a read or write
	// error): the request in progress, and any read after it, have their
	// contexts cancelled. See cancelConn.
	gone atomic.Bool

	// werr records that a write to rwc failed. Written by whichever
	// goroutine writes the response.
	werr atomic.Bool

	// cur is the response in progress, for the background read. Set and
	// cleared by the owner, read by the background read.
	cur atomic.Pointer[response]

	// hijackMu serialises Hijack calls.
	hijackMu sync.Mutex

	lastPOST bool // the previous request was a POST

	// dl owns rwc's deadlines; nothing else sets them while the HTTP/1
	// engine serves the connection.
	dl connDeadlines

	respBuf *[bufferBeforeChunkingSize]byte // the response buffer; nil once released
	head    headSnapshot                    // the header snapshot of the current response
	scratch [32]byte                        // chunk sizes, status codes
}

// connErrorWriter writes to the connection, notes the first write error and
// cancels the connection (cancelConn) when one happens.
type connErrorWriter struct{ h *h1conn }

func (w connErrorWriter) Write(p []byte) (int, error) {
	h := w.h
	n, err := h.dl.write(p)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			h.c.resetOnClose.Store(true)
		}
		if !h.werr.Swap(true) {
			h.cancel()
		}
	}
	return n, err
}

// serveHTTP1 serves HTTP/1.x requests on the connection until it must be
// closed. The caller closes rwc afterwards unless the connection was
// hijacked.
func (c *conn) serveHTTP1(ctx context.Context) {
	if c.tlsState == nil {
		if cs, ok := c.rwc.(interface{ ConnectionState() tls.ConnectionState }); ok {
			st := cs.ConnectionState()
			c.tlsState = &st
		}
	}

	if c.srv.minResponseRate() > 0 {
		limitUnsentBytes(c.netConn(), maxUnsentBytes)
	}
	h := &h1conn{c: c, srv: c.srv, rwc: c.rwc}
	h.cancel = h.cancelConn
	h.dl.rwc = c.rwc
	h.dl.stats = &c.srv.stats
	h.cr.init(h)
	c.h1.Store(h)
	defer func() {
		if v := recover(); v != nil {
			h.handlerPanicked(v)
		}
		h.release()
	}()
	h.serve(ctx)
}

// cancelConn records that the connection has failed, and cancels the
// context of the request in progress, if any, as net/http's connection
// context would: request contexts are not children of a connection
// context here, which would cost a cancelCtx, a children map and a done
// channel per connection, and a lock and map update per request. Safe for
// concurrent use.
func (h *h1conn) cancelConn() {
	h.gone.Store(true)
	if w := h.cur.Load(); w != nil {
		w.cancelCtx()
	}
}

// release returns the buffers to their pools, flushing what is buffered,
// unless a handler hijacked the connection and took them.
func (h *h1conn) release() {
	h.cr.stop()
	if h.c.hijacked.Load() {
		return
	}
	if h.bufw != nil {
		h.bufw.Flush()
	}
	h.releaseBuffers()
}

// acquireBuffers takes the connection's buffers from their pools, for a
// request whose first bytes have arrived.
func (h *h1conn) acquireBuffers() {
	if h.bufr == nil {
		h.bufr = newBufioReader(&h.cr)
	}
	if h.bufw == nil {
		h.bufw = newBufioWriter(connErrorWriter{h})
	}
	if h.respBuf == nil {
		h.respBuf = respBufPool.Get().(*[bufferBeforeChunkingSize]byte)
	}
}

// releaseBuffers gives the connection's buffers back to their pools, but
// not one that holds bytes: a reader with pipelined request bytes, or a
// writer whose flush failed. Nothing refers to them afterwards: the
// request body is closed and the response refuses writes once the handler
// has returned.
func (h *h1conn) releaseBuffers() {
	if h.bufr != nil && h.bufr.Buffered() == 0 {
		h.bufr.Reset(nil)
		bufioReaderPool.Put(h.bufr)
		h.bufr = nil
	}
	if h.bufw != nil && h.bufw.Buffered() == 0 {
		h.bufw.Reset(nil)
		bufioWriterPool.Put(h.bufw)
		h.bufw = nil
	}
	if h.respBuf != nil {
		respBufPool.Put(h.respBuf)
		h.respBuf = nil
	}
}

// buffered returns the request bytes buffered in the connection's reader.
func (h *h1conn) buffered() int {
	if h.bufr == nil {
		return 0
	}
	return h.bufr.Buffered()
}

// handlerPanicked cleans up after a handler panic as net/http does: the
// request is cancelled and the bytes that reached the connection buffer are
// flushed (release does that), and the connection is then closed.
func (h *h1conn) handlerPanicked(v any) {
	h.c.logPanic(v, "http")
	if w := h.cur.Load(); w != nil {
		w.cancelCtx()
		w.disableWriteContinue()
		if w.body != nil {
			w.body.Close()
		}
		w.mu.Lock()
		w.handlerDone.Store(true)
		w.mu.Unlock()
	}
}

// serve is the request loop.
func (h *h1conn) serve(ctx context.Context) {
	c, srv := h.c, h.srv
	if !h.waitFirstRequest() {
		return
	}
	for {
		w, err := h.readRequest(ctx)
		if err != nil {
			if isTimeout(err) {
				srv.stats.timedOut(timeoutHeader)
			}
			h.writeRequestError(err)
			return
		}
		req := w.req

		if hasToken(headerGet(req.Header, "Expect"), "100-continue") {
			if req.ProtoAtLeast(1, 1) && req.ContentLength != 0 {
				w.expectContinue = true
				w.canWriteContinue.Store(true)
			}
		} else if headerGet(req.Header, "Expect") != "" {
			w.sendExpectationFailed()
			return
		}

		h.cur.Store(w)
		if h.gone.Load() {
			// The connection failed before the request was current
			// (see cancelConn): its context is born cancelled.
			w.cancelCtx()
		}
		h.cr.startHandler(w)
		srv.stats.requestsHTTP1.Add(1)
		srv.serveHTTP(w, req)
		// Marked before the context is cancelled, so that a goroutine
		// that waits for the cancellation finds every write refused.
		w.mu.Lock()
		w.handlerDone.Store(true)
		w.mu.Unlock()
		h.cr.endHandler()
		w.cancelCtx()
		if c.hijacked.Load() {
			h.cr.release()
			return
		}
		w.finishRequest()
		h.dl.endRequest()
		if !w.shouldReuseConnection() {
			if h.lingerOnClose(w) {
				h.closeWriteAndWait()
			}
			return
		}
		c.setH1State(http.StateIdle, w.now.Unix(), runHooks)
		h.cur.Store(nil)

		// With keep-alives over since the head went out (net/http
		// closes here), the client was told it may send another
		// request: waitNextRequest drains instead of closing under it.
		if !h.waitNextRequest() {
			return
		}
	}
}

// waitNextRequest waits, under the idle timeout, until the first bytes of
// the next request arrive, then starts the header timeout, and reports
// whether a request may follow. After a POST, a stray CRLF (which
// readRequest would skip) does not count as a request arriving; any other
// byte, or part of a TLS record, does, and starts the header timeout at
// once. While it waits, the connection's buffers are back in their pools.
//
// Once keep-alives are over (Shutdown, SetKeepAlivesEnabled(false)), the
// wait becomes the drain (drain.go): a request that arrives is read and
// answered with Connection: close, and a connection that stays idle
// through the drain period is closed by closeDrained, never with request
// bytes unread.
func (h *h1conn) waitNextRequest() bool {
	srv := h.srv
	idleStart := time.Now()
	var idleLimit time.Time
	if d := srv.idleTimeout(); d > 0 {
		idleLimit = idleStart.Add(d)
	}
	budget := 0
	if h.lastPOST {
		budget = 4 // as readRequest's skipLeadingCRLF
		h.skipStrayCRLF(&budget)
	}
	for h.buffered() == 0 && !h.cr.byteWaiting() {
		h.releaseBuffers()
		// A read error (the client half-closed, say) ends the
		// connection once the requests it already sent are answered:
		// as in net/http, it only cancelled the request in progress.
		draining, err := h.cr.waitIdle(false, idleStart, idleLimit)
		if err != nil && !h.cr.byteWaiting() {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				if draining {
					// Idle through the drain period (not closed
					// by the client).
					h.closeDrained()
				} else {
					srv.stats.timedOut(timeoutIdle)
				}
			}
			return false
		}
		h.acquireBuffers()
		if !h.skipStrayCRLF(&budget) {
			break // a byte, or part of a TLS record, has arrived
		}
	}
	h.acquireBuffers()
	// A pipelined request may be here already, with a background read
	// under way.
	h.cr.abortPendingRead()
	// Under the header timeout, not the idle timeout nor the drain's
	// deadline: the request is read and answered (with Connection:
	// close once keep-alives are over).
	h.dl.readAfter(srv.readHeaderTimeout())
	if _, err := h.bufr.Peek(4); err != nil {
		if isTimeout(err) {
			srv.stats.timedOut(timeoutHeader)
		}
		return false
	}
	return true
}

// readRequest reads the next request and prepares its response.
func (h *h1conn) readRequest(ctx context.Context) (*response, error) {
	srv := h.srv
	headStart := time.Now()
	if h.lastPOST {
		// RFC 9112 §2.2 tolerance for old clients that send CRLF after a
		// POST body.
		skipLeadingCRLF(h.bufr, 4)
	}
	req, f, consumed, err := readRequest(h.bufr, srv.maxHeaderBytes())
	now := time.Now()
	if consumed > 0 {
		// Recorded before the hook runs, and checked against a racing
		// closeIdleConns below.
		h.c.setH1State(http.StateActive, now.Unix(), runHooks)
	}
	if err != nil {
		return nil, err
	}
	if tooManyHeaderValues(req, srv.maxHeaderValueCount()) {
		return nil, &requestError{code: http.StatusRequestHeaderFieldsTooLarge}
	}
	if srv.shuttingDown() || srv.disableKeepAlives.Load() {
		// closeIdleConns may have seen the connection idle just before
		// it became active, and closed it. Either it did, and the
		// request cannot be answered, or it never will.
		if !srv.connTracked(h.c) {
			return nil, io.EOF
		}
	}
	h.lastPOST = req.Method == http.MethodPost

	// The response and the request context in one allocation.
	x := new(h1exchange)
	w := &x.w
	rctx, cancel := context.WithCancel(ctx)
	x.ctx = reqContext{Context: rctx, w: w}
	// WithContext is inlined and its copy does not escape: the request
	// keeps its address and no second Request is allocated.
	*req = *req.WithContext(&x.ctx)
	req.RemoteAddr = h.c.remoteAddr
	req.TLS = h.c.tlsState

	readLimit, gen := h.dl.startRequest(srv, headStart, now)

	*w = response{
		h:             h,
		gen:           gen,
		req:           req,
		cancelCtx:     cancel,
		contentLength: -1,
		now:           now,
		isHEAD:        req.Method == http.MethodHead,
		is11:          req.ProtoAtLeast(1, 1),
		// Captured before the handler runs and can change req.Header.
		wants10KeepAlive: req.ProtoMajor == 1 && req.ProtoMinor == 0 && hasToken(headerGet(req.Header, "Connection"), "keep-alive"),
		wantsClose:       req.Close || hasToken(headerGet(req.Header, "Connection"), "close"),
		closeAfterReply:  f.forceClose,
		mustClose:        f.forceClose,
	}
	if req.ProtoMajor == 2 && req.Method == "PRI" && req.RequestURI == "*" {
		w.closeAfterReply = true
	}
	w.buf = h.respBuf[:0]
	if b, ok := newBody(h.bufr, req, f).(*body); ok {
		w.body = b
		w.rb.w = w
		req.Body = &w.rb
		h.dl.startBody(srv, readLimit)
	} else {
		req.Body = http.NoBody
	}
	return w, nil
}

// tooManyHeaderValues reports whether the request head had more than max
// field lines, counting the Host line the parser removed. Go 1.27's
// net/http answers that with 431. (Go 1.27 also counts trailer lines; the
// parser would have to do that.)
func tooManyHeaderValues(req *http.Request, max int) bool {
	n := 0
	if req.Host != "" {
		n++
	}
	for _, vv := range req.Header {
		n += len(vv)
	}
	return n > max
}

// headerGet returns the first value of key, which must be canonical,
// like net/http's unexported Header.get.
func headerGet(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// errorHeaders ends the head of the error responses the server writes
// itself.
const errorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// writeRequestError answers a request that could not be read, with net/http's
// exact bytes, straight to the connection (through h.dl, which clears the
// previous response's write deadline); read errors get no answer.
func (h *h1conn) writeRequestError(err error) {
	re, ok := err.(*requestError)
	if !ok {
		if isCommonNetReadError(err) {
			return
		}
		re = &requestError{code: http.StatusBadRequest}
	}
	var b []byte
	switch re.code {
	case http.StatusRequestHeaderFieldsTooLarge:
		const publicErr = "431 Request Header Fields Too Large"
		b = append(b, "HTTP/1.1 "+publicErr+errorHeaders+publicErr...)
		h.dl.write(b)
		h.closeWriteAndWait()
		return
	case http.StatusNotImplemented:
		// The transfer coding is not echoed, so that it cannot be used
		// for cross-site scripting.
		b = append(b, "HTTP/1.1 501 Not Implemented"+errorHeaders+"Unsupported transfer encoding"...)
	default:
		status := strconv.Itoa(re.code) + " " + http.StatusText(re.code)
		if re.text != "" {
			status += ": " + re.text
		}
		b = append(b, "HTTP/1.1 "...)
		b = append(b, status...)
		b = append(b, errorHeaders...)
		b = append(b, status...)
	}
	h.dl.write(b)
	// The rest of the bad request may still be arriving: the parser
	// answered as soon as it saw the fault.
	h.closeWriteAndWait()
}

// isCommonNetReadError reports whether err is what a read gives when the
// client went away or was too slow: no answer is written then.
func isCommonNetReadError(err error) bool {
	if err == io.EOF {
		return true
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return true
	}
	if oe, ok := err.(*net.OpError); ok && oe.Op == "read" {
		return true
	}
	return false
}

// connReader sits between the connection's bufio.Reader and rwc. Besides
// the reads of the request head and body, it makes two kinds of 1-byte
// reads of its own, into byteBuf; a byte that arrives is kept for the next
// Read.
//
// The background read: while a handler runs and the request body has been
// read to its end, a read is kept pending on rwc on a goroutine of its own,
// so that a client that goes away cancels the request context (and fires
// CloseNotify); a byte that arrives is a pipelined request, and cancels
// nothing. This is net/http's design, with one difference: the read starts
// only once the handler can observe it, when it looks at its request
// context (Done, Err) or calls CloseNotify (see reqContext). A handler
// that does neither cannot tell a cancellation from none, and its request
// costs no goroutine, no read that finds nothing and no wake-up.
//
// The idle read: between requests, the connection's own goroutine waits
// for the next request's first byte with a read under the idle deadline,
// which the drain can move from another goroutine (see waitIdle and
// drainIdle). A background read still under way when the handler returns
// serves as that wait instead.
type connReader struct {
	h   *h1conn
	rwc net.Conn

	// mu guards the fields below it; cond signals the end of a
	// background read.
	mu       sync.Mutex
	cond     sync.Cond
	released bool // the hijacking handler returned: reads pass through
	stopped  bool // no background read starts any more
	inRead   bool // a Read, background, idle or not, is under way
	bgRead   bool // the read under way is the background read
	aborted  bool // abortPendingRead set a past deadline
	hasByte  bool
	byteBuf  [1]byte
	readErr  error // the error that ended the last background or idle read

	// The handler running, if any, and whether the background read may
	// start for it: armed once its body has been read to its end (or it
	// has none), watched once it has looked for the client going away.
	cur     *response
	armed   bool
	watched bool

	// The idle read, while idle is set (see waitIdle): idleLimit is the
	// read deadline in force, which drainLocked may bring forward, and
	// draining is set once it has.
	idle      bool
	idleFirst bool // the wait for the connection's first request
	draining  bool
	idleStart time.Time
	idleLimit time.Time
}

func (cr *connReader) init(h *h1conn) {
	cr.h = h
	cr.rwc = h.rwc
	cr.cond.L = &cr.mu
}

// startHandler records that w's handler is about to run. A request without
// a body arms the background read at once.
func (cr *connReader) startHandler(w *response) {
	cr.mu.Lock()
	cr.cur = w
	cr.armed, cr.watched = false, false
	cr.mu.Unlock()
	if w.body == nil {
		cr.startBackgroundRead()
	}
}

// endHandler records that the handler has returned: no background read
// starts for it any more. One under way goes on, and will be the wait for
// the next request.
func (cr *connReader) endHandler() {
	cr.mu.Lock()
	cr.cur = nil
	cr.armed, cr.watched = false, false
	cr.mu.Unlock()
}

// startBackgroundRead arms the background read: the request body has
// been read to its end, or there is none. Called by the owner, or by
// whichever goroutine read the request body to its end. The read deadline
// is cleared, as the background read runs without one; the read itself
// starts now if the handler has already looked for the client going away,
// else when it does (watch).
func (cr *connReader) startBackgroundRead() {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.inRead {
		panic("invalid concurrent Body.Read call")
	}
	if cr.cur == nil || cr.armed || cr.released || cr.stopped {
		return
	}
	cr.armed = true
	cr.h.dl.setRead(time.Time{})
	if cr.watched {
		cr.startLocked()
	}
}

// watch records that w's handler looks for the client going away (it
// called its request context's Done or Err, or CloseNotify), and starts
// the background read if it is armed. Safe for concurrent use; a call for
// a request whose handler has returned does nothing.
func (cr *connReader) watch(w *response) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.cur != w || cr.watched {
		return
	}
	cr.watched = true
	if cr.armed {
		cr.startLocked()
	}
}

// settleWait bounds watchSettled's wait for a background read that has
// bytes to read: only a TLS record still arriving keeps it that long.
const settleWait = 50 * time.Millisecond

// watchSettled is watch for the request context's Done and Err: when the
// background read it starts has something to read already (the client
// closed, or sent more, before the handler first looked), it waits for
// that read to end, briefly (settleWait), so that the context is already
// cancelled for a client gone before the handler looked, as under
// net/http, whose background read runs from the handler's start. The cost
// when nothing waits: a non-blocking peek at the socket, or two.
func (cr *connReader) watchSettled(w *response) {
	cr.watch(w)
	cr.mu.Lock()
	reading := cr.cur == w && cr.bgRead
	cr.mu.Unlock()
	if !reading {
		return
	}
	if nc := cr.h.c.netConn(); !inputWaiting(nc) && !peerClosed(nc) {
		return
	}
	var late bool
	t := time.AfterFunc(settleWait, func() {
		cr.mu.Lock()
		late = true
		cr.mu.Unlock()
		cr.cond.Broadcast()
	})
	defer t.Stop()
	cr.mu.Lock()
	defer cr.mu.Unlock()
	for cr.cur == w && cr.bgRead && !late {
		cr.cond.Wait()
	}
}

// startLocked starts a background read on a goroutine of its own, unless a
// read is under way or a byte is waiting already. It requires that cr.mu
// is held.
func (cr *connReader) startLocked() {
	if cr.inRead || cr.hasByte || cr.released || cr.stopped {
		return
	}
	cr.inRead, cr.bgRead = true, true
	go cr.backgroundRead()
}

// stop ends the background reads: none starts afterwards. One under way
// ends when the connection is closed, or hijacked (abortPendingRead).
func (cr *connReader) stop() {
	cr.mu.Lock()
	cr.stopped = true
	cr.mu.Unlock()
}

// rawCount returns the bytes read so far under the TLS layer, when
// ServeTLS counts them (see countConn), else 0.
func (cr *connReader) rawCount() uint64 {
	if raw := cr.h.c.raw; raw != nil {
		return raw.n.Load()
	}
	return 0
}

func (cr *connReader) backgroundRead() {
	before := cr.rawCount()
	n, err := cr.rwc.Read(cr.byteBuf[:])
	cr.mu.Lock()
	cr.endReadLocked(n, err, before)
	cr.mu.Unlock()
	cr.cond.Broadcast()
}

// endReadLocked records the end of a background or idle read that read n
// bytes into byteBuf and returned err, the raw byte count having been
// before when it started. It requires that cr.mu is held.
func (cr *connReader) endReadLocked(n int, err error, before uint64) {
	if n == 1 {
		cr.hasByte = true
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() && (cr.aborted || cr.h.c.raw != nil && cr.rawCount() != before || inputWaiting(cr.h.c.netConn())) {
		// Stopped by abortPendingRead, or a TLS record was arriving
		// when the deadline passed (see countConn): crypto/tls keeps
		// what it has of the record, and the next read goes on with
		// it; or bytes wait unread in the socket, which a read whose
		// deadline had already passed (the drain's, set in the past)
		// does not look at. A request is arriving: not an idle
		// connection.
	} else if err != nil {
		cr.readErr = err
		cr.handleReadErrorLocked()
	}
	cr.aborted = false
	cr.inRead, cr.bgRead = false, false
}

// abortPendingRead stops a background read and waits for it to end.
func (cr *connReader) abortPendingRead() {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if !cr.bgRead {
		return
	}
	cr.aborted = true
	cr.h.dl.setRead(time.Unix(1, 0))
	for cr.bgRead {
		cr.cond.Wait()
	}
	cr.h.dl.setRead(time.Time{})
}

// release makes reads pass straight through, once a handler that
// hijacked the connection has returned.
func (cr *connReader) release() {
	cr.mu.Lock()
	cr.released = true
	cr.mu.Unlock()
}

// handleReadErrorLocked cancels the connection (and so the request, see
// cancelConn) when a read from the client fails. It requires that cr.mu is held.
func (cr *connReader) handleReadErrorLocked() {
	if cr.released {
		return
	}
	cr.h.cancel()
	if w := cr.h.cur.Load(); w != nil {
		w.closeNotify()
	}
}

func (cr *connReader) Read(p []byte) (int, error) {
	cr.mu.Lock()
	if cr.released {
		cr.mu.Unlock()
		return cr.rwc.Read(p)
	}
	if cr.inRead {
		cr.mu.Unlock()
		if cr.h.c.hijacked.Load() {
			panic("invalid Body.Read call. After hijacked, the original Request must not be used")
		}
		panic("invalid concurrent Body.Read call")
	}
	if len(p) == 0 {
		cr.mu.Unlock()
		return 0, nil
	}
	if cr.hasByte {
		p[0] = cr.byteBuf[0]
		cr.hasByte = false
		cr.mu.Unlock()
		return 1, nil
	}
	cr.inRead = true
	cr.mu.Unlock()
	n, err := cr.h.dl.read(p)
	cr.mu.Lock()
	cr.inRead = false
	if err != nil {
		cr.handleReadErrorLocked()
	}
	cr.mu.Unlock()
	cr.cond.Broadcast()
	return n, err
}

// keepAlives reports whether the connection may be kept open for another
// request: keep-alives are on for the server, and the server has not
// taken this connection back (reclaimed).
func (h *h1conn) keepAlives() bool {
	return h.srv.doKeepAlives() && !h.reclaimed.Load()
}

// h1exchange is one request's response and request context, allocated
// together.
type h1exchange struct {
	w   response
	ctx reqContext
}

// reqContext is the context of an HTTP/1 request: its cancelCtx, which it
// delegates to, and the response, so that a handler that looks at the
// context (Done, Err, and so context.WithCancel and AfterFunc on it, which
// call Done) starts the background read that cancels it when the client
// goes away (see connReader); when the client has closed already, the
// first look waits briefly for that read (watchSettled), so that it sees
// the cancellation as under net/http. Value reaches the cancelCtx, so that
// contexts derived from it attach to it directly, without a goroutine.
type reqContext struct {
	context.Context // the request's cancelCtx
	w               *response
	watched         atomic.Bool
}

func (c *reqContext) Done() <-chan struct{} {
	c.watch()
	return c.Context.Done()
}

func (c *reqContext) Err() error {
	c.watch()
	return c.Context.Err()
}

func (c *reqContext) watch() {
	if !c.watched.Load() {
		c.watched.Store(true)
		c.w.h.cr.watchSettled(c.w)
	}
}

func (c *reqContext) String() string { return contextName(c.Context) }

// contextName names a context as the context package does.
func contextName(c context.Context) string {
	if s, ok := c.(interface{ String() string }); ok {
		return s.String()
	}
	return "context"
}
