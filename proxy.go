package httpsrv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pires/go-proxyproto"
)

// PROXY protocol.
//
// With Server.ProxyProtocol set, each accepted connection is wrapped in a
// proxyConn (by proxyListener, which does no I/O), under the TLS layer for
// ServeTLS. The connection's own goroutine reads the header first thing in
// conn.serve (serveProxyHeader), bounded by the policy's header timeout,
// before the TLS handshake; the accept loop never reads. The accept loop
// tracks the connection as StateNew without running the hook, and leaves
// ConnContext to serveProxyHeader, so that both see the client's address.
// The framing (signature, sizes, waiting for a header that arrives in
// pieces) is ours, to tell the failures apart and to reject before reading
// a header from a peer that may not send one. A version 1 line, once
// whole, is parsed by github.com/pires/go-proxyproto's Read; a version 2
// header is decoded by parseProxyV2, and its TLVs by go-proxyproto's
// SplitTLVs.

// ErrProxyPolicy is returned, wrapped with the reason, by Serve, ServeTLS,
// ListenAndServe and ListenAndServeTLS when Server.ProxyProtocol is not a
// valid policy: no entry in TrustedProxies, or an entry that is neither an
// IP address nor a CIDR prefix, has an IPv6 zone, has bits set past its
// prefix length ("10.0.0.1/8"), or is an IPv4-mapped IPv6 prefix shorter
// than /96 ("::ffff:10.0.0.0/8"); or, under Serve, a listener that returns
// *tls.Conn values, under which the header cannot be read.
var ErrProxyPolicy = errors.New("httpsrv: invalid ProxyProtocol policy")

// DefaultProxyHeaderTimeout is how long a connection may take to send its
// PROXY protocol header when ProxyPolicy.HeaderTimeout is zero (see
// HeaderTimeout for peers that need not send one).
const DefaultProxyHeaderTimeout = 5 * time.Second

// maxProxyV2Length bounds the length field of a version 2 header (the
// address block and TLVs after the 16 fixed bytes), as go-proxyproto's
// MaxV2HeaderSize does by default. The limit is ours, and version 2
// headers are decoded here (parseProxyV2), so that a program changing
// that package variable does not change this server's limit. TLVs that
// carry a client certificate take 1 to 2 KiB.
const maxProxyV2Length = 4096

// maxProxyV1Length is the longest version 1 header line, CRLF included,
// that the specification allows.
const maxProxyV1Length = 107

// ProxyPolicy configures the PROXY protocol (versions 1 and 2, as sent by
// HAProxy, AWS Network Load Balancers, and other layer 4 proxies) on a
// Server's listeners; see Server.ProxyProtocol. A header is read before
// the TLS handshake, and only believed from the peers listed in
// TrustedProxies. The policy is read when serving starts; later changes
// have no effect.
type ProxyPolicy struct {
	// TrustedProxies lists the peers allowed to send a PROXY header, each
	// an IP address ("192.0.2.10", "2001:db8::7") or a CIDR prefix
	// ("10.0.0.0/8", "2001:db8::/32"). It must not be empty: Serve and
	// ServeTLS return an error wrapping ErrProxyPolicy otherwise, or for
	// an entry that does not parse, that has bits set past its prefix
	// length ("10.0.0.1/8": write "10.0.0.0/8"), or that is an IPv4-mapped
	// IPv6 prefix shorter than /96 ("::ffff:10.0.0.0/8").
	//
	// An IPv4-mapped IPv6 peer address is matched as the IPv4 address it
	// maps, and an IPv4-mapped entry of /96 or longer as the IPv4 address
	// or prefix it maps ("::ffff:10.0.0.0/104" is "10.0.0.0/8"). So
	// "0.0.0.0/0" trusts every IPv4 peer, on IPv4 and dual-stack listeners
	// alike, and "::/0" every IPv6 peer but no IPv4 one: list both to trust
	// every peer, and only when a firewall keeps everyone else out. Peers
	// without an IP address (Unix sockets) are never trusted.
	//
	// A header from a peer not listed is never believed: the connection is
	// closed, counted in ProxyHeaderErrorCounts.Untrusted and logged. Such a
	// peer that sends no header is served as usual, with its own address,
	// since a client reaching the server directly sends none.
	TrustedProxies []string

	// Required, if true, closes connections from trusted peers that do not
	// start with a PROXY header (counted in
	// ProxyHeaderErrorCounts.Missing). If false, such a connection is
	// served with the peer's own address. A trusted peer that closes (or
	// resets) the connection before sending a byte, as a TCP health check
	// does, is not counted here nor logged as a PROXY header error; it
	// fails the TLS handshake (see Server.HandshakeErrors) as any such
	// client does.
	Required bool

	// HeaderTimeout bounds the wait for the header, which may arrive in
	// several reads. A trusted peer that must send one (Required) or that
	// has begun one and not finished it in time is closed and counted in
	// ProxyHeaderErrorCounts.Timeout; the TLS handshake timeout of a
	// connection that sent a header starts after it.
	//
	// A peer that need not send a header (one not in TrustedProxies, or a
	// trusted one while Required is false) has until the earlier of HeaderTimeout
	// and the server's own first limit (TLSHandshakeTimeout's under
	// ServeTLS and ListenAndServeTLS, ReadHeaderTimeout's under Serve) to
	// send the bytes that show whether it sends one (a TLS client's first
	// byte is enough); once a trusted peer's bytes start a header, it has
	// the rest of HeaderTimeout. A peer that sends nothing in time is no
	// PROXY header error: it is closed before ConnContext and ConnState
	// see it, counted as a TLS handshake timeout under ServeTLS (see
	// Server.HandshakeErrors) and closed without a word under Serve. Under
	// ServeTLS, the handshake timeout of a connection without a header runs
	// from the start of this wait, as it runs from accept without
	// ProxyProtocol.
	//
	// Zero means DefaultProxyHeaderTimeout; negative means no limit of
	// its own, which lets a trusted peer that must send a header, or has
	// begun one, hold its connection for ever.
	HeaderTimeout time.Duration
}

// proxyPolicy is a ProxyPolicy checked and copied when serving starts.
// Immutable.
type proxyPolicy struct {
	trusted  []netip.Prefix
	required bool
	timeout  time.Duration // zero for none
}

// compile checks p and returns the policy to serve with.
func (p *ProxyPolicy) compile() (*proxyPolicy, error) {
	if len(p.TrustedProxies) == 0 {
		return nil, fmt.Errorf("%w: TrustedProxies is empty, so no peer may send a header", ErrProxyPolicy)
	}
	pp := &proxyPolicy{required: p.Required, timeout: p.HeaderTimeout}
	switch {
	case pp.timeout == 0:
		pp.timeout = DefaultProxyHeaderTimeout
	case pp.timeout < 0:
		pp.timeout = 0
	}
	for i, s := range p.TrustedProxies {
		pfx, reason := parseTrustedProxy(s)
		if reason != "" {
			return nil, fmt.Errorf("%w: TrustedProxies[%d] %q %s", ErrProxyPolicy, i, s, reason)
		}
		pp.trusted = append(pp.trusted, pfx)
	}
	return pp, nil
}

// parseTrustedProxy parses an address or a prefix, and unmaps IPv4-mapped
// IPv6 ones, as peer addresses are. It refuses, with the reason, what
// would trust other peers than the entry names: a prefix with bits set
// past its length ("10.0.0.1/8"), and an IPv4-mapped prefix shorter than
// /96 ("::ffff:10.0.0.0/8"), which is no IPv4 prefix (masked, it is ::/8,
// and holds ::1).
func parseTrustedProxy(s string) (netip.Prefix, string) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		addr, aerr := netip.ParseAddr(s)
		switch {
		case aerr != nil:
			return netip.Prefix{}, "is neither an IP address nor a CIDR prefix"
		case addr.Zone() != "":
			return netip.Prefix{}, "has an IPv6 zone; peers are matched by address alone, so give it without the zone"
		}
		pfx = netip.PrefixFrom(addr, addr.BitLen())
	}
	if a := pfx.Addr(); a.Is4In6() {
		if pfx.Bits() < 96 {
			return netip.Prefix{}, fmt.Sprintf("is an IPv4-mapped IPv6 prefix shorter than /96, which would trust IPv6 addresses (%v), not IPv4 ones; write the IPv4 prefix, such as \"10.0.0.0/8\"", pfx.Masked())
		}
		pfx = netip.PrefixFrom(a.Unmap(), pfx.Bits()-96)
	}
	if m := pfx.Masked(); m != pfx {
		return netip.Prefix{}, fmt.Sprintf("has bits set past its prefix length, so it would trust all of %v; write that, or the address alone", m)
	}
	return pfx, ""
}

// trusts reports whether the peer at addr may send a header.
func (p *proxyPolicy) trusts(addr net.Addr) bool {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.IPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		return false
	}
	ip = ip.Unmap()
	for _, pfx := range p.trusted {
		if pfx.Contains(ip) {
			return true
		}
	}
	return false
}

// proxyListener returns l, wrapped so that its connections get their
// PROXY header read when s.ProxyProtocol is set. With the field nil it
// returns l itself: the feature costs nothing then.
func (s *Server) proxyListener(l net.Listener) (net.Listener, error) {
	if s.ProxyProtocol == nil {
		return l, nil
	}
	pp, err := s.ProxyProtocol.compile()
	if err != nil {
		return nil, err
	}
	return &proxyListener{Listener: l, policy: pp}, nil
}

// proxyListener wraps each accepted connection in a proxyConn. Accept does
// no I/O: the header is read by the connection's goroutine.
type proxyListener struct {
	net.Listener
	policy *proxyPolicy // immutable
}

func (l *proxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if _, ok := c.(*tls.Conn); ok {
		// The TLS layer is above the bytes the header is in. Under
		// ServeTLS this cannot happen: the listener is the caller's,
		// below the server's own TLS layer.
		c.Close()
		return nil, fmt.Errorf("%w: the listener given to Serve returns TLS connections, so the header cannot be read before the handshake; give the TCP listener to ServeTLS", ErrProxyPolicy)
	}
	return &proxyConn{Conn: c, policy: l.policy}, nil
}

// ProxyInfo is what a PROXY protocol header said about a connection. See
// ProxyInfoFromContext.
type ProxyInfo struct {
	// Version is the header's protocol version, 1 or 2.
	Version int

	// Local reports that the header's addresses are not used: a version 2
	// LOCAL command (a connection the proxy opened itself, such as a
	// health check), a version 1 "PROXY UNKNOWN", or an address family
	// other than TCP over IPv4 or IPv6. Source and Destination are then
	// the connection's own addresses, as the specification requires.
	Local bool

	// Source is the client's address, as Request.RemoteAddr and the
	// connection's RemoteAddr method give it.
	Source net.Addr

	// Destination is the address the client connected to (on the proxy),
	// as the connection's LocalAddr method and the request context's
	// http.LocalAddrContextKey give it.
	Destination net.Addr

	// Proxy is the address of the peer that sent the header: the TCP
	// connection's remote address.
	Proxy net.Addr

	// Authority is the value of the PP2_TYPE_AUTHORITY TLV (0x02): the
	// host name the client asked the proxy for, usually its TLS SNI.
	// Empty if absent. Version 1 headers carry no TLVs.
	Authority string

	// UniqueID is the value of the PP2_TYPE_UNIQUE_ID TLV (0x05), an
	// opaque identifier of the connection given by the proxy (up to 128
	// bytes). Nil if absent.
	UniqueID []byte

	// TLVs holds every TLV of a version 2 header, in order, the two above
	// included and PP2_TYPE_NOOP padding excluded. The package
	// github.com/pires/go-proxyproto/tlvparse decodes the SSL and cloud
	// providers' types.
	TLVs []ProxyTLV
}

// ProxyTLV is one type-length-value field of a version 2 PROXY protocol
// header.
type ProxyTLV struct {
	// Type is the TLV's type, such as 0x02 (PP2_TYPE_AUTHORITY).
	Type byte

	// Value is the TLV's value, as sent.
	Value []byte
}

// proxyInfoKey is the connection context key of the *ProxyInfo.
var proxyInfoKey = &contextKey{"proxy-info"}

// ProxyInfoFromContext returns what the PROXY protocol header of the
// connection said, from a request's context (on HTTP/1 and HTTP/2) or
// the context ConnContext receives. It reports false when the connection
// sent no header, or when Server.ProxyProtocol is nil. The slices in the
// result are shared by every request on the connection and must not be
// modified.
func ProxyInfoFromContext(ctx context.Context) (ProxyInfo, bool) {
	info, ok := ctx.Value(proxyInfoKey).(*ProxyInfo)
	if !ok || info == nil {
		return ProxyInfo{}, false
	}
	return *info, true
}

// proxyConn is an accepted connection whose PROXY header is read by
// readHeader. Until then its addresses are the TCP connection's; it never
// reads in RemoteAddr or LocalAddr, unlike go-proxyproto's Conn, which
// would block the caller (a ConnState hook, say) on the peer.
type proxyConn struct {
	net.Conn // the accepted connection; immutable

	policy *proxyPolicy // immutable

	// The fields below are set by readHeader, on the connection's
	// goroutine, before any other goroutine uses the connection. Then
	// remote, local and info are read-only, and rest is used by the
	// connection's reads only, which its engines serialize.
	rest   []byte     // bytes read past the header, not yet consumed
	remote net.Addr   // the client's address; nil for Conn's
	local  net.Addr   // the address the client connected to; nil for Conn's
	info   *ProxyInfo // nil when no header was sent
	start  time.Time  // when readHeader began
}

func (p *proxyConn) Read(b []byte) (int, error) {
	if len(p.rest) > 0 {
		n := copy(b, p.rest)
		p.rest = p.rest[n:]
		if len(p.rest) == 0 {
			p.rest = nil // let the read buffer go
		}
		return n, nil
	}
	return p.Conn.Read(b)
}

// RemoteAddr returns the client's address from the header, once read;
// otherwise the peer's.
func (p *proxyConn) RemoteAddr() net.Addr {
	if p.remote != nil {
		return p.remote
	}
	return p.Conn.RemoteAddr()
}

// LocalAddr returns the destination address from the header, once read;
// otherwise the connection's own, as go-proxyproto does.
func (p *proxyConn) LocalAddr() net.Addr {
	if p.local != nil {
		return p.local
	}
	return p.Conn.LocalAddr()
}

// NetConn returns the accepted connection, as tls.Conn's method of the
// same name does.
func (p *proxyConn) NetConn() net.Conn { return p.Conn }

// CloseWrite half-closes the accepted connection, for the server's
// closeWriteAndWait.
func (p *proxyConn) CloseWrite() error {
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom lets responses use the accepted connection's ReadFrom
// (sendfile, splice), as they would without the wrapper.
func (p *proxyConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := p.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{p.Conn}, r)
}

// SyscallConn gives socket options (see limitUnsentBytes) the accepted
// connection's descriptor.
func (p *proxyConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := p.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, syscall.EINVAL
}

// proxyConnOf returns the proxyConn under rwc, as the server's listeners
// stack it: directly, under a prefaceConn, or under a *tls.Conn and its
// countConn. It returns nil when there is none.
func proxyConnOf(rwc net.Conn) *proxyConn {
	switch c := rwc.(type) {
	case *proxyConn:
		return c
	case *prefaceConn:
		pc, _ := c.Conn.(*proxyConn)
		return pc
	case *tls.Conn:
		nc := c.NetConn()
		if cc, ok := nc.(*countConn); ok {
			nc = cc.Conn
		}
		pc, _ := nc.(*proxyConn)
		return pc
	}
	return nil
}

// proxyErrorKind is why a connection was refused at its PROXY header.
type proxyErrorKind uint8

const (
	proxyUntrusted proxyErrorKind = iota
	proxyMissing
	proxyTimeout
	proxyMalformed
	proxyTruncated
	proxyOversized
	numProxyErrorKinds

	// proxyClosed is a read that failed because the server closed the
	// connection (Close, Shutdown): neither counted nor logged.
	proxyClosed = numProxyErrorKinds

	// proxySilent is a peer that need not send a header and sent nothing
	// that could start one in time. It is no PROXY header error: ServeTLS
	// counts it as a TLS handshake timeout, as it would be counted without
	// ProxyProtocol, and Serve closes it without a word, as the HTTP/1
	// engine closes a connection that sends no request in time.
	proxySilent = numProxyErrorKinds + 1
)

// String returns the kind's name in log records.
func (k proxyErrorKind) String() string {
	switch k {
	case proxyUntrusted:
		return "untrusted"
	case proxyMissing:
		return "missing"
	case proxyTimeout:
		return "timeout"
	case proxyMalformed:
		return "malformed"
	case proxyTruncated:
		return "truncated"
	case proxyOversized:
		return "oversized"
	case proxySilent:
		return "silent"
	}
	return "closed"
}

// proxyHeaderError is why readHeader refused a connection.
type proxyHeaderError struct {
	kind proxyErrorKind
	msg  string
	err  error // the underlying error, if any
}

func (e *proxyHeaderError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *proxyHeaderError) Unwrap() error { return e.err }

// parsedProxyHeader is a PROXY header, parsed.
type parsedProxyHeader struct {
	version int
	// src and dst are the header's addresses, when it is a PROXY command
	// over TCP; otherwise nil, and the connection's own are used.
	src, dst *net.TCPAddr
	tlvs     []byte // a version 2 header's raw TLVs; nil for version 1
}

// readHeader reads the PROXY header, if the connection starts with one,
// and sets the connection's addresses from it. It returns nil when the
// connection may be served: a header from a trusted peer that parses, or
// no header where none is required. It reads nothing past the header,
// except into rest.
//
// first is the server's own limit on a connection's first phase
// (TLSHandshakeTimeout's under ServeTLS, ReadHeaderTimeout's under
// Serve), zero for none. A peer that need not send a header has until the
// earlier of it and the policy's timeout to send the bytes that show
// whether it sends one; a peer that must, or whose first bytes start a
// header, has the policy's timeout.
func (p *proxyConn) readHeader(first time.Duration) *proxyHeaderError {
	peer := p.Conn.RemoteAddr()
	trusted := p.policy.trusts(peer)
	p.start = time.Now()
	var headerDL time.Time
	if t := p.policy.timeout; t > 0 {
		headerDL = p.start.Add(t)
	}
	directDL := headerDL
	if first > 0 {
		if d := p.start.Add(first); directDL.IsZero() || d.Before(directDL) {
			directDL = d
		}
	}
	mustSend := trusted && p.policy.required
	dl := directDL
	if mustSend {
		dl = headerDL
	}
	p.Conn.SetReadDeadline(dl)
	br := bufio.NewReaderSize(p.Conn, 256)

	version, err := detectProxyHeader(br)
	switch {
	case err != nil && br.Buffered() == 0 && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)):
		// Closed before its first byte: a TCP health check, Required or
		// not. It is served as it would be without ProxyProtocol, so that
		// it fails the TLS handshake (or the HTTP/1 read) as such a
		// client does.
		version = 0
	case err != nil && !mustSend && isTimeout(err):
		return &proxyHeaderError{kind: proxySilent, msg: "no PROXY header nor other first bytes in time", err: err}
	case err != nil:
		return p.readError(err, "PROXY header signature")
	case version == 0 && mustSend:
		return &proxyHeaderError{kind: proxyMissing, msg: "no PROXY header from a trusted proxy, and ProxyProtocol.Required is set"}
	case version != 0 && !trusted:
		return &proxyHeaderError{kind: proxyUntrusted, msg: fmt.Sprintf("PROXY v%d header from a peer not in ProxyProtocol.TrustedProxies", version)}
	}
	var h *parsedProxyHeader
	if version != 0 {
		if !dl.Equal(headerDL) {
			// A header has begun: it has the policy's timeout.
			p.Conn.SetReadDeadline(headerDL)
		}
		var herr *proxyHeaderError
		if version == 1 {
			h, herr = p.readV1(br)
		} else {
			h, herr = p.readV2(br)
		}
		if herr != nil {
			return herr
		}
	}
	// Clear the deadline: the TLS handshake or the HTTP engine sets its own.
	p.Conn.SetReadDeadline(time.Time{})
	if n := br.Buffered(); n > 0 {
		p.rest, _ = br.Peek(n)
	}
	if h == nil {
		return nil
	}
	info := &ProxyInfo{Version: h.version, Proxy: peer, Source: peer, Destination: p.Conn.LocalAddr(), Local: true}
	if h.src != nil && h.dst != nil {
		info.Source, info.Destination, info.Local = h.src, h.dst, false
		p.remote, p.local = h.src, h.dst
	}
	tlvs, err := proxyproto.SplitTLVs(h.tlvs)
	if err != nil {
		return &proxyHeaderError{kind: proxyMalformed, msg: "malformed PROXY header TLVs", err: err}
	}
	for _, tlv := range tlvs {
		switch tlv.Type {
		case proxyproto.PP2_TYPE_NOOP:
			continue
		case proxyproto.PP2_TYPE_AUTHORITY:
			info.Authority = string(tlv.Value)
		case proxyproto.PP2_TYPE_UNIQUE_ID:
			info.UniqueID = tlv.Value
		}
		info.TLVs = append(info.TLVs, ProxyTLV{Type: byte(tlv.Type), Value: tlv.Value})
	}
	p.info = info
	return nil
}

// readV1 reads a version 1 header line from br, which starts with its
// signature. The line may arrive in several reads, as the specification
// recommends receivers tolerate; the read deadline bounds the wait. The
// whole line is buffered before go-proxyproto parses it, so that its
// "one read" rule holds.
func (p *proxyConn) readV1(br *bufio.Reader) (*parsedProxyHeader, *proxyHeaderError) {
	for {
		buf, _ := br.Peek(br.Buffered())
		if bytes.IndexByte(buf[:min(len(buf), maxProxyV1Length)], '\n') >= 0 {
			break
		}
		if len(buf) >= maxProxyV1Length {
			return nil, &proxyHeaderError{kind: proxyOversized, msg: fmt.Sprintf("oversized PROXY v1 header: no end of line in its first %d bytes", maxProxyV1Length)}
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, &proxyHeaderError{kind: proxyTruncated, msg: fmt.Sprintf("truncated PROXY v1 header: %d bytes without an end of line", len(buf))}
			}
			return nil, p.readError(err, "PROXY v1 header")
		}
	}
	h, err := proxyproto.Read(br)
	if err == nil && h == nil {
		err = proxyproto.ErrNoProxyProtocol // not expected after the signature
	}
	if err != nil {
		return nil, &proxyHeaderError{kind: proxyMalformed, msg: "malformed PROXY v1 header", err: err}
	}
	ph := &parsedProxyHeader{version: 1}
	if h.Command.IsProxy() && (h.TransportProtocol == proxyproto.TCPv4 || h.TransportProtocol == proxyproto.TCPv6) {
		if src, dst, ok := h.TCPAddrs(); ok && src != nil && dst != nil {
			ph.src, ph.dst = src, dst
		}
	}
	return ph, nil
}

// readV2 reads a version 2 header from br, which starts with its
// signature: the 16 fixed bytes, then as many as their length field
// announces, up to maxProxyV2Length, however many reads they take; the
// read deadline bounds the wait. The header is decoded here rather than
// by go-proxyproto, whose limit on the length is a package variable that
// another part of the program may change.
func (p *proxyConn) readV2(br *bufio.Reader) (*parsedProxyHeader, *proxyHeaderError) {
	fixed, err := br.Peek(16)
	if err != nil {
		return nil, p.readError(err, "PROXY v2 header")
	}
	n := int(binary.BigEndian.Uint16(fixed[14:]))
	if n > maxProxyV2Length {
		return nil, &proxyHeaderError{kind: proxyOversized, msg: fmt.Sprintf("oversized PROXY v2 header: %d bytes after the fixed part, limit %d", n, maxProxyV2Length)}
	}
	hdr := make([]byte, 16+n)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, p.readError(err, "PROXY v2 header")
	}
	h, err := parseProxyV2(hdr)
	if err != nil {
		return nil, &proxyHeaderError{kind: proxyMalformed, msg: "malformed PROXY v2 header", err: err}
	}
	return h, nil
}

// parseProxyV2 decodes a whole version 2 header (signature included), as
// go-proxyproto's Read does, with the same errors: the command must be
// LOCAL or PROXY, the family one the specification defines (not UNSPEC
// with PROXY), and the length at least the family's address block, except
// for LOCAL, whose too short block is skipped. Addresses are kept for a
// PROXY command over TCP only; the rest of the length is TLVs.
func parseProxyV2(hdr []byte) (*parsedProxyHeader, error) {
	cmd := proxyproto.ProtocolVersionAndCommand(hdr[12])
	if cmd != proxyproto.LOCAL && cmd != proxyproto.PROXY {
		return nil, proxyproto.ErrUnsupportedProtocolVersionAndCommand
	}
	fam := proxyproto.AddressFamilyAndProtocol(hdr[13])
	var block int // the address block's length
	switch fam {
	case proxyproto.UNSPEC:
		if cmd == proxyproto.PROXY {
			return nil, proxyproto.ErrUnsupportedAddressFamilyAndProtocol
		}
	case proxyproto.TCPv4, proxyproto.UDPv4:
		block = 12
	case proxyproto.TCPv6, proxyproto.UDPv6:
		block = 36
	case proxyproto.UnixStream, proxyproto.UnixDatagram:
		block = 216
	default:
		return nil, proxyproto.ErrUnsupportedAddressFamilyAndProtocol
	}
	body := hdr[16:]
	h := &parsedProxyHeader{version: 2}
	if len(body) < block {
		if cmd == proxyproto.LOCAL {
			return h, nil // the specification says to skip it, TLVs and all
		}
		return nil, proxyproto.ErrInvalidLength
	}
	if cmd == proxyproto.PROXY && (fam == proxyproto.TCPv4 || fam == proxyproto.TCPv6) {
		ipLen := (block - 4) / 2
		h.src = &net.TCPAddr{IP: net.IP(bytes.Clone(body[:ipLen])), Port: int(binary.BigEndian.Uint16(body[2*ipLen:]))}
		h.dst = &net.TCPAddr{IP: net.IP(bytes.Clone(body[ipLen : 2*ipLen])), Port: int(binary.BigEndian.Uint16(body[2*ipLen+2:]))}
	}
	h.tlvs = body[block:]
	return h, nil
}

// readError classifies a read error met while reading what. An EOF after
// part of a header is a truncated header.
func (p *proxyConn) readError(err error, what string) *proxyHeaderError {
	switch {
	case errors.Is(err, net.ErrClosed):
		return &proxyHeaderError{kind: proxyClosed, msg: "connection closed while reading " + what, err: err}
	case isTimeout(err):
		return &proxyHeaderError{kind: proxyTimeout, msg: fmt.Sprintf("no complete %s within %v", what, p.policy.timeout)}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return &proxyHeaderError{kind: proxyTruncated, msg: "truncated " + what, err: err}
	}
	return &proxyHeaderError{kind: proxyMalformed, msg: "reading " + what, err: err}
}

// detectProxyHeader reports which header version br starts with, or 0
// for none. It reads no more than it needs to decide: one byte unless it
// is the first of a signature. A connection closed before its first byte
// returns io.EOF; one closed in the middle of a signature returns
// io.ErrUnexpectedEOF.
func detectProxyHeader(br *bufio.Reader) (int, error) {
	first, err := br.Peek(1)
	if err != nil {
		return 0, err
	}
	var sig []byte
	switch first[0] {
	case proxyproto.SIGV1[0]:
		sig = proxyproto.SIGV1
	case proxyproto.SIGV2[0]:
		sig = proxyproto.SIGV2
	default:
		return 0, nil
	}
	b, err := br.Peek(len(sig))
	if !bytes.HasPrefix(sig, b) {
		return 0, nil // another protocol ("POST", a stray CRLF)
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	if first[0] == proxyproto.SIGV1[0] {
		return 1, nil
	}
	return 2, nil
}

// serveProxyHeader is the start of conn.serve when the connection came
// through a proxyListener: it reads the header, then runs what the accept
// loop leaves to it, ConnContext and the StateNew hook, so that they see
// the client's address. It returns the connection context, and false when
// the connection was refused and closed (untracked, with no hook run:
// ConnState and ConnContext never see it).
func (c *conn) serveProxyHeader(ctx context.Context) (context.Context, bool) {
	p := c.proxy
	_, isTLS := c.rwc.(*tls.Conn)
	first := c.srv.readHeaderTimeout()
	if isTLS {
		first = c.srv.tlsHandshakeTimeout()
	}
	if err := p.readHeader(first); err != nil {
		peer := p.Conn.RemoteAddr()
		switch {
		case err.kind == proxySilent && isTLS && peer != nil:
			c.srv.logHandshakeError(peer.String(), err.err)
		case err.kind == proxySilent:
		default:
			c.srv.proxyHeaderError(peer, err)
		}
		c.rwc.Close() // before any handshake: nothing is written
		c.setState(http.StateClosed, skipHooks)
		return ctx, false
	}
	if p.info != nil {
		ctx = context.WithValue(ctx, proxyInfoKey, p.info)
	}
	if cc := c.srv.ConnContext; cc != nil {
		ctx = c.srv.proxyConnContext(cc, ctx, c.rwc)
		if ctx == nil {
			panic("ConnContext returned nil")
		}
	}
	if hook := c.srv.ConnState; hook != nil {
		hook(c.rwc, http.StateNew)
	}
	return ctx, true
}

// proxyConnContext calls cc for a proxied connection, one call at a time
// across the server, as the accept loop makes them without ProxyProtocol:
// a hook written for net/http need not be safe for concurrent use.
func (s *Server) proxyConnContext(cc func(context.Context, net.Conn) context.Context, ctx context.Context, c net.Conn) context.Context {
	s.connContextMu.Lock()
	defer s.connContextMu.Unlock()
	return cc(ctx, c)
}

// handshakeDeadline returns when the TLS handshake of a connection that
// sent no header must end: timeout after the header wait began, as it
// would run from accept without ProxyProtocol. Zero timeout means none.
func (p *proxyConn) handshakeDeadline(timeout time.Duration) time.Time {
	if timeout <= 0 {
		return time.Time{}
	}
	return p.start.Add(timeout)
}

// ProxyHeaderErrorCounts holds the number of connections a Server closed
// at their PROXY protocol header since it was created, by cause (see
// Server.ProxyProtocol). Each refused connection is counted in exactly one
// field. [Server.ProxyHeaderErrors] returns it; the counts only grow.
type ProxyHeaderErrorCounts struct {
	// Untrusted counts headers sent by peers not in TrustedProxies:
	// spoofing attempts, or a proxy missing from the list.
	Untrusted uint64

	// Missing counts connections from trusted peers without a header,
	// while ProxyPolicy.Required is set.
	Missing uint64

	// Timeout counts trusted peers that did not send their header within
	// ProxyPolicy.HeaderTimeout: with Required, one that sent nothing;
	// otherwise one that began a header and did not finish it. Peers that
	// need not send a header and send nothing are not counted here (see
	// ProxyPolicy.HeaderTimeout).
	Timeout uint64

	// Malformed counts headers that do not parse: bad syntax, an unknown
	// version, command or address family, addresses or TLVs that do not
	// match their lengths.
	Malformed uint64

	// Truncated counts headers cut short: the peer closed the connection
	// in the middle of one. A header that arrives in several pieces is
	// waited for, within ProxyPolicy.HeaderTimeout.
	Truncated uint64

	// Oversized counts version 1 lines longer than 107 bytes and version 2
	// headers declaring more than 4096 bytes after their fixed 16.
	Oversized uint64
}

// Total returns the sum of all the counts.
func (c ProxyHeaderErrorCounts) Total() uint64 {
	return c.Untrusted + c.Missing + c.Timeout + c.Malformed + c.Truncated + c.Oversized
}

// ProxyHeaderErrors returns the number of connections s closed at their
// PROXY protocol header, by cause, those of its ListenAndServeHTTPRedirect
// server included. It is safe for concurrent use, and cheap enough to call
// from a metrics collector on every scrape. The counts stay zero while
// ProxyProtocol is nil.
func (s *Server) ProxyHeaderErrors() ProxyHeaderErrorCounts {
	c := s.proxyErrs.counts()
	s.mu.Lock()
	linked := s.linked
	s.mu.Unlock()
	for _, l := range linked {
		lc := l.proxyErrs.counts()
		c.Untrusted += lc.Untrusted
		c.Missing += lc.Missing
		c.Timeout += lc.Timeout
		c.Malformed += lc.Malformed
		c.Truncated += lc.Truncated
		c.Oversized += lc.Oversized
	}
	return c
}

// counts returns the totals of l alone.
func (l *proxyErrorLog) counts() ProxyHeaderErrorCounts {
	t := &l.totals
	return ProxyHeaderErrorCounts{
		Untrusted: t[proxyUntrusted].Load(),
		Missing:   t[proxyMissing].Load(),
		Timeout:   t[proxyTimeout].Load(),
		Malformed: t[proxyMalformed].Load(),
		Truncated: t[proxyTruncated].Load(),
		Oversized: t[proxyOversized].Load(),
	}
}

// proxyHeaderLogInterval is the least time between two log lines about
// refused PROXY headers. The first refusal after a quiet interval is
// logged at once; those within the interval are counted into the next
// line, as the accept loop's errors are.
const proxyHeaderLogInterval = time.Second

// proxyErrorLog counts refused PROXY headers and rate-limits their log.
// The zero value is ready to use.
type proxyErrorLog struct {
	totals [numProxyErrorKinds]atomic.Uint64

	// mu guards the fields below it.
	mu         sync.Mutex
	last       time.Time // when the last line was logged; zero if never
	suppressed uint64    // refusals since then, not logged
}

// record counts a refusal and reports whether to log it at now, with the
// number of refusals not logged since the last line and the time since it.
func (l *proxyErrorLog) record(kind proxyErrorKind, now time.Time) (more uint64, period time.Duration, ok bool) {
	l.totals[kind].Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < proxyHeaderLogInterval {
		l.suppressed++
		return 0, 0, false
	}
	more, l.suppressed = l.suppressed, 0
	if !l.last.IsZero() {
		period = now.Sub(l.last)
	}
	l.last = now
	return more, period, true
}

// proxyHeaderError counts and logs a connection refused at its header.
// Through ErrorLog the line is
//
//	http: PROXY header error from 192.0.2.7:41000: <reason>
//
// followed by " (and N more in the last 1.2s)" when lines were held back;
// through slog it is a slog.LevelWarn record "http: PROXY header error"
// with attributes remote_addr (the peer's, never the header's), kind,
// error, and more_errors and period when lines were held back.
func (s *Server) proxyHeaderError(peer net.Addr, err *proxyHeaderError) {
	if err.kind == proxyClosed {
		return
	}
	more, period, ok := s.proxyErrs.record(err.kind, time.Now())
	if !ok {
		return
	}
	remote := ""
	if peer != nil {
		remote = peer.String()
	}
	if s.ErrorLog != nil {
		if more > 0 {
			s.ErrorLog.Printf("http: PROXY header error from %s: %v (and %d more in the last %v)", remote, err, more, period.Round(time.Millisecond))
		} else {
			s.ErrorLog.Printf("http: PROXY header error from %s: %v", remote, err)
		}
		return
	}
	l := s.logger()
	ctx := context.Background()
	if !l.Enabled(ctx, slog.LevelWarn) {
		return
	}
	attrs := []slog.Attr{
		slog.String("remote_addr", remote),
		slog.String("kind", err.kind.String()),
		slog.String("error", err.Error()),
	}
	if more > 0 {
		attrs = append(attrs, slog.Uint64("more_errors", more), slog.Duration("period", period))
	}
	logRecord(ctx, l, slog.LevelWarn, "http: PROXY header error", 0, attrs...)
}
