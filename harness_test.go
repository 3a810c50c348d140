package httpsrv

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	testCertFile = "testdata/localhost.crt"
	testKeyFile  = "testdata/localhost.key"
)

// testTimeout bounds every wait in the tests. HTTPSRV_TEST_SCALE multiplies
// it on slow machines.
func testTimeout() time.Duration {
	d := 10 * time.Second
	if s, err := strconv.Atoi(os.Getenv("HTTPSRV_TEST_SCALE")); err == nil && s > 0 {
		d *= time.Duration(s)
	}
	return d
}

var (
	testCertOnce sync.Once
	testCert     tls.Certificate
	testCertPool *x509.CertPool
)

// testCertificate returns the test key pair and a pool that trusts it.
func testCertificate(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	testCertOnce.Do(func() {
		var err error
		testCert, err = tls.LoadX509KeyPair(testCertFile, testKeyFile)
		if err != nil {
			panic(err)
		}
		pem, err := os.ReadFile(testCertFile)
		if err != nil {
			panic(err)
		}
		testCertPool = x509.NewCertPool()
		testCertPool.AppendCertsFromPEM(pem)
	})
	return testCert, testCertPool
}

// localListener returns a TCP listener on 127.0.0.1 closed at cleanup.
func localListener(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln
}

// startTLS serves srv with the test certificate on a fresh 127.0.0.1
// listener and returns its address; see serveTestFiles.
func startTLS(t testing.TB, srv *Server) string {
	t.Helper()
	return serveTestFiles(t, srv, testCertFile, testKeyFile)
}

// serveTestFiles serves srv with ServeTLS and the given files on a fresh
// 127.0.0.1 listener and returns its address. At cleanup the server is
// closed and ServeTLS must have returned http.ErrServerClosed.
func serveTestFiles(t testing.TB, srv *Server, certFile, keyFile string) string {
	t.Helper()
	serve := func(ln net.Listener) error { return srv.ServeTLS(ln, certFile, keyFile) }
	return serveOn(t, localListener(t), serve, srv.Close)
}

// serveOn runs serve on ln in the background and returns ln's address. At
// cleanup closeSrv stops the server, and serve must have returned
// http.ErrServerClosed.
func serveOn(t testing.TB, ln net.Listener, serve func(net.Listener) error, closeSrv func() error) string {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- serve(ln) }()
	t.Cleanup(func() {
		closeSrv()
		select {
		case err := <-errc:
			if !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
			}
		case <-time.After(testTimeout()):
			t.Errorf("Serve did not return after Close")
		}
	})
	return ln.Addr().String()
}

// startNetHTTP is startTLS for net/http's server, the oracle.
func startNetHTTP(t testing.TB, srv *http.Server) string {
	t.Helper()
	ln := localListener(t)
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, testCertFile, testKeyFile) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case <-errc:
		case <-time.After(testTimeout()):
			t.Errorf("net/http ServeTLS did not return after Close")
		}
	})
	return ln.Addr().String()
}

// startNetHTTPWaiting is startNetHTTP, plus a cleanup that waits for the
// server's connection goroutines: net/http's Close does not wait for them,
// and some sleep 500 ms before closing (closeWriteAndWait). Registered
// before the server starts, the cleanup runs after it is closed, for
// goleak.
func startNetHTTPWaiting(t testing.TB, srv *http.Server) string {
	t.Helper()
	rec := newStateRecorder()
	t.Cleanup(func() {
		rec.waitFor(t, "net/http connections to end", func(all [][]http.ConnState) bool {
			for _, states := range all {
				if last := states[len(states)-1]; last != http.StateClosed && last != http.StateHijacked {
					return false
				}
			}
			return true
		})
	})
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		if prev != nil {
			prev(c, s)
		}
		rec.hook(c, s)
	}
	return startNetHTTP(t, srv)
}

// roundTripRaw sends raw on a new HTTP/1.1 TLS connection to addr, reads
// one response whole, and reports whether the server then closed the
// connection (rather than sending more or keeping it open).
func roundTripRaw(t testing.TB, addr, raw string) (resp *http.Response, body string, closed bool) {
	t.Helper()
	c := dialTLS(t, addr, "http/1.1")
	c.SetDeadline(time.Now().Add(testTimeout()))
	_, err := io.WriteString(c, raw)
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err = http.ReadResponse(br, nil)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	_, err = br.ReadByte()
	return resp, string(b), errors.Is(err, io.EOF)
}

// newClient returns an http.Client that trusts the test certificate and
// speaks HTTP/2 when h2 is set, else HTTP/1.1 only.
func newClient(t testing.TB, h2 bool) *http.Client {
	t.Helper()
	_, pool := testCertificate(t)
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "localhost"},
		ForceAttemptHTTP2: h2,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: testTimeout()}
}

// dialTLS opens a TLS connection to addr offering the ALPN protocols
// protos, closed at cleanup.
func dialTLS(t testing.TB, addr string, protos ...string) *tls.Conn {
	t.Helper()
	_, pool := testCertificate(t)
	d := &tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: protos}}
	d.NetDialer = &net.Dialer{Timeout: testTimeout()}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c.(*tls.Conn)
}

// syncBuffer is a goroutine-safe bytes.Buffer for capturing logs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newTestLogger returns a logger writing to a buffer the test can read.
func newTestLogger() (*log.Logger, *syncBuffer) {
	buf := new(syncBuffer)
	return log.New(buf, "", 0), buf
}

// stateRecorder records ConnState transitions and lets a test wait for
// one.
type stateRecorder struct {
	mu     sync.Mutex
	states map[net.Conn][]http.ConnState
	order  []net.Conn
	change chan struct{} // closed and replaced on every transition
}

func newStateRecorder() *stateRecorder {
	return &stateRecorder{states: map[net.Conn][]http.ConnState{}, change: make(chan struct{})}
}

func (r *stateRecorder) hook(c net.Conn, s http.ConnState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.states[c]; !ok {
		r.order = append(r.order, c)
	}
	r.states[c] = append(r.states[c], s)
	close(r.change)
	r.change = make(chan struct{})
}

// all returns the transitions of every connection, in order of first
// appearance.
func (r *stateRecorder) all() [][]http.ConnState {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]http.ConnState
	for _, c := range r.order {
		out = append(out, append([]http.ConnState(nil), r.states[c]...))
	}
	return out
}

// waitFor waits until cond holds over the recorded transitions.
func (r *stateRecorder) waitFor(t testing.TB, what string, cond func([][]http.ConnState) bool) {
	t.Helper()
	deadline := time.After(testTimeout())
	for {
		r.mu.Lock()
		ch := r.change
		r.mu.Unlock()
		if cond(r.all()) {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; states: %v", what, r.all())
		}
	}
}

// lastStateIs returns a waitFor condition: the single connection's last
// state is s.
func lastStateIs(s http.ConnState) func([][]http.ConnState) bool {
	return func(all [][]http.ConnState) bool {
		return len(all) == 1 && len(all[0]) > 0 && all[0][len(all[0])-1] == s
	}
}

// getAsync makes a GET request in the background and sends its error, or
// nil, on the returned channel.
func getAsync(c *http.Client, url string) <-chan error {
	errc := make(chan error, 1)
	go func() {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	return errc
}
