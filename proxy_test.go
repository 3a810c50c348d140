package httpsrv

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// proxyHeader formats a PROXY header from src to dst with the given TLVs.
func proxyHeader(t testing.TB, version byte, src, dst string, tlvs ...proxyproto.TLV) []byte {
	t.Helper()
	s, err := net.ResolveTCPAddr("tcp", src)
	require.NoError(t, err)
	d, err := net.ResolveTCPAddr("tcp", dst)
	require.NoError(t, err)
	h := proxyproto.HeaderProxyFromAddrs(version, s, d)
	if len(tlvs) > 0 {
		require.NoError(t, h.SetTLVs(tlvs))
	}
	b, err := h.Format()
	require.NoError(t, err)
	return b
}

// proxyLocalHeader formats a version 2 LOCAL header.
func proxyLocalHeader(t testing.TB) []byte {
	t.Helper()
	h := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	b, err := h.Format()
	require.NoError(t, err)
	return b
}

// proxyClient is newClient with a dialer that writes header first on each
// new connection, as a layer 4 proxy does.
func proxyClient(t testing.TB, h2 bool, header []byte) *http.Client {
	t.Helper()
	c := newClient(t, h2)
	tr := c.Transport.(*http.Transport)
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if len(header) > 0 {
			if _, err := conn.Write(header); err != nil {
				conn.Close()
				return nil, err
			}
		}
		return conn, nil
	}
	return c
}

// proxySeen is what a request, ConnContext and ConnState saw of a
// connection.
type proxySeen struct {
	mu          sync.Mutex
	handler     []string // Request.RemoteAddr
	handlerInfo []ProxyInfo
	handlerOK   []bool
	handlerLoc  []string // http.LocalAddrContextKey
	ctxRemote   []string // ConnContext's conn.RemoteAddr()
	ctxInfo     []bool   // ProxyInfoFromContext in ConnContext
	newRemote   []string // ConnState StateNew's conn.RemoteAddr()
	states      int      // ConnState calls
}

// proxyServer returns a server with policy, whose handler, ConnContext and
// ConnState record into the returned proxySeen, and a buffer with its log.
func proxyServer(policy *ProxyPolicy) (*Server, *proxySeen, *syncBuffer) {
	seen := new(proxySeen)
	logger, buf := newTestLogger()
	srv := &Server{
		ProxyProtocol: policy,
		ErrorLog:      logger,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info, ok := ProxyInfoFromContext(r.Context())
			loc, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
			seen.mu.Lock()
			seen.handler = append(seen.handler, r.RemoteAddr)
			seen.handlerInfo = append(seen.handlerInfo, info)
			seen.handlerOK = append(seen.handlerOK, ok)
			if loc != nil {
				seen.handlerLoc = append(seen.handlerLoc, loc.String())
			}
			seen.mu.Unlock()
			io.WriteString(w, r.Proto)
		}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			_, ok := ProxyInfoFromContext(ctx)
			seen.mu.Lock()
			seen.ctxRemote = append(seen.ctxRemote, c.RemoteAddr().String())
			seen.ctxInfo = append(seen.ctxInfo, ok)
			seen.mu.Unlock()
			return ctx
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			seen.mu.Lock()
			defer seen.mu.Unlock()
			seen.states++
			if st == http.StateNew {
				seen.newRemote = append(seen.newRemote, c.RemoteAddr().String())
			}
		},
	}
	return srv, seen, buf
}

func (s *proxySeen) snapshot() proxySeen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return proxySeen{
		handler: append([]string(nil), s.handler...), handlerInfo: append([]ProxyInfo(nil), s.handlerInfo...),
		handlerOK: append([]bool(nil), s.handlerOK...), handlerLoc: append([]string(nil), s.handlerLoc...),
		ctxRemote: append([]string(nil), s.ctxRemote...), ctxInfo: append([]bool(nil), s.ctxInfo...),
		newRemote: append([]string(nil), s.newRemote...), states: s.states,
	}
}

// TestProxyProtocolServed sends requests through headers a trusted proxy
// (or a peer that sends none) may send, over HTTP/1.1 and HTTP/2, and
// checks that the handler, ConnContext and ConnState see the client's
// address, and the accessor the header's contents.
func TestProxyProtocolServed(t *testing.T) {
	const (
		src4 = "203.0.113.7:51000"
		dst4 = "198.51.100.1:443"
		src6 = "[2001:db8::7]:51000"
		dst6 = "[2001:db8::1]:443"
	)
	tlvs := []proxyproto.TLV{
		{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte("example.com")},
		{Type: proxyproto.PP2_TYPE_NOOP, Value: []byte{0, 0}},
		{Type: proxyproto.PP2_TYPE_UNIQUE_ID, Value: []byte("conn-42")},
		{Type: 0xE0, Value: []byte{1, 2, 3}},
	}
	tests := []struct {
		name      string
		trusted   []string
		header    func(t testing.TB) []byte
		wantSrc   string // "" for the TCP peer's address
		wantDst   string // "" for the listener's address
		wantInfo  bool
		wantLocal bool
		wantTLVs  bool
	}{
		{name: "v1 TCP4", header: func(t testing.TB) []byte { return proxyHeader(t, 1, src4, dst4) }, wantSrc: src4, wantDst: dst4, wantInfo: true},
		{name: "v1 TCP6", header: func(t testing.TB) []byte { return proxyHeader(t, 1, src6, dst6) }, wantSrc: src6, wantDst: dst6, wantInfo: true},
		{name: "v1 UNKNOWN", header: func(testing.TB) []byte { return []byte("PROXY UNKNOWN\r\n") }, wantInfo: true, wantLocal: true},
		{name: "v2 TCP4 with TLVs", header: func(t testing.TB) []byte { return proxyHeader(t, 2, src4, dst4, tlvs...) }, wantSrc: src4, wantDst: dst4, wantInfo: true, wantTLVs: true},
		{name: "v2 TCP6", header: func(t testing.TB) []byte { return proxyHeader(t, 2, src6, dst6) }, wantSrc: src6, wantDst: dst6, wantInfo: true},
		{name: "v2 LOCAL", header: proxyLocalHeader, wantInfo: true, wantLocal: true},
		{name: "trusted peer without header", header: func(testing.TB) []byte { return nil }},
		{name: "untrusted peer without header", trusted: []string{"10.0.0.0/8"}, header: func(testing.TB) []byte { return nil }},
	}
	for _, tt := range tests {
		for _, h2 := range []bool{false, true} {
			name := tt.name + "/HTTP1"
			if h2 {
				name = tt.name + "/HTTP2"
			}
			t.Run(name, func(t *testing.T) {
				trusted := tt.trusted
				if trusted == nil {
					trusted = []string{"127.0.0.1/32", "::1"}
				}
				srv, seen, logBuf := proxyServer(&ProxyPolicy{TrustedProxies: trusted})
				addr := startTLS(t, srv)
				client := proxyClient(t, h2, tt.header(t))

				resp, err := client.Get("https://" + addr + "/")
				require.NoError(t, err)
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.NoError(t, err)
				if h2 {
					assert.Equal(t, "HTTP/2.0", string(body))
				} else {
					assert.Equal(t, "HTTP/1.1", string(body))
				}

				got := seen.snapshot()
				require.Len(t, got.handler, 1)
				require.Len(t, got.ctxRemote, 1)
				require.Len(t, got.newRemote, 1)
				if tt.wantSrc == "" {
					// The TCP peer: this client, on 127.0.0.1.
					host, _, err := net.SplitHostPort(got.handler[0])
					require.NoError(t, err)
					assert.Equal(t, "127.0.0.1", host)
				} else {
					assert.Equal(t, tt.wantSrc, got.handler[0])
				}
				assert.Equal(t, got.handler[0], got.ctxRemote[0], "ConnContext's conn.RemoteAddr")
				assert.Equal(t, got.handler[0], got.newRemote[0], "ConnState StateNew's conn.RemoteAddr")
				wantDst := tt.wantDst
				if wantDst == "" {
					wantDst = addr
				}
				require.Len(t, got.handlerLoc, 1)
				assert.Equal(t, wantDst, got.handlerLoc[0], "http.LocalAddrContextKey")

				assert.Equal(t, tt.wantInfo, got.handlerOK[0], "ProxyInfoFromContext in the handler")
				assert.Equal(t, tt.wantInfo, got.ctxInfo[0], "ProxyInfoFromContext in ConnContext")
				if tt.wantInfo {
					info := got.handlerInfo[0]
					assert.Equal(t, tt.wantLocal, info.Local)
					assert.Equal(t, got.handler[0], info.Source.String())
					assert.Equal(t, wantDst, info.Destination.String())
					host, _, err := net.SplitHostPort(info.Proxy.String())
					require.NoError(t, err)
					assert.Equal(t, "127.0.0.1", host)
					if tt.wantTLVs {
						assert.Equal(t, "example.com", info.Authority)
						assert.Equal(t, []byte("conn-42"), info.UniqueID)
						assert.Equal(t, []ProxyTLV{
							{Type: 0x02, Value: []byte("example.com")},
							{Type: 0x05, Value: []byte("conn-42")},
							{Type: 0xE0, Value: []byte{1, 2, 3}},
						}, info.TLVs)
					} else {
						assert.Empty(t, info.Authority)
						assert.Nil(t, info.UniqueID)
					}
				}
				assert.Equal(t, ProxyHeaderErrorCounts{}, srv.ProxyHeaderErrors())
				assert.Empty(t, logBuf.String())
			})
		}
	}
}

// proxyRefusedCase is a connection the server must close at its header.
type proxyRefusedCase struct {
	name     string
	policy   ProxyPolicy
	send     []byte
	closeW   bool // half-close after sending
	wantKind func(ProxyHeaderErrorCounts) uint64
	wantLog  string
}

// TestProxyProtocolRefused sends headers that must be refused and checks
// that each connection is closed before any handler, ConnContext or
// ConnState call, counted under its cause and logged with a clear line.
func TestProxyProtocolRefused(t *testing.T) {
	trustLocal := []string{"127.0.0.0/8"}
	untrusting := []string{"10.0.0.0/8", "2001:db8::/32"}
	v2sig := string(proxyproto.SIGV2)
	tlsHello := []byte{0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00} // a TLS record header and a little more
	validV1 := "PROXY TCP4 203.0.113.7 198.51.100.1 51000 443\r\n"
	tests := []proxyRefusedCase{
		{
			name: "spoofed v1 from untrusted peer", policy: ProxyPolicy{TrustedProxies: untrusting},
			send: []byte(validV1), wantKind: func(c ProxyHeaderErrorCounts) uint64 { return c.Untrusted },
			wantLog: "PROXY v1 header from a peer not in ProxyProtocol.TrustedProxies",
		},
		{
			name: "spoofed v2 from untrusted peer", policy: ProxyPolicy{TrustedProxies: untrusting},
			send: proxyHeader(t, 2, "203.0.113.7:51000", "198.51.100.1:443"), wantKind: func(c ProxyHeaderErrorCounts) uint64 { return c.Untrusted },
			wantLog: "PROXY v2 header from a peer not in ProxyProtocol.TrustedProxies",
		},
		{
			name: "required but missing", policy: ProxyPolicy{TrustedProxies: trustLocal, Required: true},
			send: tlsHello, wantKind: func(c ProxyHeaderErrorCounts) uint64 { return c.Missing },
			wantLog: "no PROXY header from a trusted proxy, and ProxyProtocol.Required is set",
		},
		{
			name: "malformed v1 address", policy: ProxyPolicy{TrustedProxies: trustLocal},
			send: []byte("PROXY TCP4 999.0.113.7 198.51.100.1 51000 443\r\n"), wantKind: func(c ProxyHeaderErrorCounts) uint64 { return c.Malformed },
			wantLog: "malformed PROXY v1 header: proxyproto:",
		},
		{
			name: "malformed v1 without CR", policy: ProxyPolicy{TrustedProxies: trustLocal},
			send: []byte("PROXY TCP4 203.0.113.7 198.51.100.1 51000 443\n"), wantKind: func(c ProxyHeaderErrorCounts) uint64 { return c.Malformed },
			wantLog: "malformed PROXY v1 header: proxyproto:",
		},
		{
			name: "malformed v2 command", policy: ProxyPolicy{TrustedProxies: trustLocal},
			send: []byte(v2sig + "\x2f\x11\x00\x0c" + strings.Repeat("\x01", 12)), wantKind: func(c ProxyHeaderErrorCounts) uint64 { return c.Malformed },
			wantLog: "malformed PROXY v2 header: proxyproto: unsupported proxy protocol version and command",
		},
		{
			name: "malformed v2 TLV", policy: ProxyPolicy{TrustedProxies: trustLocal},
			send: []byte(v2sig + "\x21\x11\x00\x0e" + strings.Repeat("\x01", 12) + "\x02\x00"), wantKind: func(c ProxyHeaderErrorCounts) uint64 { return c.Malformed },
			wantLog: "malformed PROXY header TLVs: proxyproto: truncated TLV",
		},
		{
			name: "truncated v1 then EOF", policy: ProxyPolicy{TrustedProxies: trustLocal},
			send: []byte("PROXY TCP4 203.0.113.7"), closeW: true, wantKind: func(c ProxyHeaderErrorCounts) uint64 { return c.Truncated },
			wantLog: "truncated PROXY v1 header: 22 bytes without an end of line",
		},
		{
			name: "truncated v2 addresses then EOF", policy: ProxyPolicy{TrustedProxies: trustLocal},
			send: []byte(v2sig + "\x21\x11\x00\x0c\x01\x02\x03"), closeW: true, wantKind: func(c ProxyHeaderErrorCounts) uint64 { return c.Truncated },
			wantLog: "truncated PROXY v2 header",
		},
		{
			name: "truncated v2 signature then EOF", policy: ProxyPolicy{TrustedProxies: trustLocal},
			send: []byte(v2sig[:7]), closeW: true, wantKind: func(c ProxyHeaderErrorCounts) uint64 { return c.Truncated },
			wantLog: "truncated PROXY header signature: unexpected EOF",
		},
		{
			name: "oversized v1", policy: ProxyPolicy{TrustedProxies: trustLocal},
			send: []byte("PROXY TCP4 " + strings.Repeat("1", 200) + "\r\n"), wantKind: func(c ProxyHeaderErrorCounts) uint64 { return c.Oversized },
			wantLog: "oversized PROXY v1 header: no end of line in its first 107 bytes",
		},
		{
			name: "oversized v2", policy: ProxyPolicy{TrustedProxies: trustLocal},
			send: []byte(v2sig + "\x21\x11\xff\xff" + strings.Repeat("\x01", 64)), wantKind: func(c ProxyHeaderErrorCounts) uint64 { return c.Oversized },
			wantLog: "oversized PROXY v2 header: 65535 bytes after the fixed part, limit 4096",
		},
		{
			name: "required peer sends nothing", policy: ProxyPolicy{TrustedProxies: trustLocal, Required: true, HeaderTimeout: 100 * time.Millisecond},
			wantKind: func(c ProxyHeaderErrorCounts) uint64 { return c.Timeout },
			wantLog:  "no complete PROXY header signature within 100ms",
		},
		{
			name: "v1 header stalls", policy: ProxyPolicy{TrustedProxies: trustLocal, HeaderTimeout: 100 * time.Millisecond},
			send: []byte("PROXY TCP4 203.0.113.7 "), wantKind: func(c ProxyHeaderErrorCounts) uint64 { return c.Timeout },
			wantLog: "no complete PROXY v1 header within 100ms",
		},
		{
			name: "v2 header stalls", policy: ProxyPolicy{TrustedProxies: trustLocal, HeaderTimeout: 100 * time.Millisecond},
			send: []byte(v2sig + "\x21\x11\x00\x0c\x01\x02"), wantKind: func(c ProxyHeaderErrorCounts) uint64 { return c.Timeout },
			wantLog: "no complete PROXY v2 header within 100ms",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			policy := tt.policy
			srv, seen, logBuf := proxyServer(&policy)
			var served atomic.Int32
			inner := srv.Handler
			srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				served.Add(1)
				inner.ServeHTTP(w, r)
			})
			addr := startTLS(t, srv)

			start := time.Now()
			requireClosedAfter(t, addr, tt.send, tt.closeW)
			if policy.HeaderTimeout > 0 && len(tt.send) == 0 {
				assert.GreaterOrEqual(t, time.Since(start), policy.HeaderTimeout, "cut before the header timeout")
			}

			counts := srv.ProxyHeaderErrors()
			assert.Equal(t, uint64(1), tt.wantKind(counts), "counts: %+v", counts)
			assert.Equal(t, uint64(1), counts.Total(), "counts: %+v", counts)
			line := logBuf.String()
			assert.Contains(t, line, "http: PROXY header error from 127.0.0.1:")
			assert.Contains(t, line, tt.wantLog)
			assert.NotContains(t, line, "203.0.113.7", "the log names the TCP peer, never the header's address")
			assert.Equal(t, 1, strings.Count(line, "\n"), "one line: %q", line)
			assert.Zero(t, served.Load(), "a handler ran")
			got := seen.snapshot()
			assert.Empty(t, got.ctxRemote, "ConnContext ran")
			assert.Zero(t, got.states, "ConnState ran")
			assert.Equal(t, HandshakeErrorCounts{}, srv.HandshakeErrors(), "a TLS handshake was tried")
		})
	}
}

// requireClosedAfter connects to addr, sends send (half-closing after it
// if closeW), and waits for the server to close the connection.
func requireClosedAfter(t testing.TB, addr string, send []byte, closeW bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testTimeout())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	if len(send) > 0 {
		_, err = c.Write(send)
		require.NoError(t, err)
	}
	if closeW {
		require.NoError(t, c.(*net.TCPConn).CloseWrite())
	}
	c.SetReadDeadline(time.Now().Add(testTimeout()))
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		// A reset is a close too (the server closed with bytes unread).
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "server did not close the connection: %v", err)
	}
	assert.Zero(t, n, "the server wrote to a refused connection")
}

// TestProxyProtocolSlog checks the slog record of a refused header and the
// once-a-second limit: a second refusal right after is counted, not
// logged.
func TestProxyProtocolSlog(t *testing.T) {
	logger, rec := newRecordLogger(t)
	srv := &Server{Logger: logger, ProxyProtocol: &ProxyPolicy{TrustedProxies: []string{"10.0.0.1"}}}
	addr := startTLS(t, srv)
	hdr := []byte("PROXY TCP4 203.0.113.7 198.51.100.1 51000 443\r\n")
	requireClosedAfter(t, addr, hdr, false)
	requireClosedAfter(t, addr, hdr, false)

	assert.Equal(t, ProxyHeaderErrorCounts{Untrusted: 2}, srv.ProxyHeaderErrors())
	recs := rec.all()
	require.Len(t, recs, 1)
	assert.Equal(t, slog.LevelWarn, recs[0].Level)
	assert.Equal(t, "http: PROXY header error", recs[0].Message)
	attrs := attrMap(recs[0])
	assert.Equal(t, "untrusted", attrs["kind"])
	assert.Contains(t, attrs["remote_addr"], "127.0.0.1:")
	assert.Contains(t, attrs["error"], "not in ProxyProtocol.TrustedProxies")
}

// TestProxyErrorLogInterval drives the rate limit with explicit times.
func TestProxyErrorLogInterval(t *testing.T) {
	var l proxyErrorLog
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at         time.Duration
		kind       proxyErrorKind
		wantLog    bool
		wantMore   uint64
		wantPeriod time.Duration
	}{
		{at: 0, kind: proxyUntrusted, wantLog: true},
		{at: 100 * time.Millisecond, kind: proxyMalformed},
		{at: 900 * time.Millisecond, kind: proxyTimeout},
		{at: 1200 * time.Millisecond, kind: proxyMissing, wantLog: true, wantMore: 2, wantPeriod: 1200 * time.Millisecond},
		{at: 5 * time.Second, kind: proxyOversized, wantLog: true, wantPeriod: 3800 * time.Millisecond},
	}
	for _, st := range steps {
		more, period, ok := l.record(st.kind, t0.Add(st.at))
		assert.Equal(t, st.wantLog, ok, "at %v", st.at)
		assert.Equal(t, st.wantMore, more, "at %v", st.at)
		assert.Equal(t, st.wantPeriod, period, "at %v", st.at)
	}
	for k := range numProxyErrorKinds {
		want := uint64(1)
		if k == proxyTruncated {
			want = 0
		}
		assert.Equal(t, want, l.totals[k].Load(), "kind %v", k)
	}
}

// TestProxyProtocolBadPolicy checks that an invalid policy is a clear
// error from ServeTLS and Serve, with the listener closed, not a panic.
func TestProxyProtocolBadPolicy(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string
		wantMsg string
	}{
		{name: "empty", trusted: nil, wantMsg: "TrustedProxies is empty"},
		{name: "malformed prefix", trusted: []string{"10.0.0.0/8", "10.0.0.0/33"}, wantMsg: `TrustedProxies[1] "10.0.0.0/33" is neither an IP address nor a CIDR prefix`},
		{name: "host name", trusted: []string{"proxy.internal"}, wantMsg: `TrustedProxies[0] "proxy.internal"`},
		{name: "zone", trusted: []string{"fe80::1%eth0"}, wantMsg: `TrustedProxies[0] "fe80::1%eth0"`},
		{name: "host bits set", trusted: []string{"10.0.0.1/8"}, wantMsg: `TrustedProxies[0] "10.0.0.1/8" has bits set past its prefix length, so it would trust all of 10.0.0.0/8`},
		{name: "mapped host bits set", trusted: []string{"::ffff:10.0.0.1/104"}, wantMsg: "would trust all of 10.0.0.0/8"},
		{name: "mapped shorter than /96", trusted: []string{"::ffff:10.0.0.0/8"}, wantMsg: `TrustedProxies[0] "::ffff:10.0.0.0/8" is an IPv4-mapped IPv6 prefix shorter than /96`},
	}
	for _, tt := range tests {
		for _, tlsOn := range []bool{true, false} {
			name := tt.name + "/Serve"
			if tlsOn {
				name = tt.name + "/ServeTLS"
			}
			t.Run(name, func(t *testing.T) {
				srv := &Server{ProxyProtocol: &ProxyPolicy{TrustedProxies: tt.trusted}}
				ln := localListener(t)
				var err error
				if tlsOn {
					err = srv.ServeTLS(ln, testCertFile, testKeyFile)
				} else {
					err = srv.Serve(ln)
				}
				require.ErrorIs(t, err, ErrProxyPolicy)
				assert.Contains(t, err.Error(), tt.wantMsg)
				_, aerr := ln.Accept()
				assert.ErrorIs(t, aerr, net.ErrClosed, "the listener must be closed")
			})
		}
	}
}

// TestProxyPolicyTrusts checks prefix matching.
func TestProxyPolicyTrusts(t *testing.T) {
	pp, err := (&ProxyPolicy{TrustedProxies: []string{"10.1.0.0/16", "192.0.2.7", "2001:db8::/32", "::ffff:198.51.100.0/120"}}).compile()
	require.NoError(t, err)
	assert.Equal(t, DefaultProxyHeaderTimeout, pp.timeout)
	tests := []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("10.2.0.1"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.8"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.1.9.9"), Port: 1}, true}, // IPv4-mapped peer
		{&net.TCPAddr{IP: net.ParseIP("198.51.100.20"), Port: 1}, true},   // IPv4-mapped prefix
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::9"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("2001:db9::9"), Port: 1}, false},
		{&net.UnixAddr{Name: "/run/h.sock", Net: "unix"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, pp.trusts(tt.addr), "%v", tt.addr)
	}
	pp, err = (&ProxyPolicy{TrustedProxies: []string{"::/0"}, HeaderTimeout: -1}).compile()
	require.NoError(t, err)
	assert.Zero(t, pp.timeout, "negative: no limit")
	// ::/0 holds every IPv6 peer, but IPv4 peers, mapped or not, are
	// matched as IPv4 addresses: 0.0.0.0/0 must be listed for them.
	assert.True(t, pp.trusts(&net.TCPAddr{IP: net.IPv6loopback, Port: 1}))
	assert.False(t, pp.trusts(&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1}))
	assert.False(t, pp.trusts(&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 1}))

	// A mapped prefix of at least 96 bits is the IPv4 prefix it maps.
	pp, err = (&ProxyPolicy{TrustedProxies: []string{"::ffff:10.0.0.0/104"}}).compile()
	require.NoError(t, err)
	assert.True(t, pp.trusts(&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 1}))
	assert.False(t, pp.trusts(&net.TCPAddr{IP: net.IPv6loopback, Port: 1}))
}

// TestProxyProtocolServe serves plaintext HTTP/1.1 behind a header under
// Serve; the request follows the header in the same write, so the bytes
// read past the header must reach the HTTP engine.
func TestProxyProtocolServe(t *testing.T) {
	srv, seen, logBuf := proxyServer(&ProxyPolicy{TrustedProxies: []string{"127.0.0.1"}})
	ln := localListener(t)
	addr := serveOn(t, ln, srv.Serve, srv.Close)

	c, err := net.DialTimeout("tcp", addr, testTimeout())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout()))
	_, err = io.WriteString(c, "PROXY TCP6 2001:db8::7 2001:db8::1 51000 80\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	resp, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Contains(t, string(resp), "HTTP/1.1 200 OK")
	got := seen.snapshot()
	assert.Equal(t, []string{"[2001:db8::7]:51000"}, got.handler)
	assert.Equal(t, []string{"[2001:db8::7]:51000"}, got.ctxRemote)
	assert.Equal(t, []string{"[2001:db8::7]:51000"}, got.newRemote)
	assert.Empty(t, logBuf.String())
}

// TestProxyProtocolServeTLSListener checks that Serve refuses a listener
// that returns TLS connections: the header is under their TLS layer.
func TestProxyProtocolServeTLSListener(t *testing.T) {
	cert, _ := testCertificate(t)
	ln := tls.NewListener(localListener(t), &tls.Config{Certificates: []tls.Certificate{cert}})
	srv := &Server{ProxyProtocol: &ProxyPolicy{TrustedProxies: []string{"127.0.0.1"}}}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), testTimeout())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	select {
	case err := <-errc:
		require.ErrorIs(t, err, ErrProxyPolicy)
		assert.Contains(t, err.Error(), "give the TCP listener to ServeTLS")
	case <-time.After(testTimeout()):
		t.Fatal("Serve did not return")
	}
}

// TestProxyProtocolCloseDuringHeader checks that Close cuts a connection
// waiting for its header at once, without counting or logging it, and
// that the wait never held up the accept loop for other clients.
func TestProxyProtocolCloseDuringHeader(t *testing.T) {
	srv, seen, logBuf := proxyServer(&ProxyPolicy{TrustedProxies: []string{"127.0.0.1"}, HeaderTimeout: -1})
	addr := startTLS(t, srv)

	silent, err := net.DialTimeout("tcp", addr, testTimeout())
	require.NoError(t, err)
	t.Cleanup(func() { silent.Close() })
	// Another client is served meanwhile: the silent one does not block
	// Accept.
	resp, err := proxyClient(t, false, proxyHeader(t, 2, "203.0.113.9:4000", "198.51.100.1:443")).Get("https://" + addr + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, []string{"203.0.113.9:4000"}, seen.snapshot().handler)

	require.NoError(t, srv.Close())
	silent.SetReadDeadline(time.Now().Add(testTimeout()))
	_, err = silent.Read(make([]byte, 1))
	require.Error(t, err)
	var ne net.Error
	assert.False(t, errors.As(err, &ne) && ne.Timeout(), "Close left the connection open: %v", err)
	assert.Equal(t, ProxyHeaderErrorCounts{}, srv.ProxyHeaderErrors())
	assert.Empty(t, logBuf.String())
}

// TestProxyProtocolRedirect checks that the ListenAndServeHTTPRedirect
// server reads headers too, and counts its refusals on the main server.
func TestProxyProtocolRedirect(t *testing.T) {
	logger, logBuf := newTestLogger()
	srv := &Server{Addr: "127.0.0.1:8443", ErrorLog: logger, ProxyProtocol: &ProxyPolicy{TrustedProxies: []string{"127.0.0.1"}}}
	addr, errc := startRedirect(t, srv)

	c, err := net.DialTimeout("tcp", addr, testTimeout())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout()))
	_, err = io.WriteString(c, "PROXY TCP4 203.0.113.7 198.51.100.1 51000 80\r\nGET /a HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	resp, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Contains(t, string(resp), "HTTP/1.1 308 Permanent Redirect")
	assert.Contains(t, string(resp), "Location: https://example.com:8443/a")

	requireClosedAfter(t, addr, []byte("PROXY TCP4 1.2.3.4\r\n"), false)
	assert.Equal(t, ProxyHeaderErrorCounts{Malformed: 1}, srv.ProxyHeaderErrors())
	assert.Contains(t, logBuf.String(), "malformed PROXY v1 header")

	srv.Close()
	assert.ErrorIs(t, waitErr(t, errc), http.ErrServerClosed)
}

// TestProxyProtocolH2C serves unencrypted HTTP/2 with prior knowledge
// behind a header under Serve: the preface is looked for after the header.
func TestProxyProtocolH2C(t *testing.T) {
	srv, seen, logBuf := proxyServer(&ProxyPolicy{TrustedProxies: []string{"127.0.0.1"}})
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv.Protocols = protos
	addr := serveOn(t, localListener(t), srv.Serve, srv.Close)

	clientProtos := new(http.Protocols)
	clientProtos.SetUnencryptedHTTP2(true)
	header := proxyHeader(t, 2, "203.0.113.7:51000", "198.51.100.1:80",
		proxyproto.TLV{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte("example.com")})
	tr := &http.Transport{
		Protocols: clientProtos,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := new(net.Dialer).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			_, err = c.Write(header)
			return c, err
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr, Timeout: testTimeout()}).Get("http://" + addr + "/")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, "HTTP/2.0", string(body))
	got := seen.snapshot()
	assert.Equal(t, []string{"203.0.113.7:51000"}, got.handler)
	assert.Equal(t, []string{"203.0.113.7:51000"}, got.newRemote)
	require.Len(t, got.handlerInfo, 1)
	assert.Equal(t, "example.com", got.handlerInfo[0].Authority)
	assert.Empty(t, logBuf.String())
}

// TestProxyProtocolShutdown checks that proxied connections drain as
// others do: Shutdown closes an idle HTTP/1 and an HTTP/2 connection and
// returns nil.
func TestProxyProtocolShutdown(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP1", true: "HTTP2"}[h2], func(t *testing.T) {
			srv, seen, _ := proxyServer(&ProxyPolicy{TrustedProxies: []string{"127.0.0.1"}})
			rec := newStateRecorder()
			hook := srv.ConnState
			srv.ConnState = func(c net.Conn, st http.ConnState) {
				hook(c, st)
				rec.hook(c, st)
			}
			addr := startTLS(t, srv)
			client := proxyClient(t, h2, proxyHeader(t, 1, "203.0.113.7:51000", "198.51.100.1:443"))
			resp, err := client.Get("https://" + addr + "/")
			require.NoError(t, err)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if !h2 {
				rec.waitFor(t, "the connection to be idle", lastStateIs(http.StateIdle))
			}

			ctx, cancel := context.WithTimeout(context.Background(), testTimeout())
			defer cancel()
			require.NoError(t, srv.Shutdown(ctx))
			rec.waitFor(t, "the connection to close", lastStateIs(http.StateClosed))
			assert.Equal(t, []string{"203.0.113.7:51000"}, seen.snapshot().newRemote)
		})
	}
}

// TestProxyProtocolSilentDirectClient: a peer that need not send a header
// (untrusted, or trusted without Required) and sends nothing is closed at
// HeaderTimeout here (the earlier of it and the server's own limit), and
// is no PROXY header error: under ServeTLS it is a TLS handshake timeout,
// as without ProxyProtocol; under Serve it is closed without a word.
func TestProxyProtocolSilentDirectClient(t *testing.T) {
	const hto = 100 * time.Millisecond
	for _, trusted := range []string{"127.0.0.1", "192.0.2.1"} {
		for _, tlsOn := range []bool{true, false} {
			name := map[bool]string{true: "trusted", false: "untrusted"}[trusted == "127.0.0.1"] + map[bool]string{true: "/ServeTLS", false: "/Serve"}[tlsOn]
			t.Run(name, func(t *testing.T) {
				srv, seen, logBuf := proxyServer(&ProxyPolicy{TrustedProxies: []string{trusted}, HeaderTimeout: hto})
				var addr string
				if tlsOn {
					addr = startTLS(t, srv)
				} else {
					addr = serveOn(t, localListener(t), srv.Serve, srv.Close)
				}
				start := time.Now()
				requireClosedAfter(t, addr, nil, false)
				assert.GreaterOrEqual(t, time.Since(start), hto, "cut before the header timeout")

				assert.Equal(t, ProxyHeaderErrorCounts{}, srv.ProxyHeaderErrors())
				assert.NotContains(t, logBuf.String(), "PROXY header error")
				want := HandshakeErrorCounts{}
				if tlsOn {
					want.Timeout = 1
				}
				assert.Equal(t, want, srv.HandshakeErrors())
				got := seen.snapshot()
				assert.Empty(t, got.ctxRemote, "ConnContext ran")
				assert.Zero(t, got.states, "ConnState ran")
			})
		}
	}
}

// TestProxyProtocolV2SplitAcrossReads: a version 2 header whose bytes
// arrive in two segments, the second after the server has read the first,
// is waited for (within HeaderTimeout) and served.
func TestProxyProtocolV2SplitAcrossReads(t *testing.T) {
	srv, seen, logBuf := proxyServer(&ProxyPolicy{TrustedProxies: []string{"127.0.0.1"}})
	ln := &signalListener{Listener: localListener(t), firstRead: make(chan struct{})}
	addr := serveOn(t, ln, srv.Serve, srv.Close)
	header := proxyHeader(t, 2, "203.0.113.7:51000", "198.51.100.1:80",
		proxyproto.TLV{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte("example.com")})

	c, err := net.DialTimeout("tcp", addr, testTimeout())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout()))
	_, err = c.Write(header[:20]) // the fixed part and part of the addresses
	require.NoError(t, err)
	select {
	case <-ln.firstRead:
	case <-time.After(testTimeout()):
		t.Fatal("the server did not read the first part of the header")
	}
	_, err = io.WriteString(c, string(header[20:])+"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	resp, _ := io.ReadAll(c)
	assert.Contains(t, string(resp), "HTTP/1.1 200 OK", "the split header's connection was not served")
	got := seen.snapshot()
	assert.Equal(t, []string{"203.0.113.7:51000"}, got.handler)
	if assert.Len(t, got.handlerInfo, 1) {
		assert.Equal(t, "example.com", got.handlerInfo[0].Authority)
	}
	assert.Equal(t, ProxyHeaderErrorCounts{}, srv.ProxyHeaderErrors())
	assert.Empty(t, logBuf.String())
}

// TestParseProxyV2 checks the version 2 decoder against go-proxyproto's
// Read on headers that the fuzz seeds may not reach in a short run.
func TestParseProxyV2(t *testing.T) {
	v2 := string(proxyproto.SIGV2)
	tests := []struct {
		name    string
		hdr     string
		wantSrc string // "" when the connection's own addresses are used
		wantErr error
	}{
		{name: "tcp4", hdr: v2 + "\x21\x11\x00\x0c\xcb\x00\x71\x07\xc6\x33\x64\x01\xc7\x38\x01\xbb", wantSrc: "203.0.113.7:51000"},
		{name: "tcp6", hdr: v2 + "\x21\x21\x00\x24" + strings.Repeat("\x20", 32) + "\x01\xbb\x01\xbb", wantSrc: "[2020:2020:2020:2020:2020:2020:2020:2020]:443"},
		{name: "udp4 proxy", hdr: v2 + "\x21\x12\x00\x0c" + strings.Repeat("\x01", 12)},
		{name: "unix proxy", hdr: v2 + "\x21\x31\x00\xd8" + strings.Repeat("a", 216)},
		{name: "local unspec", hdr: v2 + "\x20\x00\x00\x00"},
		{name: "local short block", hdr: v2 + "\x20\x11\x00\x02ab"},
		{name: "unspec proxy", hdr: v2 + "\x21\x00\x00\x00", wantErr: proxyproto.ErrUnsupportedAddressFamilyAndProtocol},
		{name: "undefined family", hdr: v2 + "\x21\x13\x00\x0c" + strings.Repeat("\x01", 12), wantErr: proxyproto.ErrUnsupportedAddressFamilyAndProtocol},
		{name: "bad command", hdr: v2 + "\x22\x11\x00\x0c" + strings.Repeat("\x01", 12), wantErr: proxyproto.ErrUnsupportedProtocolVersionAndCommand},
		{name: "proxy short block", hdr: v2 + "\x21\x21\x00\x0c" + strings.Repeat("\x01", 12), wantErr: proxyproto.ErrInvalidLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseProxyV2([]byte(tt.hdr))
			oh, oerr := proxyproto.Read(bufio.NewReader(strings.NewReader(tt.hdr)))
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				assert.ErrorIs(t, oerr, tt.wantErr, "go-proxyproto disagrees")
				return
			}
			require.NoError(t, err)
			require.NoError(t, oerr, "go-proxyproto disagrees")
			if tt.wantSrc == "" {
				assert.Nil(t, h.src)
				return
			}
			require.NotNil(t, h.src)
			assert.Equal(t, tt.wantSrc, h.src.String())
			assert.Equal(t, oh.SourceAddr.String(), h.src.String())
			assert.Equal(t, oh.DestinationAddr.String(), h.dst.String())
		})
	}
}
