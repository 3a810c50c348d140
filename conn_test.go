package httpsrv

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestHandshakeTimeout checks that a client that connects and sends
// nothing is dropped after the handshake timeout, with states new, closed,
// both with net/http's rule (smallest positive timeout) and with the
// zero Server's default, where net/http waits for ever.
func TestHandshakeTimeout(t *testing.T) {
	tests := []struct {
		name string
		srv  *Server
		want time.Duration
	}{
		{"smallest positive", &Server{ReadHeaderTimeout: time.Hour, WriteTimeout: 100 * time.Millisecond, ReadTimeout: -1}, 100 * time.Millisecond},
		{"zero Server", &Server{}, defaultTLSHandshakeTimeout},
		{"negative ignored", &Server{ReadHeaderTimeout: -1, ReadTimeout: 2 * time.Second}, 2 * time.Second},
		{"explicit", &Server{TLSHandshakeTimeout: 3 * time.Second, ReadTimeout: time.Second}, 3 * time.Second},
		{"disabled", &Server{TLSHandshakeTimeout: -1, ReadTimeout: time.Second}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.srv.tlsHandshakeTimeout())
		})
	}
	t.Run("wire", func(t *testing.T) {
		rec := newStateRecorder()
		logger, logs := newTestLogger()
		srv := &Server{ReadTimeout: 100 * time.Millisecond, ConnState: rec.hook, ErrorLog: logger}
		addr := startTLS(t, srv)
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetReadDeadline(time.Now().Add(testTimeout())))
		_, err = c.Read(make([]byte, 1))
		assert.Equal(t, io.EOF, err, "server did not close the silent connection")
		rec.waitFor(t, "closed", lastStateIs(http.StateClosed))
		assert.Equal(t, [][]http.ConnState{{http.StateNew, http.StateClosed}}, rec.all())
		assert.Contains(t, logs.String(), "http: TLS handshake error from 127.0.0.1:")
		assert.Contains(t, logs.String(), "i/o timeout")
	})
}

// TestPlaintextHTTPOnTLSPort compares the answer to a plaintext request on
// the TLS port with net/http's.
func TestPlaintextHTTPOnTLSPort(t *testing.T) {
	send := func(t *testing.T, addr, req string) string {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(testTimeout())))
		_, err = io.WriteString(c, req)
		require.NoError(t, err)
		b, _ := io.ReadAll(c)
		return string(b)
	}
	logger, logs := newTestLogger()
	ours := startTLS(t, &Server{ErrorLog: logger})
	theirs := startNetHTTP(t, &http.Server{ErrorLog: discardLogger()})
	for _, req := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "POST / HTTP/1.1\r\n\r\n", "DELETE / HTTP/1.1\r\n\r\n"} {
		want := send(t, theirs, req)
		assert.Equal(t, want, send(t, ours, req), "request %q", req)
	}
	assert.Equal(t, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
		send(t, ours, "GET / HTTP/1.1\r\n\r\n"))
	// The handshake goroutine logs after closing the connection.
	assert.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "client sent an HTTP request to an HTTPS server")
	}, testTimeout(), time.Millisecond, "log: %s", logs.String())
}

// TestConnStateHTTP2 compares the ConnState transitions of an HTTP/2
// connection with net/http's.
func TestConnStateHTTP2(t *testing.T) {
	run := func(t *testing.T, start func(hook func(net.Conn, http.ConnState)) string) [][]http.ConnState {
		rec := newStateRecorder()
		addr := start(rec.hook)
		c := newClient(t, true)
		for range 2 {
			resp, err := c.Get("https://" + addr + "/")
			require.NoError(t, err)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		c.CloseIdleConnections()
		rec.waitFor(t, "closed", lastStateIs(http.StateClosed))
		return rec.all()
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	theirs := run(t, func(hook func(net.Conn, http.ConnState)) string {
		return startNetHTTP(t, &http.Server{Handler: h, ConnState: hook})
	})
	ours := run(t, func(hook func(net.Conn, http.ConnState)) string {
		return startTLS(t, &Server{Handler: h, ConnState: hook})
	})
	assert.Equal(t, theirs, ours)
	assert.Equal(t, []http.ConnState{http.StateNew, http.StateActive, http.StateIdle, http.StateActive, http.StateIdle,
		http.StateActive, http.StateIdle, http.StateClosed}, ours[0])
}

// TestTLSNextProtoCustom checks that a TLSNextProto function takes over its
// ALPN protocol with the stand-in *http.Server, and that the connection is
// closed when it returns.
func TestTLSNextProtoCustom(t *testing.T) {
	type call struct {
		hs    *http.Server
		proto string
		h     http.Handler
	}
	calls := make(chan call, 1)
	cert, _ := testCertificate(t)
	srv := &Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"foo"}},
		ErrorLog:  discardLogger(),
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){
			"foo": func(hs *http.Server, c *tls.Conn, h http.Handler) {
				io.WriteString(c, "hello foo\n")
				calls <- call{hs, c.ConnectionState().NegotiatedProtocol, h}
			},
		},
		ReadTimeout: 42 * time.Second,
	}
	ln := localListener(t)
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close(); <-errc })

	c := dialTLS(t, ln.Addr().String(), "foo")
	b, err := io.ReadAll(c)
	require.NoError(t, err, "connection must be closed after the function returns")
	assert.Equal(t, "hello foo\n", string(b))
	got := <-calls
	assert.Equal(t, "foo", got.proto)
	require.NotNil(t, got.hs)
	assert.Equal(t, 42*time.Second, got.hs.ReadTimeout)
	assert.NotNil(t, got.h)

	// TLSNextProto without "h2" turns HTTP/2 off.
	c2 := dialTLS(t, ln.Addr().String(), "h2", "http/1.1")
	require.NoError(t, c2.Handshake())
	assert.Equal(t, "http/1.1", c2.ConnectionState().NegotiatedProtocol)
}

// TestContexts checks BaseContext and ConnContext: BaseContext sees the
// caller's listener, not the TLS wrapper, and the values of both reach
// handlers, with the server keys; the request context ends with the
// connection.
func TestContexts(t *testing.T) {
	type key string
	ln := localListener(t)
	var baseListener net.Listener
	var (
		connType   string
		connCtxSrv any
	)
	inHandler := make(chan context.Context, 1)
	srv := &Server{
		BaseContext: func(l net.Listener) context.Context {
			baseListener = l
			return context.WithValue(context.Background(), key("base"), "b")
		},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			connType = reflect.TypeOf(c).String()
			connCtxSrv = ctx.Value(ServerContextKey)
			return context.WithValue(ctx, key("conn"), "c")
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inHandler <- r.Context()
			<-r.Context().Done()
		}),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, testCertFile, testKeyFile) }()
	t.Cleanup(func() { srv.Close(); <-errc })

	c := newClient(t, true)
	reqCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(reqCtx, "GET", "https://"+ln.Addr().String()+"/", nil)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	ctx := <-inHandler
	assert.Same(t, ln, baseListener)
	assert.Equal(t, "*tls.Conn", connType, "ConnContext gets the TLS conn")
	assert.Same(t, srv, connCtxSrv, "ConnContext's ctx carries ServerContextKey")
	assert.Equal(t, "b", ctx.Value(key("base")))
	assert.Equal(t, "c", ctx.Value(key("conn")))
	assert.Same(t, srv, ctx.Value(ServerContextKey))
	assert.Equal(t, ln.Addr().String(), ctx.Value(http.LocalAddrContextKey).(net.Addr).String())
	_, ok := ctx.Value(http.ServerContextKey).(*http.Server)
	assert.True(t, ok, "http.ServerContextKey must hold a *http.Server")

	// The client goes away: the request context is cancelled.
	cancel()
	c.CloseIdleConnections()
	select {
	case <-ctx.Done():
	case <-time.After(testTimeout()):
		t.Fatal("request context not cancelled when the client went away")
	}
	<-done
}

// TestContextNilPanics checks that nil contexts from BaseContext and
// ConnContext panic with net/http's messages.
func TestContextNilPanics(t *testing.T) {
	t.Run("BaseContext", func(t *testing.T) {
		srv := &Server{BaseContext: func(net.Listener) context.Context { return nil }}
		assert.PanicsWithValue(t, "BaseContext returned a nil context", func() { srv.Serve(localListener(t)) })
	})
	t.Run("ConnContext", func(t *testing.T) {
		ln := localListener(t)
		srv := &Server{ConnContext: func(context.Context, net.Conn) context.Context { return nil }}
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		defer c.Close()
		assert.PanicsWithValue(t, "ConnContext returned nil", func() { srv.Serve(ln) })
	})
}

// TestShutdownSendsGOAWAY speaks HTTP/2 frames directly: with a stream
// open, Shutdown must send GOAWAY(NO_ERROR) on the connection, the stream
// must still complete, and the connection must then close.
func TestShutdownSendsGOAWAY(t *testing.T) {
	release := make(chan struct{})
	inHandler := make(chan struct{})
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inHandler)
		<-release
		io.WriteString(w, "finished")
	})}
	addr := startTLS(t, srv)
	c := dialTLS(t, addr, "h2")
	require.NoError(t, c.SetDeadline(time.Now().Add(testTimeout())))
	_, err := io.WriteString(c, http2.ClientPreface)
	require.NoError(t, err)
	fr := http2.NewFramer(c, bufio.NewReader(c))
	require.NoError(t, fr.WriteSettings())
	var hb strings.Builder
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "localhost"}, {":path", "/"}} {
		require.NoError(t, enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}))
	}
	require.NoError(t, fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte(hb.String()), EndStream: true, EndHeaders: true}))
	<-inHandler

	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- srv.Shutdown(context.Background()) }()

	var sawGoAway, sawData bool
	for !sawGoAway {
		f, err := fr.ReadFrame()
		require.NoError(t, err)
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				require.NoError(t, fr.WriteSettingsAck())
			}
		case *http2.GoAwayFrame:
			sawGoAway = true
			assert.Equal(t, http2.ErrCodeNo, f.ErrCode)
			assert.Equal(t, uint32(1), f.LastStreamID, "stream 1 must be allowed to finish")
		}
	}
	close(release)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			assert.Equal(t, io.EOF, err, "connection must close cleanly after the stream")
			break
		}
		if d, ok := f.(*http2.DataFrame); ok && d.StreamID == 1 {
			if string(d.Data()) == "finished" {
				sawData = true
			}
		}
	}
	assert.True(t, sawData, "the in-flight response was lost")
	select {
	case err := <-shutdownErr:
		assert.NoError(t, err)
	case <-time.After(testTimeout()):
		t.Fatal("Shutdown did not return")
	}
}

// TestCloseEndsHTTP2 checks that Close ends HTTP/2 connections at once,
// with a handler still running, and cancels the request context.
func TestCloseEndsHTTP2(t *testing.T) {
	inHandler := make(chan context.Context, 1)
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inHandler <- r.Context()
		<-r.Context().Done()
	})}
	addr := startTLS(t, srv)
	c := newClient(t, true)
	errc := getAsync(c, "https://"+addr+"/")
	ctx := <-inHandler
	require.NoError(t, srv.Close())
	select {
	case <-ctx.Done():
	case <-time.After(testTimeout()):
		t.Fatal("request context not cancelled by Close")
	}
	assert.Error(t, <-errc)
}

// TestHTTP2IdleTimeout checks that IdleTimeout reaches the HTTP/2 server:
// an idle connection is closed after it.
func TestHTTP2IdleTimeout(t *testing.T) {
	rec := newStateRecorder()
	srv := &Server{IdleTimeout: 50 * time.Millisecond, ConnState: rec.hook, Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	addr := startTLS(t, srv)
	resp, err := newClient(t, true).Get("https://" + addr + "/")
	require.NoError(t, err)
	resp.Body.Close()
	rec.waitFor(t, "closed by the idle timeout", lastStateIs(http.StateClosed))
}

// TestHTTP2Settings checks that the Server's settings reach HTTP/2:
// MaxHeaderBytes becomes SETTINGS_MAX_HEADER_LIST_SIZE and
// HTTP2.MaxConcurrentStreams is advertised.
func TestHTTP2Settings(t *testing.T) {
	srv := &Server{MaxHeaderBytes: 10000, HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 7}}
	addr := startTLS(t, srv)
	c := dialTLS(t, addr, "h2")
	require.NoError(t, c.SetDeadline(time.Now().Add(testTimeout())))
	_, err := io.WriteString(c, http2.ClientPreface)
	require.NoError(t, err)
	fr := http2.NewFramer(c, c)
	require.NoError(t, fr.WriteSettings())
	f, err := fr.ReadFrame()
	require.NoError(t, err)
	sf, ok := f.(*http2.SettingsFrame)
	require.True(t, ok, "first frame is %T", f)
	v, ok := sf.Value(http2.SettingMaxConcurrentStreams)
	assert.True(t, ok)
	assert.Equal(t, uint32(7), v)
	v, ok = sf.Value(http2.SettingMaxHeaderListSize)
	assert.True(t, ok)
	assert.Equal(t, uint32(10000+320), v)
}

// TestStrictTransportSecurity checks the HSTS option: the header is added
// to HTTPS responses, a handler's own value wins, and it is off by default.
func TestStrictTransportSecurity(t *testing.T) {
	const hsts = "max-age=63072000; includeSubDomains"
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/own" {
			w.Header().Set("Strict-Transport-Security", "max-age=1")
		}
	})
	tests := []struct {
		name, option, path, want string
	}{
		{"added", hsts, "/", hsts},
		{"handler wins", hsts, "/own", "max-age=1"},
		{"off by default", "", "/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startTLS(t, &Server{Handler: h, StrictTransportSecurity: tt.option})
			resp, err := newClient(t, true).Get("https://" + addr + tt.path)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tt.want, resp.Header.Get("Strict-Transport-Security"))
		})
	}
}
