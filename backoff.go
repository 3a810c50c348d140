package httpsrv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// The accept back-off: after an Accept error of the back-off class the
// accept loop waits minAcceptDelay, doubling after each further error up to
// maxAcceptDelay, and starts again from minAcceptDelay after a successful
// Accept. These are the values of net/http's Server.Serve.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = 1 * time.Second
)

// nextAcceptDelay returns the wait after a back-off Accept error, given
// the previous wait (zero after a successful Accept).
func nextAcceptDelay(prev time.Duration) time.Duration {
	if prev <= 0 {
		return minAcceptDelay
	}
	return min(2*prev, maxAcceptDelay)
}

// acceptErrorClass is what the accept loop does after an Accept error.
type acceptErrorClass uint8

const (
	// acceptFatal ends Serve with the error: the listener itself is
	// broken, and retrying would spin or wait for ever.
	acceptFatal acceptErrorClass = iota

	// acceptClosed ends Serve with the error, without logging it: the
	// listener was closed by its owner (Shutdown and Close are told apart
	// before classifying, and return http.ErrServerClosed).
	acceptClosed

	// acceptRetry retries at once, without logging: the error belongs to
	// the one pending connection accept(2) took off the queue, and the next
	// one may be fine. Go's own poller retries ECONNABORTED the same way,
	// silently. The errors are counted.
	acceptRetry

	// acceptBackoff waits (see nextAcceptDelay) before the next Accept:
	// the process or the system is short of something that only time, or
	// other connections ending, gives back, so retrying at once would spin.
	// The errors are counted and logged at most once per
	// acceptErrorLogInterval.
	acceptBackoff

	// acceptBackoffFD is acceptBackoff for a shortage of file descriptors:
	// before waiting, the loop gives up its reserve descriptor to accept the
	// connections already pending and close them at once (see shedPending),
	// so that their clients see a prompt close instead of waiting in the
	// listen queue.
	acceptBackoffFD
)

// acceptErrnos classifies the errno values accept(2) returns. An Accept
// error carrying any other errno (or none) is classified by its Temporary
// method, as net/http does: back off if it reports true, else end Serve.
var acceptErrnos = map[syscall.Errno]acceptErrorClass{
	// The per-process limit (RLIMIT_NOFILE) or the system-wide file
	// table is full. Descriptors come back as connections end; until then
	// every accept(2) fails at once, whether a connection is pending or
	// not (the new descriptor is allocated first), so retrying at once
	// spins.
	syscall.EMFILE: acceptBackoffFD,
	syscall.ENFILE: acceptBackoffFD,

	// The kernel is short of socket buffers or memory: wait for it to
	// reclaim some. Closing a descriptor would not help.
	syscall.ENOBUFS: acceptBackoff,
	syscall.ENOMEM:  acceptBackoff,

	// No connection was ready on a listener that does not wait for one
	// (a custom listener over a non-blocking socket): retrying at once
	// would poll in a loop. Go's poller never returns it.
	syscall.EAGAIN: acceptBackoff,

	// A timeout (syscall.Errno.Timeout): net/http backs off on it, and
	// nothing says it is the connection's own rather than the listener's.
	syscall.ETIMEDOUT: acceptBackoff,

	// The client reset or aborted the connection while it was in the
	// listen queue: that connection is gone, the listener is fine.
	syscall.ECONNABORTED: acceptRetry,
	syscall.ECONNRESET:   acceptRetry,

	// A protocol error on the pending connection, which Linux reports from
	// accept(2) instead of on the new socket (see accept(2), "Error
	// handling"): again the connection's, not the listener's.
	syscall.EPROTO: acceptRetry,

	// A signal interrupted the call before a connection was taken.
	syscall.EINTR: acceptRetry,
}

// classifyAcceptError returns what the accept loop does after err.
func classifyAcceptError(err error) acceptErrorClass {
	if errors.Is(err, net.ErrClosed) {
		return acceptClosed
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if c, ok := acceptErrnos[errno]; ok {
			return c
		}
	}
	// Temporary is deprecated in package net, but it is the contract of the
	// custom listeners written for net/http (and how net/http itself
	// decides); it also covers Windows' WSAECONNRESET and a listener's
	// deadline.
	var te interface{ Temporary() bool }
	if errors.As(err, &te) && te.Temporary() {
		return acceptBackoff
	}
	return acceptFatal
}

// maxAcceptRetries is how many acceptRetry errors in a row the loop
// retries at once; after that it backs off as for acceptBackoff until an
// Accept succeeds. Each such error takes one connection off the listen
// queue, so a longer run means a listener returning the same error for
// ever, which must not spin; backing off is what net/http does anyway.
const maxAcceptRetries = 64

// acceptErrorLogInterval is the least time between two log lines about
// one accept loop's errors. The first error after a quiet interval is
// logged at once, in net/http's line; the errors that follow within the
// interval are counted into the next line.
const acceptErrorLogInterval = time.Second

// acceptErrorLog rate-limits one accept loop's log lines. It is used by
// that loop's goroutine only.
type acceptErrorLog struct {
	last   time.Time // when the last line was logged; zero if never
	errors uint64    // back-off errors since then, not yet logged
	shed   uint64    // connections shed since then, not yet logged
}

// acceptSummary is what one line reports besides its own error: what
// happened since the previous line.
type acceptSummary struct {
	errors uint64        // back-off errors not logged
	shed   uint64        // connections shed
	period time.Duration // since the previous line; zero for the first
}

func (s acceptSummary) empty() bool { return s.errors == 0 && s.shed == 0 }

// record notes a back-off error at now, after which shed connections were
// closed, and returns the summary to log with it if a line is due: the
// first error, or the first after acceptErrorLogInterval since the last
// line. The connections shed after an error logged are reported by the
// next line, so that the first line is net/http's own.
func (a *acceptErrorLog) record(now time.Time, shed int) (acceptSummary, bool) {
	if !a.last.IsZero() && now.Sub(a.last) < acceptErrorLogInterval {
		a.errors++
		a.shed += uint64(shed)
		return acceptSummary{}, false
	}
	sum := a.take(now)
	a.shed = uint64(shed)
	return sum, true
}

// pending reports whether errors or shed connections wait for a line.
func (a *acceptErrorLog) pending() bool { return a.errors != 0 || a.shed != 0 }

// tail returns the summary of what is pending, if anything is and a line
// is due at now; force makes it due (the loop is ending).
func (a *acceptErrorLog) tail(now time.Time, force bool) (acceptSummary, bool) {
	if !a.pending() || (!force && now.Sub(a.last) < acceptErrorLogInterval) {
		return acceptSummary{}, false
	}
	return a.take(now), true
}

func (a *acceptErrorLog) take(now time.Time) acceptSummary {
	sum := acceptSummary{errors: a.errors, shed: a.shed}
	if !a.last.IsZero() {
		sum.period = now.Sub(a.last)
	}
	a.errors, a.shed, a.last = 0, 0, now
	return sum
}

// acceptLoop is the state of one accept loop's error handling: the
// back-off, the log rate limit and the reserve descriptor.
type acceptLoop struct {
	s       *Server
	done    <-chan struct{} // closed when shutdown starts
	raw     net.Listener    // the listener under TLS, for shedPending
	delay   time.Duration   // the last wait; zero after a successful Accept
	retries int             // acceptRetry errors since the last success
	log     acceptErrorLog
	reserve fdReserve
	// short is set while the loop, at EMFILE or ENFILE, has marked the
	// handshake yields short of descriptors (Server.descriptorsShort); it
	// takes the mark back when it accepts again or ends (endShort).
	short bool
}

// newAcceptLoop returns the error handling for an accept loop on raw
// (the listener the caller gave, under any TLS layer). It takes the
// reserve descriptor when raw allows shedding; when descriptors are short
// already, the loop starts without it and takes it later.
func (s *Server) newAcceptLoop(raw net.Listener, done <-chan struct{}) *acceptLoop {
	a := &acceptLoop{s: s, done: done, raw: raw}
	if canShed(raw) {
		a.reserve.init()
	}
	return a
}

// handle deals with the Accept error err, and returns nil to go on
// accepting, or the error Serve returns: err itself, or
// http.ErrServerClosed when Shutdown or Close ended the wait.
func (a *acceptLoop) handle(err error) error {
	class := classifyAcceptError(err)
	switch class {
	case acceptClosed, acceptFatal:
		return err
	case acceptRetry:
		a.s.stats.acceptRetriedErrors.Add(1)
		if a.retries < maxAcceptRetries {
			a.retries++
			return nil
		}
		// The same error for ever: back off (and log) from now on.
	case acceptBackoff, acceptBackoffFD:
		a.s.stats.acceptBackoffErrors.Add(1)
	}
	shed := 0
	if class == acceptBackoffFD && !a.short {
		// The yields' descriptors go first, before the reserve is
		// released, so that a yield does not take the reserve's slot
		// while the loop sheds (see yieldPool).
		a.short = true
		a.s.descriptorsShort(true)
	}
	if class == acceptBackoffFD && a.reserve.release() {
		shed = shedPending(a.raw, maxShedPerRound)
		a.reserve.retake()
		a.s.stats.acceptShedConns.Add(uint64(shed))
	}
	a.delay = nextAcceptDelay(a.delay)
	if sum, ok := a.log.record(time.Now(), shed); ok {
		a.s.logAcceptError(err, a.delay, sum)
	}
	a.s.stats.acceptBackoffWaits.Add(1)
	if !waitOrDone(a.delay, a.done) {
		return http.ErrServerClosed
	}
	// A loop that started without its reserve, or lost it to another
	// goroutine while shedding, takes it when descriptors allow, even if it
	// then waits in Accept for a long time.
	a.reserve.retake()
	return nil
}

// accepted is called after each successful Accept. It is cheap unless the
// loop is recovering from errors.
func (a *acceptLoop) accepted() {
	if a.short || a.delay != 0 || a.retries != 0 || a.reserve.missing() || a.log.pending() {
		a.recovered()
	}
}

func (a *acceptLoop) recovered() {
	a.endShort()
	a.delay, a.retries = 0, 0
	a.reserve.retake()
	if sum, ok := a.log.tail(time.Now(), false); ok {
		a.s.logAcceptTail(sum)
	}
}

// endShort takes back the loop's mark on the yields, if it set one: it
// accepts again, or it ends.
func (a *acceptLoop) endShort() {
	if a.short {
		a.short = false
		a.s.descriptorsShort(false)
	}
}

// descriptorsShort tells the handshake limiter's yields that one more
// accept loop is out of descriptors (short), or one fewer: it accepts
// again, or it has ended. Calls come in pairs (acceptLoop.short).
func (s *Server) descriptorsShort(short bool) {
	if h := s.handshakeLimit(); h != nil {
		h.yields.setShort(short)
	}
}

// close releases the reserve descriptor and logs what is pending. Serve
// calls it when the loop ends.
func (a *acceptLoop) close() {
	a.endShort()
	a.reserve.close()
	if sum, ok := a.log.tail(time.Now(), true); ok {
		a.s.logAcceptTail(sum)
	}
}

// maxShedPerRound bounds the connections one back-off round sheds, so that
// a flood cannot keep the loop from its wait (and from noticing Shutdown).
// It is the default somaxconn of Linux 5.4 and later.
const maxShedPerRound = 4096

// logAcceptError logs a back-off Accept error with what was not logged
// since the last line. Without a summary, the line is net/http's own:
//
//	http: Accept error: <err>; retrying in <delay>
//
// With one, ErrorLog gets the same line followed by the counts, e.g.
// "(in the last 1.2s: 7 more accept errors, 35 pending connections closed
// unserved)"; a slog record keeps net/http's line as its message, at
// slog.LevelError as logf's, and carries the counts as attributes
// "more_errors", "shed" and "period".
func (s *Server) logAcceptError(err error, delay time.Duration, sum acceptSummary) {
	if sum.empty() {
		s.logf("http: Accept error: %v; retrying in %v", err, delay)
		return
	}
	msg := fmt.Sprintf("http: Accept error: %v; retrying in %v", err, delay)
	s.logAcceptSummary(msg, sum)
}

// logAcceptTail logs what is pending when the errors stopped or the loop
// ended, after the line of the last error logged:
//
//	http: Accept error: in the last 350ms: 3 more accept errors
func (s *Server) logAcceptTail(sum acceptSummary) {
	s.logAcceptSummary("http: Accept error", sum)
}

func (s *Server) logAcceptSummary(msg string, sum acceptSummary) {
	if s.ErrorLog != nil {
		var parts []string
		if sum.errors > 0 {
			parts = append(parts, fmt.Sprintf("%d more accept errors", sum.errors))
		}
		if sum.shed > 0 {
			parts = append(parts, fmt.Sprintf("%d pending connections closed unserved", sum.shed))
		}
		counts := strings.Join(parts, ", ")
		if sum.period > 0 {
			counts = fmt.Sprintf("in the last %v: %s", sum.period.Round(time.Millisecond), counts)
		}
		if msg == "http: Accept error" {
			s.ErrorLog.Printf("%s: %s", msg, counts)
		} else {
			s.ErrorLog.Printf("%s (%s)", msg, counts)
		}
		return
	}
	l := s.logger()
	ctx := context.Background()
	if !l.Enabled(ctx, slog.LevelError) {
		return
	}
	attrs := []slog.Attr{slog.Uint64("more_errors", sum.errors), slog.Uint64("shed", sum.shed)}
	if sum.period > 0 {
		attrs = append(attrs, slog.Duration("period", sum.period))
	}
	logRecord(ctx, l, slog.LevelError, msg, 0, attrs...)
}

// waitOrDone waits for d, and reports false if done is closed first.
func waitOrDone(d time.Duration, done <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
