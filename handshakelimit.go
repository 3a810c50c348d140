package httpsrv

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The handshake limit (MaxConcurrentHandshakes). net/http starts every TLS
// handshake at once; under a flood of new connections their cryptography
// fills the run queue that requests on established connections wait in.
//
// A handshake holds a slot only while the server computes its part: from
// the moment the ClientHello has been read and the configuration chosen
// (GetConfigForClient) until the server writes its flight (ServerHello to
// Finished in TLS 1.3, to ServerHelloDone in TLS 1.2) or reads from the
// client, whichever comes first. A client that connects and sends nothing,
// sends slowly, or stops after its ClientHello holds no slot, and a slow
// client costs no slot time: the wait for its answer is outside the slot.
// The caller's callbacks that may wait (GetCertificate, WrapSession,
// UnwrapSession, VerifyConnection) run with the slot given back, and take
// one again when they return. After a HelloRetryRequest the handshake
// takes a slot again once the client's second ClientHello has arrived
// whole (hrrWatch). See countConn's Read and Write, where the slot is
// given back.

// handshakeLimiter bounds the TLS handshakes computing at once.
type handshakeLimiter struct {
	sem chan struct{} // one element per slot taken

	closeOnce sync.Once
	closed    chan struct{} // closed by Server.Close: waits end

	yields yieldPool // see yieldToNetwork

	stats *serverStats // the Server's, for the waits and their timeouts

	lastTake atomic.Int64 // Unix nanoseconds of the last slot taken
}

// handshakeBusyGap is the longest time between two slots taken for the
// handshakes to count as back to back (busy; see take). A full handshake's
// server work is 0.1 to 2 ms on one core of a current machine.
const handshakeBusyGap = 5 * time.Millisecond

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
			a.hs = &handshakeLimiter{sem: make(chan struct{}, n), closed: make(chan struct{}), stats: &s.stats}
		}
	})
	return a.hs
}

// closeHandshakeLimit ends the waits for a handshake slot and releases the
// descriptors kept for yields. With hard set (Close) the handshakes
// waiting for a slot fail at once; without it (the end of Shutdown) they
// go on waiting, within their handshake timeout, and only the yields'
// descriptors are released.
func (s *Server) closeHandshakeLimit(hard bool) {
	a := &s.adm
	a.hsOnce.Do(func() {}) // no limiter made from now on
	h := a.hs
	if h == nil {
		return
	}
	if hard {
		h.closeOnce.Do(func() { close(h.closed) })
	}
	h.yields.close()
}

// errHandshakeSlotTimeout fails a handshake whose deadline passed while it
// waited for a slot. It is a timeout (os.ErrDeadlineExceeded), so that
// HandshakeErrors counts it with the handshakes cut by the timeout.
var errHandshakeSlotTimeout = fmt.Errorf("httpsrv: no TLS handshake slot free (MaxConcurrentHandshakes) within the handshake timeout: %w", os.ErrDeadlineExceeded)

// errHandshakeSlotClosed fails a handshake that waited for a slot when the
// server was closed.
var errHandshakeSlotClosed = fmt.Errorf("httpsrv: server closed while the TLS handshake waited for a slot: %w", net.ErrClosed)

// errHandshakePeerGone fails a handshake whose client closed the
// connection while it waited for a slot.
var errHandshakePeerGone = fmt.Errorf("httpsrv: the client closed the connection while its TLS handshake waited for a slot (MaxConcurrentHandshakes): %w", io.EOF)

// take waits for a slot until deadline (zero for none) or until the
// server is closed. It reports whether it had to wait.
//
// When handshakes come back to back (a slot was taken less than
// handshakeBusyGap before) or this one had to wait, the handshake lets the
// goroutines the network has made runnable go first (yieldToNetwork)
// before it computes. Go's scheduler looks at the network only when its
// run queues are empty (or every 10 ms), and a slot given back hands
// itself to its next waiter ahead of every other runnable goroutine: under
// a flood of handshakes the processors would be kept busy with them, and
// requests on established connections would wait behind all of them. The
// yield lets each handshake compute only once the requests that were
// waiting have run; it costs a write to an eventfd (on Linux) and a poll,
// and only when handshakes are busy.
func (h *handshakeLimiter) take(deadline time.Time) (waited bool, err error) {
	select {
	case h.sem <- struct{}{}:
		if now := time.Now().UnixNano(); now-h.lastTake.Swap(now) < int64(handshakeBusyGap) {
			h.yields.yieldToNetwork()
		}
		return false, nil
	default:
	}
	if h.stats != nil {
		h.stats.handshakeSlotWaits.Add(1)
	}
	var expired <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return true, h.timedOut()
		}
		t := getSlotTimer(d)
		defer putSlotTimer(t)
		expired = t.C
	}
	select {
	case h.sem <- struct{}{}:
	case <-expired:
		return true, h.timedOut()
	case <-h.closed:
		return true, errHandshakeSlotClosed
	}
	h.lastTake.Store(time.Now().UnixNano())
	h.yields.yieldToNetwork()
	return true, nil
}

// slotTimers keeps the stopped timers of the waits for a slot: under a
// steady stream of handshakes most of them wait, and a new timer costs
// three allocations.
var slotTimers sync.Pool // of *time.Timer

// getSlotTimer returns a timer that fires after d.
func getSlotTimer(d time.Duration) *time.Timer {
	if t, ok := slotTimers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

// putSlotTimer stops t and keeps it for another wait. A value it sent and
// nobody received is drained, in case the program runs with the timer
// channels of Go before 1.23 (GODEBUG asynctimerchan=1), which keep it.
func putSlotTimer(t *time.Timer) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	slotTimers.Put(t)
}

// timedOut counts a wait cut by the handshake timeout and returns its
// error.
func (h *handshakeLimiter) timedOut() error {
	if h.stats != nil {
		h.stats.handshakeSlotTimeouts.Add(1)
	}
	return errHandshakeSlotTimeout
}

// give gives a slot back.
func (h *handshakeLimiter) give() { <-h.sem }

// takeHandshakeSlot takes a slot of lim for the handshake running on c,
// waiting until the handshake's deadline at most. A handshake that waited
// is dropped if its client has closed the connection meanwhile: under
// overload the slots go first to the handshakes that waited longest, the
// ones whose clients are most likely gone. takeHandshakeSlot and
// giveHandshakeSlot run on the goroutine running the handshake only.
func (c *countConn) takeHandshakeSlot(lim *handshakeLimiter) error {
	c.hs = lim
	waited, err := lim.take(c.hsDeadline)
	if err != nil {
		return err
	}
	c.hsHeld = true
	if waited && peerClosed(c.Conn) {
		c.giveHandshakeSlot()
		return errHandshakePeerGone
	}
	return nil
}

// giveHandshakeSlot gives c's handshake slot back, if it holds one.
func (c *countConn) giveHandshakeSlot() {
	if c.hsHeld {
		c.hsHeld = false
		c.hs.give()
	}
}

// endHandshake gives c's handshake slot back, if it still holds one, and
// stops following the handshake. It runs when the handshake has ended, in
// success, failure or panic.
func (c *countConn) endHandshake() {
	c.giveHandshakeSlot()
	c.hs = nil
	c.hrr = hrrWatch{}
}

// slotFree calls fn, a callback of the caller's that may wait, with c's
// handshake slot given back, and takes a slot again when it returns.
func (c *countConn) slotFree(fn func() error) error {
	if !c.hsHeld {
		return fn()
	}
	c.giveHandshakeSlot()
	if err := fn(); err != nil {
		return err
	}
	return c.takeHandshakeSlot(c.hs)
}

// limitHandshakes returns the GetConfigForClient of base, the configuration
// ServeTLS serves with, given the one it would have otherwise (next,
// possibly nil): it calls next, then takes a handshake slot for the
// connection, which countConn gives back. Without a handshake limit it
// returns next.
//
// The slot is taken after next, the caller's GetConfigForClient (or the
// ClientCAFile reloader's), so that a callback that waits (for a backend,
// a certificate store) does not hold a slot while it waits. The caller's
// later callbacks that may wait, GetCertificate (see
// slotFreeGetCertificate), WrapSession, UnwrapSession and
// VerifyConnection, give the slot back while they run; for the last three,
// which get no handle on the connection, the configuration is cloned for
// the handshake when it sets any of them.
func (s *Server) limitHandshakes(base *tls.Config, next func(*tls.ClientHelloInfo) (*tls.Config, error)) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	lim := s.handshakeLimit()
	if lim == nil {
		return next
	}
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
		cc, ok := hello.Conn.(*countConn)
		if !ok || cc.hsHeld {
			return cfg, nil
		}
		if err := cc.takeHandshakeSlot(lim); err != nil {
			return nil, err
		}
		eff := cfg
		if eff == nil {
			eff = base
		}
		if eff.WrapSession == nil && eff.UnwrapSession == nil && eff.VerifyConnection == nil {
			return cfg, nil
		}
		return slotFreeCallbacks(eff, cc), nil
	}
}

// slotFreeCallbacks returns a clone of cfg whose WrapSession,
// UnwrapSession and VerifyConnection run with cc's handshake slot given
// back.
func slotFreeCallbacks(cfg *tls.Config, cc *countConn) *tls.Config {
	cfg = cfg.Clone()
	if wrap := cfg.WrapSession; wrap != nil {
		cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) (ticket []byte, err error) {
			err = cc.slotFree(func() (err error) {
				ticket, err = wrap(cs, ss)
				return err
			})
			return ticket, err
		}
	}
	if unwrap := cfg.UnwrapSession; unwrap != nil {
		cfg.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (ss *tls.SessionState, err error) {
			err = cc.slotFree(func() (err error) {
				ss, err = unwrap(identity, cs)
				return err
			})
			return ss, err
		}
	}
	if verify := cfg.VerifyConnection; verify != nil {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return cc.slotFree(func() error { return verify(cs) })
		}
	}
	return cfg
}

// slotFreeGetCertificate returns get, a GetCertificate of the caller's,
// made to give the handshake's slot back while it runs and to take one
// again before the handshake goes on to compute: a GetCertificate may wait
// (on a certificate store, or for a certificate to be issued, as
// golang.org/x/crypto/acme/autocert's does, whose TLS-ALPN-01 challenge
// needs another handshake to complete meanwhile). Without a handshake
// limit it returns get.
func (s *Server) slotFreeGetCertificate(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if get == nil || s.handshakeLimit() == nil {
		return get
	}
	return func(hello *tls.ClientHelloInfo) (cert *tls.Certificate, err error) {
		cc, ok := hello.Conn.(*countConn)
		if !ok {
			return get(hello)
		}
		err = cc.slotFree(func() (err error) {
			cert, err = get(hello)
			return err
		})
		return cert, err
	}
}

// helloRetryRequestRandom is the Random of a ServerHello that is a
// HelloRetryRequest (RFC 8446, section 4.1.3).
var helloRetryRequestRandom = []byte{
	0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11,
	0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
	0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E,
	0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
}

// TLS record and handshake message types hrrWatch needs.
const (
	recordTypeHandshake = 22
	typeServerHello     = 2
)

// isHelloRetryRequest reports whether p, bytes the server writes, starts
// with a HelloRetryRequest record: a handshake record whose message is a
// ServerHello (type, length, legacy version) with the HRR Random.
func isHelloRetryRequest(p []byte) bool {
	const randomAt = 5 + 4 + 2
	return len(p) >= randomAt+32 && p[0] == recordTypeHandshake && p[5] == typeServerHello &&
		bytes.Equal(p[randomAt:randomAt+32], helloRetryRequestRandom)
}

// hrrWatch follows the records a client sends after a HelloRetryRequest
// until its second ClientHello has arrived whole, so that the handshake
// takes a slot again before it computes, and not before: a client that
// trickles its second ClientHello holds no slot. Records other than
// handshake records (a ChangeCipherSpec) are skipped; the ClientHello may
// span records.
type hrrWatch struct {
	active  bool
	hdr     [5]byte // the record header being read
	hdrN    int
	recLeft int     // payload bytes of the current record still to come
	msg     [4]byte // the handshake message header
	msgN    int
	msgLeft int // ClientHello body bytes still to come, once msgN is 4
}

// feed follows b, bytes read from the client, and reports whether the
// ClientHello is now complete.
func (w *hrrWatch) feed(b []byte) bool {
	for len(b) > 0 {
		if w.hdrN < len(w.hdr) {
			k := copy(w.hdr[w.hdrN:], b)
			w.hdrN += k
			b = b[k:]
			if w.hdrN == len(w.hdr) {
				w.recLeft = int(w.hdr[3])<<8 | int(w.hdr[4])
				if w.recLeft == 0 {
					w.hdrN = 0
				}
			}
			continue
		}
		k := min(len(b), w.recLeft)
		if w.hdr[0] == recordTypeHandshake {
			payload := b[:k]
			if w.msgN < len(w.msg) {
				m := copy(w.msg[w.msgN:], payload)
				w.msgN += m
				payload = payload[m:]
				if w.msgN == len(w.msg) {
					w.msgLeft = int(w.msg[1])<<16 | int(w.msg[2])<<8 | int(w.msg[3])
				}
			}
			if w.msgN == len(w.msg) {
				w.msgLeft -= len(payload)
				if w.msgLeft <= 0 {
					return true
				}
			}
		}
		b = b[k:]
		w.recLeft -= k
		if w.recLeft == 0 {
			w.hdrN = 0
		}
	}
	return false
}

// handshakeWrite is countConn.Write's part during a handshake that holds a
// slot: the server has computed its flight and writes it.
func (c *countConn) handshakeWrite(p []byte) {
	if isHelloRetryRequest(p) {
		c.hrr = hrrWatch{active: true}
	}
	c.giveHandshakeSlot()
}

// handshakeRead is countConn.Read's part after a HelloRetryRequest: once
// the second ClientHello is whole, a slot is taken again.
func (c *countConn) handshakeRead(p []byte) error {
	if !c.hrr.feed(p) {
		return nil
	}
	c.hrr.active = false
	return c.takeHandshakeSlot(c.hs)
}
