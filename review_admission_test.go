package httpsrv

import (
	"crypto/tls"
	"math"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Review of the admission branch (issue 8 items 1 and 2): failing tests for
// the defects found.

// TestReviewAdmIdleListenerStarvesOther: MaxConns 1 and two listeners.
// The first listener's accept loop must not hold the only slot while it
// waits in Accept with no client: a client of the second listener is
// served. While that client's connection is open, the next client of the
// second listener waits in the backlog, and is served once it closes.
func TestReviewAdmIdleListenerStarvesOther(t *testing.T) {
	srv := &Server{MaxConns: 1, Handler: okHandler, ErrorLog: discardLogger()}
	atLimit := hookConnLimitWait(t, srv)
	serve := func(ln net.Listener) error { return srv.ServeTLS(ln, testCertFile, testKeyFile) }
	serveOn(t, localListener(t), serve, srv.Close) // listener A: idle
	addrB := serveOn(t, localListener(t), serve, srv.Close)

	b := dialTLS(t, addrB, "http/1.1")
	require.Equal(t, http.StatusOK, getOn(t, b, "/"), "a client of listener B while listener A is idle")

	// At the limit now: B's next client waits in the backlog.
	_, next := pendingTLS(t, addrB)
	waitSignal(t, atLimit, "listener B's loop to wait at the limit")
	select {
	case err := <-next:
		t.Fatalf("a second client of listener B was served while the first held the only slot: %v", err)
	case <-time.After(notWithin):
	}
	b.Close()
	require.NoError(t, waitSignal(t, next, "B's second client, once the first closed"))
}

// stallTLS starts a TLS handshake, offering at most version, on a new
// connection to addr that sends its ClientHello and then nothing: its
// later writes block until cleanup. It returns a channel closed once the
// client has received the server's flight and tries to answer.
func stallTLS(t *testing.T, addr string, version uint16, cert *tls.Certificate) <-chan struct{} {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, testTimeout())
	require.NoError(t, err)
	sc := &stallConn{Conn: raw, stalled: make(chan struct{}), closed: make(chan struct{})}
	t.Cleanup(func() { sc.Close() })
	cfg := clientTLSConfig(t, "http/1.1")
	cfg.MaxVersion = version
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	go tls.Client(sc, cfg).Handshake()
	return sc.stalled
}

// TestReviewAdmStalledHandshakesLockOut: a client that sends a ClientHello
// offering only TLS 1.2 (or any client when a client certificate is
// requested) and then nothing must hold no handshake slot once the server
// has done its work (there was a 20 ms lease: a burst of such ClientHellos
// queued in front of every legitimate handshake, 20 ms each). Once all the
// stalled clients have the server's flight, no slot is held, and a
// legitimate handshake goes through.
func TestReviewAdmStalledHandshakesLockOut(t *testing.T) {
	const stallers = 50
	cert, _ := testCertificate(t)
	for _, tc := range []struct {
		name    string
		version uint16
		auth    tls.ClientAuthType
	}{
		{"TLS 1.2 ClientHello then silence", tls.VersionTLS12, tls.NoClientCert},
		{"TLS 1.3 client certificate requested, then silence", tls.VersionTLS13, tls.RequestClientCert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &Server{
				MaxConcurrentHandshakes: 1, // the default on one core
				TLSConfig:               &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tc.auth},
				Handler:                 okHandler,
				ErrorLog:                discardLogger(),
			}
			addr := serveOn(t, localListener(t), func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }, srv.Close)
			var stalled []<-chan struct{}
			for range stallers {
				stalled = append(stalled, stallTLS(t, addr, tc.version, nil))
			}
			for _, s := range stalled {
				waitSignal(t, s, "a stalled client to get the server's flight")
			}
			assert.Empty(t, srv.handshakeLimit().sem, "slots held by clients that stalled after the server's flight")
			c := dialTLS(t, addr, "http/1.1")
			assert.Equal(t, http.StatusOK, getOn(t, c, "/"))
		})
	}
}

// TestReviewAdmLeaseLetsSecondCompute: MaxConcurrentHandshakes 1 and a
// handshake whose server-side work (here a signature that takes its time,
// standing in for a saturated core or an HSM) lasts long: no second
// handshake computes beside it, however long it takes (there was a 20 ms
// lease that let one in).
func TestReviewAdmLeaseLetsSecondCompute(t *testing.T) {
	cert, g := gatedCertificate(t)
	srv := &Server{MaxConcurrentHandshakes: 1, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, Handler: okHandler, ErrorLog: discardLogger()}
	addr := serveOn(t, localListener(t), func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }, srv.Close)
	_, d1 := pendingTLS(t, addr)
	waitSignal(t, g.entered, "handshake 1 to sign")
	_, d2 := pendingTLS(t, addr)
	select {
	case err := <-d2:
		t.Fatalf("handshake 2 ended while handshake 1 held the only slot: %v", err)
	case <-time.After(notWithin):
	}
	g.open()
	require.NoError(t, waitSignal(t, d1, "handshake 1"))
	require.NoError(t, waitSignal(t, d2, "handshake 2"))
	assert.Equal(t, int32(1), g.most.Load(), "handshakes computing at once with MaxConcurrentHandshakes 1")
}

// handshakeAllocs returns the allocations per full TLS 1.3 handshake
// (client and server, connection then closed) on srv.
func handshakeAllocs(t *testing.T, srv *Server) float64 {
	addr := srv.Addr
	if addr == "" {
		addr = startTLS(t, srv)
		srv.Addr = addr
	}
	cfg := clientTLSConfig(t, "http/1.1")
	return testing.AllocsPerRun(100, func() {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
}

// TestReviewAdmHandshakeAllocs: the handshake limit costs every handshake
// a clone of the whole tls.Config, a VerifyConnection closure, a context,
// a lease timer, and a pipe write, poll and read (issue 9 wants CPU per
// handshake at or below net/http's, and httpsrv is at 1.01/0.99/1.06).
// Expected: no allocation per handshake beyond the limit off.
func TestReviewAdmHandshakeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	// AllocsPerRun counts the whole process, and the server's goroutines
	// may finish a handshake's work after the client's Close returns: one
	// measure varies by a couple of allocations. The least of five,
	// alternating, is stable.
	offSrv := &Server{MaxConcurrentHandshakes: -1, Handler: okHandler, ErrorLog: discardLogger()}
	onSrv := &Server{Handler: okHandler, ErrorLog: discardLogger()}
	off, on := math.Inf(1), math.Inf(1)
	for range 5 {
		off = min(off, handshakeAllocs(t, offSrv))
		on = min(on, handshakeAllocs(t, onSrv))
	}
	t.Logf("allocations per handshake (least of 5): limit off %.1f, on %.1f", off, on)
	// One more: crypto/tls builds a ClientHelloInfo for GetConfigForClient.
	// The least of five still moves by one between runs (887 to 889 were
	// seen for either), so the bound allows one more than that: what it
	// guards against is the per-handshake Clone, context, closures and
	// timer the first design cost (tens of allocations).
	assert.LessOrEqual(t, on, off+2, "allocations per handshake with the default handshake limit")
}

// BenchmarkReviewAdmHandshake measures a full handshake with the handshake
// limit off and on (go test -run - -bench ReviewAdmHandshake -benchmem).
func BenchmarkReviewAdmHandshake(b *testing.B) {
	for _, tc := range []struct {
		name string
		n    int
	}{{"off", -1}, {"on", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := &Server{MaxConcurrentHandshakes: tc.n, Handler: okHandler, ErrorLog: discardLogger()}
			addr := startTLS(b, srv)
			cfg := clientTLSConfig(b, "http/1.1")
			b.ReportAllocs()
			for b.Loop() {
				c, err := tls.Dial("tcp", addr, cfg)
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
