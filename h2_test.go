package httpsrv

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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
		ln := localListener(t)
		errc := make(chan error, 1)
		go func() { errc <- serve(tls.NewListener(ln, listenerConfig)) }()
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
