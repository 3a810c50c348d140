package httpsrv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDropInAPI checks that every exported field and method of
// http.Server exists on Server with the same type, so that code written
// for net/http compiles with the type name changed.
func TestDropInAPI(t *testing.T) {
	ht := reflect.TypeFor[http.Server]()
	ot := reflect.TypeFor[Server]()
	for i := range ht.NumField() {
		f := ht.Field(i)
		if !f.IsExported() {
			continue
		}
		t.Run("field/"+f.Name, func(t *testing.T) {
			of, ok := ot.FieldByName(f.Name)
			require.True(t, ok, "Server lacks field %s", f.Name)
			want := f.Type
			if f.Name == "TLSNextProto" {
				// Same type: the callback receives a *http.Server.
				assert.Equal(t, want, of.Type)
				return
			}
			assert.Equal(t, want, of.Type)
		})
	}
	hp, op := reflect.TypeFor[*http.Server](), reflect.TypeFor[*Server]()
	for i := range hp.NumMethod() {
		m := hp.Method(i)
		t.Run("method/"+m.Name, func(t *testing.T) {
			om, ok := op.MethodByName(m.Name)
			require.True(t, ok, "*Server lacks method %s", m.Name)
			// Compare signatures without the receiver.
			assert.Equal(t, m.Type.NumIn(), om.Type.NumIn())
			for j := 1; j < m.Type.NumIn(); j++ {
				assert.Equal(t, m.Type.In(j), om.Type.In(j))
			}
			assert.Equal(t, m.Type.NumOut(), om.Type.NumOut())
			for j := 0; j < m.Type.NumOut(); j++ {
				assert.Equal(t, m.Type.Out(j), om.Type.Out(j))
			}
		})
	}
	// The package functions have net/http's signatures.
	var (
		_ func(string, string, string, http.Handler) error       = ListenAndServeTLS
		_ func(string, http.Handler) error                       = ListenAndServe
		_ func(net.Listener, http.Handler) error                 = Serve
		_ func(net.Listener, http.Handler, string, string) error = ServeTLS
	)
}

// TestServeHTTP2 serves Go's HTTP/2 client and checks what the handler sees.
func TestServeHTTP2(t *testing.T) {
	type seen struct {
		proto, remote, host string
		tls                 bool
		alpn                string
		srv                 any
		local               any
		body                string
	}
	got := make(chan seen, 1)
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s := seen{proto: r.Proto, remote: r.RemoteAddr, host: r.Host, tls: r.TLS != nil,
			srv: r.Context().Value(ServerContextKey), local: r.Context().Value(http.LocalAddrContextKey), body: string(b)}
		if r.TLS != nil {
			s.alpn = r.TLS.NegotiatedProtocol
		}
		got <- s
		w.Header().Set("X-Test", "yes")
		fmt.Fprint(w, "hello h2")
	})}
	addr := startTLS(t, srv)
	c := newClient(t, true)

	resp, err := c.Post("https://"+addr+"/path", "text/plain", strings.NewReader("ping"))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "HTTP/2.0", resp.Proto)
	assert.Equal(t, "hello h2", string(b))
	assert.Equal(t, "yes", resp.Header.Get("X-Test"))

	s := <-got
	assert.Equal(t, "HTTP/2.0", s.proto)
	assert.True(t, s.tls)
	assert.Equal(t, "h2", s.alpn)
	assert.Equal(t, addr, s.host)
	assert.Equal(t, "ping", s.body)
	assert.Same(t, srv, s.srv)
	assert.Equal(t, addr, fmt.Sprint(s.local))
	assert.True(t, strings.HasPrefix(s.remote, "127.0.0.1:"), s.remote)
}

// TestServeDefaultServeMux checks that a nil Handler means
// http.DefaultServeMux and that "OPTIONS *" is answered by the server
// unless DisableGeneralOptionsHandler is set, over HTTP/2.
func TestServeDefaultServeMux(t *testing.T) {
	const pattern = "/httpsrv-test-default-mux"
	http.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "from default mux") })
	addr := startTLS(t, &Server{})
	resp, err := newClient(t, true).Get("https://" + addr + pattern)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "from default mux", string(b))
}

// TestTLSConfigNotModified checks that ServeTLS leaves the caller's Server
// and tls.Config untouched, including the NextProtos backing array.
func TestTLSConfigNotModified(t *testing.T) {
	cert, _ := testCertificate(t)
	protos := make([]string, 1, 4)
	protos[0] = "foo"
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: protos}
	srv := &Server{TLSConfig: cfg, Handler: http.NotFoundHandler()}
	addr := startTLS(t, srv)
	c := dialTLS(t, addr, "h2", "http/1.1")
	require.NoError(t, c.Handshake())
	assert.Equal(t, "h2", c.ConnectionState().NegotiatedProtocol)

	assert.Equal(t, []string{"foo"}, cfg.NextProtos)
	assert.Equal(t, []string{"foo", "", ""}, protos[:3], "backing array of NextProtos written to")
	assert.Nil(t, srv.TLSNextProto)
	assert.Same(t, cfg, srv.TLSConfig)
	assert.Nil(t, cfg.GetConfigForClient)
}

func TestAdjustNextProtos(t *testing.T) {
	both, h1, h2 := protocols(true, true), protocols(true, false), protocols(false, true)
	tests := []struct {
		name string
		in   []string
		p    http.Protocols
		want []string
	}{
		{"default", nil, both, []string{"h2", "http/1.1"}},
		{"h1 only", nil, h1, []string{"http/1.1"}},
		{"h2 only", nil, h2, []string{"h2"}},
		{"custom kept first", []string{"foo"}, both, []string{"foo", "h2", "http/1.1"}},
		{"http/1.1 preferred kept", []string{"http/1.1"}, both, []string{"http/1.1", "h2"}},
		{"h2 removed when off", []string{"h2", "foo"}, h1, []string{"foo", "http/1.1"}},
		{"http/1.1 removed when off", []string{"http/1.1", "h2"}, h2, []string{"h2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]string(nil), tt.in...)
			assert.Equal(t, tt.want, adjustNextProtos(in, tt.p))
			assert.Equal(t, tt.in, in, "input modified")
		})
	}
}

func protocols(h1, h2 bool) http.Protocols {
	var p http.Protocols
	p.SetHTTP1(h1)
	p.SetHTTP2(h2)
	return p
}

// TestALPN compares the protocol negotiated for each client offer with
// net/http's server under the same configuration.
func TestALPN(t *testing.T) {
	h1only, h2only := protocols(true, false), protocols(false, true)
	configs := []struct {
		name  string
		setup func(tlsNextProto *map[string]func(*http.Server, *tls.Conn, http.Handler), cfg **tls.Config, p **http.Protocols)
	}{
		{"zero", func(*map[string]func(*http.Server, *tls.Conn, http.Handler), **tls.Config, **http.Protocols) {}},
		{"empty TLSNextProto", func(m *map[string]func(*http.Server, *tls.Conn, http.Handler), _ **tls.Config, _ **http.Protocols) {
			*m = map[string]func(*http.Server, *tls.Conn, http.Handler){}
		}},
		{"NextProtos http/1.1", func(_ *map[string]func(*http.Server, *tls.Conn, http.Handler), c **tls.Config, _ **http.Protocols) {
			*c = &tls.Config{NextProtos: []string{"http/1.1"}}
		}},
		{"Protocols HTTP1", func(_ *map[string]func(*http.Server, *tls.Conn, http.Handler), _ **tls.Config, p **http.Protocols) {
			*p = &h1only
		}},
		{"Protocols HTTP2", func(_ *map[string]func(*http.Server, *tls.Conn, http.Handler), _ **tls.Config, p **http.Protocols) {
			*p = &h2only
		}},
	}
	offers := [][]string{{"h2", "http/1.1"}, {"http/1.1"}, {"h2"}, nil, {"foo"}}
	negotiate := func(t *testing.T, addr string, offer []string) string {
		_, pool := testCertificate(t)
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: offer})
		if err != nil {
			return "alert"
		}
		defer c.Close()
		return fmt.Sprintf("%q", c.ConnectionState().NegotiatedProtocol)
	}
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			ours := &Server{Handler: http.NotFoundHandler(), ErrorLog: discardLogger()}
			theirs := &http.Server{Handler: http.NotFoundHandler(), ErrorLog: discardLogger()}
			cfg.setup(&ours.TLSNextProto, &ours.TLSConfig, &ours.Protocols)
			cfg.setup(&theirs.TLSNextProto, &theirs.TLSConfig, &theirs.Protocols)
			oursAddr, theirsAddr := startTLS(t, ours), startNetHTTP(t, theirs)
			for _, offer := range offers {
				assert.Equal(t, negotiate(t, theirsAddr, offer), negotiate(t, oursAddr, offer), "client offers %q", offer)
			}
		})
	}
}

// discardLogger returns a logger for tests that provoke errors on purpose.
func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// TestErrServerClosed checks every way of serving after, or during,
// Shutdown and Close: the error is http.ErrServerClosed itself.
func TestErrServerClosed(t *testing.T) {
	stops := map[string]func(*Server) error{
		"Shutdown": func(s *Server) error { return s.Shutdown(context.Background()) },
		"Close":    (*Server).Close,
	}
	for name, stop := range stops {
		t.Run(name+"/before", func(t *testing.T) {
			srv := &Server{Addr: "127.0.0.1:0"}
			require.NoError(t, stop(srv))
			assert.Equal(t, http.ErrServerClosed, srv.ListenAndServeTLS(testCertFile, testKeyFile))
			assert.Equal(t, http.ErrServerClosed, srv.ListenAndServe())
			ln := localListener(t)
			assert.Equal(t, http.ErrServerClosed, srv.Serve(ln))
			_, err := ln.Accept()
			assert.ErrorIs(t, err, net.ErrClosed, "Serve must close its listener")
			ln2 := localListener(t)
			assert.Equal(t, http.ErrServerClosed, srv.ServeTLS(ln2, testCertFile, testKeyFile))
			_, err = ln2.Accept()
			assert.ErrorIs(t, err, net.ErrClosed, "ServeTLS must close its listener")
		})
		t.Run(name+"/during", func(t *testing.T) {
			srv := &Server{Addr: "127.0.0.1:0"}
			served := make(chan net.Listener, 2)
			SetTestHookServerServe(t, func(_ *Server, l net.Listener) { served <- l })
			errc := make(chan error, 2)
			go func() { errc <- srv.ListenAndServeTLS(testCertFile, testKeyFile) }()
			go func() { errc <- srv.Serve(localListener(t)) }()
			for range 2 {
				select {
				case <-served:
				case <-time.After(testTimeout()):
					t.Fatal("servers did not start")
				}
			}
			require.NoError(t, stop(srv))
			for range 2 {
				select {
				case err := <-errc:
					assert.Equal(t, http.ErrServerClosed, err)
				case <-time.After(testTimeout()):
					t.Fatal("Serve did not return")
				}
			}
		})
	}
}

// TestListenAddrDefaults checks the default addresses without binding
// them: the ListenConfig's Control function sees the address and refuses.
func TestListenAddrDefaults(t *testing.T) {
	errRefused := errors.New("refused by test")
	tests := []struct {
		name   string
		listen func(*Server) error
		want   string
	}{
		{"ListenAndServeTLS", func(s *Server) error { return s.ListenAndServeTLS(testCertFile, testKeyFile) }, ":443"},
		{"ListenAndServe", (*Server).ListenAndServe, ":80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			srv := &Server{ListenConfig: &net.ListenConfig{Control: func(_, address string, _ syscall.RawConn) error {
				got = address
				return errRefused
			}}}
			assert.ErrorIs(t, tt.listen(srv), errRefused)
			assert.True(t, strings.HasSuffix(got, tt.want), "listened on %q, want port %s", got, tt.want)
		})
	}
}

// TestServeClosesListenerOnce checks that Serve closes its listener once,
// however many times Serve's own deferred close and Shutdown call Close.
func TestServeClosesListenerOnce(t *testing.T) {
	ln := &countingListener{Listener: localListener(t)}
	srv := &Server{}
	started := make(chan struct{})
	SetTestHookServerServe(t, func(*Server, net.Listener) { close(started) })
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	<-started
	require.NoError(t, srv.Shutdown(context.Background()))
	assert.Equal(t, http.ErrServerClosed, <-errc)
	assert.Equal(t, int32(1), ln.closes.Load())
}

type countingListener struct {
	net.Listener
	closes atomic.Int32
}

func (l *countingListener) Close() error {
	l.closes.Add(1)
	return l.Listener.Close()
}

// TestServeNotComparableListener serves on a listener whose dynamic type
// cannot be a map key (golang.org/issue/24803 in spirit).
func TestServeNotComparableListener(t *testing.T) {
	ln := notComparableListener{Listener: localListener(t)}
	srv := &Server{}
	errc := make(chan error, 1)
	started := make(chan struct{})
	SetTestHookServerServe(t, func(*Server, net.Listener) { close(started) })
	go func() { errc <- srv.Serve(ln) }()
	<-started
	require.NoError(t, srv.Close())
	assert.Equal(t, http.ErrServerClosed, <-errc)
}

type notComparableListener struct {
	net.Listener
	_ []int // makes the type not comparable
}

// TestServeTLSCertificateErrors checks the errors for missing and
// mismatched key pairs: they name the file, and the listener is closed.
func TestServeTLSCertificateErrors(t *testing.T) {
	dir := t.TempDir()
	otherKey := dir + "/other.key"
	writeOtherKey(t, otherKey)
	tests := []struct {
		name          string
		cert, key     string
		wantIs        error
		wantSubstring string
	}{
		{"missing cert", dir + "/nope.crt", testKeyFile, fs.ErrNotExist, "nope.crt"},
		{"missing key", testCertFile, dir + "/nope.key", fs.ErrNotExist, "nope.key"},
		{"mismatched pair", testCertFile, otherKey, nil, "other.key"},
		{"no names, no certificate", "", "", ErrMissingCertificate, "no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln := localListener(t)
			err := (&Server{}).ServeTLS(ln, tt.cert, tt.key)
			require.Error(t, err)
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
			assert.Contains(t, err.Error(), tt.wantSubstring)
			_, aerr := ln.Accept()
			assert.ErrorIs(t, aerr, net.ErrClosed, "listener left open")
		})
	}
	t.Run("ListenAndServeTLS", func(t *testing.T) {
		err := (&Server{Addr: "127.0.0.1:0"}).ListenAndServeTLS(dir+"/nope.crt", testKeyFile)
		assert.ErrorIs(t, err, fs.ErrNotExist)
		assert.Contains(t, err.Error(), "nope.crt")
	})
	t.Run("HTTP/2 cipher suites", func(t *testing.T) {
		cfg := &tls.Config{CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}}
		err := (&Server{TLSConfig: cfg}).ServeTLS(localListener(t), testCertFile, testKeyFile)
		assert.ErrorContains(t, err, "HTTP/2-required")
	})
}

// TestShutdownHTTP2InFlight starts HTTP/2 requests, shuts down while they
// run, and checks that none is lost, that the connection got GOAWAY (the
// client opens no new stream on it), and that Shutdown waits for them.
func TestShutdownHTTP2InFlight(t *testing.T) {
	const n = 8
	var (
		started sync.WaitGroup
		release = make(chan struct{})
	)
	started.Add(n)
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Done()
		<-release
		io.WriteString(w, "done")
	})}
	hookRuns := make(chan struct{}, 2)
	srv.RegisterOnShutdown(func() { hookRuns <- struct{}{} })
	addr := startTLS(t, srv)
	c := newClient(t, true)

	type result struct {
		body string
		err  error
	}
	results := make(chan result, n)
	for range n {
		go func() {
			resp, err := c.Get("https://" + addr + "/")
			if err != nil {
				results <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			results <- result{string(b), err}
		}()
	}
	started.Wait()

	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- srv.Shutdown(context.Background()) }()

	// GOAWAY reaches the client: its connection stops taking new
	// requests, so a new request after it has to dial, and is refused.
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	}, testTimeout(), 10*time.Millisecond)

	select {
	case err := <-shutdownErr:
		t.Fatalf("Shutdown returned %v with requests in flight", err)
	default:
	}
	close(release)
	for range n {
		r := <-results
		require.NoError(t, r.err)
		assert.Equal(t, "done", r.body)
	}
	select {
	case err := <-shutdownErr:
		require.NoError(t, err)
	case <-time.After(testTimeout()):
		t.Fatal("Shutdown did not return after the requests finished")
	}
	require.NoError(t, srv.Shutdown(context.Background()), "second Shutdown")
	select {
	case <-hookRuns:
	case <-time.After(testTimeout()):
		t.Fatal("RegisterOnShutdown func not run")
	}
	// The funcs run in their own goroutines; the second Shutdown must not
	// have started them again.
	srv.mu.Lock()
	assert.True(t, srv.ranHooks)
	srv.mu.Unlock()
	assert.Empty(t, hookRuns, "RegisterOnShutdown func run twice")
}

// TestShutdownContextExpires checks that Shutdown returns the context's
// error when a request outlasts it, and that Close then ends it.
func TestShutdownContextExpires(t *testing.T) {
	inHandler := make(chan struct{})
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inHandler)
		<-r.Context().Done()
	})}
	addr := startTLS(t, srv)
	c := newClient(t, true)
	errc := getAsync(c, "https://"+addr+"/")
	<-inHandler
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	assert.Equal(t, context.DeadlineExceeded, srv.Shutdown(ctx))
	require.NoError(t, srv.Close())
	select {
	case err := <-errc:
		assert.Error(t, err, "the request Close cut off must fail")
	case <-time.After(testTimeout()):
		t.Fatal("request not ended by Close")
	}
}

// writeOtherKey writes a fresh ECDSA private key, which matches no
// certificate, to path.
func writeOtherKey(t testing.TB, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
}
