package httpsrv

import (
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNextAcceptDelay(t *testing.T) {
	tests := []struct {
		prev, want time.Duration
	}{
		{0, 5 * time.Millisecond},
		{5 * time.Millisecond, 10 * time.Millisecond},
		{10 * time.Millisecond, 20 * time.Millisecond},
		{320 * time.Millisecond, 640 * time.Millisecond},
		{640 * time.Millisecond, time.Second},
		{time.Second, time.Second},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, nextAcceptDelay(tt.prev), "after %v", tt.prev)
	}
}

type temporaryError struct{}

func (temporaryError) Error() string   { return "temporary" }
func (temporaryError) Temporary() bool { return true }
func (temporaryError) Timeout() bool   { return false }

// faultListener returns the scripted Accept results in order, then blocks
// until closed.
type faultListener struct {
	mu      sync.Mutex
	script  []acceptResult
	closed  chan struct{}
	closeMu sync.Once

	drained     chan struct{} // closed when Accept has no result left
	drainedOnce sync.Once
}

type acceptResult struct {
	c   net.Conn
	err error
}

func newFaultListener(script ...acceptResult) *faultListener {
	return &faultListener{script: script, closed: make(chan struct{}), drained: make(chan struct{})}
}

func (l *faultListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.script) > 0 {
		r := l.script[0]
		l.script = l.script[1:]
		l.mu.Unlock()
		return r.c, r.err
	}
	l.drainedOnce.Do(func() { close(l.drained) })
	l.mu.Unlock()
	<-l.closed
	return nil, net.ErrClosed
}

// wait waits until the script has run to its end and Accept blocks, or
// serve's result comes, which it returns.
func (l *faultListener) wait(errc <-chan error) (err error, returned bool) {
	select {
	case <-l.drained:
		return nil, false
	case err := <-errc:
		return err, true
	}
}

func (l *faultListener) Close() error {
	l.closeMu.Do(func() { close(l.closed) })
	return nil
}

func (l *faultListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// eofConn is a connection whose client sends nothing and hangs up.
type eofConn struct{ net.Conn }

func (eofConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (eofConn) Write(p []byte) (int, error)      { return len(p), nil }
func (eofConn) Close() error                     { return nil }
func (eofConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (eofConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (eofConn) SetDeadline(time.Time) error      { return nil }
func (eofConn) SetReadDeadline(time.Time) error  { return nil }
func (eofConn) SetWriteDeadline(time.Time) error { return nil }

var errEMFILE = &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}

// TestAcceptBackoffInterrupted checks that Shutdown and Close end a
// back-off wait at once, where net/http would sleep it out.
func TestAcceptBackoffInterrupted(t *testing.T) {
	stops := map[string]func(*Server) error{
		"Shutdown": func(s *Server) error { return s.Shutdown(context.Background()) },
		"Close":    (*Server).Close,
	}
	for name, stop := range stops {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				script := make([]acceptResult, 20)
				for i := range script {
					script[i] = acceptResult{err: errEMFILE}
				}
				ln := newFaultListener(script...)
				srv := &Server{ErrorLog: discardLogger(), Protocols: h1Only()}
				errc := make(chan error, 1)
				go func() { errc <- srv.Serve(ln) }()
				// Let the back-off grow to its cap: 5+10+...+640 ms, then 1 s.
				time.Sleep(2 * time.Second)
				synctest.Wait()
				stopped := time.Now()
				require.NoError(t, stop(srv))
				assert.Equal(t, http.ErrServerClosed, <-errc)
				assert.Equal(t, time.Duration(0), time.Since(stopped), "the back-off wait was not interrupted")
			})
		})
	}
}

func h1Only() *http.Protocols {
	p := protocols(true, false)
	return &p
}

// acceptOpError is an Accept error as package net returns it on Linux.
func acceptOpError(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443},
		Err: os.NewSyscallError("accept4", errno)}
}

func TestClassifyAcceptError(t *testing.T) {
	errnos := []struct {
		errno syscall.Errno
		want  acceptErrorClass
	}{
		{syscall.EMFILE, acceptBackoffFD},
		{syscall.ENFILE, acceptBackoffFD},
		{syscall.ENOBUFS, acceptBackoff},
		{syscall.ENOMEM, acceptBackoff},
		{syscall.EAGAIN, acceptBackoff},
		{syscall.ETIMEDOUT, acceptBackoff},
		{syscall.ECONNABORTED, acceptRetry},
		{syscall.ECONNRESET, acceptRetry},
		{syscall.EPROTO, acceptRetry},
		{syscall.EINTR, acceptRetry},
		{syscall.EBADF, acceptFatal},
		{syscall.EINVAL, acceptFatal},
		{syscall.ENOTSOCK, acceptFatal},
	}
	listed := map[syscall.Errno]bool{}
	for _, e := range errnos {
		listed[e.errno] = true
		t.Run(e.errno.Error(), func(t *testing.T) {
			assert.Equal(t, e.want, classifyAcceptError(acceptOpError(e.errno)), "as net.OpError")
			assert.Equal(t, e.want, classifyAcceptError(os.NewSyscallError("accept4", e.errno)), "as os.SyscallError")
			assert.Equal(t, e.want, classifyAcceptError(e.errno), "bare")
		})
	}
	for errno := range acceptErrnos {
		assert.True(t, listed[errno], "%v is in the table but not in this test", errno)
	}

	closedLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedLn.Close()
	_, closedErr := closedLn.Accept()
	deadlineLn := localListener(t)
	require.NoError(t, deadlineLn.(*net.TCPListener).SetDeadline(time.Now().Add(-time.Second)))
	_, deadlineErr := deadlineLn.Accept()

	others := []struct {
		name string
		err  error
		want acceptErrorClass
	}{
		{"closed listener", closedErr, acceptClosed},
		{"net.ErrClosed", &net.OpError{Op: "accept", Net: "tcp", Err: net.ErrClosed}, acceptClosed},
		{"listener deadline", deadlineErr, acceptBackoff},
		{"Temporary method", temporaryError{}, acceptBackoff},
		{"EOF", io.EOF, acceptFatal},
		{"unknown", errors.New("boom"), acceptFatal},
	}
	for _, tt := range others {
		t.Run(tt.name, func(t *testing.T) {
			require.Error(t, tt.err)
			assert.Equal(t, tt.want, classifyAcceptError(tt.err), "%v", tt.err)
		})
	}
}

// TestAcceptErrorLogRate drives the log rate limit with a fake clock.
func TestAcceptErrorLogRate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		at     time.Duration
		op     string // "record", "tail" or "close"
		shed   int
		due    bool
		errors uint64
		shedN  uint64
		period time.Duration
	}
	steps := []step{
		{at: 0, op: "record", shed: 4, due: true},         // the first error: at once, in net/http's line
		{at: time.Millisecond, op: "tail"},                // the 4 shed wait for the next line
		{at: 5 * time.Millisecond, op: "record", shed: 3}, // within the second: counted
		{at: 15 * time.Millisecond, op: "record"},
		{at: 500 * time.Millisecond, op: "tail"}, // recovered, but within the second
		// Due: reports what came since the first line; the connections
		// shed after this error go to the next line.
		{at: time.Second, op: "record", shed: 2, due: true, errors: 2, shedN: 7, period: time.Second},
		{at: 1100 * time.Millisecond, op: "record"},
		{at: 1999 * time.Millisecond, op: "tail"},
		{at: 2 * time.Second, op: "tail", due: true, errors: 1, shedN: 2, period: time.Second},
		{at: 2100 * time.Millisecond, op: "close"}, // nothing pending
		{at: 2200 * time.Millisecond, op: "record"},
		{at: 2300 * time.Millisecond, op: "close", due: true, errors: 1, period: 300 * time.Millisecond},
	}
	var l acceptErrorLog
	for i, st := range steps {
		var sum acceptSummary
		var due bool
		switch st.op {
		case "record":
			sum, due = l.record(at(st.at), st.shed)
		case "tail":
			sum, due = l.tail(at(st.at), false)
		case "close":
			sum, due = l.tail(at(st.at), true)
		}
		require.Equal(t, st.due, due, "step %d (%s at %v)", i, st.op, st.at)
		assert.Equal(t, acceptSummary{errors: st.errors, shed: st.shedN, period: st.period}, sum, "step %d", i)
	}

	// Errors every 5 ms for a minute: one line a second, and every error
	// accounted for.
	var m acceptErrorLog
	var lines, accounted uint64
	var last time.Time
	const n = 12000
	for i := range n {
		now := at(time.Duration(i) * 5 * time.Millisecond)
		if sum, ok := m.record(now, 0); ok {
			if lines > 0 {
				assert.GreaterOrEqual(t, now.Sub(last), acceptErrorLogInterval)
			}
			lines++
			accounted += 1 + sum.errors
			last = now
		}
	}
	if sum, ok := m.tail(at(n*5*time.Millisecond), true); ok {
		accounted += sum.errors
	}
	assert.Equal(t, uint64(60), lines)
	assert.Equal(t, uint64(n), accounted)
}

// TestAcceptLoop runs the accept loop against a listener returning
// scripted results, in a synctest bubble whose fake clock measures the
// waits exactly.
func TestAcceptLoop(t *testing.T) {
	emfile := acceptResult{err: acceptOpError(syscall.EMFILE)}
	repeat := func(r acceptResult, n int) []acceptResult {
		s := make([]acceptResult, n)
		for i := range s {
			s[i] = r
		}
		return s
	}
	boom := errors.New("boom")
	const emfileLine = "http: Accept error: accept tcp 127.0.0.1:443: accept4: too many open files; retrying in 5ms"
	tests := []struct {
		name    string
		script  []acceptResult
		wantErr error // nil: the loop keeps accepting until Close
		elapsed time.Duration
		stats   Stats
		lines   []string
	}{{
		name:    "EMFILE backs off, success resets",
		script:  append(repeat(emfile, 5), acceptResult{c: eofConn{}}, emfile),
		elapsed: (5 + 10 + 20 + 40 + 80 + 5) * time.Millisecond,
		stats:   Stats{AcceptErrorsBackoff: 6, AcceptBackoffWaits: 6},
		lines: []string{
			emfileLine,
			"http: Accept error: in the last 160ms: 5 more accept errors", // when the loop ends
		},
	}, {
		name: "connection errors retried at once",
		script: []acceptResult{
			{err: acceptOpError(syscall.ECONNABORTED)},
			{err: acceptOpError(syscall.ECONNRESET)},
			{err: acceptOpError(syscall.EPROTO)},
			{err: acceptOpError(syscall.EINTR)},
			{c: eofConn{}},
			{err: acceptOpError(syscall.ECONNABORTED)},
		},
		stats: Stats{AcceptErrorsRetried: 5},
	}, {
		name:   "a retried error that never ends backs off",
		script: repeat(acceptResult{err: acceptOpError(syscall.ECONNABORTED)}, maxAcceptRetries+3),
		// The wait after the last error is cut by Close.
		elapsed: (5 + 10 + 20) * time.Millisecond,
		stats:   Stats{AcceptErrorsRetried: maxAcceptRetries + 3, AcceptBackoffWaits: 3},
		lines: []string{
			"http: Accept error: accept tcp 127.0.0.1:443: accept4: software caused connection abort; retrying in 5ms",
			"http: Accept error: in the last 35ms: 2 more accept errors",
		},
	}, {
		name:    "net.ErrClosed ends Serve quietly",
		script:  []acceptResult{emfile, {err: &net.OpError{Op: "accept", Net: "tcp", Err: net.ErrClosed}}},
		wantErr: net.ErrClosed,
		elapsed: 5 * time.Millisecond,
		stats:   Stats{AcceptErrorsBackoff: 1, AcceptBackoffWaits: 1},
		lines:   []string{emfileLine},
	}, {
		name:    "an unknown error ends Serve with it",
		script:  []acceptResult{{err: boom}},
		wantErr: boom,
	}, {
		name:    "EBADF ends Serve with it",
		script:  []acceptResult{{err: acceptOpError(syscall.EBADF)}},
		wantErr: syscall.EBADF,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ln := newFaultListener(tt.script...)
				logger, logs := newTestLogger()
				srv := &Server{ErrorLog: logger, Protocols: h1Only()}
				errc := make(chan error, 1)
				start := time.Now()
				go func() { errc <- srv.Serve(ln) }()
				err, returned := ln.wait(errc)
				assert.Equal(t, tt.elapsed, time.Since(start))
				require.NoError(t, srv.Close())
				if !returned {
					err = <-errc
				}
				if tt.wantErr == nil {
					assert.Equal(t, http.ErrServerClosed, err)
				} else {
					assert.ErrorIs(t, err, tt.wantErr)
				}
				assert.Equal(t, tt.stats, acceptStats(srv.Stats()))
				var lines []string
				if s := strings.TrimSpace(logs.String()); s != "" {
					lines = strings.Split(s, "\n")
				}
				assert.Equal(t, tt.lines, lines)
			})
		})
	}
}

// TestAcceptErrorSummary checks the lines of a long EMFILE episode: the
// first in net/http's format, then at most one a second, with the errors
// that were not logged counted in the next line, through ErrorLog and
// through slog.
func TestAcceptErrorSummary(t *testing.T) {
	const errs = 30
	script := make([]acceptResult, errs)
	for i := range script {
		script[i] = acceptResult{err: acceptOpError(syscall.EMFILE)}
	}
	t.Run("ErrorLog", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := &timedLines{}
			srv := &Server{ErrorLog: log.New(w, "", 0), Protocols: h1Only()}
			errc := make(chan error, 1)
			ln := newFaultListener(script...)
			go func() { errc <- srv.Serve(ln) }()
			_, returned := ln.wait(errc)
			require.False(t, returned)
			require.NoError(t, srv.Close())
			require.Equal(t, http.ErrServerClosed, <-errc)

			lines, times := w.get()
			require.NotEmpty(t, lines)
			const prefix = "http: Accept error: accept tcp 127.0.0.1:443: accept4: too many open files; retrying in "
			assert.Equal(t, prefix+"5ms", lines[0])
			// The back-off reaches 1 s after 1.275 s: 8 errors by then, one
			// line for the first, one for the ninth with the 7 between.
			assert.Equal(t, prefix+"1s (in the last 1.275s: 7 more accept errors)", lines[1])
			var accounted int
			for i, line := range lines {
				require.True(t, strings.HasPrefix(line, prefix), "line %q", line)
				accounted++
				if m := moreErrors.FindStringSubmatch(line); m != nil {
					n, err := strconv.Atoi(m[1])
					require.NoError(t, err)
					accounted += n
				}
				if i > 0 {
					assert.GreaterOrEqual(t, times[i].Sub(times[i-1]), acceptErrorLogInterval, "line %d", i)
				}
			}
			assert.Equal(t, errs, accounted)
			assert.Equal(t, uint64(errs), srv.Stats().AcceptErrorsBackoff)
		})
	})
	t.Run("slog", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			logger, recs := newRecordLogger(t)
			srv := &Server{Logger: logger, Protocols: h1Only()}
			errc := make(chan error, 1)
			ln := newFaultListener(script[:10]...)
			go func() { errc <- srv.Serve(ln) }()
			_, returned := ln.wait(errc)
			require.False(t, returned)
			require.NoError(t, srv.Close())
			require.Equal(t, http.ErrServerClosed, <-errc)

			all := recs.all()
			require.Len(t, all, 3) // errors 1 and 9, then 10 (1 s later)
			const msg = "http: Accept error: accept tcp 127.0.0.1:443: accept4: too many open files; retrying in "
			for _, r := range all {
				assert.Equal(t, slog.LevelError, r.Level)
			}
			assert.Equal(t, msg+"5ms", all[0].Message)
			assert.Zero(t, all[0].NumAttrs())
			assert.Equal(t, msg+"1s", all[1].Message)
			assert.Equal(t, map[string]any{"more_errors": uint64(7), "shed": uint64(0), "period": 1275 * time.Millisecond}, attrMap(all[1]))
			assert.Equal(t, msg+"1s", all[2].Message)
			assert.Zero(t, all[2].NumAttrs())
		})
	})
}

var moreErrors = regexp.MustCompile(` \(in the last [^:]+: (\d+) more accept errors\)$`)

// timedLines records each line written and the (fake) time it was.
type timedLines struct {
	mu    sync.Mutex
	lines []string
	times []time.Time
}

func (w *timedLines) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, strings.TrimSuffix(string(p), "\n"))
	w.times = append(w.times, time.Now())
	return len(p), nil
}

func (w *timedLines) get() ([]string, []time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lines, w.times
}

// acceptStats returns the accept loop counters of st, with the other
// fields zero.
func acceptStats(st Stats) Stats {
	return Stats{
		AcceptErrorsBackoff: st.AcceptErrorsBackoff,
		AcceptErrorsRetried: st.AcceptErrorsRetried,
		AcceptBackoffWaits:  st.AcceptBackoffWaits,
		AcceptShedConns:     st.AcceptShedConns,
	}
}
