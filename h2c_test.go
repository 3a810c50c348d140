package httpsrv

import (
	"crypto/tls"
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
)

// servePlain serves with serve on a fresh plaintext listener and returns
// its address; at cleanup closeSrv stops it and serve must return
// http.ErrServerClosed.
func servePlain(t *testing.T, serve func(net.Listener) error, closeSrv func() error) string {
	t.Helper()
	return serveOn(t, localListener(t), serve, closeSrv)
}

// newPlainClient returns a client for http:// URLs speaking the given
// protocols (unencrypted HTTP/2 is prior-knowledge h2c).
func newPlainClient(t testing.TB, p http.Protocols) *http.Client {
	t.Helper()
	tr := &http.Transport{Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: testTimeout()}
}

// TestUnencryptedHTTP2 checks prior-knowledge HTTP/2 over plaintext
// (h2c) under Serve against net/http's server with the same
// configuration (issue 7, defect 8: httpsrv gave the client preface to
// the HTTP/1 engine). An h2c client and an HTTP/1.1 client must get the
// same outcome from both, with and without UnencryptedHTTP2.
func TestUnencryptedHTTP2(t *testing.T) {
	h1 := protocols(true, false)
	h1h2c := protocols(true, false)
	h1h2c.SetUnencryptedHTTP2(true)
	h2c := protocols(false, false)
	h2c.SetUnencryptedHTTP2(true)
	tests := []struct {
		name         string
		protocols    *http.Protocols
		tlsNextProto bool // set TLSNextProto to an empty map
	}{
		{name: "nil Protocols"},
		{name: "HTTP1", protocols: &h1},
		{name: "HTTP1 and UnencryptedHTTP2", protocols: &h1h2c},
		{name: "UnencryptedHTTP2 only", protocols: &h2c},
		{name: "HTTP1 and UnencryptedHTTP2, empty TLSNextProto", protocols: &h1h2c, tlsNextProto: true},
	}
	clients := []struct {
		name string
		p    http.Protocols
	}{
		{"h2c client", h2c},
		{"HTTP/1.1 client", h1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Proto", r.Proto)
				if r.TLS != nil {
					w.WriteHeader(http.StatusTeapot)
				}
			})
			ours := &Server{Handler: handler, ErrorLog: discardLogger(), Protocols: tt.protocols}
			theirs := &http.Server{Handler: handler, ErrorLog: discardLogger(), Protocols: tt.protocols}
			if tt.tlsNextProto {
				ours.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
				theirs.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
			}
			oursAddr := servePlain(t, ours.Serve, ours.Close)
			theirsAddr := servePlain(t, theirs.Serve, theirs.Close)
			for _, cl := range clients {
				want := requestOutcome(newPlainClient(t, cl.p), "http://"+theirsAddr+"/")
				got := requestOutcome(newPlainClient(t, cl.p), "http://"+oursAddr+"/")
				assert.Equal(t, want, got, cl.name)
			}
		})
	}
}
