package httpsrv

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"runtime"
	"time"
)

// The handshake limit (MaxConcurrentHandshakes). net/http starts every TLS
// handshake at once; under a flood of new connections their cryptography
// fills the run queue that requests on established connections wait in.
//
// A handshake holds a slot only while the server computes its part: from
// the moment the ClientHello has been read and the configuration chosen
// (GetConfigForClient) until the server next reads from the client, which
// it does once its flight (ServerHello to Finished in TLS 1.3, to
// ServerHelloDone in TLS 1.2) is written. A client that connects and sends
// nothing, sends slowly, or stops after its ClientHello holds no slot, and
// a slow client costs no slot time: the wait for its answer is outside the
// slot. See countConn.Read, where the slot is given back.

// handshakeLimiter bounds the TLS handshakes computing at once.
type handshakeLimiter struct {
	sem chan struct{} // one element per slot taken
}

// maxConcurrentHandshakes resolves MaxConcurrentHandshakes: the limit, or
// zero for none.
func (s *Server) maxConcurrentHandshakes() int {
	switch {
	case s.MaxConcurrentHandshakes > 0:
		return s.MaxConcurrentHandshakes
	case s.MaxConcurrentHandshakes < 0:
		return 0
	}
	return runtime.GOMAXPROCS(0)
}

// handshakeLimit returns the Server's handshake limiter, or nil when
// MaxConcurrentHandshakes turns the limit off. It is set up once, when
// the first ServeTLS builds its configuration.
func (s *Server) handshakeLimit() *handshakeLimiter {
	a := &s.adm
	a.hsOnce.Do(func() {
		if n := s.maxConcurrentHandshakes(); n > 0 {
			a.hs = &handshakeLimiter{sem: make(chan struct{}, n)}
		}
	})
	return a.hs
}

// errHandshakeSlotTimeout fails a handshake whose deadline passed while it
// waited for a slot. It is a timeout (os.ErrDeadlineExceeded), so that
// HandshakeErrors counts it with the handshakes cut by the timeout.
var errHandshakeSlotTimeout = fmt.Errorf("httpsrv: no TLS handshake slot free (MaxConcurrentHandshakes) within the handshake timeout: %w", os.ErrDeadlineExceeded)

// errHandshakeSlotClosed fails a handshake that waited for a slot when the
// server was shut down.
var errHandshakeSlotClosed = fmt.Errorf("httpsrv: server closed while the TLS handshake waited for a slot: %w", net.ErrClosed)

// take waits for a slot until deadline (zero for none) or until done is
// closed. A handshake that had to wait lets the goroutines the network has
// made runnable go first (yieldToNetwork): a slot given back hands itself
// to its next waiter ahead of every other runnable goroutine, so a chain
// of handshakes handing slots to each other would otherwise keep requests
// on established connections waiting behind all of them.
func (h *handshakeLimiter) take(deadline time.Time, done <-chan struct{}) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	default:
	}
	var expired <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return errHandshakeSlotTimeout
		}
		t := time.NewTimer(d)
		defer t.Stop()
		expired = t.C
	}
	select {
	case h.sem <- struct{}{}:
	case <-expired:
		return errHandshakeSlotTimeout
	case <-done:
		return errHandshakeSlotClosed
	}
	yieldToNetwork()
	return nil
}

// give gives a slot back.
func (h *handshakeLimiter) give() { <-h.sem }

// takeHandshakeSlot takes a slot of lim for the handshake running on c,
// waiting until the handshake's deadline at most. c must hold none. It
// and giveHandshakeSlot run on the goroutine running the handshake only.
func (c *countConn) takeHandshakeSlot(lim *handshakeLimiter, done <-chan struct{}) error {
	if err := lim.take(c.hsDeadline, done); err != nil {
		return err
	}
	c.hs = lim
	return nil
}

// giveHandshakeSlot gives c's handshake slot back, if it holds one.
func (c *countConn) giveHandshakeSlot() {
	if lim := c.hs; lim != nil {
		c.hs = nil
		lim.give()
	}
}

// limitHandshakes returns the GetConfigForClient of the configuration
// ServeTLS serves with, given the one it would have otherwise (next,
// possibly nil): it calls next, then takes a handshake slot for the
// connection, which countConn.Read gives back. Without a handshake limit
// it returns next.
//
// The slot is taken after next, the caller's GetConfigForClient (or the
// ClientCAFile reloader's), so that a callback that waits (for a backend,
// a certificate store) does not hold a slot while it waits; a caller's
// GetCertificate, called later by crypto/tls, gives its slot back while it
// runs (see slotFreeGetCertificate).
func (s *Server) limitHandshakes(next func(*tls.ClientHelloInfo) (*tls.Config, error)) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	lim := s.handshakeLimit()
	if lim == nil {
		return next
	}
	done := s.doneChan()
	return func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		var cfg *tls.Config
		if next != nil {
			var err error
			if cfg, err = next(hello); err != nil {
				return nil, err
			}
		}
		// Only connections of ServeTLS's listener (tlsCountListener)
		// have a countConn under them, and only a configuration built by
		// serveTLSConfig calls this function.
		if cc, ok := hello.Conn.(*countConn); ok && cc.hs == nil {
			if err := cc.takeHandshakeSlot(lim, done); err != nil {
				return nil, err
			}
		}
		return cfg, nil
	}
}

// slotFreeGetCertificate returns get, a GetCertificate of the caller's,
// made to give the handshake's slot back while it runs and to take one
// again before the handshake goes on to compute: a GetCertificate may wait
// (on a certificate store, or for a certificate to be issued, as
// golang.org/x/crypto/acme/autocert's does, whose TLS-ALPN-01 challenge
// needs another handshake to complete meanwhile). Without a handshake
// limit it returns get.
func (s *Server) slotFreeGetCertificate(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	lim := s.handshakeLimit()
	if lim == nil || get == nil {
		return get
	}
	done := s.doneChan()
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		cc, ok := hello.Conn.(*countConn)
		if !ok || cc.hs == nil {
			return get(hello)
		}
		cc.giveHandshakeSlot()
		cert, err := get(hello)
		if err != nil {
			return nil, err
		}
		if err := cc.takeHandshakeSlot(lim, done); err != nil {
			return nil, err
		}
		return cert, nil
	}
}
