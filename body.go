package httpsrv

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
)

// Errors of the chunked decoder, worded as net/http's internal/chunked.go.
var (
	errChunkLineTooLong   = errors.New("header line too long")
	errChunkBareLF        = errors.New("chunked line ends with bare LF")
	errChunkInvalidCR     = errors.New("invalid CR in chunked line")
	errChunkMalformed     = errors.New("malformed chunked encoding")
	errChunkTooMuchNoData = errors.New("chunked encoding contains too much non-data")
	errChunkEmptySize     = errors.New("empty hex number for chunk length")
	errChunkBadSize       = errors.New("invalid byte in chunk length")
	errChunkTooLarge      = errors.New("http chunk length too large")
	errTrailerEOF         = errors.New("http: unexpected EOF reading trailer")
	errTrailerTooLong     = errors.New("http: suspiciously long trailer after chunked body")
)

// maxChunkLine bounds a chunk-size line, as net/http does.
const maxChunkLine = 4096

// newBody returns the request body for a parsed request: http.NoBody when
// there is none, else a *body reading from br.
func newBody(br *bufio.Reader, req *http.Request, f framing) io.ReadCloser {
	switch {
	case f.chunked:
		return &body{br: br, req: req, chunked: true}
	case f.contentLength > 0:
		return &body{br: br, req: req, n: uint64(f.contentLength)}
	}
	return http.NoBody
}

// body reads a request body framed by Content-Length or chunked coding. It
// is safe for concurrent use: a handler may Read while the server closes or
// drains it.
type body struct {
	br      *bufio.Reader // immutable; the connection's reader
	req     *http.Request // immutable; receives the trailer
	chunked bool          // immutable

	mu         sync.Mutex // guards the fields below and every use of br
	n          uint64     // bytes left: of the body (Content-Length) or of the chunk (chunked)
	closed     bool       // Close was called, or the trailer was bad
	badTrailer bool       // the trailer was bad: the end of the body cannot be reached
	eof        bool       // the end of the body (and trailer) was read, or a Content-Length body hit EOF
	err        error      // sticky chunked decoder error; io.EOF at the last chunk
	checkEnd   bool       // chunked: the CRLF after a chunk's data is due
	excess     int64      // chunked: overhead beyond the allowance, as net/http counts it
}

// Read reads body data with net/http semantics.
func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.eof {
		return 0, io.EOF
	}
	if b.chunked {
		return b.readChunkedLocked(p, len(p))
	}
	return b.readLengthLocked(p)
}

// Close marks the body closed. It does not read the rest of the body; the
// server decides with drain.
func (b *body) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// sawEOF reports whether the whole body, trailer included, has been read.
func (b *body) sawEOF() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eof
}

// remaining returns the unread bytes of a Content-Length body, or -1 for a
// chunked one.
func (b *body) remaining() int64 {
	if b.chunked {
		return -1
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return int64(b.n)
}

// unfinishable reports whether the end of the body can no longer be
// reached: the trailer was bad. net/http closes such a body, and a body
// closed before its end makes chunkWriter.writeHeader close the connection
// after the response with "Connection: close".
func (b *body) unfinishable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.badTrailer
}

// drain reads and discards up to limit bytes of body data to reach the end
// of the body, trailer included. It reports whether the end was reached
// cleanly. It may be called after Close.
func (b *body) drain(limit int64) (ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.eof {
		return true
	}
	if !b.chunked {
		if b.err != nil || b.n > uint64(max(limit, 0)) {
			return false
		}
		_, err := b.readLengthLocked(nil)
		return err == io.EOF && b.eof
	}
	for b.err == nil || b.err == io.EOF {
		want := int(min(limit, 1<<20))
		if limit <= 0 {
			want = 0
		}
		n, err := b.readChunkedLocked(nil, want)
		limit -= int64(n)
		if err != nil {
			return err == io.EOF && b.eof
		}
		if n == 0 && want == 0 && b.n > 0 {
			return false // data left beyond the limit
		}
	}
	return false
}

// readLengthLocked reads a Content-Length body into p, or discards the rest
// of it when p is nil.
func (b *body) readLengthLocked(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.n == 0 {
		b.eof = true
		return 0, io.EOF
	}
	var n int
	var err error
	if p == nil {
		n, err = b.br.Discard(int(min(b.n, 1<<62)))
	} else {
		if len(p) == 0 {
			return 0, nil
		}
		if uint64(len(p)) > b.n {
			p = p[:b.n]
		}
		n, err = b.br.Read(p)
	}
	b.n -= uint64(n)
	switch {
	case b.n == 0:
		b.eof = true
		return n, io.EOF
	case err == io.EOF:
		// Like net/http's body.readLocked: the early EOF is reported
		// once, and the body then counts as read to its end.
		b.eof = true
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// readChunkedLocked decodes up to want bytes of chunked data into p, or
// discards them when p is nil. At the last chunk it reads the trailer.
func (b *body) readChunkedLocked(p []byte, want int) (n int, err error) {
	if b.err == nil {
		n = b.decodeLocked(p, want)
	}
	if b.err != io.EOF {
		return n, b.err
	}
	if !b.eof {
		if err := b.readTrailerLocked(); err != nil {
			// Like net/http (issue 12027), nothing more may be read,
			// and no request may follow on the connection.
			b.err = err
			b.closed = true
			b.badTrailer = true
			return n, err
		}
		b.eof = true
	}
	return n, io.EOF
}

// decodeLocked is net/http's chunkedReader.Read: it stops early rather than
// block when it has data, and leaves any error in b.err.
func (b *body) decodeLocked(p []byte, want int) (n int) {
	for b.err == nil {
		if b.checkEnd {
			if n > 0 && b.br.Buffered() < 2 {
				break
			}
			crlf, err := b.br.Peek(2)
			if len(crlf) < 2 {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				b.err = err
				break
			}
			b.br.Discard(2)
			if crlf[0] != '\r' || crlf[1] != '\n' {
				b.err = errChunkMalformed
				break
			}
			b.checkEnd = false
		}
		if b.n == 0 {
			if n > 0 && !b.chunkHeaderBufferedLocked() {
				break
			}
			b.beginChunkLocked()
			continue
		}
		if n == want {
			break
		}
		m := want - n
		if uint64(m) > b.n {
			m = int(b.n)
		}
		var got int
		var err error
		if p == nil {
			got, err = b.br.Discard(m)
		} else {
			got, err = b.br.Read(p[n : n+m])
		}
		n += got
		b.n -= uint64(got)
		if b.n == 0 && err == nil {
			b.checkEnd = true
		} else if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		b.err = err
	}
	return n
}

func (b *body) chunkHeaderBufferedLocked() bool {
	n := b.br.Buffered()
	if n == 0 {
		return false
	}
	peek, _ := b.br.Peek(n)
	return bytes.IndexByte(peek, '\n') >= 0
}

// beginChunkLocked reads a chunk-size line and sets b.n, or b.err (io.EOF
// for the last chunk).
func (b *body) beginChunkLocked() {
	line, err := b.br.ReadSlice('\n')
	if err != nil {
		switch err {
		case io.EOF:
			err = io.ErrUnexpectedEOF
		case bufio.ErrBufferFull:
			err = errChunkLineTooLong
		}
		b.err = err
		return
	}
	// RFC 9112 §7.1 and erratum 7633: a chunk line ends in CRLF, never a bare LF.
	if i := bytes.IndexByte(line, '\r'); i < 0 {
		b.err = errChunkBareLF
		return
	} else if i != len(line)-2 {
		b.err = errChunkInvalidCR
		return
	}
	line = line[:len(line)-2]
	if len(line) >= maxChunkLine {
		b.err = errChunkLineTooLong
		return
	}
	b.excess += int64(len(line)) + 2
	for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
		line = line[:len(line)-1]
	}
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i] // extensions are discarded
	}
	b.n, b.err = parseChunkSize(line)
	if b.err != nil {
		return
	}
	// Allow 16 bytes of overhead per chunk plus twice its data, as net/http does.
	b.excess -= 16 + 2*int64(b.n)
	b.excess = max(b.excess, 0)
	if b.excess > 16*1024 {
		b.err = errChunkTooMuchNoData
	}
	if b.n == 0 {
		b.err = io.EOF
	}
}

func parseChunkSize(v []byte) (uint64, error) {
	if len(v) == 0 {
		return 0, errChunkEmptySize
	}
	var n uint64
	for i, c := range v {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, errChunkBadSize
		}
		if i == 16 {
			return 0, errChunkTooLarge
		}
		n = n<<4 | uint64(c)
	}
	return n, nil
}

// readTrailerLocked reads the trailer section after the last chunk and
// merges it into req.Trailer, as net/http's body.readTrailer does. The
// section must end in CRLF CRLF within br's buffer.
func (b *body) readTrailerLocked() error {
	buf, err := b.br.Peek(2)
	if len(buf) == 2 && buf[0] == '\r' && buf[1] == '\n' {
		b.br.Discard(2)
		return nil
	}
	if len(buf) < 2 {
		return errTrailerEOF
	}
	if err != nil {
		return err
	}
	end := -1
	for n := 4; ; {
		buf, err := b.br.Peek(n)
		if i := bytes.Index(buf, crlfcrlf); i >= 0 {
			end = i + len(crlfcrlf)
			break
		}
		if err != nil {
			break
		}
		n = max(n+1, b.br.Buffered())
	}
	if end < 0 {
		return errTrailerTooLong
	}
	buf, _ = b.br.Peek(end)
	lr := lineReader{s: string(buf)}
	hdr, _, err := parseFields(&lr, min(bytes.Count(buf, []byte("\n")), 1000), true)
	b.br.Discard(lr.off)
	if err != nil {
		if re, ok := err.(*requestError); ok && re.err != nil {
			err = re.err // the textproto-style detail, as net/http returns it
		}
		return err
	}
	if b.req.Trailer == nil {
		b.req.Trailer = hdr
		return nil
	}
	for k, vv := range hdr {
		b.req.Trailer[k] = vv
	}
	return nil
}

var crlfcrlf = []byte("\r\n\r\n")
