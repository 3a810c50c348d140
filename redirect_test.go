package httpsrv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRedirectHTTPSHandler checks the redirect target for hosts with and
// without a port, IPv6 literals, escaped paths and queries, and the 400
// for a missing or invalid Host.
func TestRedirectHTTPSHandler(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		target   string // request target, as on the request line
		host     string // Host header
		port     string // RedirectHTTPSHandler's argument
		wantCode int
		wantLoc  string
	}{
		{"root", "GET", "/", "example.com", "", 308, "https://example.com/"},
		{"host port dropped", "GET", "/", "example.com:80", "", 308, "https://example.com/"},
		{"odd host port dropped", "GET", "/a", "example.com:8080", "", 308, "https://example.com/a"},
		{"empty host port", "GET", "/", "example.com:", "", 308, "https://example.com/"},
		{"https port", "GET", "/a/b?c=d", "example.com:8080", "8443", 308, "https://example.com:8443/a/b?c=d"},
		{"port 443 omitted", "GET", "/", "example.com", "443", 308, "https://example.com/"},
		{"trailing dot", "GET", "/", "example.com.", "", 308, "https://example.com./"},
		{"IPv4", "GET", "/", "192.0.2.1:80", "", 308, "https://192.0.2.1/"},
		{"IPv6 with port", "GET", "/", "[::1]:80", "8443", 308, "https://[::1]:8443/"},
		{"IPv6 without port", "GET", "/", "[2001:DB8::1]", "", 308, "https://[2001:db8::1]/"},
		{"escaped path", "GET", "/a%2Fb/c%20d", "example.com", "", 308, "https://example.com/a%2Fb/c%20d"},
		{"query", "GET", "/p?x=%3D&y&z=a+b", "example.com", "", 308, "https://example.com/p?x=%3D&y&z=a+b"},
		{"empty query", "GET", "/p?", "example.com", "", 308, "https://example.com/p?"},
		{"double slash path", "GET", "//evil.example/x", "example.com", "", 308, "https://example.com//evil.example/x"},
		{"HEAD", "HEAD", "/h", "example.com", "", 308, "https://example.com/h"},
		{"POST", "POST", "/form?a=1", "example.com", "", 308, "https://example.com/form?a=1"},
		{"missing host", "GET", "/", "", "", 400, ""},
		{"space in host", "GET", "/", "exa mple.com", "", 400, ""},
		{"path in host", "GET", "/", "evil.example/x", "", 400, ""},
		{"userinfo in host", "GET", "/", "a@evil.example", "", 400, ""},
		{"non-ASCII host", "GET", "/", "bücher.example", "", 400, ""},
		{"empty label", "GET", "/", "a..example", "", 400, ""},
		{"named port", "GET", "/", "example.com:http", "", 400, ""},
		{"long port", "GET", "/", "example.com:123456", "", 400, ""},
		{"bare IPv6", "GET", "/", "::1", "", 400, ""},
		{"unclosed bracket", "GET", "/", "[::1", "", 400, ""},
		{"junk after bracket", "GET", "/", "[::1]x", "", 400, ""},
		{"IPv4 in brackets", "GET", "/", "[192.0.2.1]", "", 400, ""},
		{"IPv6 zone", "GET", "/", "[fe80::1%25eth0]", "", 400, ""},
		{"asterisk", "OPTIONS", "*", "example.com", "", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.method == "POST" {
				body = strings.NewReader("a=b")
			}
			r := httptest.NewRequest(tt.method, tt.target, body)
			r.Host = tt.host
			w := httptest.NewRecorder()
			RedirectHTTPSHandler(tt.port).ServeHTTP(w, r)

			assert.Equal(t, tt.wantCode, w.Code)
			assert.Equal(t, tt.wantLoc, w.Header().Get("Location"))
			assert.Equal(t, "close", w.Header().Get("Connection"))
			if tt.method == "GET" && tt.wantCode == 308 {
				assert.Contains(t, w.Body.String(), "Permanent Redirect")
			}
		})
	}
}

// TestRedirectHTTPSHandlerPort checks the port argument: normalised, and
// a panic for one that is not a port.
func TestRedirectHTTPSHandlerPort(t *testing.T) {
	tests := []struct {
		port      string
		want      string
		wantPanic bool
	}{
		{port: "", want: ""},
		{port: "443", want: ""},
		{port: "8443", want: "8443"},
		{port: "08443", want: "8443"},
		{port: "0", wantPanic: true},
		{port: "70000", wantPanic: true},
		{port: "https", wantPanic: true},
		{port: ":8443", wantPanic: true},
	}
	for _, tt := range tests {
		t.Run(tt.port, func(t *testing.T) {
			if tt.wantPanic {
				assert.Panics(t, func() { RedirectHTTPSHandler(tt.port) })
				return
			}
			assert.Equal(t, redirectHandler{port: tt.want}, RedirectHTTPSHandler(tt.port))
		})
	}
}

// TestHTTPSPortOf checks the port taken from Server.Addr.
func TestHTTPSPortOf(t *testing.T) {
	tests := []struct {
		addr    string
		want    string
		wantErr bool
	}{
		{addr: "", want: ""},
		{addr: ":https", want: ""},
		{addr: ":443", want: ""},
		{addr: "example.com:443", want: ""},
		{addr: ":8443", want: "8443"},
		{addr: "[::1]:8443", want: "8443"},
		{addr: ":0", wantErr: true},
		{addr: ":", wantErr: true},
		{addr: "example.com", wantErr: true},
		{addr: ":no-such-service-xyz", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			got, err := httpsPortOf(tt.addr)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// startRedirect runs srv.ListenAndServeHTTPRedirect on a fresh 127.0.0.1
// port and returns its address and the channel its result arrives on. At
// cleanup srv is closed. Tests that call it must not run in parallel: it
// sets testHookServerServe.
func startRedirect(t testing.TB, srv *Server) (string, <-chan error) {
	t.Helper()
	addrc := make(chan string, 1)
	SetTestHookServerServe(t, func(s *Server, ln net.Listener) {
		if s != srv {
			select {
			case addrc <- ln.Addr().String():
			default:
			}
		}
	})
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServeHTTPRedirect("127.0.0.1:0") }()
	t.Cleanup(func() { srv.Close() })
	select {
	case addr := <-addrc:
		return addr, errc
	case err := <-errc:
		t.Fatalf("ListenAndServeHTTPRedirect returned %v before serving", err)
	case <-time.After(testTimeout()):
		t.Fatalf("the redirect server did not start")
	}
	return "", nil
}

// waitErr waits for the result of ListenAndServeHTTPRedirect.
func waitErr(t testing.TB, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(testTimeout()):
		t.Fatalf("ListenAndServeHTTPRedirect did not return")
		return nil
	}
}

// TestListenAndServeHTTPRedirect redirects real plaintext requests. It
// needs the HTTP/1.1 engine.
func TestListenAndServeHTTPRedirect(t *testing.T) {
	srv := &Server{Addr: "127.0.0.1:8443", ErrorLog: discardLogger()}
	addr, errc := startRedirect(t, srv)
	client := &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       testTimeout(),
	}
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)

	tests := []struct {
		name   string
		method string
		url    string
		want   string
	}{
		{"GET", "GET", "http://" + addr + "/a%2Fb?x=1&y=%3D", "https://127.0.0.1:8443/a%2Fb?x=1&y=%3D"},
		{"HEAD", "HEAD", "http://" + addr + "/", "https://127.0.0.1:8443/"},
		{"POST", "POST", "http://" + addr + "/form", "https://127.0.0.1:8443/form"},
		{"localhost", "GET", "http://localhost:" + port + "/x", "https://localhost:8443/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, tt.url, strings.NewReader("body"))
			require.NoError(t, err)
			resp, err := client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, http.StatusPermanentRedirect, resp.StatusCode)
			assert.Equal(t, tt.want, resp.Header.Get("Location"))
			assert.True(t, resp.Close, "the redirect closes the connection")
		})
	}

	t.Run("HTTP/1.0 without Host", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(testTimeout())))
		_, err = io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})

	require.NoError(t, srv.Close())
	assert.ErrorIs(t, waitErr(t, errc), http.ErrServerClosed)
}

// TestListenAndServeHTTPRedirectStops checks that Shutdown and Close of
// the parent server stop the redirect server.
func TestListenAndServeHTTPRedirectStops(t *testing.T) {
	tests := []struct {
		name string
		stop func(*Server) error
	}{
		{"Shutdown", func(s *Server) error {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout())
			defer cancel()
			return s.Shutdown(ctx)
		}},
		{"Close", (*Server).Close},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &Server{ErrorLog: discardLogger()}
			addr, errc := startRedirect(t, srv)
			require.NoError(t, tt.stop(srv))
			assert.ErrorIs(t, waitErr(t, errc), http.ErrServerClosed)
			_, err := net.Dial("tcp", addr)
			assert.Error(t, err, "the redirect listener is closed")

			// The server may not be reused.
			assert.ErrorIs(t, srv.ListenAndServeHTTPRedirect("127.0.0.1:0"), http.ErrServerClosed)
		})
	}
}

// TestListenAndServeHTTPRedirectBadAddr checks that a Server.Addr without
// a usable port is reported at once, without listening.
func TestListenAndServeHTTPRedirectBadAddr(t *testing.T) {
	for _, addr := range []string{":0", "example.com", "127.0.0.1:"} {
		t.Run(addr, func(t *testing.T) {
			srv := &Server{Addr: addr}
			err := srv.ListenAndServeHTTPRedirect("127.0.0.1:0")
			require.Error(t, err)
			assert.False(t, errors.Is(err, http.ErrServerClosed))
			assert.Contains(t, err.Error(), "httpsrv: HTTP redirect")
		})
	}
}

// Redirect plaintext HTTP on port 80 to the HTTPS server; Shutdown or
// Close stops both.
func ExampleServer_ListenAndServeHTTPRedirect() {
	srv := &Server{Addr: ":https", Handler: http.NotFoundHandler()}
	go func() {
		err := srv.ListenAndServeHTTPRedirect(":http")
		if !errors.Is(err, http.ErrServerClosed) {
			log.Print(err)
		}
	}()
	log.Fatal(srv.ListenAndServeTLS("cert.pem", "key.pem"))
}

// The handler on its own, for a server whose public HTTPS port differs
// from the one it listens on.
func ExampleRedirectHTTPSHandler() {
	h := RedirectHTTPSHandler("8443")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "http://example.com:8080/docs?page=2", nil))
	fmt.Println(w.Code, w.Header().Get("Location"))
	// Output: 308 https://example.com:8443/docs?page=2
}
