package httpsrv

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// listenRun is one of the methods that listen on a Server's behalf.
type listenRun struct {
	name     string
	scheme   string                      // of the URLs it serves
	redirect bool                        // answers every request with a redirect
	run      func(*Server, string) error // serves srv on addr
}

var listenRuns = []listenRun{
	{name: "ListenAndServe", scheme: "http", run: func(s *Server, addr string) error {
		s.Addr = addr
		return s.ListenAndServe()
	}},
	{name: "ListenAndServeTLS", scheme: "https", run: func(s *Server, addr string) error {
		s.Addr = addr
		return s.ListenAndServeTLS(testCertFile, testKeyFile)
	}},
	{name: "ListenAndServeHTTPRedirect", scheme: "http", redirect: true, run: func(s *Server, addr string) error {
		s.Addr = "127.0.0.1:8443"
		return s.ListenAndServeHTTPRedirect(addr)
	}},
}

// listening is a server started by startListening.
type listening struct {
	addr string
	errc chan error
	err  error
	done bool
}

// result waits for the method serving to return, and returns its error.
func (l *listening) result(t testing.TB) error {
	t.Helper()
	if !l.done {
		select {
		case l.err = <-l.errc:
		case <-time.After(testTimeout()):
			t.Fatalf("the server did not return")
		}
		l.done = true
	}
	return l.err
}

// serveSignal reports the addresses servers start serving on, through
// testHookServerServe. Tests that use it must not run in parallel.
func serveSignal(t testing.TB) <-chan string {
	served := make(chan string, 4)
	SetTestHookServerServe(t, func(_ *Server, ln net.Listener) { served <- ln.Addr().String() })
	return served
}

// startListening runs r on srv and addr in the background, and returns
// once it serves, or with the error it returned first. At cleanup srv is
// closed, and r must have returned http.ErrServerClosed.
func startListening(t testing.TB, served <-chan string, r listenRun, srv *Server, addr string) (*listening, error) {
	t.Helper()
	l := &listening{errc: make(chan error, 1)}
	go func() { l.errc <- r.run(srv, addr) }()
	select {
	case l.addr = <-served:
	case err := <-l.errc:
		return nil, err
	case <-time.After(testTimeout()):
		t.Fatalf("%s did not start", r.name)
	}
	t.Cleanup(func() {
		srv.Close()
		assert.ErrorIs(t, l.result(t), http.ErrServerClosed)
	})
	return l, nil
}

// reusePortClient makes a new connection for each request, and follows no
// redirect.
func reusePortClient(t testing.TB) *http.Client {
	_, pool := testCertificate(t)
	tr := &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "localhost"},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       testTimeout(),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// getBody makes a request and returns the body, or the status for a redirect.
func getBody(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusPermanentRedirect {
		return resp.Status, nil
	}
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// namedHandler answers its name and counts the requests.
type namedHandler struct {
	name string
	n    atomic.Int64
}

func (h *namedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.n.Add(1)
	io.WriteString(w, h.name)
}

// TestReusePort checks that two Servers with ReusePort listen on the same
// address at once, through each method that listens, that the kernel
// gives connections to both, and that after one shuts down the other
// serves every new connection.
func TestReusePort(t *testing.T) {
	for _, r := range listenRuns {
		t.Run(r.name, func(t *testing.T) {
			served := serveSignal(t)
			ha, hb := &namedHandler{name: "A"}, &namedHandler{name: "B"}
			a := &Server{ReusePort: true, Handler: ha, ErrorLog: discardLogger()}
			b := &Server{ReusePort: true, Handler: hb, ErrorLog: discardLogger()}
			la, err := startListening(t, served, r, a, "127.0.0.1:0")
			require.NoError(t, err)
			lb, err := startListening(t, served, r, b, la.addr)
			require.NoError(t, err, "second listener with ReusePort")
			require.Equal(t, la.addr, lb.addr)

			client := reusePortClient(t)
			url := r.scheme + "://" + la.addr + "/"
			if !r.redirect {
				// The kernel hashes each connection's addresses and ports
				// to pick a listener: new connections reach both soon.
				deadline := time.Now().Add(testTimeout())
				dials := 0
				for ha.n.Load() == 0 || hb.n.Load() == 0 {
					require.True(t, time.Now().Before(deadline), "after %d connections, A got %d and B %d", dials, ha.n.Load(), hb.n.Load())
					_, err := getBody(client, url)
					require.NoError(t, err)
					dials++
				}
				t.Logf("both servers reached after %d connections", dials)
			}

			ctx, cancel := context.WithTimeout(context.Background(), testTimeout())
			defer cancel()
			require.NoError(t, a.Shutdown(ctx))
			assert.ErrorIs(t, la.result(t), http.ErrServerClosed)
			want := "B"
			if r.redirect {
				want = "308 Permanent Redirect"
			}
			for range 20 {
				body, err := getBody(client, url)
				require.NoError(t, err, "a connection failed after A shut down")
				require.Equal(t, want, body)
			}
		})
	}
}

// TestReusePortOff checks that without ReusePort on both, the second
// listen on an address fails with EADDRINUSE, as net/http's does.
func TestReusePortOff(t *testing.T) {
	tests := []struct {
		name   string
		first  bool // ReusePort of the first server
		second bool
	}{
		{name: "neither"},
		{name: "first only", first: true},
		{name: "second only", second: true},
	}
	for _, r := range listenRuns {
		for _, tt := range tests {
			t.Run(r.name+"/"+tt.name, func(t *testing.T) {
				served := serveSignal(t)
				a := &Server{ReusePort: tt.first, ErrorLog: discardLogger()}
				b := &Server{ReusePort: tt.second, ErrorLog: discardLogger()}
				la, err := startListening(t, served, r, a, "127.0.0.1:0")
				require.NoError(t, err)
				_, err = startListening(t, served, r, b, la.addr)
				require.Error(t, err)
				assert.ErrorIs(t, err, syscall.EADDRINUSE)
			})
		}
	}
}

// TestReusePortListenConfig checks that ReusePort keeps the caller's
// ListenConfig: its Control runs after SO_REUSEPORT is set (and could
// change it), its settings apply, and it is not modified.
func TestReusePortListenConfig(t *testing.T) {
	var mu sync.Mutex
	var reusePort []int // SO_REUSEPORT as the caller's Control saw it
	control := func(network, address string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			v, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort)
			if err != nil {
				v = -1
			}
			mu.Lock()
			reusePort = append(reusePort, v)
			mu.Unlock()
		})
	}
	lc := &net.ListenConfig{Control: control, KeepAlive: -1}
	served := serveSignal(t)
	srv := &Server{ReusePort: true, ListenConfig: lc, ErrorLog: discardLogger(), Handler: &namedHandler{name: "A"}}
	l, err := startListening(t, served, listenRuns[0], srv, "127.0.0.1:0")
	require.NoError(t, err)
	mu.Lock()
	assert.Equal(t, []int{1}, reusePort)
	mu.Unlock()
	assert.Equal(t, time.Duration(-1), lc.KeepAlive)
	assert.NotNil(t, lc.Control)

	// The caller's Control can refuse the socket.
	refuse := errors.New("refused by Control")
	srv2 := &Server{ReusePort: true, ListenConfig: &net.ListenConfig{Control: func(string, string, syscall.RawConn) error { return refuse }}}
	_, err = startListening(t, served, listenRuns[0], srv2, l.addr)
	assert.ErrorIs(t, err, refuse)
}
