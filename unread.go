package httpsrv

import (
	"io"
	"net/http"
)

// The unread-body policy: what the server does with request body bytes
// the handler did not read, before it answers, after the handler returns,
// and when it closes the connection (net/http's response.WriteHeader and
// chunkWriter.writeHeader discard, body.Close's early close,
// requestTooLarge and conn.closeWriteAndWait).

// unreadBodyBeforeHead applies the policy as the head is about to be
// written, as net/http's chunkWriter.writeHeader does. A 100-continue body
// not read to its end closes the connection: the next bytes may be the
// rest of it. Otherwise, unless the connection closes anyway or the
// handler enabled full duplex, the unread body is discarded, up to
// maxPostHandlerReadBytes, because clients that send the whole request
// before reading the response can deadlock on it; more than that is
// requestTooLarge. It reports whether the head must say Connection: close
// because of the body.
func (w *response) unreadBodyBeforeHead() bool {
	if w.expectContinue && !w.rb.eof.Load() {
		w.closeAfterReply = true
	}
	if w.req.ContentLength != 0 && !w.closeAfterReply && !w.fullDuplex && w.discardUnreadBody() {
		w.requestTooLarge()
		return true
	}
	return false
}

// requestTooLarge is net/http's response.requestTooLarge: the unread
// body is too large to discard, so the connection closes after the
// response, and closeWriteAndWait keeps the client's unsent bytes from
// resetting it.
func (w *response) requestTooLarge() {
	w.closeAfterReply = true
	w.bodyLimitHit = true
}

// maybeBodyLimitHit treats a 413 written after the handler read part of
// the body, but not its end, as an http.MaxBytesReader limit: net/http's
// MaxBytesReader tells the server through an unexported method that a
// handler outside net/http cannot reach, and a 413 after a partial read
// is the sign left. As in net/http, the connection then closes after the
// response with "Connection: close". A 413 written without reading the
// body is answered as net/http answers it: the body is discarded and the
// connection kept. It requires that w.mu is held and the head is not yet
// written.
func (w *response) maybeBodyLimitHit() {
	if w.body == nil || !w.rb.started.Load() || w.rb.eof.Load() || w.body.sawEOF() {
		return
	}
	w.requestTooLarge()
	w.Header().Set("Connection", "close")
}

// finishBody applies the policy once the handler has returned, as
// net/http's body.Close with early close does: whatever the connection's
// fate, up to maxPostHandlerReadBytes more of the body is read and
// discarded, so that the connection can serve the next request, or, if it
// closes, closes with nothing unread (unread bytes make the kernel reset
// the connection, and the client may lose the end of the response). A
// 100-continue body the client was never asked for is not waited for, and
// a body past the limit is not read. It requires that w.mu is held.
func (w *response) finishBody() {
	if w.body == nil {
		return
	}
	switch {
	case w.rb.eof.Load() || w.body.sawEOF():
	case w.bodyLimitHit || w.h.werr.Load():
		w.closedBodyEarly = true
	case w.expectContinue && !w.sentContinue.Load():
		w.closedBodyEarly = true
	case w.body.remaining() > maxPostHandlerReadBytes || !w.body.drain(maxPostHandlerReadBytes):
		w.closedBodyEarly = true
	}
	w.body.Close()
}

// lingerOnClose reports whether the client may have sent bytes the server
// has not read when the connection closes after w (nil when no response
// was started): then closeWriteAndWait closes it, so that those bytes do
// not reset the connection under the response. That is the case when the
// body was not read to its end, when request bytes are buffered, and when
// the server closes a connection the client meant to keep, since it may
// have pipelined requests that are still arriving (RFC 9112 §9.6).
func (h *h1conn) lingerOnClose(w *response) bool {
	if w != nil && (w.bodyLimitHit || w.closedBodyEarly || (!w.wantsClose && (w.is11 || w.wants10KeepAlive))) {
		return true
	}
	if h.bufr != nil && h.bufr.Buffered() > 0 {
		return true
	}
	h.cr.mu.Lock()
	defer h.cr.mu.Unlock()
	return h.cr.hasByte
}

// discardUnreadBody reads and discards what the handler left of the
// request body, up to maxPostHandlerReadBytes, and reports whether there
// was too much. A body that cannot be read to its end closes the
// connection.
func (w *response) discardUnreadBody() (tooBig bool) {
	if w.body != nil && w.req.Body == &w.rb {
		if w.expectContinue {
			return false // read to its end, or the conn is closing
		}
		if w.rb.closed.Load() || w.body.unfinishable() {
			if !w.rb.eof.Load() && !w.body.sawEOF() {
				w.closeAfterReply = true
			}
			return false
		}
		if w.body.remaining() >= maxPostHandlerReadBytes {
			return true
		}
	}
	if w.body == nil {
		return false
	}
	bufp := copyBufPool.Get().(*[32 << 10]byte)
	defer copyBufPool.Put(bufp)
	left := int64(maxPostHandlerReadBytes + 1)
	for {
		p := bufp[:min(int64(len(bufp)), left)]
		n, err := w.body.Read(p)
		left -= int64(n)
		switch {
		case err == io.EOF:
			w.rb.sawEOF()
			if w.body.Close() != nil {
				w.closeAfterReply = true
			}
			w.rb.closed.Store(true)
			return false
		case err == http.ErrBodyReadAfterClose:
			return false
		case err != nil:
			w.closeAfterReply = true
			return false
		case left <= 0:
			return true
		}
	}
}

// closeWriteAndWait flushes the response, half-closes the connection and
// then waits, up to rstAvoidanceDelay, for the client to close its side,
// so that unread request bytes do not make the kernel reset the connection
// before the client has read the response. net/http sleeps for the whole
// delay; reading returns as soon as the client is done.
func (h *h1conn) closeWriteAndWait() {
	if h.bufw != nil {
		h.bufw.Flush()
	}
	h.cr.abortPendingRead()
	if cw, ok := h.rwc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	h.dl.readAfter(rstAvoidanceDelay)
	buf := copyBufPool.Get().(*[32 << 10]byte)
	defer copyBufPool.Put(buf)
	for {
		if _, err := h.rwc.Read(buf[:]); err != nil {
			return
		}
	}
}
