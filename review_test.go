package httpsrv

// Review of issue 7 (git diff 8227c0b..HEAD): failing tests, one per
// finding. See the review report for the reading of each.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReviewLateWriteHeaderChangesStatus: README promises that
// WriteHeader from any goroutine does nothing once the handler has
// returned, "including a goroutine woken by the request context's
// cancellation". response.WriteHeader never looks at handlerDone, and the
// serve loop cancels the context before finishRequest takes w.mu, so a
// goroutine woken by the cancellation can set the status of a response
// whose handler returned without writing.
func TestReviewLateWriteHeaderChangesStatus(t *testing.T) {
	const requests = 3000 // stops at the first late status
	var wg sync.WaitGroup
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-r.Context().Done() // the handler has returned
			w.WriteHeader(http.StatusTeapot)
		}()
		// Returns without writing: the response must be 200.
	})}
	srv.ErrorLog, _ = newTestLogger()
	addr := startTLS(t, srv)
	c := newClient(t, false)
	late := 0
	for i := range requests {
		resp, err := c.Get(fmt.Sprintf("https://%s/%d", addr, i))
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			late++
			break
		}
	}
	wg.Wait()
	assert.Zero(t, late, "a response got the status of a WriteHeader call made after its handler returned")
}

// TestReviewSetWriteDeadlineInterruptsWrite: a handler's write blocked on
// a client that stopped reading is interrupted by
// http.ResponseController.SetWriteDeadline from another goroutine under
// net/http (it sets the deadline on the connection at once). httpsrv's
// SetWriteDeadline takes response.mu, which the blocked Write holds for
// the whole network write, so the deadline can only be set once the write
// is over: with the response floor off and no WriteTimeout, never.
func TestReviewSetWriteDeadlineInterruptsWrite(t *testing.T) {
	type result struct {
		writeErr    error
		returned    bool
		setReturned bool
	}
	handler := func(clientStalled <-chan struct{}, res chan<- result) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			setDone := make(chan struct{})
			go func() {
				// The watchdog: the client has stopped reading, so the
				// write below is blocked; cut it.
				<-clientStalled
				rc.SetWriteDeadline(time.Now())
				close(setDone)
			}()
			writeDone := make(chan error, 1)
			go func() {
				_, err := w.Write(make([]byte, 64<<20))
				writeDone <- err
			}()
			var r0 result
			select {
			case r0.writeErr = <-writeDone:
				r0.returned = true
			case <-time.After(testTimeout()):
			}
			select {
			case <-setDone:
				r0.setReturned = true
			default:
			}
			res <- r0
		})
	}
	run := func(t *testing.T, start func(h http.Handler) string) {
		clientStalled := make(chan struct{})
		res := make(chan result, 1)
		addr := start(handler(clientStalled, res))
		conn := dialTLS(t, addr, "http/1.1")
		_, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		// Read the head and some of the body, then stop reading.
		buf := make([]byte, 64<<10)
		got := 0
		for got < 32<<10 {
			n, err := conn.Read(buf)
			require.NoError(t, err)
			got += n
		}
		close(clientStalled)
		var r result
		select {
		case r = <-res:
		case <-time.After(2 * testTimeout()):
			t.Fatal("handler did not report")
		}
		assert.True(t, r.setReturned, "SetWriteDeadline from the watchdog did not return while the write was blocked")
		assert.True(t, r.returned, "the blocked Write was not interrupted by SetWriteDeadline")
		if r.returned {
			var ne net.Error
			assert.True(t, errors.As(r.writeErr, &ne) && ne.Timeout(), "Write error: %v", r.writeErr)
		}
	}
	t.Run("net/http", func(t *testing.T) {
		run(t, func(h http.Handler) string {
			return startNetHTTP(t, &http.Server{Handler: h, ErrorLog: discardLogger()})
		})
	})
	t.Run("httpsrv", func(t *testing.T) {
		run(t, func(h http.Handler) string {
			srv := &Server{Handler: h, MinResponseRate: -1}
			srv.ErrorLog, _ = newTestLogger()
			return startTLS(t, srv)
		})
	})
}

// TestReviewContinueRacesSetWriteDeadline: in full-duplex mode a handler
// may read the body in one goroutine while another drives the response.
// The first body Read writes "100 Continue" through the connection writer
// (requestBody.Read, under writeContinueMu only), which updates
// connDeadlines' write fields (writeSet, the floor's counters), while
// SetWriteDeadline (under response.mu only) writes the same fields. No
// lock orders the two: a data race (net/http's SetWriteDeadline only
// calls the connection's, which is safe).
func TestReviewContinueRacesSetWriteDeadline(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		require.NoError(t, rc.EnableFullDuplex())
		read := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(r.Body) // sends 100 Continue first
			read <- b
		}()
		rc.SetWriteDeadline(time.Now().Add(time.Minute))
		b := <-read
		w.Write(b)
	})}
	srv.ErrorLog, _ = newTestLogger()
	addr := startTLS(t, srv)
	conn := dialTLS(t, addr, "http/1.1")
	_, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 100 Continue\r\n", line)
	_, err = io.WriteString(conn, "hello")
	require.NoError(t, err)
	for {
		l, err := br.ReadString('\n')
		require.NoError(t, err)
		if l == "\r\n" {
			break
		}
	}
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, "hello", string(b))
}

// h2cCases are the protocol sets the h2c tests compare: HTTP/1 alone, and
// HTTP/1 with unencrypted HTTP/2, which wraps plaintext connections.
func h2cCases() []struct {
	name   string
	protos http.Protocols
} {
	h1 := protocols(true, false)
	h1h2c := protocols(true, false)
	h1h2c.SetUnencryptedHTTP2(true)
	return []struct {
		name   string
		protos http.Protocols
	}{{"HTTP1 only", h1}, {"HTTP1 and UnencryptedHTTP2", h1h2c}}
}

// TestReviewH2CCloseWriteAndWait: on a server with UnencryptedHTTP2 every
// plaintext connection is a *prefaceConn, which embeds the net.Conn
// interface and so has no CloseWrite. closeWriteAndWait then never
// half-closes: the client gets no EOF after a response that closes the
// connection with the body unread, and waits the whole linger
// (rstAvoidanceDelay) for the close. Without UnencryptedHTTP2 the same
// exchange half-closes at once.
func TestReviewH2CCloseWriteAndWait(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// 1 MiB body announced, never read: more than the drain limit.
		w.Header().Set("Connection", "close")
		io.WriteString(w, "no")
	})
	for _, tc := range h2cCases() {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.protos
			srv := &Server{Handler: h, Protocols: &p}
			srv.ErrorLog, _ = newTestLogger()
			addr := servePlain(t, srv.Serve, srv.Close)
			conn, err := net.DialTimeout("tcp", addr, testTimeout())
			require.NoError(t, err)
			t.Cleanup(func() { conn.Close() })
			_, err = io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"+strings.Repeat("b", 1024))
			require.NoError(t, err)
			conn.SetReadDeadline(time.Now().Add(testTimeout()))
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, "no", string(b))
			start := time.Now()
			_, err = br.ReadByte()
			elapsed := time.Since(start)
			require.ErrorIs(t, err, io.EOF)
			assert.Less(t, elapsed, rstAvoidanceDelay, "EOF after the response came only when the linger ended: the server never half-closed")
		})
	}
}

// TestReviewH2CHijackConn: net/http's Hijack on a server with
// UnencryptedHTTP2 returns the accepted connection (the peeked bytes stay
// in the returned bufio.Reader). httpsrv returns its *prefaceConn, which
// is not a *net.TCPConn and lacks CloseWrite/CloseRead/SetKeepAlive...:
// an undocumented difference that breaks handlers that type-assert the
// hijacked connection (README lists only ConnState and ConnContext).
func TestReviewH2CHijackConn(t *testing.T) {
	type got struct {
		tcp, closeWriter bool
	}
	run := func(t *testing.T, serve func(h http.Handler) string) got {
		res := make(chan got, 1)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				res <- got{}
				return
			}
			defer c.Close()
			_, tcp := c.(*net.TCPConn)
			_, cw := c.(interface{ CloseWrite() error })
			res <- got{tcp, cw}
		})
		addr := serve(h)
		conn, err := net.DialTimeout("tcp", addr, testTimeout())
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		_, err = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		select {
		case g := <-res:
			return g
		case <-time.After(testTimeout()):
			t.Fatal("handler did not run")
		}
		return got{}
	}
	p := protocols(true, false)
	p.SetUnencryptedHTTP2(true)
	want := run(t, func(h http.Handler) string {
		hs := &http.Server{Handler: h, Protocols: &p, ErrorLog: discardLogger()}
		return servePlain(t, hs.Serve, hs.Close)
	})
	require.Equal(t, got{true, true}, want, "net/http oracle")
	have := run(t, func(h http.Handler) string {
		srv := &Server{Handler: h, Protocols: &p}
		srv.ErrorLog, _ = newTestLogger()
		return servePlain(t, srv.Serve, srv.Close)
	})
	assert.Equal(t, want, have, "hijacked connection: *net.TCPConn, has CloseWrite")
}

// TestReviewReadTimeoutCoversHead: net/http's ReadTimeout is "the
// maximum duration for reading the entire request, including the body",
// counted from the start of readRequest. connDeadlines.startRequest now
// counts it from the end of the head (readRequest passes the time the
// head was read), so a client that takes nearly ReadHeaderTimeout (by
// default ReadTimeout itself) over the head gets a fresh ReadTimeout for
// the body: up to twice the limit in all. (The code before this change
// took the deadline before reading the head, as net/http does.)
func TestReviewReadTimeoutCoversHead(t *testing.T) {
	const readTimeout = 2 * time.Second
	const headPause = 1500 * time.Millisecond // the slow client's pace
	run := func(t *testing.T, addr string, bodyErrAt <-chan time.Time) {
		conn := dialTLS(t, addr, "http/1.1")
		start := time.Now()
		_, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n")
		require.NoError(t, err)
		<-time.After(headPause)
		_, err = io.WriteString(conn, "\r\n") // the head ends; no body follows
		require.NoError(t, err)
		select {
		case at := <-bodyErrAt:
			took := at.Sub(start)
			assert.Less(t, took, readTimeout+500*time.Millisecond,
				"the request (head and body) was read for %v, ReadTimeout is %v", took, readTimeout)
		case <-time.After(testTimeout()):
			t.Fatal("the body read never failed")
		}
	}
	handler := func(c chan<- time.Time) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.ReadAll(r.Body)
			c <- time.Now()
		})
	}
	t.Run("net/http", func(t *testing.T) {
		c := make(chan time.Time, 1)
		addr := startNetHTTP(t, &http.Server{Handler: handler(c), ReadTimeout: readTimeout, ErrorLog: discardLogger()})
		run(t, addr, c)
	})
	t.Run("httpsrv", func(t *testing.T) {
		c := make(chan time.Time, 1)
		srv := &Server{Handler: handler(c), ReadTimeout: readTimeout}
		srv.ErrorLog, _ = newTestLogger()
		run(t, startTLS(t, srv), c)
	})
}

// TestReviewH2CHeaderTimeoutRestarts: with UnencryptedHTTP2 on, the look
// for the h2c preface (maybeServeUnencryptedHTTP2) reads the first 14
// bytes under ReadHeaderTimeout, and when they are not the preface the
// HTTP/1 engine starts a fresh ReadHeaderTimeout (h1conn.serve's
// readAfter): a client that sends 13 bytes, waits, and then trickles the
// rest holds a connection for nearly twice ReadHeaderTimeout. Without
// UnencryptedHTTP2 the same client is cut at ReadHeaderTimeout.
func TestReviewH2CHeaderTimeoutRestarts(t *testing.T) {
	const headerTimeout = time.Second
	const pause = 900 * time.Millisecond // the slow client's pace
	for _, tc := range h2cCases() {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.protos
			srv := &Server{Handler: http.NotFoundHandler(), Protocols: &p, ReadHeaderTimeout: headerTimeout}
			srv.ErrorLog, _ = newTestLogger()
			addr := servePlain(t, srv.Serve, srv.Close)
			conn, err := net.DialTimeout("tcp", addr, testTimeout())
			require.NoError(t, err)
			t.Cleanup(func() { conn.Close() })
			start := time.Now()
			_, err = io.WriteString(conn, "GET / HTTP/1.") // 13 bytes
			require.NoError(t, err)
			<-time.After(pause)
			_, err = io.WriteString(conn, "1\r\nHost: x\r\n") // the head never ends
			require.NoError(t, err)
			conn.SetReadDeadline(time.Now().Add(testTimeout()))
			_, err = io.ReadAll(conn)
			took := time.Since(start)
			require.NoError(t, err)
			assert.Less(t, took, headerTimeout+400*time.Millisecond,
				"an incomplete head kept the connection for %v; ReadHeaderTimeout is %v", took, headerTimeout)
		})
	}
}

// onlyReader hides every method of its reader but Read (no WriteTo), as
// a gzip or tar reader, or a handler's own stream, has none.
type onlyReader struct{ io.Reader }

// TestReviewReadFromPieceGarbage: on a plaintext connection io.Copy(w,
// src) for a src without WriteTo goes to response.ReadFrom and then to
// connDeadlines.readFrom, which under the response floor (on by default)
// called the TCP connection's ReadFrom once per piece. For a src that is
// not a file or socket, net's genericReadFrom does an io.Copy per call,
// and io.Copy allocates a buffer sized to the LimitedReader: one
// allocation per piece, about 1 MiB of garbage per MiB sent (at 8227c0b:
// about 45 KB per 1 MiB response). Such sources now go through the
// response's pooled buffer (zeroCopySource).
func TestReviewReadFromPieceGarbage(t *testing.T) {
	const size = 1 << 20
	payload := strings.Repeat("x", size)
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		io.Copy(w, onlyReader{strings.NewReader(payload)})
	})}
	srv.ErrorLog, _ = newTestLogger()
	addr := servePlain(t, srv.Serve, srv.Close)
	conn, err := net.DialTimeout("tcp", addr, testTimeout())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(testTimeout()))
	br := bufio.NewReaderSize(conn, 64<<10)
	get := func() {
		_, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		n, err := io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		require.EqualValues(t, size, n)
	}
	for range 3 {
		get()
	}
	const n = 30
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for range n {
		get()
	}
	runtime.ReadMemStats(&m1)
	perResponse := (m1.TotalAlloc - m0.TotalAlloc) / n
	assert.Less(t, perResponse, uint64(256<<10), "bytes allocated per 1 MiB response (client included)")
}

// TestReviewForcedCloseSurvivesKeepAlive checks that an HTTP/1.0
// keep-alive request whose framing trips a stricter rule (Transfer-Encoding
// on HTTP/1.0) still closes the connection when the handler answers with a
// Content-Length and "Connection: keep-alive".
func TestReviewForcedCloseSurvivesKeepAlive(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Connection", "keep-alive")
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	})}
	addr := startTLS(t, srv)
	_, body, closed := roundTripRaw(t, addr, "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
	assert.Equal(t, "ok", body)
	assert.True(t, closed, "the connection must close after ambiguous framing")
}
