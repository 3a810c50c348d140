package httpsrv

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
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

func TestIsTemporaryAcceptError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"EMFILE", &net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EMFILE)}, true},
		{"ENFILE", syscall.ENFILE, true},
		{"ECONNABORTED", &net.OpError{Op: "accept", Err: syscall.ECONNABORTED}, true},
		{"Temporary method", temporaryError{}, true},
		{"closed", net.ErrClosed, false},
		{"EOF", io.EOF, false},
		{"EBADF", syscall.EBADF, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, isTemporaryAcceptError(tt.err))
		})
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
}

type acceptResult struct {
	c   net.Conn
	err error
}

func newFaultListener(script ...acceptResult) *faultListener {
	return &faultListener{script: script, closed: make(chan struct{})}
}

func (l *faultListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.script) > 0 {
		r := l.script[0]
		l.script = l.script[1:]
		l.mu.Unlock()
		return r.c, r.err
	}
	l.mu.Unlock()
	<-l.closed
	return nil, net.ErrClosed
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

// TestAcceptBackoff runs the accept loop against a listener that fails,
// in a synctest bubble whose fake clock measures the waits exactly.
func TestAcceptBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newFaultListener(
			acceptResult{err: errEMFILE},
			acceptResult{err: errEMFILE},
			acceptResult{err: errEMFILE},
			acceptResult{c: eofConn{}}, // resets the back-off
			acceptResult{err: errEMFILE},
			acceptResult{err: io.EOF}, // not temporary: ends Serve
		)
		logger, logs := newTestLogger()
		srv := &Server{ErrorLog: logger, Protocols: h1Only()}
		start := time.Now()
		err := srv.Serve(ln)
		elapsed := time.Since(start)
		assert.Equal(t, io.EOF, err)
		assert.Equal(t, (5+10+20+5)*time.Millisecond, elapsed)
		var delays []string
		for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			_, after, ok := strings.Cut(line, "retrying in ")
			require.True(t, ok, "unexpected log line %q", line)
			delays = append(delays, after)
		}
		assert.Equal(t, []string{"5ms", "10ms", "20ms", "5ms"}, delays)
		assert.Contains(t, logs.String(), "http: Accept error: accept tcp: accept4: too many open files; retrying in 5ms")
		synctest.Wait()
	})
}

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
