package httpsrv

// Unencrypted HTTP/2 with prior knowledge (h2c), as net/http serves it when
// Protocols has UnencryptedHTTP2: on a plaintext connection whose first
// bytes are the HTTP/2 client preface, HTTP/2 is served instead of HTTP/1.
// See net/http's conn.maybeServeUnencryptedHTTP2.

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"golang.org/x/net/http2"
)

// nextProtoUnencryptedHTTP2 is the TLSNextProto key net/http uses for
// unencrypted HTTP/2 connections. It is not a TLS protocol.
const nextProtoUnencryptedHTTP2 = "unencrypted_http2"

// prefaceConn is the net.Conn of a plaintext connection accepted by a
// server that serves unencrypted HTTP/2. The bytes read while looking for
// the client preface are kept here and read again by the HTTP/1 engine
// when they turn out to be something else, just as net/http leaves them
// in its connection's bufio.Reader.
//
// Only the goroutine that owns the connection reads through it (the HTTP/1
// engine serializes its background read with the others), so buf and err
// need no lock.
type prefaceConn struct {
	net.Conn
	buf []byte // read from Conn, not yet consumed
	err error  // the error that ended the look for the preface
}

func (p *prefaceConn) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	if err := p.err; err != nil {
		p.err = nil
		return 0, err
	}
	return p.Conn.Read(b)
}

// NetConn returns the underlying connection, as tls.Conn's method of the
// same name does.
func (p *prefaceConn) NetConn() net.Conn { return p.Conn }

// CloseWrite half-closes the underlying connection, for the server's
// closeWriteAndWait.
func (p *prefaceConn) CloseWrite() error {
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// drained reports whether every byte read while looking for the preface
// has been read again: the underlying connection can then be used
// directly.
func (p *prefaceConn) drained() bool { return len(p.buf) == 0 && p.err == nil }

// ReadFrom lets responses use the underlying connection's ReadFrom
// (sendfile, splice) as they would without the wrapper.
func (p *prefaceConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := p.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{p.Conn}, r)
}

// SyscallConn gives socket options (see limitUnsentBytes) the underlying
// connection's descriptor.
func (p *prefaceConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := p.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, syscall.EINVAL
}

// peekPreface reads the start of the connection and reports whether it is
// the HTTP/2 client preface. Like net/http, it reads no further than the
// preface: first the 14 bytes of "PRI * HTTP/2.0", then the rest. The
// bytes read stay in p, for the HTTP/1 engine, unless they are the
// preface, which is consumed.
func (p *prefaceConn) peekPreface() bool {
	const preface = http2.ClientPreface
	var buf [len(preface)]byte
	n := 0
	fill := func(want int) bool {
		for n < want {
			m, err := p.Conn.Read(buf[n:want])
			n += m
			if err != nil {
				p.err = err
				return false
			}
		}
		return true
	}
	const firstLine = len("PRI * HTTP/2.0")
	if fill(firstLine) && bytes.Equal(buf[:firstLine], []byte(preface[:firstLine])) &&
		fill(len(preface)) && bytes.Equal(buf[:], []byte(preface)) {
		return true
	}
	p.buf = append([]byte(nil), buf[:n]...)
	return false
}

// wantsPrefaceConn reports whether a connection accepted by a server
// serving protos must be wrapped in a prefaceConn: unencrypted HTTP/2 is
// on and the connection is not TLS (net/http's test is on c.tlsState,
// which a ConnectionState method also sets).
func wantsPrefaceConn(rw net.Conn, protos http.Protocols) bool {
	if !protos.UnencryptedHTTP2() {
		return false
	}
	_, isTLS := rw.(interface{ ConnectionState() tls.ConnectionState })
	return !isTLS
}

// maybeServeUnencryptedHTTP2 serves the connection as unencrypted HTTP/2
// if it starts with the client preface and the server has an HTTP/2
// server for it, and reports whether it did; see net/http's function of
// the same name. A TLSNextProto "unencrypted_http2" function of the
// caller's takes the connection as in net/http, wrapped in a *tls.Conn
// that does no TLS; otherwise the built-in HTTP/2 server does.
func (c *conn) maybeServeUnencryptedHTTP2(ctx context.Context) bool {
	pc, ok := c.rwc.(*prefaceConn)
	if !ok {
		return false
	}
	fn, hasFn := c.srv.TLSNextProto[nextProtoUnencryptedHTTP2]
	h2 := c.srv.h2.Load()
	if !hasFn && h2 == nil {
		return false
	}
	if d := c.srv.readHeaderTimeout(); d > 0 {
		c.headDeadline = time.Now().Add(d)
	}
	phaseReadDeadline(c.rwc, c.headDeadline)
	if !pc.peekPreface() {
		// The HTTP/1 engine reads the head under the same deadline.
		return false
	}
	phaseDeadline(c.rwc, 0)
	if !hasFn {
		c.h2State.Store(1 + uint32(http.StateNew)) // see serveHTTP2
	}
	c.setState(http.StateActive, skipHooks)
	if hasFn {
		if fn != nil {
			fn(c.srv.httpServer(), unencryptedTLSConn(c.rwc), alpnHandler{ctx: ctx, c: c})
		}
		return true
	}
	c.serveUnencryptedHTTP2(ctx, h2)
	return true
}

// unencryptedTLSConn wraps a plaintext connection in a *tls.Conn, the type
// TLSNextProto functions take, as net/http does: no TLS is done on it, and
// HTTP/2 servers find the connection through the UnencryptedNetConn method
// of its NetConn.
func unencryptedTLSConn(c net.Conn) *tls.Conn {
	return tls.Client(unencryptedNetConnInTLSConn{conn: c}, nil)
}

// unencryptedNetConnInTLSConn carries the plaintext connection. Its other
// net.Conn methods panic, so that no one uses it as a TLS transport.
type unencryptedNetConnInTLSConn struct {
	net.Conn // nil
	conn     net.Conn
}

func (c unencryptedNetConnInTLSConn) UnencryptedNetConn() net.Conn { return c.conn }
