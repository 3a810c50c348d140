package httpsrv

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestDefaults checks every safe default, that a value the user sets keeps
// net/http's meaning, and that a negative value turns the limit off.
func TestDefaults(t *testing.T) {
	const s = time.Second
	dur := func(f func(*Server) time.Duration) func(*Server) any { return func(s *Server) any { return f(s) } }
	rate := func(f func(*Server) int64) func(*Server) any { return func(s *Server) any { return f(s) } }
	tests := []struct {
		name string
		srv  *Server
		get  func(*Server) any
		want any
	}{
		{"ReadHeaderTimeout default", &Server{}, dur((*Server).readHeaderTimeout), DefaultReadHeaderTimeout},
		{"ReadHeaderTimeout from ReadTimeout", &Server{ReadTimeout: 3 * s}, dur((*Server).readHeaderTimeout), 3 * s},
		{"ReadHeaderTimeout set", &Server{ReadHeaderTimeout: 2 * s, ReadTimeout: 3 * s}, dur((*Server).readHeaderTimeout), 2 * s},
		{"ReadHeaderTimeout off", &Server{ReadHeaderTimeout: -1, ReadTimeout: 3 * s}, dur((*Server).readHeaderTimeout), time.Duration(0)},
		{"IdleTimeout default", &Server{}, dur((*Server).idleTimeout), DefaultIdleTimeout},
		{"IdleTimeout from ReadTimeout", &Server{ReadTimeout: 3 * s}, dur((*Server).idleTimeout), 3 * s},
		{"IdleTimeout set", &Server{IdleTimeout: 7 * s}, dur((*Server).idleTimeout), 7 * s},
		{"IdleTimeout off", &Server{IdleTimeout: -1}, dur((*Server).idleTimeout), time.Duration(0)},
		{"MinRequestBodyRate default", &Server{}, rate((*Server).minRequestBodyRate), int64(DefaultMinDataRate)},
		{"MinRequestBodyRate set", &Server{MinRequestBodyRate: 1000}, rate((*Server).minRequestBodyRate), int64(1000)},
		{"MinRequestBodyRate off", &Server{MinRequestBodyRate: -1}, rate((*Server).minRequestBodyRate), int64(0)},
		{"MinResponseRate default", &Server{}, rate((*Server).minResponseRate), int64(DefaultMinDataRate)},
		{"MinResponseRate off", &Server{MinResponseRate: -5}, rate((*Server).minResponseRate), int64(0)},
		{"grace default", &Server{}, dur((*Server).minRateGracePeriod), DefaultMinRateGracePeriod},
		{"grace set", &Server{MinRateGracePeriod: s}, dur((*Server).minRateGracePeriod), s},
		{"TLS handshake default", &Server{}, dur((*Server).tlsHandshakeTimeout), defaultTLSHandshakeTimeout},
		{"HTTP/2 WriteByteTimeout default", &Server{}, func(s *Server) any { return s.http2Config().WriteByteTimeout }, defaultHTTP2WriteByteTimeout},
		{"HTTP/2 WriteByteTimeout set", &Server{HTTP2: &http.HTTP2Config{WriteByteTimeout: s}}, func(s *Server) any { return s.http2Config().WriteByteTimeout }, s},
		{"HTTP/2 WriteByteTimeout off with the floor", &Server{MinResponseRate: -1}, func(s *Server) any { return s.http2Config().WriteByteTimeout }, time.Duration(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fmt.Sprintf("%+v", tt.srv.HTTP2)
			assert.Equal(t, tt.want, tt.get(tt.srv))
			assert.Equal(t, before, fmt.Sprintf("%+v", tt.srv.HTTP2), "HTTP2 config modified")
		})
	}
	// The accessors never write the defaults back.
	var zero Server
	zero.readHeaderTimeout()
	zero.idleTimeout()
	zero.http2Config()
	assert.Zero(t, zero.ReadHeaderTimeout)
	assert.Zero(t, zero.IdleTimeout)
	assert.Nil(t, zero.HTTP2)
}
