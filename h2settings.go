package httpsrv

import (
	"net"
	"sync"
	"time"
)

// HTTP2.WriteByteTimeout without a timer operation per write.
//
// The HTTP/2 server enforces WriteByteTimeout (httpsrv's default: 30 s
// while the response floor is on) by moving the connection's write
// deadline before each write to the socket and clearing it after
// (writeWithByteTimeout in golang.org/x/net/http2, and net/http's copy on
// Go 1.27). Each of those calls adds or removes a runtime timer under the
// timers' lock: with small responses that is two of them per flush, about
// one write per response, and 6% of the server's CPU under h2load, more
// than any other part of what httpsrv adds to the HTTP/2 engine.
//
// h2WriteWatch takes those calls instead. It records the deadline asked
// for and keeps one timer, armed at the first deadline of a busy period
// and rearmed from its own callback while writes go on: when it fires
// with a write still pending past its deadline, it sets the connection's
// real write deadline in the past, which fails that write at once, just
// as the deadline would have. A write that finishes in time costs a
// mutex and two field stores. The connection's own deadline stays clear
// otherwise, so the writes crypto/tls makes by itself (a KeyUpdate
// answer) never meet a stale one.

// h2WriteWatch holds the write deadline the HTTP/2 server sets on a
// connection; see above. It is used only when WriteByteTimeout is on.
type h2WriteWatch struct {
	conn net.Conn // the connection whose deadline a cut sets; immutable

	// mu guards the fields below.
	mu sync.Mutex
	// deadline is the write deadline the server asked for last; zero
	// when no write is pending.
	deadline time.Time
	// timer runs expire; nil when not armed. An idle connection's timer
	// fires once, finds no write pending and is dropped.
	timer *time.Timer
	// cut is set while conn's real write deadline is in the past.
	cut bool
	// stopped is set when the connection is done: no timer is armed
	// again, neither by a callback that fired as stop ran nor by a write
	// the server's writer goroutine finishes after ServeConn returned.
	stopped bool
}

// setWriteDeadline records t as the deadline of the pending write, or,
// for a zero t, that no write is pending.
func (w *h2WriteWatch) setWriteDeadline(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deadline = t
	var err error
	if w.cut {
		// The write the cut was for finished as its deadline passed,
		// or failed: either way a new write starts clean.
		w.cut = false
		err = w.conn.SetWriteDeadline(time.Time{})
	}
	if !t.IsZero() && w.timer == nil && !w.stopped {
		w.timer = time.AfterFunc(time.Until(t), w.expire)
	}
	return err
}

// expire runs on the timer's goroutine.
func (w *h2WriteWatch) expire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	if w.deadline.IsZero() || w.stopped {
		return
	}
	if d := time.Until(w.deadline); d > 0 {
		// Writes went on since the timer was armed.
		w.timer = time.AfterFunc(d, w.expire)
		return
	}
	w.cut = true
	w.conn.SetWriteDeadline(deadlinePast)
}

// stop disarms the timer when the connection is done.
func (w *h2WriteWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}
