package httpsrv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// requestOutcome makes a GET with c and describes what came back: the
// status and protocol, or "error" when the request failed (for example,
// the server closed the connection after the handshake).
func requestOutcome(c *http.Client, url string) string {
	resp, err := c.Get(url)
	if err != nil {
		return "error"
	}
	resp.Body.Close()
	return fmt.Sprintf("%d %s", resp.StatusCode, resp.Proto)
}

// serveBoth serves ours and theirs on fresh listeners, with Serve over a
// TLS listener built from listenerConfig when it is non-nil, else with
// ServeTLS and the test certificate files. It returns both addresses.
func serveBoth(t *testing.T, ours *Server, theirs *http.Server, listenerConfig *tls.Config) (oursAddr, theirsAddr string) {
	t.Helper()
	if listenerConfig == nil {
		return startTLS(t, ours), startNetHTTP(t, theirs)
	}
	serve := func(serve func(net.Listener) error, closeSrv func() error) string {
		return serveOn(t, tls.NewListener(localListener(t), listenerConfig), serve, closeSrv)
	}
	return serve(ours.Serve, ours.Close), serve(theirs.Serve, theirs.Close)
}

// TestHTTP2KeyPresence checks that httpsrv decides whether and how to
// serve HTTP/2 as net/http does: by the presence of the "h2" key in
// TLSNextProto, not its value (net/http's protocols and
// onceSetNextProtoDefaults), by GODEBUG=http2server=0, and, for Serve,
// by shouldConfigureHTTP2ForServe. Each configuration runs on both
// servers; an HTTP/2 client and an HTTP/1.1 client must see the same.
func TestHTTP2KeyPresence(t *testing.T) {
	cert, _ := testCertificate(t)
	h2nil := func() map[string]func(*http.Server, *tls.Conn, http.Handler) {
		return map[string]func(*http.Server, *tls.Conn, http.Handler){"h2": nil}
	}
	both := protocols(true, true)
	tests := []struct {
		name           string
		godebug        string
		tlsNextProto   func() map[string]func(*http.Server, *tls.Conn, http.Handler)
		protocols      *http.Protocols
		tlsConfig      func() *tls.Config
		listenerConfig *tls.Config // non-nil: Serve on a TLS listener instead of ServeTLS
	}{
		{name: "TLSNextProto h2 nil", tlsNextProto: h2nil},
		{name: "TLSNextProto h2 nil, http2server=0", godebug: "http2server=0", tlsNextProto: h2nil},
		{name: "http2server=0", godebug: "http2server=0"},
		{name: "http2server=0 overridden", godebug: "http2server=0,http2server=1"},
		{name: "http2server=0, Protocols HTTP1 and HTTP2", godebug: "http2server=0", protocols: &both},
		{
			name:           "Serve, TLSConfig without h2",
			tlsConfig:      func() *tls.Config { return &tls.Config{Certificates: []tls.Certificate{cert}} },
			listenerConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}},
		},
		{
			name:           "Serve, nil TLSConfig",
			listenerConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.godebug != "" {
				t.Setenv("GODEBUG", tt.godebug)
			}
			ours := &Server{Handler: http.NotFoundHandler(), ErrorLog: discardLogger(), Protocols: tt.protocols}
			theirs := &http.Server{Handler: http.NotFoundHandler(), ErrorLog: discardLogger(), Protocols: tt.protocols}
			if tt.tlsNextProto != nil {
				ours.TLSNextProto, theirs.TLSNextProto = tt.tlsNextProto(), tt.tlsNextProto()
			}
			if tt.tlsConfig != nil {
				ours.TLSConfig, theirs.TLSConfig = tt.tlsConfig(), tt.tlsConfig()
			}
			oursAddr, theirsAddr := serveBoth(t, ours, theirs, tt.listenerConfig)
			for _, h2 := range []bool{true, false} {
				want := requestOutcome(newClient(t, h2), "https://"+theirsAddr+"/")
				got := requestOutcome(newClient(t, h2), "https://"+oursAddr+"/")
				assert.Equal(t, want, got, "client with HTTP/2 %v", h2)
			}
		})
	}
}

// h2Client is a raw HTTP/2 client connection for tests that look at frames.
type h2Client struct {
	fr *http2.Framer
}

// startH2 sends the client preface and SETTINGS on c.
func startH2(t *testing.T, c net.Conn) *h2Client {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(testTimeout())))
	_, err := io.WriteString(c, http2.ClientPreface)
	require.NoError(t, err)
	fr := http2.NewFramer(c, bufio.NewReader(c))
	require.NoError(t, fr.WriteSettings())
	return &h2Client{fr: fr}
}

// get sends a GET for / on stream id.
func (h *h2Client) get(t *testing.T, id uint32, scheme string) {
	t.Helper()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", scheme}, {":authority", "localhost"}, {":path", "/"}} {
		require.NoError(t, enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}))
	}
	require.NoError(t, h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}))
}

// readGoAway reads frames until a GOAWAY and returns it, or the read error.
func (h *h2Client) readGoAway() (*http2.GoAwayFrame, error) {
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := h.fr.WriteSettingsAck(); err != nil {
					return nil, err
				}
			}
		case *http2.GoAwayFrame:
			return f, nil
		}
	}
}

// TestShutdownHTTP2LateHandoff checks that an HTTP/2 connection handed to
// the HTTP/2 server after Shutdown sent its GOAWAY to the others still
// gets one at once (issue 7, defect 7: x/net registered it too late for
// the broadcast, and Shutdown waited for the idle timeout or its context).
// Connection A, with a request in flight, proves that the broadcast has
// run; connection B's handshake is held in VerifyConnection until then.
func TestShutdownHTTP2LateHandoff(t *testing.T) {
	cert, _ := testCertificate(t)
	inVerify := make(chan struct{})
	releaseVerify := make(chan struct{})
	inHandler := make(chan struct{}, 1)
	releaseHandler := make(chan struct{})
	srv := &Server{
		ErrorLog: discardLogger(),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			VerifyConnection: func(cs tls.ConnectionState) error {
				if cs.ServerName == "late.localhost" {
					close(inVerify)
					<-releaseVerify
				}
				return nil
			},
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inHandler <- struct{}{}
			<-releaseHandler
		}),
	}
	addr := startTLS(t, srv)
	released := false
	t.Cleanup(func() {
		if !released {
			close(releaseVerify)
		}
		close(releaseHandler)
	})

	a := startH2(t, dialTLS(t, addr, "h2"))
	a.get(t, 1, "https")
	<-inHandler

	_, pool := testCertificate(t)
	bConn, err := tls.DialWithDialer(&net.Dialer{Timeout: testTimeout()}, "tcp", addr, &tls.Config{
		RootCAs: pool, ServerName: "late.localhost", NextProtos: []string{"h2"},
		// The test certificate is for localhost; the name only marks the
		// connection for VerifyConnection.
		InsecureSkipVerify: true,
	})
	require.NoError(t, err)
	t.Cleanup(func() { bConn.Close() })
	select {
	case <-inVerify:
	case <-time.After(testTimeout()):
		t.Fatal("the second handshake did not reach VerifyConnection")
	}

	shutdownErr := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout())
	defer cancel()
	go func() { shutdownErr <- srv.Shutdown(ctx) }()
	_, err = a.readGoAway()
	require.NoError(t, err, "connection A got no GOAWAY")

	released = true
	close(releaseVerify)
	b := startH2(t, bConn)
	ga, err := b.readGoAway()
	require.NoError(t, err, "the connection handed off after the GOAWAY broadcast got no GOAWAY")
	assert.Equal(t, http2.ErrCodeNo, ga.ErrCode)

	releaseHandler <- struct{}{}
	select {
	case err := <-shutdownErr:
		assert.NoError(t, err)
	case <-time.After(testTimeout()):
		t.Fatal("Shutdown did not return")
	}
}
