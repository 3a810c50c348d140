package httpsrv

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// notWithin is how long a test watches for something that must not happen
// (a connection served while it should wait in the backlog). It is a
// window of observation, not a wait for a signal: a fault shows up in it
// at once on any machine.
const notWithin = 300 * time.Millisecond

// hookConnLimitWait returns a channel that receives a value each time an
// accept loop of srv starts waiting at MaxConns.
func hookConnLimitWait(t *testing.T, srv *Server) <-chan struct{} {
	t.Helper()
	ch := make(chan struct{}, 64)
	old := testHookConnLimitWait
	testHookConnLimitWait = func(s *Server) {
		if s == srv {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	t.Cleanup(func() { testHookConnLimitWait = old })
	return ch
}

// waitSignal waits for ch with testTimeout.
func waitSignal[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout()):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// clientTLSConfig returns a client configuration that trusts the test
// certificate.
func clientTLSConfig(t testing.TB, protos ...string) *tls.Config {
	_, pool := testCertificate(t)
	return &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: protos}
}

// pendingTLS connects to addr over TCP and starts a TLS handshake in the
// background; the result arrives on the returned channel.
func pendingTLS(t *testing.T, addr string) (*tls.Conn, <-chan error) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, testTimeout())
	require.NoError(t, err, "the TCP connect must succeed: the connection waits in the backlog")
	tc := tls.Client(raw, clientTLSConfig(t, "http/1.1"))
	t.Cleanup(func() { tc.Close() })
	done := make(chan error, 1)
	go func() {
		tc.SetDeadline(time.Now().Add(2 * testTimeout()))
		done <- tc.Handshake()
	}()
	return tc, done
}

// requireNoHandshake checks that the handshake whose result done carries
// does not complete: its connection is not accepted.
func requireNoHandshake(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("the connection was served past MaxConns (handshake result %v)", err)
	case <-time.After(notWithin):
	}
}

// getOn sends a GET for path on c and returns the response status.
func getOn(t *testing.T, c net.Conn, path string) int {
	t.Helper()
	c.SetDeadline(time.Now().Add(testTimeout()))
	_, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: localhost\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

// TestMaxConnsBacklog checks that at MaxConns the next connection is not
// accepted (its TCP connect succeeds but no ServerHello comes) until a
// connection ends, and is then served.
func TestMaxConnsBacklog(t *testing.T) {
	srv := &Server{MaxConns: 2, Handler: okHandler}
	atLimit := hookConnLimitWait(t, srv)
	addr := startTLS(t, srv)

	c1 := dialTLS(t, addr, "http/1.1")
	c2 := dialTLS(t, addr, "http/1.1")
	assert.Equal(t, http.StatusOK, getOn(t, c1, "/"))
	assert.Equal(t, http.StatusOK, getOn(t, c2, "/"))
	waitSignal(t, atLimit, "the accept loop to wait at MaxConns")

	c3, done := pendingTLS(t, addr)
	requireNoHandshake(t, done)

	c1.Close()
	require.NoError(t, waitSignal(t, done, "the third handshake after a connection ended"))
	assert.Equal(t, http.StatusOK, getOn(t, c3, "/"))
	assert.Equal(t, http.StatusOK, getOn(t, c2, "/"))
}

// TestMaxConnsHTTP2CountsOnce checks that an HTTP/2 connection counts
// once, whatever its streams: with MaxConns 2, ten streams in flight on
// one HTTP/2 connection leave room for one more connection, and the one
// after that waits.
func TestMaxConnsHTTP2CountsOnce(t *testing.T) {
	const streams = 10
	arrived := make(chan struct{}, streams)
	release := make(chan struct{})
	srv := &Server{MaxConns: 2, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, r.Proto)
	})}
	atLimit := hookConnLimitWait(t, srv)
	addr := startTLS(t, srv)

	h2 := newClient(t, true)
	resp, err := h2.Get("https://" + addr + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "HTTP/2.0", resp.Proto)

	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for range streams {
		wg.Go(func() {
			resp, err := h2.Get("https://" + addr + "/block")
			if err == nil {
				resp.Body.Close()
				if resp.Proto != "HTTP/2.0" {
					err = errors.New("not HTTP/2: " + resp.Proto)
				}
			}
			errs <- err
		})
	}
	t.Cleanup(func() {
		close(release)
		wg.Wait()
	})
	for range streams {
		waitSignal(t, arrived, "the HTTP/2 streams to reach the handler")
	}

	c2 := dialTLS(t, addr, "http/1.1")
	assert.Equal(t, http.StatusOK, getOn(t, c2, "/"), "the second connection fits beside the HTTP/2 one")
	waitSignal(t, atLimit, "the accept loop to wait at MaxConns")
	_, done := pendingTLS(t, addr)
	requireNoHandshake(t, done)

	c2.Close()
	require.NoError(t, waitSignal(t, done, "the third handshake after a connection ended"))
}

// TestMaxConnsHijackReleases checks that a hijacked connection stops
// counting when it is hijacked, while the handler still holds it.
func TestMaxConnsHijackReleases(t *testing.T) {
	hijacked := make(chan net.Conn, 1)
	srv := &Server{MaxConns: 1, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hijack" {
			io.WriteString(w, "ok")
			return
		}
		c, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		hijacked <- c
	})}
	atLimit := hookConnLimitWait(t, srv)
	addr := startTLS(t, srv)

	c1 := dialTLS(t, addr, "http/1.1")
	waitSignal(t, atLimit, "the accept loop to wait at MaxConns")
	c2, done := pendingTLS(t, addr)
	requireNoHandshake(t, done)

	c1.SetDeadline(time.Now().Add(testTimeout()))
	_, err := io.WriteString(c1, "GET /hijack HTTP/1.1\r\nHost: localhost\r\n\r\n")
	require.NoError(t, err)
	hc := waitSignal(t, hijacked, "the hijack")
	t.Cleanup(func() { hc.Close() })

	require.NoError(t, waitSignal(t, done, "the second handshake after the hijack"))
	assert.Equal(t, http.StatusOK, getOn(t, c2, "/"))

	// The hijacked connection is still the handler's, and open.
	_, err = io.WriteString(hc, "still open")
	require.NoError(t, err)
}

// TestMaxConnsStopWhileAtLimit checks that Shutdown and Close return at
// once, and Serve returns http.ErrServerClosed, while the accept loop
// waits at MaxConns with a connection waiting in the backlog.
func TestMaxConnsStopWhileAtLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(*Server) error
	}{
		{"Shutdown", func(s *Server) error {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout())
			defer cancel()
			return s.Shutdown(ctx)
		}},
		{"Close", (*Server).Close},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &Server{MaxConns: 1, Handler: okHandler}
			atLimit := hookConnLimitWait(t, srv)
			ln := localListener(t)
			serveErr := make(chan error, 1)
			go func() { serveErr <- srv.ServeTLS(ln, testCertFile, testKeyFile) }()
			addr := ln.Addr().String()

			c1 := dialTLS(t, addr, "http/1.1")
			assert.Equal(t, http.StatusOK, getOn(t, c1, "/")) // idle now
			waitSignal(t, atLimit, "the accept loop to wait at MaxConns")
			_, done := pendingTLS(t, addr)

			stopped := make(chan error, 1)
			go func() { stopped <- tc.stop(srv) }()
			require.NoError(t, waitSignal(t, stopped, tc.name+" to return"))
			require.ErrorIs(t, waitSignal(t, serveErr, "Serve to return"), http.ErrServerClosed)
			// The connection in the backlog is refused with the listener.
			require.Error(t, waitSignal(t, done, "the waiting connection to be refused"))
		})
	}
}

// TestDefaultMaxConns checks the MaxConns default derived from the
// RLIMIT_NOFILE soft limit, and the resolution of the field.
func TestDefaultMaxConns(t *testing.T) {
	errNoLimit := errors.New("no RLIMIT_NOFILE")
	for _, tc := range []struct {
		name string
		soft uint64
		err  error
		want int
	}{
		{"Linux hard limit", 1 << 20, nil, 786432}, // a quarter reserved
		{"systemd", 524288, nil, 393216},
		{"1024", 1024, nil, 768},
		{"256: the 64 minimum", 256, nil, 192},
		{"200: the 64 minimum", 200, nil, 136},
		{"100: at most half reserved", 100, nil, 50},
		{"64", 64, nil, 32},
		{"1", 1, nil, 1},
		{"zero: unknown", 0, nil, 0},
		{"unlimited", math.MaxUint64, nil, 0},
		{"no rlimit", 0, errNoLimit, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, defaultMaxConns(tc.soft, tc.err))
		})
	}

	old := rlimitNoFile
	t.Cleanup(func() { rlimitNoFile = old })
	rlimitNoFile = func() (uint64, error) { return 4096, nil }
	for _, tc := range []struct {
		field, want int
	}{
		{0, 3072},
		{-1, 0},
		{5, 5},
	} {
		assert.Equal(t, tc.want, (&Server{MaxConns: tc.field}).maxConns(), "MaxConns %d", tc.field)
	}
	l := (&Server{}).connLimit()
	require.NotNil(t, l)
	assert.Equal(t, 3072, l.max)
	assert.Nil(t, (&Server{MaxConns: -1}).connLimit())

	// The real getter answers on this platform, and the default is a
	// limit below it.
	soft, err := old()
	if err == nil && soft > 0 && soft < math.MaxInt32 {
		n := defaultMaxConns(soft, nil)
		assert.Positive(t, n)
		assert.Less(t, uint64(n), soft)
	}
}

// TestMaxConcurrentHandshakesDefault checks the resolution of
// MaxConcurrentHandshakes.
func TestMaxConcurrentHandshakesDefault(t *testing.T) {
	assert.Equal(t, runtime.GOMAXPROCS(0), (&Server{}).maxConcurrentHandshakes())
	assert.Equal(t, 0, (&Server{MaxConcurrentHandshakes: -1}).maxConcurrentHandshakes())
	assert.Equal(t, 3, (&Server{MaxConcurrentHandshakes: 3}).maxConcurrentHandshakes())
	assert.Nil(t, (&Server{MaxConcurrentHandshakes: -1}).handshakeLimit())
}

// gatedSigner is a private key whose first signature waits for gate,
// standing in for a handshake whose cryptography takes its time (a
// saturated core, an HSM): the server's signature in a TLS 1.3 handshake
// is computed under the handshake slot.
type gatedSigner struct {
	crypto.Signer
	once    sync.Once
	entered chan struct{} // closed when the first signature starts
	gate    chan struct{} // the first signature waits for it; see open
	opened  sync.Once
	inside  atomic.Int32 // signatures in progress
	most    atomic.Int32 // the most in progress at once
}

func newGatedSigner(key crypto.Signer) *gatedSigner {
	return &gatedSigner{Signer: key, entered: make(chan struct{}), gate: make(chan struct{})}
}

// open lets the first signature go on.
func (g *gatedSigner) open() { g.opened.Do(func() { close(g.gate) }) }

func (g *gatedSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	n := g.inside.Add(1)
	defer g.inside.Add(-1)
	for m := g.most.Load(); n > m && !g.most.CompareAndSwap(m, n); m = g.most.Load() {
	}
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.entered)
		<-g.gate
	}
	return g.Signer.Sign(rand, digest, opts)
}

// gatedCertificate returns the test certificate with its key behind a
// gatedSigner; cleanup opens the gate.
func gatedCertificate(t *testing.T) (tls.Certificate, *gatedSigner) {
	cert, _ := testCertificate(t)
	g := newGatedSigner(cert.PrivateKey.(crypto.Signer))
	cert.PrivateKey = g
	t.Cleanup(g.open)
	return cert, g
}

// TestHandshakeLimitWaits checks MaxConcurrentHandshakes 1 with the slot
// held by a handshake whose signature takes its time: a second handshake
// waits, and is cut when its handshake timeout passes; an established
// connection keeps being served meanwhile; once the slow handshake has
// computed, new handshakes are served, and no two signatures ran at once.
func TestHandshakeLimitWaits(t *testing.T) {
	cert, g := gatedCertificate(t)
	srv := &Server{
		MaxConcurrentHandshakes: 1,
		TLSHandshakeTimeout:     500 * time.Millisecond,
		TLSConfig:               &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler:                 okHandler,
		ErrorLog:                discardLogger(),
	}
	addr := serveOn(t, localListener(t), func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }, srv.Close)

	// The first handshake signs, slowly, holding the only slot.
	_, slowDone := pendingTLS(t, addr)
	waitSignal(t, g.entered, "the slow handshake to sign")

	// A second handshake waits for the slot, and its handshake timeout
	// cuts it.
	_, waiting := pendingTLS(t, addr)
	require.Error(t, waitSignal(t, waiting, "the waiting handshake to be cut"))
	require.Eventually(t, func() bool { return srv.HandshakeErrors().Timeout >= 1 }, testTimeout(), time.Millisecond,
		"the cut handshake is counted as a timeout")
	st := srv.Stats()
	assert.Equal(t, uint64(1), st.HandshakeSlotWaits, "handshakes that waited for a slot")
	assert.Equal(t, uint64(1), st.HandshakeSlotTimeouts, "waits cut by the handshake timeout")

	// The slow handshake, past its own timeout by now, ends when it
	// resumes (it fails, unless the runtime timer that marks its
	// deadline has not run yet: on a loaded machine it can fire after
	// the second handshake's, which is only milliseconds later, and
	// the flight goes out; seen once in 15 runs at load 5), and gives
	// its slot back: new handshakes are served, and an established
	// connection too.
	g.open()
	waitSignal(t, slowDone, "the slow handshake to end")
	established := dialTLS(t, addr, "http/1.1")
	assert.Equal(t, http.StatusOK, getOn(t, established, "/"))
	assert.Equal(t, int32(1), g.most.Load(), "signatures at once with MaxConcurrentHandshakes 1")
}

// TestHandshakeLimitServesEstablished checks that requests on an
// established connection are served while every handshake slot is held
// and a handshake waits for one.
func TestHandshakeLimitServesEstablished(t *testing.T) {
	srv := &Server{MaxConcurrentHandshakes: 1, Handler: okHandler, ErrorLog: discardLogger()}
	addr := startTLS(t, srv)
	established := dialTLS(t, addr, "http/1.1")
	require.Equal(t, http.StatusOK, getOn(t, established, "/"))

	lim := srv.handshakeLimit()
	lim.sem <- struct{}{} // the only slot, held
	_, waiting := pendingTLS(t, addr)
	for range 3 {
		assert.Equal(t, http.StatusOK, getOn(t, established, "/"), "an established connection is served while the slots are full")
	}
	select {
	case err := <-waiting:
		t.Fatalf("a handshake went through while the only slot was held: %v", err)
	default:
	}
	lim.give()
	require.NoError(t, waitSignal(t, waiting, "the waiting handshake, once the slot is free"))
}

// stallConn lets its first write (the ClientHello) through and blocks every
// later write until it is closed: a client that stops in the middle of its
// handshake.
type stallConn struct {
	net.Conn
	mu      sync.Mutex
	writes  int
	stalled chan struct{} // closed at the first blocked write
	closed  chan struct{}
	once    sync.Once
}

func (c *stallConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	n := c.writes
	c.mu.Unlock()
	if n == 1 {
		return c.Conn.Write(p)
	}
	if n == 2 {
		close(c.stalled)
	}
	<-c.closed
	return 0, net.ErrClosed
}

func (c *stallConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// TestHandshakeSlotNotHeld checks that with MaxConcurrentHandshakes 1 the
// slot is not held by a client that connects and sends nothing, nor by one
// that stops after its ClientHello, whatever the TLS version: another
// client's handshake goes through meanwhile, well within the handshake
// timeout.
func TestHandshakeSlotNotHeld(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version uint16 // 0: only connect
	}{
		{"idle dialer", 0},
		{"stalled TLS 1.3", tls.VersionTLS13},
		{"stalled TLS 1.2", tls.VersionTLS12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &Server{
				MaxConcurrentHandshakes: 1,
				TLSHandshakeTimeout:     3 * testTimeout(),
				Handler:                 okHandler,
			}
			addr := startTLS(t, srv)
			raw, err := net.DialTimeout("tcp", addr, testTimeout())
			require.NoError(t, err)
			t.Cleanup(func() { raw.Close() })
			if tc.version != 0 {
				sc := &stallConn{Conn: raw, stalled: make(chan struct{}), closed: make(chan struct{})}
				t.Cleanup(func() { sc.Close() })
				cfg := clientTLSConfig(t, "http/1.1")
				cfg.MaxVersion = tc.version
				stalled := tls.Client(sc, cfg)
				go stalled.Handshake()
				// The client got the server's flight and stops there.
				waitSignal(t, sc.stalled, "the client to stall")
			}
			c := dialTLS(t, addr, "http/1.1")
			assert.Equal(t, http.StatusOK, getOn(t, c, "/"))
		})
	}
}

// TestHandshakeSlotLifetime checks the slot's lifetime on a countConn:
// held from take until the handshake's next write or read, and the bounds
// of a wait.
func TestHandshakeSlotLifetime(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   func(t *testing.T, cc *countConn, peer net.Conn)
	}{
		{"read", func(t *testing.T, cc *countConn, peer net.Conn) {
			go peer.Write([]byte("x"))
			_, err := cc.Read(make([]byte, 1))
			require.NoError(t, err)
		}},
		{"write", func(t *testing.T, cc *countConn, peer net.Conn) {
			go peer.Read(make([]byte, 1))
			_, err := cc.Write([]byte("x"))
			require.NoError(t, err)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			t.Cleanup(func() { a.Close(); b.Close() })
			lim := &handshakeLimiter{sem: make(chan struct{}, 1), closed: make(chan struct{})}
			cc := &countConn{Conn: a}
			require.NoError(t, cc.takeHandshakeSlot(lim))
			assert.Len(t, lim.sem, 1, "held after take")
			tc.op(t, cc, b)
			assert.Empty(t, lim.sem, "given back")
			cc.giveHandshakeSlot() // a second give is a no-op
			assert.Empty(t, lim.sem)
		})
	}

	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	lim := &handshakeLimiter{sem: make(chan struct{}, 1), closed: make(chan struct{})}
	cc := &countConn{Conn: a}
	// A take beyond the limit waits until its deadline.
	lim.sem <- struct{}{}
	cc.hsDeadline = time.Now().Add(20 * time.Millisecond)
	assert.ErrorIs(t, cc.takeHandshakeSlot(lim), os.ErrDeadlineExceeded)
	// Or until the server is closed.
	cc.hsDeadline = time.Time{}
	close(lim.closed)
	assert.ErrorIs(t, cc.takeHandshakeSlot(lim), net.ErrClosed)
	assert.False(t, cc.hsHeld)
}

// TestHRRWatch checks that hrrWatch reports the second ClientHello whole,
// and not before, however the bytes are split into reads and records.
func TestHRRWatch(t *testing.T) {
	record := func(typ byte, payload []byte) []byte {
		return append([]byte{typ, 3, 3, byte(len(payload) >> 8), byte(len(payload))}, payload...)
	}
	body := bytes.Repeat([]byte{0xab}, 700)
	hello := append([]byte{1, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	ccs := record(20, []byte{1})
	for _, tc := range []struct {
		name   string
		stream []byte
	}{
		{"one record", record(22, hello)},
		{"after a ChangeCipherSpec", append(append([]byte{}, ccs...), record(22, hello)...)},
		{"over three records", append(append(record(22, hello[:2]), record(22, hello[2:300])...), record(22, hello[300:])...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{1, 3, 7, 100, len(tc.stream)} {
				w := hrrWatch{active: true}
				done := -1
				for i := 0; i < len(tc.stream); i += chunk {
					if w.feed(tc.stream[i:min(i+chunk, len(tc.stream))]) {
						done = min(i+chunk, len(tc.stream))
						break
					}
				}
				assert.Equal(t, len(tc.stream), done, "reads of %d bytes: the ClientHello is whole at the last byte", chunk)
			}
		})
	}
}

// skipWithoutNetYields skips a test of the yields' descriptors where there
// are none: outside Unix, a yield is a runtime.Gosched.
func skipWithoutNetYields(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("yields use runtime.Gosched outside Unix")
	}
}

// tcpPair returns the two ends of a TCP connection over loopback, closed
// when the test ends.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln := localListener(t)
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { server.Close() })
	return client, server
}

// TestYieldToNetwork checks that yieldToNetwork returns, from many
// goroutines at once, and that the pool's pipes are closed with it.
func TestYieldToNetwork(t *testing.T) {
	var p yieldPool
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				p.yieldToNetwork()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	waitSignal(t, done, "the yields to return")
	p.close()
	p.yieldToNetwork() // after close: a pipe made and closed
	assert.Zero(t, p.kept())
}

// TestYieldToNetworkPolled checks that a yield is woken by the network
// poller, yield after yield on the same descriptor, and not by the bound
// on its wait (maxYieldWait): the eventfd a Linux yield writes to is never
// read back, so each write must still be a new event for the poller. A
// machine stalled for longer than the bound may time out a few; a
// descriptor whose writes stopped being events would time out all but
// the first.
func TestYieldToNetworkPolled(t *testing.T) {
	skipWithoutNetYields(t)
	var p yieldPool
	t.Cleanup(p.close)
	const yields = 100
	polled := 0
	for range yields {
		if p.yieldToNetwork() {
			polled++
		}
	}
	assert.Greater(t, polled, yields/2, "yields woken by the poller")
	assert.Equal(t, 1, p.kept(), "one descriptor, reused by every yield")
}

// TestYieldToNetworkRunsBehindWaiting checks that a yield lets a goroutine
// the network made runnable meanwhile run first, on one processor: the
// runtime's poll hands over the goroutines it wakes in the reverse of the
// order their descriptors became ready, so the yield, whose event comes
// last, would run ahead of a request that was already waiting (and compute
// its handshake while the request waits) unless it then goes to the back
// of the run queue. Not parallel: it sets GOMAXPROCS.
func TestYieldToNetworkRunsBehindWaiting(t *testing.T) {
	skipWithoutNetYields(t)
	client, server := tcpPair(t)
	var p yieldPool
	t.Cleanup(p.close)
	p.yieldToNetwork() // the descriptor, made once

	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	const rounds = 20
	behind := 0
	for range rounds {
		var order atomic.Int32
		reading := make(chan struct{})
		read := make(chan int32, 1)
		go func() {
			var b [1]byte
			close(reading)
			server.Read(b[:]) // parks in the poller until the byte comes
			read <- order.Add(1)
		}()
		<-reading
		runtime.Gosched() // the reader parks in its Read
		_, err := client.Write([]byte{1})
		require.NoError(t, err)
		p.yieldToNetwork()
		yielded := order.Add(1)
		if <-read < yielded {
			behind++
		}
	}
	runtime.GOMAXPROCS(prev)
	// A round may go either way when the runtime polls the network from
	// elsewhere (its monitor thread) at the wrong moment; without the
	// Gosched after the yield, hardly any round lets the reader go first.
	assert.GreaterOrEqual(t, behind, rounds*3/4, "yields that let the waiting reader run first, of %d", rounds)
}

// TestYieldPoolShort checks that a yield pool short of descriptors (the
// accept loop at EMFILE) gives back the descriptors it keeps at once, and
// makes and keeps none until descriptors are back: a yield must not take
// the slot the accept loop frees to shed a pending connection.
func TestYieldPoolShort(t *testing.T) {
	skipWithoutNetYields(t)
	var p yieldPool
	t.Cleanup(p.close)
	p.yieldToNetwork()
	require.Equal(t, 1, p.kept(), "a descriptor kept for the next yield")

	p.setShort(true)
	assert.Zero(t, p.kept(), "short: the descriptor kept is given back")
	assert.False(t, p.yieldToNetwork(), "short: the yield falls back to runtime.Gosched")
	assert.Zero(t, p.kept(), "short: no descriptor made")

	// A yield that took its descriptor before the pool became short
	// closes it when done.
	y := p.get()
	p.setShort(false)
	p.setShort(true)
	if y != nil {
		p.put(y)
	}
	assert.Zero(t, p.kept(), "short: a descriptor put back is closed")

	p.setShort(false)
	assert.True(t, p.yieldToNetwork(), "descriptors back: the poller wakes the yield")
	assert.Equal(t, 1, p.kept())
}

// TestHandshakeLimitAllocs checks that the handshake limit's steps that
// run for most handshakes under a steady stream of them (issue 9) do not
// allocate: the yield, the timer of a wait for a slot, and the peek for a
// client gone while its handshake waited (one allocation: the socket's
// RawConn).
func TestHandshakeLimitAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	_, server := tcpPair(t)
	var yields yieldPool
	t.Cleanup(yields.close)

	tests := []struct {
		name string
		max  float64
		fn   func()
	}{
		{"yield", 0, func() { yields.yieldToNetwork() }},
		{"slot wait timer", 0, func() { putSlotTimer(getSlotTimer(time.Minute)) }},
		{"peer check", 1, func() { peerClosed(server) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn() // the pools' first element
			assert.LessOrEqual(t, testing.AllocsPerRun(100, tt.fn), tt.max)
		})
	}
}

// TestHandshakeSlotFreeDuringGetCertificate checks that a GetCertificate
// of the caller's that waits (for a certificate store, or, like autocert's,
// for a certificate to be issued, whose TLS-ALPN-01 challenge is itself a
// handshake with the server) holds no handshake slot while it waits: with
// MaxConcurrentHandshakes 1, another handshake completes meanwhile,
// whichever configuration the GetCertificate belongs to.
func TestHandshakeSlotFreeDuringGetCertificate(t *testing.T) {
	cert, _ := testCertificate(t)
	for _, tc := range []struct {
		name  string
		files bool // serve the key pair from files; GetCertificate asked first
		setup func(cfg *tls.Config, get func(*tls.ClientHelloInfo) (*tls.Certificate, error))
	}{
		{"TLSConfig.GetCertificate", false, func(cfg *tls.Config, get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) {
			cfg.GetCertificate = get
		}},
		{"TLSConfig.GetCertificate beside cert files", true, func(cfg *tls.Config, get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) {
			cfg.GetCertificate = get
		}},
		{"GetCertificate of the config GetConfigForClient returns", false, func(cfg *tls.Config, get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) {
			cfg.Certificates = []tls.Certificate{cert}
			cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
				return &tls.Config{GetCertificate: get}, nil
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entered, gate := make(chan struct{}), make(chan struct{})
			var first sync.Once
			get := func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				waits := false
				first.Do(func() { waits = true })
				if waits {
					close(entered)
					<-gate
				}
				return &cert, nil
			}
			cfg := &tls.Config{}
			tc.setup(cfg, get)
			srv := &Server{MaxConcurrentHandshakes: 1, TLSConfig: cfg, Handler: okHandler, ErrorLog: discardLogger()}
			certFile, keyFile := "", ""
			if tc.files {
				certFile, keyFile = testCertFile, testKeyFile
			}
			addr := serveOn(t, localListener(t), func(ln net.Listener) error { return srv.ServeTLS(ln, certFile, keyFile) }, srv.Close)
			_, slow := pendingTLS(t, addr)
			waitSignal(t, entered, "GetCertificate to wait")
			c := dialTLS(t, addr, "http/1.1")
			assert.Equal(t, http.StatusOK, getOn(t, c, "/"), "a handshake while another's GetCertificate waits")
			close(gate)
			require.NoError(t, waitSignal(t, slow, "the handshake whose GetCertificate waited"))
			assert.Eventually(t, func() bool { return len(srv.handshakeLimit().sem) == 0 }, testTimeout(), time.Millisecond,
				"no slot held once the handshakes are done")
		})
	}
}

// TestMaxConnsReclaimIdle checks the reclaim of idle keep-alive
// connections at MaxConns both ways: a new client is let in once the idle
// connection is taken back, and the idle connection's client, sending a
// request just as it is taken back, is answered (with Connection: close),
// not cut.
func TestMaxConnsReclaimIdle(t *testing.T) {
	srv := &Server{MaxConns: 1, IdleTimeout: 10 * testTimeout(), Handler: okHandler, ErrorLog: discardLogger()}
	atLimit := hookConnLimitWait(t, srv)
	addr := startTLS(t, srv)

	idle := dialTLS(t, addr, "http/1.1")
	require.Equal(t, http.StatusOK, getOn(t, idle, "/"))
	waitSignal(t, atLimit, "the accept loop to wait at MaxConns")
	_, next := pendingTLS(t, addr)
	reclaimed := func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for c := range srv.activeConn {
			if h := c.h1.Load(); h != nil && h.reclaimed.Load() {
				return true
			}
		}
		return false
	}
	require.Eventually(t, reclaimed, testTimeout(), time.Millisecond, "the idle connection to be taken back")

	// The idle connection's client sends a request now: answered, and
	// told that the connection closes.
	_, err := io.WriteString(idle, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	require.NoError(t, err, "a request on a connection being taken back")
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.True(t, resp.Close, "the response says the connection closes")

	require.NoError(t, waitSignal(t, next, "the new client, once the idle connection closed"))
	assert.GreaterOrEqual(t, srv.Stats().ConnLimitWaits, uint64(1), "waits at MaxConns (one more once the new client holds the slot)")
}
