package httpsrv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// response is the http.ResponseWriter of an HTTP/1 request. Its behaviour
// is that of net/http's: see nethttp-behaviour.md §4.8.
//
// A write goes handler → buf (2048 bytes) → chunk layer (writeHead
// finalises the head; chunk framing) → the connection's 4 KiB writer →
// rwc. net/http has one more layer and a bufio.Writer per response; here
// the response buffer belongs to the connection.
type response struct {
	// mu serialises the ResponseWriter's methods with finishRequest, so
	// that a goroutine the handler started, calling them after the
	// handler returned, fails with errResponseDone instead of reaching
	// connection buffers that the next request may be using.
	mu sync.Mutex

	h         *h1conn
	gen       uint64 // the request's generation in h.dl
	req       *http.Request
	body      *body       // the request body; nil if there is none
	rb        requestBody // req.Body when body is not nil
	cancelCtx func()      // cancels the request context
	now       time.Time   // when the request head was read

	handlerHeader http.Header // created on the first Header call

	wroteHeader     bool // a non-1xx status has been (logically) written
	headerSent      bool // the head has been written to the connection
	status          int
	contentLength   int64 // declared, or -1
	written         int64 // body bytes the handler wrote
	chunking        bool
	closeAfterReply bool
	fullDuplex      bool
	isHEAD          bool
	is11            bool // the request is HTTP/1.1 or later

	wants10KeepAlive bool        // HTTP/1.0 with "Connection: keep-alive"
	wantsClose       bool        // the request asked to close
	mustClose        bool        // the request's framing forbids reuse (the stricter rules)
	expectContinue   bool        // the body read sends 100 Continue first
	sentContinue     atomic.Bool // 100 Continue was sent

	bodyLimitHit    bool // the unread body was too big to discard
	closedBodyEarly bool // the body was not read to its end in time

	trailers []string // declared trailer keys

	buf []byte // the response buffer; nil after a hijack
	err error  // sticky error of the buffer layer

	handlerDone atomic.Bool

	// writeContinueMu is held while 100 Continue is written;
	// canWriteContinue says it still may be.
	writeContinueMu  sync.Mutex
	canWriteContinue atomic.Bool

	// closeNotifyMu guards the fields below it.
	closeNotifyMu        sync.Mutex
	closeNotifyCh        chan bool
	closeNotifyTriggered bool
}

// requestBody is Request.Body: the parser's body, plus the automatic
// 100 Continue on the first read and the start of the background read at
// the end of the body. It lives inside the response, so that it costs no
// allocation.
type requestBody struct {
	w       *response
	closed  atomic.Bool
	eof     atomic.Bool
	started atomic.Bool // the handler has called Read
}

func (rb *requestBody) Read(p []byte) (int, error) {
	if rb.closed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	w := rb.w
	if !rb.started.Load() {
		rb.started.Store(true)
	}
	if w.canWriteContinue.Load() {
		w.writeContinueMu.Lock()
		if w.canWriteContinue.Load() {
			w.h.bufw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			w.h.bufw.Flush()
			w.canWriteContinue.Store(false)
			w.sentContinue.Store(true)
		}
		w.writeContinueMu.Unlock()
	}
	n, err := w.body.Read(p)
	if err == io.EOF {
		rb.sawEOF()
	}
	return n, err
}

// sawEOF records that the body reached its end, and starts the background
// read the first time.
func (rb *requestBody) sawEOF() {
	rb.w.h.dl.readFloor.off()
	if !rb.eof.Swap(true) {
		rb.w.h.cr.startBackgroundRead()
	}
}

func (rb *requestBody) Close() error {
	rb.closed.Store(true)
	return rb.w.body.Close()
}

// Compile-time checks of the interfaces handlers and
// http.ResponseController look for.
var (
	_ http.ResponseWriter = (*response)(nil)
	_ http.Flusher        = (*response)(nil)
	_ http.Hijacker       = (*response)(nil)
	//lint:ignore SA1019 CloseNotifier is deprecated but still supported, as in net/http.
	_ http.CloseNotifier = (*response)(nil)
	_ io.ReaderFrom      = (*response)(nil)
	_ io.StringWriter    = (*response)(nil)
)

// errResponseDone is returned by writes to a response whose handler has
// returned. (net/http writes into a buffer another response may be
// using by then.)
var errResponseDone = errors.New("httpsrv: write to a response after its handler returned")

// Header returns the header map that WriteHeader sends.
func (w *response) Header() http.Header {
	if w.handlerHeader == nil {
		w.handlerHeader = make(http.Header)
	}
	return w.handlerHeader
}

// pkgFuncPrefix is the prefix of this package's function names.
var pkgFuncPrefix = reflect.TypeFor[response]().PkgPath() + "."

// relevantCaller returns the first caller outside net/http and this
// package (tests of this package count as callers).
func relevantCaller() runtime.Frame {
	pc := make([]uintptr, 16)
	n := runtime.Callers(1, pc)
	frames := runtime.CallersFrames(pc[:n])
	var frame runtime.Frame
	for {
		f, more := frames.Next()
		frame = f
		inPkg := strings.HasPrefix(f.Function, pkgFuncPrefix) && !strings.HasSuffix(f.File, "_test.go")
		if !inPkg && !strings.HasPrefix(f.Function, "net/http.") {
			return f
		}
		if !more {
			return frame
		}
	}
}

func (w *response) logCaller(format string) {
	caller := relevantCaller()
	w.h.srv.logf(format, caller.Function, path.Base(caller.File), caller.Line)
}

// WriteHeader sends the response head with the status code, as net/http's
// does; an invalid code panics.
func (w *response) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.handlerDone.Load() {
		return
	}
	w.writeHeader(code)
}

// writeHeader is WriteHeader; it requires that w.mu is held.
func (w *response) writeHeader(code int) {
	if w.h.c.hijacked.Load() {
		w.logCaller("http: response.WriteHeader on hijacked connection from %s (%s:%d)")
		return
	}
	if w.wroteHeader {
		w.logCaller("http: superfluous response.WriteHeader call from %s (%s:%d)")
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 101 || code > 199 {
		w.disableWriteContinue()
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		// RFC 9110 §15.2: no 1xx to an HTTP/1.0 client (net/http sends
		// them).
		if !w.is11 {
			return
		}
		bw := w.h.bufw
		w.writeStatusLine(bw, code)
		w.handlerHeader.WriteSubset(bw, excludedHeadersNoBody)
		bw.WriteString("\r\n")
		bw.Flush()
		return
	}
	if code == http.StatusRequestEntityTooLarge {
		w.maybeBodyLimitHit()
	}
	w.wroteHeader = true
	w.status = code
	// The snapshot comes first: like net/http's clone, it keeps an
	// invalid Content-Length that is deleted below.
	w.h.head.take(w)
	if cl := headerGet(w.handlerHeader, "Content-Length"); cl != "" {
		v, err := strconv.ParseInt(cl, 10, 64)
		if err == nil && v >= 0 {
			w.contentLength = v
		} else {
			w.h.srv.logf("http: invalid Content-Length of %q", cl)
			w.handlerHeader.Del("Content-Length")
		}
	}
}

var excludedHeadersNoBody = map[string]bool{"Content-Length": true, "Transfer-Encoding": true}

func (w *response) disableWriteContinue() {
	w.writeContinueMu.Lock()
	w.canWriteContinue.Store(false)
	w.writeContinueMu.Unlock()
}

func bodyAllowedForStatus(status int) bool {
	switch {
	case status >= 100 && status <= 199, status == 204, status == 304:
		return false
	}
	return true
}

// Write writes the data as part of the response body.
func (w *response) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.write(len(p), p, "")
}

// WriteString writes s as part of the response body.
func (w *response) WriteString(s string) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.write(len(s), nil, s)
}

func (w *response) write(n int, p []byte, s string) (int, error) {
	if w.h.c.hijacked.Load() {
		if n > 0 {
			w.logCaller("http: response.Write on hijacked connection from %s (%s:%d)")
		}
		return 0, http.ErrHijacked
	}
	if w.handlerDone.Load() {
		return 0, errResponseDone
	}
	if w.canWriteContinue.Load() {
		w.disableWriteContinue()
	}
	if !w.wroteHeader {
		w.writeHeader(http.StatusOK)
	}
	if n == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(n)
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if p != nil {
		return w.bufWrite(p)
	}
	return w.bufWriteString(s)
}

// bufWrite writes p to the response buffer, the way bufio.Writer does: a
// write too big for an empty buffer goes straight to the chunk layer.
func (w *response) bufWrite(p []byte) (int, error) {
	nn := 0
	for len(p) > cap(w.buf)-len(w.buf) && w.err == nil {
		var n int
		if len(w.buf) == 0 {
			n, w.err = w.chunkWrite(p)
		} else {
			n = copy(w.buf[len(w.buf):cap(w.buf)], p)
			w.buf = w.buf[:len(w.buf)+n]
			w.flushBuf()
		}
		nn += n
		p = p[n:]
	}
	if w.err != nil {
		return nn, w.err
	}
	n := copy(w.buf[len(w.buf):cap(w.buf)], p)
	w.buf = w.buf[:len(w.buf)+n]
	return nn + n, nil
}

func (w *response) bufWriteString(s string) (int, error) {
	nn := 0
	for len(s) > cap(w.buf)-len(w.buf) && w.err == nil {
		n := copy(w.buf[len(w.buf):cap(w.buf)], s)
		w.buf = w.buf[:len(w.buf)+n]
		w.flushBuf()
		nn += n
		s = s[n:]
	}
	if w.err != nil {
		return nn, w.err
	}
	n := copy(w.buf[len(w.buf):cap(w.buf)], s)
	w.buf = w.buf[:len(w.buf)+n]
	return nn + n, nil
}

// flushBuf passes the response buffer to the chunk layer.
func (w *response) flushBuf() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.chunkWrite(w.buf)
	if n < len(w.buf) && err == nil {
		err = io.ErrShortWrite
	}
	if err != nil {
		if n > 0 && n < len(w.buf) {
			copy(w.buf, w.buf[n:])
		}
		w.buf = w.buf[:len(w.buf)-n]
		w.err = err
		return err
	}
	w.buf = w.buf[:0]
	return nil
}

// Flush sends any buffered data to the client.
func (w *response) Flush() { w.FlushError() }

// FlushError sends any buffered data to the client and returns the first
// error. http.ResponseController.Flush calls it.
func (w *response) FlushError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.h.c.hijacked.Load() {
		return http.ErrHijacked
	}
	if w.handlerDone.Load() {
		return errResponseDone
	}
	if !w.wroteHeader {
		w.writeHeader(http.StatusOK)
	}
	err := w.flushBuf()
	if e2 := w.chunkFlush(); err == nil {
		err = e2
	}
	return err
}

// SetReadDeadline sets the connection's read deadline, for
// http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error {
	// Not under w.mu: another goroutine's blocked Write must not delay
	// it.
	if w.handlerDone.Load() {
		return errResponseDone
	}
	return w.h.dl.handlerSetRead(w.gen, t)
}

// SetWriteDeadline sets the connection's write deadline, for
// http.ResponseController.
func (w *response) SetWriteDeadline(t time.Time) error {
	// Not under w.mu, so that it interrupts another goroutine's blocked
	// Write, as net/http's does.
	if w.handlerDone.Load() {
		return errResponseDone
	}
	return w.h.dl.handlerSetWrite(w.gen, t)
}

// EnableFullDuplex lets the handler read the request body after it has
// started the response, for http.ResponseController.
func (w *response) EnableFullDuplex() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fullDuplex = true
	return nil
}

// writerOnly hides a writer's ReadFrom method from io.Copy.
type writerOnly struct{ io.Writer }

// ReadFrom copies src into the response. On a plaintext TCP connection,
// past the first 512 bytes, a response that is neither chunked nor HEAD is
// sent with the connection's own ReadFrom (sendfile, splice), as in
// net/http; on TLS everything goes through the buffers.
func (w *response) ReadFrom(src io.Reader) (n int64, err error) {
	bufp := copyBufPool.Get().(*[32 << 10]byte)
	defer copyBufPool.Put(bufp)
	buf := bufp[:]
	rf, ok := w.h.rwc.(io.ReaderFrom)
	if !ok || w.h.c.tlsState != nil || w.h.c.hijacked.Load() {
		return io.CopyBuffer(writerOnly{w}, src, buf)
	}
	const sniffLen = 512
	if !w.headerSent {
		n0, err := io.CopyBuffer(writerOnly{w}, io.LimitReader(src, sniffLen), buf)
		n += n0
		if err != nil || n0 < sniffLen {
			return n, err
		}
	}
	n0, err, done := w.sendFrom(rf, src, buf)
	n += n0
	if !done {
		n0, err = io.CopyBuffer(writerOnly{w}, src, buf)
		n += n0
	}
	return n, err
}

// sendFrom flushes the response, as net/http's ReadFrom does before it
// decides, then, unless the response is chunked, HEAD or bodiless, sends
// the rest of src straight to the connection: with rf, the connection's
// ReadFrom, when src can go without copying, else through buf. done
// reports whether it sent.
func (w *response) sendFrom(rf io.ReaderFrom, src io.Reader, buf []byte) (n int64, err error, done bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.handlerDone.Load() {
		return 0, errResponseDone, true
	}
	if w.h.c.hijacked.Load() {
		return 0, http.ErrHijacked, true
	}
	w.flushBuf()
	w.chunkFlush()
	if w.chunking || !bodyAllowedForStatus(w.status) || w.isHEAD {
		return 0, nil, false
	}
	// A declared Content-Length bounds what is sent, and a source with
	// more gets ErrContentLength, as Write does (Go 1.27's net/http; Go
	// 1.26's sends the excess and breaks the framing).
	orig, lr, cut := src, (*io.LimitedReader)(nil), int64(0)
	if w.contentLength != -1 {
		rem := w.contentLength - w.written
		var ok bool
		if lr, ok = src.(*io.LimitedReader); ok {
			if cut = lr.N - rem; cut > 0 {
				lr.N -= cut
			} else {
				cut = 0
			}
		} else {
			src = io.LimitReader(src, rem)
		}
	}
	defer func() {
		if cut > 0 {
			lr.N += cut
		}
		if w.contentLength != -1 && w.written == w.contentLength && err == nil {
			if m, _ := orig.Read(make([]byte, 1)); m != 0 {
				err = http.ErrContentLength
			}
		}
	}()
	if zeroCopySource(src) {
		n, err = w.h.dl.readFrom(rf, src)
		if err != nil && !w.h.werr.Swap(true) {
			w.h.cancel()
		}
	} else {
		// The same bytes rf would send (as net/http, past any
		// Content-Length), through the pooled buffer instead of
		// net's generic copy; connErrorWriter records errors.
		n, err = io.CopyBuffer(writerOnly{connErrorWriter{w.h}}, src, buf)
	}
	w.written += n
	return n, err, true
}

// zeroCopySource reports whether a TCP connection's ReadFrom can send src
// without copying it through user space: a file (sendfile) or a socket
// (splice), possibly inside one *io.LimitedReader. Any other source would
// go through net's generic copy, which allocates a buffer per call; the
// response's pooled buffer serves it better.
func zeroCopySource(src io.Reader) bool {
	if lr, ok := src.(*io.LimitedReader); ok {
		src = lr.R
	}
	switch src.(type) {
	case *os.File, *net.TCPConn, *net.UnixConn:
		return true
	}
	return false
}

// Hijack lets the handler take over the connection, as net/http's does:
// both deadlines are cleared, and the returned reader holds any bytes the
// client pipelined.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.handlerDone.Load() {
		panic("net/http: Hijack called after ServeHTTP finished")
	}
	w.disableWriteContinue()
	h := w.h
	h.hijackMu.Lock()
	defer h.hijackMu.Unlock()
	if h.c.hijacked.Load() {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader {
		w.chunkFlush()
	}
	h.cr.abortPendingRead()
	h.cr.stop()
	h.c.hijacked.Store(true)
	rwc := h.rwc
	if pc, ok := rwc.(*prefaceConn); ok && pc.drained() {
		// The handler gets the accepted connection, as under net/http.
		rwc = pc.Conn
	}
	h.dl.hijacked()
	h.cr.mu.Lock()
	hasByte := h.cr.hasByte
	h.cr.mu.Unlock()
	if hasByte {
		if _, err := h.bufr.Peek(h.bufr.Buffered() + 1); err != nil {
			return nil, nil, fmt.Errorf("unexpected Peek failure reading buffered byte: %v", err)
		}
	}
	h.bufw.Reset(rwc)
	rw := bufio.NewReadWriter(h.bufr, h.bufw)
	h.c.setState(http.StateHijacked, runHooks)
	w.buf = nil
	if h.respBuf != nil {
		respBufPool.Put(h.respBuf)
		h.respBuf = nil
	}
	return rwc, rw, nil
}

// CloseNotify returns a channel that receives true when the client goes
// away.
//
// Deprecated: use the request context. It is kept because
// http.CloseNotifier still is.
func (w *response) CloseNotify() <-chan bool {
	// Starts the background read. Not under closeNotifyMu, which a
	// failing read takes under the connReader's lock.
	w.h.cr.watch(w)
	w.closeNotifyMu.Lock()
	defer w.closeNotifyMu.Unlock()
	if w.handlerDone.Load() {
		panic("net/http: CloseNotify called after ServeHTTP finished")
	}
	if w.closeNotifyCh == nil {
		w.closeNotifyCh = make(chan bool, 1)
		if w.closeNotifyTriggered {
			w.closeNotifyCh <- true
		}
	}
	return w.closeNotifyCh
}

func (w *response) closeNotify() {
	w.closeNotifyMu.Lock()
	defer w.closeNotifyMu.Unlock()
	if w.closeNotifyTriggered {
		return
	}
	w.closeNotifyTriggered = true
	if w.closeNotifyCh != nil {
		w.closeNotifyCh <- true
	}
}

// sendExpectationFailed answers an Expect other than 100-continue.
func (w *response) sendExpectationFailed() {
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusExpectationFailed)
	w.finishRequest()
	w.h.closeWriteAndWait()
}

// finishRequest completes the response after the handler returned. Later
// calls of the ResponseWriter's methods fail with errResponseDone.
func (w *response) finishRequest() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.handlerDone.Store(true)
	if !w.wroteHeader {
		w.writeHeader(http.StatusOK)
	}
	w.flushBuf()
	w.closeChunks()
	w.h.bufw.Flush()
	w.finishBody()
	if w.req.MultipartForm != nil {
		w.req.MultipartForm.RemoveAll()
	}
	w.buf = nil
}

// shouldReuseConnection reports whether the connection may serve another
// request. Call it only after the handler returned.
func (w *response) shouldReuseConnection() bool {
	if w.closeAfterReply {
		return false
	}
	if !w.isHEAD && w.contentLength != -1 && bodyAllowedForStatus(w.status) && w.contentLength != w.written {
		return false
	}
	if w.h.werr.Load() {
		return false
	}
	return !w.closedBodyEarly
}

// dateCache holds the Date value of one second; a new one replaces it when
// the second changes, so the format runs once a second, not per response.
type dateCache struct {
	sec int64
	b   [len(http.TimeFormat)]byte
}

var currentDate atomic.Pointer[dateCache]

// appendDate appends now as an HTTP date.
func appendDate(dst []byte, now time.Time) []byte {
	sec := now.Unix()
	d := currentDate.Load()
	if d == nil || d.sec != sec {
		d = &dateCache{sec: sec}
		now.UTC().AppendFormat(d.b[:0], http.TimeFormat)
		currentDate.Store(d)
	}
	return append(dst, d.b[:]...)
}
