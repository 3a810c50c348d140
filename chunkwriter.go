package httpsrv

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The chunk layer of the HTTP/1 ResponseWriter, net/http's chunkWriter:
// it writes the head before the first body bytes (writeHead decides the
// framing and the fields the server adds, as chunkWriter.writeHeader
// does), frames the body in chunks when chunking, and ends it with the
// last chunk and the trailers.

// chunkWrite writes p to the connection, after the head, in a chunk when
// chunking. A failed write closes the connection.
func (w *response) chunkWrite(p []byte) (n int, err error) {
	if !w.headerSent {
		w.writeHead(p)
	}
	if w.isHEAD {
		return len(p), nil
	}
	bw := w.h.bufw
	if w.chunking {
		b := strconv.AppendInt(w.h.scratch[:0], int64(len(p)), 16)
		b = append(b, '\r', '\n')
		if _, err = bw.Write(b); err != nil {
			w.h.c.closeRWC()
			return 0, err
		}
	}
	n, err = bw.Write(p)
	if w.chunking && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.h.c.closeRWC()
	}
	return n, err
}

// chunkFlush writes the head if needed and flushes the connection writer.
func (w *response) chunkFlush() error {
	if !w.headerSent {
		w.writeHead(nil)
	}
	return w.h.bufw.Flush()
}

// closeChunks writes the head if needed, and the last chunk with the
// trailers when chunking.
func (w *response) closeChunks() {
	if !w.headerSent {
		w.writeHead(nil)
	}
	if !w.chunking {
		return
	}
	bw := w.h.bufw
	bw.WriteString("0\r\n")
	if t := w.finalTrailers(); t != nil {
		t.Write(bw)
	}
	bw.WriteString("\r\n")
}

// finalTrailers returns the trailers the handler set, read after it
// returned: the declared keys and the TrailerPrefix ones.
func (w *response) finalTrailers() http.Header {
	var t http.Header
	for k, vv := range w.handlerHeader {
		if kk, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if t == nil {
				t = make(http.Header)
			}
			t[kk] = vv
		}
	}
	for _, k := range w.trailers {
		if t == nil {
			t = make(http.Header)
		}
		for _, v := range w.handlerHeader[k] {
			t.Add(k, v)
		}
	}
	return t
}

// headFields are the fields the server adds to a response head.
type headFields struct {
	setCL      bool   // write Content-Length: w.contentLength
	ctype      string // Content-Type, sniffed
	connection string // Connection
	te         string // Transfer-Encoding
}

// writeHead decides the framing and the server-added fields, and writes
// the head to the connection writer. p is the first part of the body,
// used to sniff Content-Type and, when the handler is done, to set
// Content-Length. The decisions and their order are net/http's
// chunkWriter.writeHeader.
func (w *response) writeHead(p []byte) {
	w.headerSent = true
	var f headFields
	hs := &w.h.head
	if w.handlerDone.Load() && !hs.hasTrailers && hs.get(hkTransferEncoding) == "" && bodyAllowedForStatus(w.status) &&
		!hs.has(hkContentLength) && (!w.isHEAD || len(p) > 0) {
		w.contentLength = int64(len(p))
		f.setCL = true
	}
	w.decideConnection(&f)
	w.decideFraming(&f, p)
	w.writeHeadFields(&f)
}

// decideConnection decides whether the connection closes after the
// response, and the Connection field that says so, before the framing is
// known: net/http's keep-alive rules, then the unread body.
func (w *response) decideConnection(f *headFields) {
	hs := &w.h.head
	keepAlives := w.h.keepAlives()
	if w.wants10KeepAlive && keepAlives && !w.mustClose {
		if hs.get(hkContentLength) != "" && hs.get(hkConnection) == "keep-alive" {
			w.closeAfterReply = false
		}
	}
	if w.wants10KeepAlive && (w.isHEAD || w.contentLength != -1 || !bodyAllowedForStatus(w.status)) {
		if !hs.has(hkConnection) {
			f.connection = "keep-alive"
		}
	} else if !w.is11 || w.wantsClose {
		w.closeAfterReply = true
	}
	if hs.get(hkConnection) == "close" || !keepAlives {
		w.closeAfterReply = true
	}
	if w.unreadBodyBeforeHead() {
		hs.drop[hkConnection] = true
		f.connection = "close"
	}
}

// decideFraming chooses Content-Length, chunking or a close-delimited
// body, sniffs the Content-Type from p, and drops the handler's fields
// that contradict the choice.
func (w *response) decideFraming(f *headFields, p []byte) {
	h := w.h
	hs := &h.head
	keepAlives := h.keepAlives()
	status := w.status
	declTE := hs.get(hkTransferEncoding)
	hasTE := declTE != ""
	hasCL := w.contentLength != -1

	if bodyAllowedForStatus(status) {
		if !hs.has(hkContentType) && hs.contentEncoding == "" && !hasTE && len(p) > 0 {
			f.ctype = http.DetectContentType(p)
		}
	} else {
		if status == http.StatusNotModified {
			hs.drop[hkContentType] = true
		}
		hs.drop[hkContentLength] = true
		hs.drop[hkTransferEncoding] = true
	}

	if hasCL && hasTE && declTE != "identity" {
		h.srv.logf("http: WriteHeader called with both Transfer-Encoding of %q and a Content-Length of %d", declTE, w.contentLength)
		hs.drop[hkContentLength] = true
		f.setCL = false
		hasCL = false
	}

	switch {
	case w.isHEAD || !bodyAllowedForStatus(status):
		hs.drop[hkTransferEncoding] = true
	case hasCL:
		hs.drop[hkTransferEncoding] = true
	case w.is11:
		if declTE == "identity" {
			w.chunking = false
			w.closeAfterReply = true
			hs.drop[hkTransferEncoding] = true
		} else {
			w.chunking = true
			f.te = "chunked"
			if declTE == "chunked" {
				hs.drop[hkTransferEncoding] = true
			}
		}
	default:
		// HTTP/1.0 without a length: the close ends the body.
		w.closeAfterReply = true
		hs.drop[hkTransferEncoding] = true
	}
	if w.chunking {
		hs.drop[hkContentLength] = true
	}

	if w.closeAfterReply && (!keepAlives || !hasToken(hs.get(hkConnection), "close")) && !hs.protocolSwitch {
		hs.drop[hkConnection] = true
		if w.is11 {
			f.connection = "close"
		} else if f.connection == "keep-alive" {
			// net/http still says keep-alive here to an HTTP/1.0
			// client, then closes.
			f.connection = ""
		}
	}
}

// writeHeadFields writes the status line, the handler's fields that were
// not dropped, and the server's fields f.
func (w *response) writeHeadFields(f *headFields) {
	h := w.h
	bw := h.bufw
	w.writeStatusLine(bw, w.status)
	w.writeHandlerFields(bw)
	if !h.head.hasDate {
		bw.WriteString("Date: ")
		bw.Write(appendDate(h.scratch[:0], time.Now()))
		bw.WriteString("\r\n")
	}
	if f.setCL {
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(h.scratch[:0], w.contentLength, 10))
		bw.WriteString("\r\n")
	}
	writeField(bw, "Content-Type: ", f.ctype)
	writeField(bw, "Connection: ", f.connection)
	writeField(bw, "Transfer-Encoding: ", f.te)
	bw.WriteString("\r\n")
}

// writeField writes the field name (with its colon and space) and value v,
// unless v is empty.
func writeField(bw *bufio.Writer, name, v string) {
	if v != "" {
		bw.WriteString(name)
		bw.WriteString(v)
		bw.WriteString("\r\n")
	}
}

func (w *response) writeStatusLine(bw *bufio.Writer, code int) {
	if w.is11 {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	bw.Write(strconv.AppendInt(w.h.scratch[:0], int64(code), 10))
	if text := http.StatusText(code); text != "" {
		bw.WriteByte(' ')
		bw.WriteString(text)
	} else {
		bw.WriteString(" status code ")
		bw.Write(strconv.AppendInt(w.h.scratch[:0], int64(code), 10))
	}
	bw.WriteString("\r\n")
}

// writeHandlerFields writes the snapshot without the dropped fields.
func (w *response) writeHandlerFields(bw *bufio.Writer) {
	hs := &w.h.head
	b := hs.buf
	start := 0
	for {
		next, end := len(b), len(b)
		for k := range numHeaderKeys {
			// A field with no values has an empty span: nothing to skip.
			if hs.drop[k] && hs.present[k] && hs.span[k][0] < hs.span[k][1] && hs.span[k][0] >= start && hs.span[k][0] < next {
				next, end = hs.span[k][0], hs.span[k][1]
			}
		}
		bw.Write(b[start:next])
		if next == len(b) {
			return
		}
		start = end
	}
}
