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
// Parsing is github.com/pires/go-proxyproto's Read; the framing checks
// around it (signature, sizes, completeness) are ours, to tell the
// failures apart and to reject before reading a header from a peer that
// may not send one.

// ErrProxyPolicy is returned, wrapped with the reason, by Serve, ServeTLS,
// ListenAndServe and ListenAndServeTLS when Server.ProxyProtocol is not a
// valid policy: an entry of TrustedProxies that is neither an IP address
// nor a CIDR prefix, no entry at all, or, under Serve, a listener that
// returns *tls.Conn values, under which the header cannot be read.
var ErrProxyPolicy = errors.New("httpsrv: invalid ProxyProtocol policy")

// DefaultProxyHeaderTimeout is how long a connection may take to send its
// PROXY protocol header (or, from a peer that need not send one, its first
// bytes) when ProxyPolicy.HeaderTimeout is zero.
const DefaultProxyHeaderTimeout = 5 * time.Second

// maxProxyV2Length bounds the length field of a version 2 header (the
// address block and TLVs after the 16 fixed bytes), as go-proxyproto's
// MaxV2HeaderSize does by default; the value is ours, so that a program
// changing that package variable does not change this server's limit.
// TLVs that carry a client certificate take 1 to 2 KiB.
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
	// an entry that does not parse. "0.0.0.0/0" and "::/0" trust every
	// peer; only use them when a firewall keeps everyone else out. An
	// IPv4-mapped IPv6 peer address is matched as the IPv4 address it
	// maps. Peers without an IP address (Unix sockets) are never trusted.
	//
	// A header from a peer not listed is never believed: the connection is
	// closed, counted in ProxyHeaderErrorCounts.Untrusted and logged. Such a
	// peer that sends no header is served as usual, with its own address,
	// since a client reaching the server directly sends none.
	TrustedProxies []string

	// Required, if true, closes connections from trusted peers that do not
	// start with a PROXY header (counted in
	// ProxyHeaderErrorCounts.Missing). If false, such a connection is
	// served with the peer's own address. A trusted peer that closes the
	// connection before sending a byte (a TCP health check) is not
	// counted here; it fails the TLS handshake as any such client does.
	Required bool

	// HeaderTimeout bounds the wait for the header, or, from a peer that
	// need not send one, for the bytes that show it sent none (a TLS
	// client's first byte is enough). A connection that has not sent them
	// in time is closed and counted in ProxyHeaderErrorCounts.Timeout; the
	// TLS handshake timeout starts after it. Zero means
	// DefaultProxyHeaderTimeout; negative means no limit, which lets a
	// peer that sends nothing hold its connection for ever.
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
		pfx, err := parseTrustedProxy(s)
		if err != nil {
			return nil, fmt.Errorf("%w: TrustedProxies[%d] %q is neither an IP address nor a CIDR prefix", ErrProxyPolicy, i, s)
		}
		pp.trusted = append(pp.trusted, pfx)
	}
	return pp, nil
}

// parseTrustedProxy parses an address or a prefix, and unmaps IPv4-mapped
// IPv6 ones, as peer addresses are.
func parseTrustedProxy(s string) (netip.Prefix, error) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		addr, aerr := netip.ParseAddr(s)
		if aerr != nil || addr.Zone() != "" {
			return netip.Prefix{}, err
		}
		pfx = netip.PrefixFrom(addr, addr.BitLen())
	}
	if a := pfx.Addr(); a.Is4In6() && pfx.Bits() >= 96 {
		pfx = netip.PrefixFrom(a.Unmap(), pfx.Bits()-96)
	}
	return pfx.Masked(), nil
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

// readHeader reads the PROXY header, if the connection starts with one,
// under the policy's timeout, and sets the connection's addresses from it.
// It returns nil when the connection may be served: a header from a
// trusted peer that parses, or no header where none is required. It reads
// nothing past the header, except into rest.
func (p *proxyConn) readHeader() *proxyHeaderError {
	peer := p.Conn.RemoteAddr()
	trusted := p.policy.trusts(peer)
	if t := p.policy.timeout; t > 0 {
		p.Conn.SetReadDeadline(time.Now().Add(t))
	}
	br := bufio.NewReaderSize(p.Conn, 256)
	h, herr := p.parse(br, trusted)
	if herr != nil {
		return herr
	}
	// Clear the deadline: the TLS handshake or the HTTP engine sets its own.
	p.Conn.SetReadDeadline(time.Time{})
	if n := br.Buffered(); n > 0 {
		p.rest, _ = br.Peek(n)
	}
	if h == nil {
		return nil
	}
	info := &ProxyInfo{Version: int(h.Version), Proxy: peer, Source: peer, Destination: p.Conn.LocalAddr(), Local: true}
	if h.Command.IsProxy() && (h.TransportProtocol == proxyproto.TCPv4 || h.TransportProtocol == proxyproto.TCPv6) {
		src, dst, ok := h.TCPAddrs()
		if ok && src != nil && dst != nil {
			info.Source, info.Destination, info.Local = src, dst, false
			p.remote, p.local = src, dst
		}
	}
	tlvs, err := h.TLVs()
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

// parse detects and parses the header from br. It returns a nil header
// when the connection does not start with one and may be served anyway.
func (p *proxyConn) parse(br *bufio.Reader, trusted bool) (*proxyproto.Header, *proxyHeaderError) {
	version, err := detectProxyHeader(br)
	if err != nil {
		return nil, p.readError(err, "PROXY header signature")
	}
	if version == 0 {
		if trusted && p.policy.required {
			return nil, &proxyHeaderError{kind: proxyMissing, msg: "no PROXY header from a trusted proxy, and ProxyProtocol.Required is set"}
		}
		return nil, nil
	}
	if !trusted {
		return nil, &proxyHeaderError{kind: proxyUntrusted, msg: fmt.Sprintf("PROXY v%d header from a peer not in ProxyProtocol.TrustedProxies", version)}
	}
	// Framing checks before go-proxyproto parses, to tell an oversized or
	// incomplete header from a malformed one.
	switch version {
	case 1:
		// go-proxyproto wants the whole line in one read, as the
		// specification asks of senders; it is buffered by now if it
		// came so.
		buf, _ := br.Peek(min(br.Buffered(), maxProxyV1Length))
		if bytes.IndexByte(buf, '\n') < 0 {
			if len(buf) >= maxProxyV1Length {
				return nil, &proxyHeaderError{kind: proxyOversized, msg: fmt.Sprintf("oversized PROXY v1 header: no end of line in its first %d bytes", maxProxyV1Length)}
			}
			return nil, &proxyHeaderError{kind: proxyTruncated, msg: fmt.Sprintf("truncated PROXY v1 header: %d bytes without an end of line", len(buf))}
		}
	case 2:
		fixed, err := br.Peek(16)
		if err != nil {
			return nil, p.readError(err, "PROXY v2 header")
		}
		if n := binary.BigEndian.Uint16(fixed[14:]); n > maxProxyV2Length {
			return nil, &proxyHeaderError{kind: proxyOversized, msg: fmt.Sprintf("oversized PROXY v2 header: %d bytes after the fixed part, limit %d", n, maxProxyV2Length)}
		}
	}
	h, err := proxyproto.Read(br)
	switch {
	case err == nil && h != nil:
		return h, nil
	case err == nil:
		err = proxyproto.ErrNoProxyProtocol // not expected after the signature
	case isTimeout(err) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return nil, p.readError(err, fmt.Sprintf("PROXY v%d header", version))
	}
	return nil, &proxyHeaderError{kind: proxyMalformed, msg: fmt.Sprintf("malformed PROXY v%d header", version), err: err}
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
// has no header (it then fails as it would without PROXY protocol); one
// closed in the middle of a signature returns io.ErrUnexpectedEOF.
func detectProxyHeader(br *bufio.Reader) (int, error) {
	first, err := br.Peek(1)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil
		}
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
	if err := p.readHeader(); err != nil {
		c.srv.proxyHeaderError(p.Conn.RemoteAddr(), err)
		c.rwc.Close() // before any handshake: nothing is written
		c.setState(http.StateClosed, skipHooks)
		return ctx, false
	}
	if p.info != nil {
		ctx = context.WithValue(ctx, proxyInfoKey, p.info)
	}
	if cc := c.srv.ConnContext; cc != nil {
		ctx = cc(ctx, c.rwc)
		if ctx == nil {
			panic("ConnContext returned nil")
		}
	}
	if hook := c.srv.ConnState; hook != nil {
		hook(c.rwc, http.StateNew)
	}
	return ctx, true
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

	// Timeout counts connections that did not send their header, or their
	// first bytes, within ProxyPolicy.HeaderTimeout.
	Timeout uint64

	// Malformed counts headers that do not parse: bad syntax, an unknown
	// version, command or address family, addresses or TLVs that do not
	// match their lengths.
	Malformed uint64

	// Truncated counts headers cut short: the peer closed the connection
	// in the middle, or a version 1 line did not arrive in one piece.
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
