package httpsrv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordHandler is a slog.Handler that keeps the records it gets.
type recordHandler struct {
	level slog.Level

	mu      sync.Mutex
	records []slog.Record
}

func (h *recordHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { panic("not used by httpsrv") }
func (h *recordHandler) WithGroup(string) slog.Handler      { panic("not used by httpsrv") }

// all returns the records so far.
func (h *recordHandler) all() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]slog.Record(nil), h.records...)
}

// newRecordLogger returns a logger whose records the test can read.
func newRecordLogger(t testing.TB) (*slog.Logger, *recordHandler) {
	t.Helper()
	h := &recordHandler{level: slog.LevelDebug}
	return slog.New(h), h
}

// setDefaultSlog replaces slog.Default for the duration of t. Tests that
// call it must not run in parallel.
func setDefaultSlog(t testing.TB, l *slog.Logger) {
	t.Helper()
	old := slog.Default()
	slog.SetDefault(l)
	t.Cleanup(func() { slog.SetDefault(old) })
}

// attrMap flattens a record's attributes, naming those in groups
// "group.key".
func attrMap(r slog.Record) map[string]any {
	m := map[string]any{}
	var add func(prefix string, a slog.Attr)
	add = func(prefix string, a slog.Attr) {
		v := a.Value.Resolve()
		if v.Kind() == slog.KindGroup {
			for _, g := range v.Group() {
				add(prefix+a.Key+".", g)
			}
			return
		}
		m[prefix+a.Key] = v.Any()
	}
	r.Attrs(func(a slog.Attr) bool {
		add("", a)
		return true
	})
	return m
}

// callerFunc returns the name of the function a record's PC is in.
func callerFunc(r slog.Record) string {
	frame, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
	return frame.Function
}

// TestLogfDestination checks where logf's lines go: ErrorLog first, in
// net/http's format, else Logger, else slog.Default, as error records.
func TestLogfDestination(t *testing.T) {
	const (
		format = "http: Accept error: %v; retrying in %v"
		line   = "http: Accept error: boom; retrying in 5ms"
	)
	tests := []struct {
		name       string
		errorLog   bool
		logger     bool
		wantText   string // what ErrorLog gets
		wantLogger int    // records Logger gets
		wantDefalt int    // records slog.Default gets
	}{
		{name: "ErrorLog", errorLog: true, wantText: line + "\n"},
		{name: "ErrorLog wins over Logger", errorLog: true, logger: true, wantText: line + "\n"},
		{name: "Logger", logger: true, wantLogger: 1},
		{name: "slog.Default", wantDefalt: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defLogger, defRecs := newRecordLogger(t)
			setDefaultSlog(t, defLogger)
			srv := &Server{}
			var text *syncBuffer
			if tt.errorLog {
				srv.ErrorLog, text = newTestLogger()
			}
			var recs *recordHandler
			if tt.logger {
				srv.Logger, recs = newRecordLogger(t)
			}

			srv.logf(format, errors.New("boom"), 5*time.Millisecond)

			if text != nil {
				assert.Equal(t, tt.wantText, text.String())
			}
			if recs != nil {
				assert.Len(t, recs.all(), tt.wantLogger)
			}
			assert.Len(t, defRecs.all(), tt.wantDefalt)
			for _, r := range append(defRecs.all(), recsOrNil(recs)...) {
				assert.Equal(t, slog.LevelError, r.Level)
				assert.Equal(t, line, r.Message)
				assert.Equal(t, 0, r.NumAttrs())
				assert.True(t, strings.HasSuffix(callerFunc(r), ".TestLogfDestination.func1"),
					"source is logf's caller, got %s", callerFunc(r))
			}
		})
	}
}

func recsOrNil(h *recordHandler) []slog.Record {
	if h == nil {
		return nil
	}
	return h.all()
}

// TestLogfPanic checks that a panic line's stack becomes an attribute.
func TestLogfPanic(t *testing.T) {
	logger, recs := newRecordLogger(t)
	srv := &Server{Logger: logger}
	stack := "goroutine 7 [running]:\nmain.handler()\n\t/x.go:1 +0x1"
	srv.logf("%s: panic serving %v: %v\n%s", "http", "192.0.2.1:1234", "boom", stack)
	all := recs.all()
	require.Len(t, all, 1)
	assert.Equal(t, slog.LevelError, all[0].Level)
	assert.Equal(t, "http: panic serving 192.0.2.1:1234: boom", all[0].Message)
	assert.Equal(t, map[string]any{"stack": stack}, attrMap(all[0]))
}

// TestLogfDisabledLevel checks that nothing reaches a logger whose level
// is above the record's.
func TestLogfDisabledLevel(t *testing.T) {
	h := &recordHandler{level: slog.LevelError + 1}
	srv := &Server{Logger: slog.New(h)}
	srv.logf("http: Accept error: %v", "x")
	srv.logHandshakeError("192.0.2.1:1", io.EOF)
	assert.Empty(t, h.all())
	assert.Equal(t, uint64(1), srv.HandshakeErrors().EOF, "counted even when not logged")
}

// TestErrorLogAdapter checks the *log.Logger handed to net/http code.
func TestErrorLogAdapter(t *testing.T) {
	t.Run("ErrorLog", func(t *testing.T) {
		l, _ := newTestLogger()
		srv := &Server{ErrorLog: l}
		assert.Same(t, l, srv.errorLog())
	})
	t.Run("Logger", func(t *testing.T) {
		logger, recs := newRecordLogger(t)
		srv := &Server{Logger: logger}
		srv.errorLog().Printf("http2: panic serving %v: %v", "192.0.2.1:1", "boom")
		all := recs.all()
		require.Len(t, all, 1)
		assert.Equal(t, slog.LevelError, all[0].Level)
		assert.Equal(t, "http2: panic serving 192.0.2.1:1: boom", all[0].Message)
	})
	t.Run("slog.Default at each line", func(t *testing.T) {
		srv := &Server{}
		l := srv.errorLog()
		logger, recs := newRecordLogger(t)
		setDefaultSlog(t, logger)
		l.Print("http: after SetDefault")
		all := recs.all()
		require.Len(t, all, 1)
		assert.Equal(t, slog.LevelError, all[0].Level)
		assert.Equal(t, "http: after SetDefault", all[0].Message)
	})
}

// TestClassifyHandshakeError checks the kind of each handshake error
// crypto/tls and the net package return. The remote-alert cases use
// tls.AlertError in place of crypto/tls's unexported alert type, which has
// the same text; TestHandshakeErrorsWire covers the real ones.
func TestClassifyHandshakeError(t *testing.T) {
	opErr := func(op string, err error) error {
		return &net.OpError{Op: op, Net: "tcp", Err: err}
	}
	tests := []struct {
		name string
		err  error
		want handshakeErrorKind
	}{
		{"EOF", io.EOF, hsEOF},
		{"unexpected EOF", io.ErrUnexpectedEOF, hsEOF},
		{"reset", opErr("read", &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}), hsEOF},
		{"broken pipe", opErr("write", &os.SyscallError{Syscall: "write", Err: syscall.EPIPE}), hsEOF},
		{"close_notify", fmt.Errorf("handshake: %w", io.EOF), hsEOF},
		{"deadline", opErr("read", os.ErrDeadlineExceeded), hsTimeout},
		{"context deadline", context.DeadlineExceeded, hsTimeout},
		{"plaintext HTTP", errPlaintextHTTP, hsPlainHTTP},
		{"remote bad_certificate", opErr("remote error", tls.AlertError(42)), hsBadCertificate},
		{"remote unknown_ca", opErr("remote error", tls.AlertError(48)), hsBadCertificate},
		{"remote certificate_unknown", opErr("remote error", tls.AlertError(46)), hsBadCertificate},
		{"remote certificate_expired", opErr("remote error", tls.AlertError(45)), hsBadCertificate},
		{"remote protocol_version", opErr("remote error", tls.AlertError(70)), hsProtocolVersion},
		{"remote handshake_failure", opErr("remote error", tls.AlertError(40)), hsOther},
		{"unsupported versions", fmt.Errorf("tls: client offered only unsupported versions: %x", []uint16{0x302, 0x301}), hsProtocolVersion},
		{"SSLv2", tls.RecordHeaderError{Msg: "unsupported SSLv2 handshake received"}, hsProtocolVersion},
		{"local protocol_version alert (QUIC)", fmt.Errorf("%w%.0w", errors.New("tls: x"), tls.AlertError(70)), hsProtocolVersion},
		{"local bad_certificate alert (QUIC)", fmt.Errorf("%w%.0w", errors.New("tls: x"), tls.AlertError(42)), hsOther},
		{"not TLS", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, hsOther},
		{"no cipher suite", errors.New("tls: no cipher suite supported by both client and server"), hsOther},
		{"client certificate rejected", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, hsOther},
		{"closed by Close", opErr("read", net.ErrClosed), hsOther},
		{"canceled", context.Canceled, hsOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want.String(), classifyHandshakeError(tt.err).String())
		})
	}
}

// TestHandshakeErrorsWire provokes each kind of handshake failure with a
// real client and checks its count and its log record.
func TestHandshakeErrorsWire(t *testing.T) {
	_, pool := testCertificate(t)
	// rawSend writes data (if any) on a plain TCP connection and reads
	// until the server closes it.
	rawSend := func(t *testing.T, addr, data string) {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(testTimeout())))
		if data != "" {
			_, err = io.WriteString(c, data)
			require.NoError(t, err)
		}
		_, _ = io.Copy(io.Discard, c)
	}
	tlsDial := func(t *testing.T, addr string, cfg *tls.Config) {
		cfg.ServerName = "localhost"
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: testTimeout()}, Config: cfg}
		c, err := d.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		require.Error(t, err, "the handshake should fail")
	}
	tests := []struct {
		name      string
		srv       *Server
		client    func(t *testing.T, addr string)
		want      HandshakeErrorCounts
		kind      string
		wantError string
	}{
		{
			name: "eof",
			client: func(t *testing.T, addr string) {
				c, err := net.Dial("tcp", addr)
				require.NoError(t, err)
				c.Close()
			},
			want: HandshakeErrorCounts{EOF: 1}, kind: "eof", wantError: "EOF",
		},
		{
			name: "bad_certificate",
			client: func(t *testing.T, addr string) {
				tlsDial(t, addr, &tls.Config{RootCAs: x509.NewCertPool()})
			},
			want: HandshakeErrorCounts{BadCertificate: 1}, kind: "bad_certificate", wantError: "remote error: tls: bad certificate",
		},
		{
			name: "protocol_version",
			client: func(t *testing.T, addr string) {
				tlsDial(t, addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
			},
			want: HandshakeErrorCounts{ProtocolVersion: 1}, kind: "protocol_version", wantError: "tls: client offered only unsupported versions",
		},
		{
			name:   "timeout",
			srv:    &Server{TLSHandshakeTimeout: 100 * time.Millisecond},
			client: func(t *testing.T, addr string) { rawSend(t, addr, "") },
			want:   HandshakeErrorCounts{Timeout: 1}, kind: "timeout", wantError: "i/o timeout",
		},
		{
			name:   "plain_http",
			client: func(t *testing.T, addr string) { rawSend(t, addr, "GET / HTTP/1.0\r\n\r\n") },
			want:   HandshakeErrorCounts{PlainHTTP: 1}, kind: "plain_http", wantError: "client sent an HTTP request to an HTTPS server",
		},
		{
			name:   "other: not TLS",
			client: func(t *testing.T, addr string) { rawSend(t, addr, "XYZW / HTTP/1.0\r\n\r\n") },
			want:   HandshakeErrorCounts{Other: 1}, kind: "other", wantError: "tls: first record does not look like a TLS handshake",
		},
		{
			name: "other: no common ALPN protocol",
			client: func(t *testing.T, addr string) {
				tlsDial(t, addr, &tls.Config{RootCAs: pool, NextProtos: []string{"foo"}})
			},
			want: HandshakeErrorCounts{Other: 1}, kind: "other", wantError: "tls: client requested unsupported application protocols",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.srv
			if srv == nil {
				srv = &Server{}
			}
			rec := newStateRecorder()
			var recs *recordHandler
			srv.Logger, recs = newRecordLogger(t)
			srv.ConnState = rec.hook
			addr := startTLS(t, srv)

			tt.client(t, addr)
			rec.waitFor(t, "closed", lastStateIs(http.StateClosed))

			assert.Equal(t, tt.want, srv.HandshakeErrors())
			assert.Equal(t, uint64(1), srv.HandshakeErrors().Total())
			all := recs.all()
			require.Len(t, all, 1, "the first failure is logged at once")
			r := all[0]
			assert.Equal(t, slog.LevelWarn, r.Level)
			assert.Equal(t, "http: TLS handshake errors", r.Message)
			attrs := attrMap(r)
			assert.Equal(t, uint64(1), attrs["total"])
			assert.Equal(t, uint64(1), attrs[tt.kind+".count"])
			assert.Contains(t, attrs[tt.kind+".remote_addr"], "127.0.0.1:")
			assert.Contains(t, attrs[tt.kind+".error"], tt.wantError)
			assert.Len(t, attrs, 4, "total and one group of three: %v", attrs)
		})
	}
}

// useStepClock makes srv's handshake-error log read a fake clock, and arm
// fake timers, which the test fires.
func useStepClock(t testing.TB, srv *Server) *fakeClock {
	t.Helper()
	clock, _ := useFakeTimers(t, srv)
	return clock
}

// useFakeTimers is useStepClock, returning the timers too.
func useFakeTimers(t testing.TB, srv *Server) (*fakeClock, *fakeTimers) {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	timers := &fakeTimers{}
	srv.handshakeLog().now = clock.Now
	srv.handshakeLog().afterFunc = timers.afterFunc
	return clock, timers
}

// fakeTimers stands in for time.AfterFunc: it records each timer, and the
// test fires them.
type fakeTimers struct {
	mu     sync.Mutex
	timers []*fakeTimer
}

type fakeTimer struct {
	d       time.Duration
	f       func()
	stopped bool
}

func (ft *fakeTimers) afterFunc(d time.Duration, f func()) func() bool {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	tm := &fakeTimer{d: d, f: f}
	ft.timers = append(ft.timers, tm)
	return func() bool {
		ft.mu.Lock()
		defer ft.mu.Unlock()
		was := !tm.stopped
		tm.stopped = true
		return was
	}
}

// armed returns the delays of the timers neither stopped nor fired.
func (ft *fakeTimers) armed() []time.Duration {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	var ds []time.Duration
	for _, tm := range ft.timers {
		if !tm.stopped {
			ds = append(ds, tm.d)
		}
	}
	return ds
}

// fire runs the function of the i-th timer ever armed, as a timer that
// could not be stopped in time would, whether or not it was stopped.
func (ft *fakeTimers) fire(i int) {
	ft.mu.Lock()
	tm := ft.timers[i]
	tm.stopped = true
	ft.mu.Unlock()
	tm.f()
}

// TestHandshakeErrorSummaryTimer checks issue 11, item 5: failures held
// back by the rate limit are logged when the interval ends, by a timer,
// not when the next failure happens to come (5,000 failures in 50 s used
// to wait for the next failure, hours later); a stale timer logs nothing;
// Shutdown and Close log what is pending and stop the timer, and a failure
// after them is logged at once, except one caused by the server closing
// the connection itself.
func TestHandshakeErrorSummaryTimer(t *testing.T) {
	logger, recs := newRecordLogger(t)
	srv := &Server{Logger: logger}
	clock, timers := useFakeTimers(t, srv)

	srv.logHandshakeError("192.0.2.1:1", io.EOF)
	require.Len(t, recs.all(), 1, "the first failure is logged at once")
	assert.Empty(t, timers.armed(), "nothing pending, no timer")

	clock.advance(10 * time.Second)
	for range 5000 {
		srv.logHandshakeError("192.0.2.2:2", errReset)
	}
	require.Len(t, recs.all(), 1, "held back within the interval")
	require.Equal(t, []time.Duration{50 * time.Second}, timers.armed(), "one timer, for the rest of the interval")

	clock.advance(50 * time.Second)
	timers.fire(0)
	require.Len(t, recs.all(), 2, "the timer logs the summary")
	assert.Equal(t, map[string]any{
		"total": uint64(5000), "period": time.Minute,
		"eof.count": uint64(5000), "eof.remote_addr": "192.0.2.2:2", "eof.error": errReset.Error(),
	}, attrMap(recs.all()[1]))
	assert.Equal(t, clock.Now(), recs.all()[1].Time)

	// A failure that finds the interval over is logged at once and stops
	// the timer armed before it; that timer, firing anyway, does nothing.
	clock.advance(30 * time.Second)
	srv.logHandshakeError("192.0.2.3:3", errTimeout)
	require.Len(t, timers.armed(), 1)
	clock.advance(30 * time.Second)
	srv.logHandshakeError("192.0.2.4:4", errBadCert)
	require.Len(t, recs.all(), 3)
	assert.Empty(t, timers.armed(), "the summary stopped the timer")
	timers.fire(1)
	assert.Len(t, recs.all(), 3, "a stale timer logs nothing")

	// A timer that fires early by the clock's reckoning re-arms.
	clock.advance(time.Second)
	srv.logHandshakeError("192.0.2.5:5", io.EOF)
	require.Equal(t, []time.Duration{59 * time.Second}, timers.armed())
	clock.advance(58 * time.Second)
	timers.fire(2)
	assert.Len(t, recs.all(), 3)
	require.Equal(t, []time.Duration{time.Second}, timers.armed())

	// Close logs what is pending and stops the timer.
	require.NoError(t, srv.Close())
	require.Len(t, recs.all(), 4)
	assert.Equal(t, uint64(1), attrMap(recs.all()[3])["eof.count"])
	assert.Empty(t, timers.armed())

	// After Close: a client's failure is logged at once; the server's own
	// close of a connection in its handshake is counted, not logged.
	srv.logHandshakeError("192.0.2.6:6", errNotTLS)
	require.Len(t, recs.all(), 5, "logged at once after Close")
	closed := &net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed}
	srv.logHandshakeError("192.0.2.7:7", closed)
	assert.Len(t, recs.all(), 5)
	assert.Empty(t, timers.armed())
	assert.Equal(t, uint64(5000+1+1+1+1+1+1), srv.HandshakeErrors().Total())
}

var (
	errReset   = &net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}
	errTimeout = &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	errBadCert = &net.OpError{Op: "remote error", Err: tls.AlertError(48)}
	errNotTLS  = tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}
)

// TestHandshakeErrorRateLimit checks that at most one summary is logged
// per interval, with the counts since the previous one and the first
// sample of each kind, and that a flush logs what is pending.
func TestHandshakeErrorRateLimit(t *testing.T) {
	logger, recs := newRecordLogger(t)
	srv := &Server{Logger: logger}
	clock := useStepClock(t, srv)
	start := clock.Now()

	srv.logHandshakeError("192.0.2.1:1", io.EOF)
	require.Len(t, recs.all(), 1, "first failure is logged at once")
	assert.Equal(t, map[string]any{
		"total": uint64(1), "eof.count": uint64(1), "eof.remote_addr": "192.0.2.1:1", "eof.error": "EOF",
	}, attrMap(recs.all()[0]))
	assert.Equal(t, start, recs.all()[0].Time)

	clock.advance(10 * time.Second)
	srv.logHandshakeError("192.0.2.2:2", errReset)
	srv.logHandshakeError("192.0.2.3:3", errTimeout)
	clock.advance(49 * time.Second)
	srv.logHandshakeError("192.0.2.4:4", io.EOF)
	assert.Len(t, recs.all(), 1, "nothing more within the interval")

	clock.advance(time.Second) // one interval after the first record
	srv.logHandshakeError("192.0.2.5:5", errBadCert)
	require.Len(t, recs.all(), 2)
	assert.Equal(t, map[string]any{
		"total":     uint64(4),
		"period":    time.Minute,
		"eof.count": uint64(2), "eof.remote_addr": "192.0.2.2:2", "eof.error": errReset.Error(),
		"timeout.count": uint64(1), "timeout.remote_addr": "192.0.2.3:3", "timeout.error": errTimeout.Error(),
		"bad_certificate.count": uint64(1), "bad_certificate.remote_addr": "192.0.2.5:5",
		"bad_certificate.error": "remote error: tls: unknown certificate authority",
	}, attrMap(recs.all()[1]))

	clock.advance(time.Second)
	srv.logHandshakeError("192.0.2.6:6", errNotTLS)
	assert.Len(t, recs.all(), 2)
	srv.flushHandshakeErrors()
	require.Len(t, recs.all(), 3, "flush logs what is pending")
	assert.Equal(t, map[string]any{
		"total": uint64(1), "period": time.Second,
		"other.count": uint64(1), "other.remote_addr": "192.0.2.6:6", "other.error": errNotTLS.Error(),
	}, attrMap(recs.all()[2]))
	srv.flushHandshakeErrors()
	assert.Len(t, recs.all(), 3, "nothing pending, nothing logged")

	clock.advance(time.Hour) // a quiet period
	srv.logHandshakeError("192.0.2.7:7", errPlaintextHTTP)
	require.Len(t, recs.all(), 4, "first failure after a quiet period is logged at once")
	assert.Equal(t, uint64(1), attrMap(recs.all()[3])["plain_http.count"])

	assert.Equal(t, HandshakeErrorCounts{EOF: 3, BadCertificate: 1, Timeout: 1, PlainHTTP: 1, Other: 1}, srv.HandshakeErrors())
	for _, r := range recs.all() {
		assert.Equal(t, slog.LevelWarn, r.Level)
		assert.Equal(t, "http: TLS handshake errors", r.Message)
	}
}

// TestHandshakeErrorRateLimitErrorLog checks the ErrorLog form of the
// summaries: net/http's own line for each sample, and a count line when
// there were more failures than samples.
func TestHandshakeErrorRateLimitErrorLog(t *testing.T) {
	logger, logs := newTestLogger()
	srv := &Server{ErrorLog: logger}
	clock := useStepClock(t, srv)

	srv.logHandshakeError("192.0.2.1:1", io.EOF)
	assert.Equal(t, "http: TLS handshake error from 192.0.2.1:1: EOF\n", logs.String())

	clock.advance(30 * time.Second)
	srv.logHandshakeError("192.0.2.2:2", errTimeout)
	srv.logHandshakeError("192.0.2.3:3", errTimeout)
	srv.logHandshakeError("192.0.2.4:4", io.EOF)
	clock.advance(90 * time.Second)
	srv.logHandshakeError("192.0.2.5:5", errPlaintextHTTP)
	assert.Equal(t, "http: TLS handshake error from 192.0.2.1:1: EOF\n"+
		"http: TLS handshake error from 192.0.2.4:4: EOF\n"+
		"http: TLS handshake error from 192.0.2.2:2: "+errTimeout.Error()+"\n"+
		"http: TLS handshake error from 192.0.2.5:5: client sent an HTTP request to an HTTPS server\n"+
		"http: 4 TLS handshake errors in the last 2m0s: eof=1 timeout=2 plain_http=1\n",
		logs.String())
}

// TestHandshakeErrorsConcurrent records failures from many goroutines:
// the totals are exact and every failure is in exactly one summary.
func TestHandshakeErrorsConcurrent(t *testing.T) {
	logger, recs := newRecordLogger(t)
	srv := &Server{Logger: logger}
	useStepClock(t, srv) // time stands still: one summary, then a flush
	const goroutines, each = 8, 500
	errs := []error{io.EOF, errTimeout, errBadCert, errNotTLS}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				srv.logHandshakeError("192.0.2.1:1", errs[(g+i)%len(errs)])
				_ = srv.HandshakeErrors()
			}
		})
	}
	wg.Wait()
	srv.flushHandshakeErrors()

	want := uint64(goroutines * each / len(errs))
	assert.Equal(t, HandshakeErrorCounts{EOF: want, Timeout: want, BadCertificate: want, Other: want}, srv.HandshakeErrors())
	all := recs.all()
	require.Len(t, all, 2)
	var logged uint64
	for _, r := range all {
		logged += attrMap(r)["total"].(uint64)
	}
	assert.Equal(t, uint64(goroutines*each), logged)
}

// TestHandshakeErrorsPerServer checks that each Server has its own counts.
func TestHandshakeErrorsPerServer(t *testing.T) {
	logger, _ := newRecordLogger(t)
	a, b := &Server{Logger: logger}, &Server{Logger: logger}
	a.logHandshakeError("192.0.2.1:1", io.EOF)
	a.logHandshakeError("192.0.2.1:1", io.EOF)
	b.logHandshakeError("192.0.2.1:1", errTimeout)
	assert.Equal(t, HandshakeErrorCounts{EOF: 2}, a.HandshakeErrors())
	assert.Equal(t, HandshakeErrorCounts{Timeout: 1}, b.HandshakeErrors())
	assert.Equal(t, HandshakeErrorCounts{}, (&Server{}).HandshakeErrors())
}
