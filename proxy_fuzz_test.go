package httpsrv

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// addrConn is a net.Conn with the addresses of a TCP connection, over
// net.Pipe.
type addrConn struct {
	net.Conn
	remote, local net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }
func (c addrConn) LocalAddr() net.Addr  { return c.local }

// FuzzProxyHeader runs the path from a connection's first bytes to its
// RemoteAddr in memory (net.Pipe), from a trusted or untrusted peer, with
// or without Required, and checks it against go-proxyproto's own parse of
// the same bytes: no panic; a connection served either carries no header
// (RemoteAddr is the peer's, every byte passes through) or the header's
// source is its RemoteAddr (the peer's for LOCAL, UNKNOWN and non-TCP
// families) and the bytes after the header pass through intact; a header
// from an untrusted peer is never believed; a valid header from a trusted
// peer is never refused.
//
//	go test -run='^$' -fuzz=FuzzProxyHeader -fuzztime=5m .
func FuzzProxyHeader(f *testing.F) {
	v2 := string(proxyproto.SIGV2)
	seeds := []string{
		"",
		"\x16\x03\x01\x00\x05hello",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\n\r\n",
		"\r\nGET / HTTP/1.1\r\n\r\n",
		"PROXY TCP4 203.0.113.7 198.51.100.1 51000 443\r\n\x16\x03\x01",
		"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\nGET / HTTP/1.1\r\n\r\n",
		"PROXY UNKNOWN\r\n",
		"PROXY UNKNOWN ffff:f::f ffff:f::f 65535 65535\r\nrest",
		"PROXY TCP4 999.0.0.1 1.2.3.4 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
		"PROXY TCP4 " + strings.Repeat("1", 120),
		"PROX",
		v2[:5],
		v2 + "\x21\x11\x00\x0c\xcb\x00\x71\x07\xc6\x33\x64\x01\xc7\x38\x01\xbb\x16\x03",
		v2 + "\x21\x11\x00\x1c\xcb\x00\x71\x07\xc6\x33\x64\x01\xc7\x38\x01\xbb\x02\x00\x03abc\x05\x00\x02id\x04\x00\x01\x00" + "after",
		v2 + "\x21\x21\x00\x24" + strings.Repeat("\x20", 32) + "\x01\xbb\x01\xbb",
		v2 + "\x20\x00\x00\x00",
		v2 + "\x20\x11\x00\x00tail",
		v2 + "\x21\x12\x00\x0c" + strings.Repeat("\x01", 12),
		v2 + "\x21\x31\x00\xd8" + strings.Repeat("a", 216),
		v2 + "\x21\x11\x00\x0e" + strings.Repeat("\x01", 12) + "\x02\x00",
		v2 + "\x21\x11\xff\xff",
		v2 + "\x2f\x11\x00\x0c",
	}
	for _, s := range seeds {
		for _, trusted := range []bool{true, false} {
			f.Add([]byte(s), trusted, trusted && strings.HasPrefix(s, "P"))
		}
	}
	peer := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1).To4(), Port: 1234}
	local := &net.TCPAddr{IP: net.IPv4(198, 51, 100, 1).To4(), Port: 443}
	trustedPolicy := &proxyPolicy{trusted: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, timeout: 10 * time.Second}
	untrustedPolicy := &proxyPolicy{trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, timeout: 10 * time.Second}

	f.Fuzz(func(t *testing.T, data []byte, trusted, required bool) {
		policy := *untrustedPolicy
		if trusted {
			policy = *trustedPolicy
		}
		policy.required = required
		server, client := net.Pipe()
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			if len(data) > 0 {
				client.Write(data)
			}
			client.Close()
		}()
		pc := &proxyConn{Conn: addrConn{Conn: server, remote: peer, local: local}, policy: &policy}
		herr := pc.readHeader(0)
		var after []byte
		if herr == nil {
			var err error
			after, err = io.ReadAll(pc)
			if err != nil {
				t.Fatalf("reading past the header: %v", err)
			}
		}
		server.Close()
		<-wrote

		// The oracle: go-proxyproto's parse of the same bytes, read in the
		// same pieces (net.Pipe hands a reader what fits its buffer).
		src := bytes.NewReader(data)
		br := bufio.NewReaderSize(src, 256)
		h, oerr := proxyproto.Read(br)
		consumed := len(data) - br.Buffered() - src.Len()
		var tlvErr error
		if oerr == nil && h != nil {
			_, tlvErr = h.TLVs()
		}
		tcpProxy := oerr == nil && h != nil && h.Command.IsProxy() &&
			(h.TransportProtocol == proxyproto.TCPv4 || h.TransportProtocol == proxyproto.TCPv6)

		if herr != nil {
			if herr.kind == proxyTimeout || herr.kind == proxyClosed {
				t.Fatalf("refused with %v on input that ended: %v", herr.kind, herr)
			}
			if oerr == nil && h != nil {
				if !trusted && herr.kind != proxyUntrusted {
					t.Fatalf("valid header from an untrusted peer refused as %v, want untrusted: %v", herr.kind, herr)
				}
				if trusted && tlvErr == nil {
					t.Fatalf("valid header %+v from a trusted peer refused: %v", h, herr)
				}
			}
			if herr.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}

		// Served.
		ra := pc.RemoteAddr()
		if ra == nil {
			t.Fatal("nil RemoteAddr")
		}
		switch {
		case oerr == nil && h != nil:
			if !trusted {
				t.Fatalf("header %+v believed from an untrusted peer", h)
			}
			if tlvErr != nil {
				t.Fatalf("header with bad TLVs served: %v", tlvErr)
			}
			if pc.info == nil {
				t.Fatal("header served without ProxyInfo")
			}
			want := peer.String()
			if tcpProxy {
				want = h.SourceAddr.String()
			}
			if got := ra.String(); got != want {
				t.Fatalf("RemoteAddr %q, want %q (header %+v)", got, want, h)
			}
			if got := pc.info.Source.String(); got != want {
				t.Fatalf("ProxyInfo.Source %q, want %q", got, want)
			}
			if pc.info.Local == tcpProxy {
				t.Fatalf("ProxyInfo.Local %v for header %+v", pc.info.Local, h)
			}
			if !bytes.Equal(after, data[consumed:]) {
				t.Fatalf("bytes after the header: got %q, want %q", after, data[consumed:])
			}
		case errors.Is(oerr, proxyproto.ErrNoProxyProtocol):
			if trusted && required && len(data) > 0 {
				t.Fatal("served without a header from a trusted peer while Required")
			}
			if pc.info != nil || ra.String() != peer.String() {
				t.Fatalf("no header, but RemoteAddr %v, info %+v", ra, pc.info)
			}
			if !bytes.Equal(after, data) {
				t.Fatalf("bytes passed through: got %q, want %q", after, data)
			}
		default:
			t.Fatalf("served input that go-proxyproto rejects: %v", oerr)
		}
	})
}
