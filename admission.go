package httpsrv

import (
	"cmp"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Admission control: the connection limit (MaxConns) and the handshake
// limit (MaxConcurrentHandshakes). net/http has neither; it accepts every
// connection as soon as the kernel has it and starts every TLS handshake at
// once.

// admission is the Server's state for MaxConns and MaxConcurrentHandshakes,
// set up from the fields when the first Serve starts and shared by every
// Serve call on the Server.
type admission struct {
	connOnce sync.Once
	conns    *connLimiter // nil: no limit

	hsOnce sync.Once
	hs     *handshakeLimiter // nil: no limit; see handshakelimit.go
}

// connLimiter bounds the connections a Server holds open.
type connLimiter struct {
	max int

	mu   sync.Mutex
	n    int           // connections holding a slot
	wake chan struct{} // closed when n drops below max; nil if no loop waits

	last atomic.Int64 // Unix nanoseconds of the last at-limit log line
}

// minFileReserve is the fewest descriptors the default MaxConns leaves to
// the program besides its client connections.
const minFileReserve = 64

// defaultMaxConns returns the connection limit when MaxConns is zero, given
// the process's RLIMIT_NOFILE soft limit (as read by rlimitNoFile), or zero
// for no limit when there is no such limit. A quarter of the descriptors,
// and at least minFileReserve, are left to the program (never more than
// half of them); see the MaxConns documentation.
func defaultMaxConns(soft uint64, err error) int {
	if err != nil || soft == 0 || soft >= math.MaxInt32 {
		// No RLIMIT_NOFILE on this platform, or an unlimited one.
		return 0
	}
	reserve := max(soft/4, minFileReserve)
	reserve = min(reserve, soft/2)
	return int(soft - reserve)
}

// rlimitNoFile returns the RLIMIT_NOFILE soft limit; tests replace it.
var rlimitNoFile = getRlimitNoFile

// maxConns resolves MaxConns: the limit, or zero for none.
func (s *Server) maxConns() int {
	switch {
	case s.MaxConns > 0:
		return s.MaxConns
	case s.MaxConns < 0:
		return 0
	}
	return defaultMaxConns(rlimitNoFile())
}

// connLimit returns the Server's connection limiter, or nil when MaxConns
// turns the limit off. It is set up once, when serving starts.
func (s *Server) connLimit() *connLimiter {
	a := &s.adm
	a.connOnce.Do(func() {
		if n := s.maxConns(); n > 0 {
			a.conns = &connLimiter{max: n}
		}
	})
	return a.conns
}

// testHookConnLimitWait, if non-nil, is called when an accept loop starts
// waiting for a connection to end because the server is at MaxConns.
var testHookConnLimitWait func(*Server)

// wait returns once the server holds fewer connections than its limit, so
// that the accept loop may accept the next one. At the limit the listener
// is left alone, and new connections wait in the kernel's listen backlog
// until a connection ends. It reports false if done is closed first
// (Shutdown or Close).
//
// The slot is taken only once Accept has returned a connection (add): an
// accept loop waiting in Accept holds none, so an idle listener cannot keep
// the clients of another listener of the same Server waiting. The price is
// that each accept loop may accept one connection past the limit when
// several pass wait at once: at most MaxConns plus the number of listeners
// less one.
func (l *connLimiter) wait(s *Server, done <-chan struct{}) bool {
	var reclaim *time.Timer
	defer func() {
		if reclaim != nil {
			reclaim.Stop()
		}
	}()
	for {
		l.mu.Lock()
		if l.n < l.max {
			l.mu.Unlock()
			return true
		}
		if l.wake == nil {
			l.wake = make(chan struct{})
		}
		wake := l.wake
		l.mu.Unlock()
		if reclaim == nil {
			s.stats.connLimitWaits.Add(1)
			if fn := testHookConnLimitWait; fn != nil {
				fn(s)
			}
			l.logAtLimit(s)
			reclaim = time.NewTimer(reclaimIdleAfter)
		}
		select {
		case <-wake:
		case <-reclaim.C:
			// No connection has ended for a while: take idle ones back.
			s.reclaimIdleConns(l.reclaimBatch())
			reclaim.Reset(reclaimIdleAfter)
		case <-done:
			return false
		}
	}
}

// reclaimIdleAfter is how long an accept loop waits at MaxConns for a
// connection to end before it takes idle keep-alive connections back, and
// then again between two reclaims while it still waits. A connection that
// ends on its own within it makes room without costing an idle client its
// connection.
const reclaimIdleAfter = 250 * time.Millisecond

// reclaimBatch returns how many idle connections one reclaim takes back: a
// sixty-fourth of the limit, at least one, so that a burst of new clients
// waiting in the backlog is let in within a few reclaims.
func (l *connLimiter) reclaimBatch() int { return max(1, l.max/64) }

// reclaimIdleConns takes back up to n idle HTTP/1 keep-alive connections,
// those idle the longest first, to make room for new ones at MaxConns. As
// nginx does when it runs out of connections, but through the drain that
// Shutdown uses (drain.go), so that no request is lost: each closes once
// it has been idle through the drain period (at once if it has been idle
// that long already), and a request that arrives meanwhile is answered
// with "Connection: close". HTTP/2 connections are not reclaimed.
func (s *Server) reclaimIdleConns(n int) {
	type idleConn struct {
		h     *h1conn
		since int64
	}
	var idle []idleConn
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.activeConn {
		st, sec := c.getState()
		if h := c.h1.Load(); h != nil && st == http.StateIdle && sec != 0 && !h.reclaimed.Load() {
			idle = append(idle, idleConn{h, sec})
		}
	}
	slices.SortFunc(idle, func(a, b idleConn) int { return cmp.Compare(a.since, b.since) })
	for _, ic := range idle[:min(n, len(idle))] {
		ic.h.reclaimed.Store(true)
		ic.h.drainIdle()
	}
}

// add takes a slot for a connection just accepted.
func (l *connLimiter) add() {
	l.mu.Lock()
	l.n++
	l.mu.Unlock()
}

// release gives a slot back, waking the accept loops waiting at the limit.
func (l *connLimiter) release() {
	l.mu.Lock()
	l.n--
	if l.wake != nil && l.n < l.max {
		close(l.wake)
		l.wake = nil
	}
	l.mu.Unlock()
}

// atLimitLogInterval is the least time between two log lines saying that
// the server is at MaxConns.
const atLimitLogInterval = time.Minute

// logAtLimit logs, at most once per atLimitLogInterval, that the server is
// at its connection limit.
func (l *connLimiter) logAtLimit(s *Server) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if last != 0 && now-last < int64(atLimitLogInterval) {
		return
	}
	if !l.last.CompareAndSwap(last, now) {
		return
	}
	s.logAtf(slog.LevelWarn, "httpsrv: at MaxConns (%d connections); new connections wait in the listen backlog until one ends", l.max)
}

// releaseConnSlot gives the connection's MaxConns slot back, once, when it
// is closed or hijacked.
func (c *conn) releaseConnSlot() {
	if c.connSlot != nil && c.connSlotFreed.CompareAndSwap(false, true) {
		c.connSlot.release()
	}
}
