package httpsrv

import (
	"net/http"
	"time"
)

// httpsrv's safe defaults. They apply where a field is zero and net/http
// would have no limit at all; a value the user sets keeps net/http's
// meaning, and a negative value turns the limit off. They are applied in
// the accessors below, never written into the user's fields.
const (
	// DefaultReadHeaderTimeout bounds the reading of a request head when
	// ReadHeaderTimeout and ReadTimeout are both zero. A real client sends
	// its head in one or two packets; twenty seconds leaves room for a
	// congested mobile link and still stops slowloris clients, which
	// trickle a header line every few seconds, well inside a minute.
	DefaultReadHeaderTimeout = 20 * time.Second

	// DefaultIdleTimeout bounds the wait for the next request on a
	// keep-alive connection (and idle HTTP/2 connections) when IdleTimeout
	// and ReadTimeout are both zero. Two minutes is above the idle timeouts
	// of common load balancers (60 s for AWS ALB and GCP), so that the
	// balancer, not the server, closes an idle connection first, and is the
	// value Cloudflare publishes for its Go servers.
	DefaultIdleTimeout = 2 * time.Minute

	// DefaultMinDataRate is the floor, in bytes per second, for request
	// bodies and responses when MinRequestBodyRate or MinResponseRate is
	// zero: ASP.NET Kestrel's default, the rate of a very poor link,
	// orders of magnitude below any real client and far above the bytes
	// per second slow-body and slow-read attacks need to stay connected.
	DefaultMinDataRate = 240

	// DefaultMinRateGracePeriod is how long a transfer may run below the
	// floor before it applies, when MinRateGracePeriod is zero: Kestrel's
	// default, enough for TCP slow start and a retransmission timeout.
	DefaultMinRateGracePeriod = 5 * time.Second

	// defaultHTTP2WriteByteTimeout is the HTTP/2 WriteByteTimeout used
	// when the HTTP2 field does not set one: an HTTP/2 connection whose
	// client stops reading makes no write progress for this long and is
	// closed. It matches the longest a single 4 KiB HTTP/1 write may take
	// under the default floors (5 s grace plus 4 KiB at 240 B/s), rounded
	// up.
	defaultHTTP2WriteByteTimeout = 30 * time.Second
)

// readHeaderTimeout is the time allowed to read a request head:
// ReadHeaderTimeout, or ReadTimeout when it is zero (as in net/http), or
// DefaultReadHeaderTimeout when both are zero. Zero means no limit.
func (s *Server) readHeaderTimeout() time.Duration {
	return firstSet(s.ReadHeaderTimeout, s.ReadTimeout, DefaultReadHeaderTimeout)
}

// idleTimeout is the time a connection may wait for its next request:
// IdleTimeout, or ReadTimeout when it is zero (as in net/http), or
// DefaultIdleTimeout when both are zero. Zero means no limit.
func (s *Server) idleTimeout() time.Duration {
	return firstSet(s.IdleTimeout, s.ReadTimeout, DefaultIdleTimeout)
}

// firstSet returns the first non-zero of v, fallback and def, with a
// negative value meaning "no limit" (zero).
func firstSet(v, fallback, def time.Duration) time.Duration {
	switch {
	case v == 0 && fallback == 0:
		return def
	case v == 0:
		v = fallback
	}
	return max(v, 0)
}

// minRequestBodyRate returns the request body floor in bytes per second,
// or zero for none.
func (s *Server) minRequestBodyRate() int64 { return minRate(s.MinRequestBodyRate) }

// minResponseRate returns the response floor in bytes per second, or zero
// for none.
func (s *Server) minResponseRate() int64 { return minRate(s.MinResponseRate) }

func minRate(v int64) int64 {
	switch {
	case v == 0:
		return DefaultMinDataRate
	case v < 0:
		return 0
	}
	return v
}

// minRateGracePeriod returns the grace period of the rate floors.
func (s *Server) minRateGracePeriod() time.Duration {
	if s.MinRateGracePeriod <= 0 {
		return DefaultMinRateGracePeriod
	}
	return s.MinRateGracePeriod
}

// http2Config returns the HTTP/2 settings: the HTTP2 field, with a
// WriteByteTimeout when it sets none, so that an HTTP/2 client that stops
// reading is dropped. The caller's HTTP2Config is not modified.
func (s *Server) http2Config() *http.HTTP2Config {
	var c http.HTTP2Config
	if s.HTTP2 != nil {
		c = *s.HTTP2
	}
	if c.WriteByteTimeout == 0 && s.minResponseRate() > 0 {
		c.WriteByteTimeout = defaultHTTP2WriteByteTimeout
	}
	return &c
}
