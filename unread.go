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

// discardUnreadBody reads and discards what the handler left of the
// request body, up to maxPostHandlerReadBytes, and reports whether there
// was too much. A body that cannot be read to its end closes the
// connection.
func (w *response) discardUnreadBody() (tooBig bool) {
	if w.body != nil && w.req.Body == &w.rb {
		if w.expectContinue {
			return false // read to its end, or the conn is closing
		}
		if w.rb.closed.Load() {
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
