package httpsrv

// Tests of the graceful drain (drain.go, issue 8 item 4): what Shutdown does
// to HTTP/1 connections that are idle, or look idle, when it starts, and to
// HTTP/2 streams. TestDrainUnderLoad (drainload_test.go) measures the whole
// under load.

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// drainHandler answers "ok:" and the request body, except on /slow, where
// it sends its head, reports on inSlow and waits for release before ending
// the body.
func drainHandler(inSlow chan<- struct{}, release <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
			inSlow <- struct{}{}
			<-release
			io.WriteString(w, "slow")
			return
		}
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "ok:"+string(b))
	})
}

// drainPost is a POST of body "x".
const drainPost = "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\n\r\nx"

// shutdownStarted starts srv.Shutdown(ctx) and returns once it has
// started (its RegisterOnShutdown functions run after it marked the server
// as shutting down), with the channel its result arrives on.
func shutdownStarted(t *testing.T, srv *Server, ctx context.Context) <-chan error {
	t.Helper()
	started := make(chan struct{})
	srv.RegisterOnShutdown(func() { close(started) })
	errc := make(chan error, 1)
	go func() { errc <- srv.Shutdown(ctx) }()
	waitChan(t, started)
	return errc
}

// readOne reads one response to method from br, body included.
func readOne(br *bufio.Reader, method string) (*http.Response, string, error) {
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// TestDrainAnswersRequestAtShutdown checks that a request that reaches an
// HTTP/1 connection which is idle, or looks idle, when Shutdown starts is
// answered, with Connection: close, and that the connection then closes
// cleanly and Shutdown returns nil. net/http loses both requests: it closes
// the connection under them.
//
//   - "head split around Shutdown": the first bytes of the next request
//     arrive before Shutdown, the rest after. The connection is still
//     StateIdle (its head is not read), so closeIdleConns used to close it
//     with the bytes unread. The rest is sent once a second, truly idle,
//     connection has been closed, which shows that Shutdown's pass over
//     the idle connections has been made.
//   - "new connection, first head split": the same on a connection whose
//     first request is split, which has been new for over five seconds.
//   - "keep-alive promised before Shutdown": the response head went out
//     before Shutdown started, without Connection: close, so the client
//     sends its next request as soon as it has read the body; the server
//     used to close the connection right after the body.
func TestDrainAnswersRequestAtShutdown(t *testing.T) {
	t.Run("head split around Shutdown", func(t *testing.T) {
		rec := newStateRecorder()
		srv := &Server{ConnState: rec.hook, Handler: drainHandler(nil, nil)}
		addr := startTLS(t, srv)

		a := dialTLS(t, addr, "http/1.1")
		a.SetDeadline(time.Now().Add(testTimeout()))
		abr := bufio.NewReader(a)
		_, err := io.WriteString(a, drainPost)
		require.NoError(t, err)
		_, body, err := readOne(abr, "POST")
		require.NoError(t, err)
		require.Equal(t, "ok:x", body)

		b := dialTLS(t, addr, "http/1.1")
		b.SetDeadline(time.Now().Add(testTimeout()))
		bClosed := make(chan struct{})
		go func() {
			defer close(bClosed)
			br := bufio.NewReader(b)
			if _, _, err := readOne(br, "POST"); err != nil {
				return
			}
			io.Copy(io.Discard, br) // until the server closes
			b.Close()
		}()
		_, err = io.WriteString(b, drainPost)
		require.NoError(t, err)
		rec.waitFor(t, "both connections idle", allReach(2, http.StateIdle))

		head, rest, _ := strings.Cut(drainPost, "Host:")
		_, err = io.WriteString(a, head)
		require.NoError(t, err)
		shutdownErr := shutdownStarted(t, srv, context.Background())
		waitChan(t, bClosed)
		_, err = io.WriteString(a, "Host:"+rest)
		require.NoError(t, err)

		requireAnsweredThenClosed(t, abr)
		a.Close()
		assert.NoError(t, waitResult(t, shutdownErr))
	})

	t.Run("new connection, first head split", func(t *testing.T) {
		// As "head split around Shutdown", on a new connection that
		// has been in StateNew for more than five seconds, which
		// closeIdleConns counts as idle (net/http's rule). Its state
		// is backdated rather than waited for.
		rec := newStateRecorder()
		srv := &Server{ConnState: rec.hook, Handler: drainHandler(nil, nil)}
		addr := startTLS(t, srv)

		b := dialTLS(t, addr, "http/1.1")
		b.SetDeadline(time.Now().Add(testTimeout()))
		bClosed := make(chan struct{})
		go func() {
			defer close(bClosed)
			br := bufio.NewReader(b)
			if _, _, err := readOne(br, "POST"); err != nil {
				return
			}
			io.Copy(io.Discard, br)
			b.Close()
		}()
		_, err := io.WriteString(b, drainPost)
		require.NoError(t, err)
		rec.waitFor(t, "an idle connection", allReach(1, http.StateIdle))

		a := dialTLS(t, addr, "http/1.1")
		a.SetDeadline(time.Now().Add(testTimeout()))
		rec.waitFor(t, "a new connection", allReach(2, http.StateNew))
		head, rest, _ := strings.Cut(drainPost, "Host:")
		_, err = io.WriteString(a, head)
		require.NoError(t, err)
		// The client's handshake ends before the server's: wait until
		// the server has handed the connection to the HTTP/1 engine
		// (a connection still in its handshake is closed after five
		// seconds, as in net/http), then backdate it.
		backdateNewHTTP1Conn(t, srv)

		shutdownErr := shutdownStarted(t, srv, context.Background())
		waitChan(t, bClosed)
		_, err = io.WriteString(a, "Host:"+rest)
		require.NoError(t, err)
		abr := bufio.NewReader(a)
		requireAnsweredThenClosed(t, abr)
		a.Close()
		assert.NoError(t, waitResult(t, shutdownErr))
	})

	t.Run("keep-alive promised before Shutdown", func(t *testing.T) {
		inSlow := make(chan struct{}, 1)
		release := make(chan struct{})
		srv := &Server{Handler: drainHandler(inSlow, release)}
		addr := startTLS(t, srv)

		a := dialTLS(t, addr, "http/1.1")
		a.SetDeadline(time.Now().Add(testTimeout()))
		abr := bufio.NewReader(a)
		_, err := io.WriteString(a, "GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(abr, nil)
		require.NoError(t, err)
		require.False(t, resp.Close)
		waitChan(t, inSlow)

		shutdownErr := shutdownStarted(t, srv, context.Background())
		close(release)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, "slow", string(b))
		// As a keep-alive client does: the next request right away.
		_, err = io.WriteString(a, drainPost)
		require.NoError(t, err)

		requireAnsweredThenClosed(t, abr)
		a.Close()
		assert.NoError(t, waitResult(t, shutdownErr))
	})
}

// TestDrainKeepAlivesDisabled checks that SetKeepAlivesEnabled(false)
// drains idle HTTP/1 connections as Shutdown does: a request sent on a
// connection just used, right after the call, is answered with
// Connection: close instead of meeting a connection closed under it.
func TestDrainKeepAlivesDisabled(t *testing.T) {
	srv := &Server{Handler: drainHandler(nil, nil)}
	addr := startTLS(t, srv)
	c := dialTLS(t, addr, "http/1.1")
	c.SetDeadline(time.Now().Add(testTimeout()))
	br := bufio.NewReader(c)
	_, err := io.WriteString(c, drainPost)
	require.NoError(t, err)
	resp, _, err := readOne(br, "POST")
	require.NoError(t, err)
	require.False(t, resp.Close)

	srv.SetKeepAlivesEnabled(false)
	_, err = io.WriteString(c, drainPost)
	require.NoError(t, err)
	requireAnsweredThenClosed(t, br)
}

// idleClose is how the server closed an idle connection, as the client saw
// it.
type idleClose struct {
	err error     // what the read that saw the close returned
	at  time.Time // when it returned
}

// idleCloseWatch reads c, a client connection whose responses have all
// been read, until the server closes it, then closes it too, as a client
// does, and reports when and how the server's close came.
func idleCloseWatch(c net.Conn) <-chan idleClose {
	done := make(chan idleClose, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		at := time.Now()
		c.Close()
		done <- idleClose{err, at}
	}()
	return done
}

// TestDrainClosesIdleAfterPeriod checks that Shutdown closes a connection
// that was just used, and then stays idle, only once it has been idle for
// idleDrainPeriod, cleanly (close_notify, not a reset), and that Shutdown
// returns nil when it has. net/http, and httpsrv before the drain, closed it
// at once.
//
// The wait for the next request is either the connection's own read or,
// when the handler watched its request context, the background read still
// under way when it returned: the drain must shorten both.
func TestDrainClosesIdleAfterPeriod(t *testing.T) {
	tests := []struct {
		name    string
		handler http.Handler
	}{
		{"idle read", drainHandler(nil, nil)},
		{"background read", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			select {
			case <-r.Context().Done(): // starts the background read
			default:
			}
			io.WriteString(w, "ok:"+string(b))
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &Server{Handler: tt.handler}
			addr := startTLS(t, srv)
			c := dialTLS(t, addr, "http/1.1")
			c.SetDeadline(time.Now().Add(testTimeout()))
			sent := time.Now() // the connection is idle after this
			_, err := io.WriteString(c, drainPost)
			require.NoError(t, err)
			_, body, err := readOne(bufio.NewReader(c), "POST")
			require.NoError(t, err)
			require.Equal(t, "ok:x", body)

			closed := idleCloseWatch(c)
			start := time.Now()
			require.NoError(t, srv.Shutdown(context.Background()))
			took := time.Since(start)
			cl := <-closed // the server closed the connection before Shutdown returned
			closedAfter := cl.at.Sub(sent)
			t.Logf("Shutdown took %v; the connection closed %v after its request was sent", took, closedAfter)
			assert.ErrorIs(t, cl.err, io.EOF, "not a clean close")
			assert.GreaterOrEqual(t, closedAfter, idleDrainPeriod, "closed before the drain period ended")
			assert.Less(t, took, idleDrainPeriod+rstAvoidanceDelay, "Shutdown waited past the drain and the lingering close")
		})
	}
}

// TestDrainShortContext checks that Shutdown's context bounds the drain:
// with a context of 400 ms, a connection just used is kept open for half of
// it (not closed at once, not kept for the whole drain period), closed
// cleanly, and Shutdown returns nil before its deadline.
func TestDrainShortContext(t *testing.T) {
	const ctxTimeout = 400 * time.Millisecond
	require.Less(t, ctxTimeout, 2*idleDrainPeriod, "the context must be what bounds the drain")
	srv := &Server{Handler: drainHandler(nil, nil)}
	addr := startTLS(t, srv)
	c := dialTLS(t, addr, "http/1.1")
	c.SetDeadline(time.Now().Add(testTimeout()))
	_, err := io.WriteString(c, drainPost)
	require.NoError(t, err)
	_, _, err = readOne(bufio.NewReader(c), "POST")
	require.NoError(t, err)

	closed := idleCloseWatch(c)
	ctx, cancel := context.WithTimeout(context.Background(), ctxTimeout)
	defer cancel()
	ctxStart := time.Now() // no later than the context's own start
	err = srv.Shutdown(ctx)
	took := time.Since(ctxStart)
	require.NoError(t, err, "Shutdown did not finish within its context")
	cl := <-closed
	closedAfter := cl.at.Sub(ctxStart)
	t.Logf("Shutdown took %v; the connection closed %v after it started", took, closedAfter)
	assert.ErrorIs(t, cl.err, io.EOF, "not a clean close")
	// The drain ends half way to the deadline at the earliest.
	assert.GreaterOrEqual(t, closedAfter, ctxTimeout/2, "closed before half the context")
	assert.Less(t, took, ctxTimeout)
}

// request sends a request for path on stream id; unless endStream is set,
// the body is for the caller to send.
func (h *h2Client) request(t *testing.T, id uint32, method, path string, endStream bool) {
	t.Helper()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", method}, {":scheme", "https"}, {":authority", "localhost"}, {":path", path}} {
		require.NoError(t, enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}))
	}
	require.NoError(t, h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: endStream, EndHeaders: true}))
}

// TestDrainHTTP2GoAway checks graceful shutdown on HTTP/2 at the frame
// level: Shutdown sends GOAWAY (NO_ERROR) whose last stream ID is the
// highest stream the server took; every stream at or below it completes,
// including a POST whose body is sent after the GOAWAY; a stream opened
// after the GOAWAY is not served; Shutdown returns once the streams are
// done and the client has closed.
func TestDrainHTTP2GoAway(t *testing.T) {
	var (
		mu      sync.Mutex
		served  []string
		started = make(chan struct{}, 4)
		release = make(chan struct{})
	)
	srv := &Server{ErrorLog: discardLogger(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		served = append(served, r.URL.Path)
		mu.Unlock()
		started <- struct{}{}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		<-release
		io.WriteString(w, "done:"+string(b))
	})}
	addr := startTLS(t, srv)
	nc := dialTLS(t, addr, "h2")
	c := startH2(t, nc)

	c.request(t, 1, "GET", "/1", true)
	c.request(t, 3, "POST", "/3", false) // body after the GOAWAY
	waitChan(t, started)
	waitChan(t, started)

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout())
	defer cancel()
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- srv.Shutdown(ctx) }()
	ga, err := c.readGoAway()
	require.NoError(t, err)
	assert.Equal(t, http2.ErrCodeNo, ga.ErrCode)
	assert.Equal(t, uint32(3), ga.LastStreamID)

	c.request(t, 5, "GET", "/5", true) // after the GOAWAY: not served
	require.NoError(t, c.fr.WriteData(3, true, []byte("body")))
	close(release)

	bodies := map[uint32]string{}
	ended := map[uint32]bool{}
	for !ended[1] || !ended[3] {
		f, err := c.fr.ReadFrame()
		require.NoError(t, err, "the connection ended before the streams at or below the last stream ID completed")
		switch f := f.(type) {
		case *http2.DataFrame:
			bodies[f.StreamID] += string(f.Data())
			ended[f.StreamID] = ended[f.StreamID] || f.StreamEnded()
		case *http2.HeadersFrame:
			require.NotEqual(t, uint32(5), f.StreamID, "a stream opened after the GOAWAY was answered")
			ended[f.StreamID] = ended[f.StreamID] || f.StreamEnded()
		case *http2.RSTStreamFrame:
			t.Fatalf("stream %d reset: %v", f.StreamID, f.ErrCode)
		}
	}
	assert.Equal(t, map[uint32]string{1: "done:", 3: "done:body"}, bodies)
	nc.Close()
	select {
	case err := <-shutdownErr:
		assert.NoError(t, err)
	case <-time.After(testTimeout()):
		t.Fatal("Shutdown did not return after the streams completed")
	}
	mu.Lock()
	defer mu.Unlock()
	assert.ElementsMatch(t, []string{"/1", "/3"}, served)
}

// backdateNewHTTP1Conn waits until srv has handed a connection in StateNew
// to the HTTP/1 engine (the client's handshake ends before the server's;
// there is no event to wait on, so it polls every millisecond), then
// backdates that state by ten seconds, past net/http's five-second rule
// for new connections.
func backdateNewHTTP1Conn(t *testing.T, srv *Server) {
	t.Helper()
	newConn := func() *conn {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for c := range srv.activeConn {
			if st, _ := c.getState(); st == http.StateNew && c.inHTTP1() {
				return c
			}
		}
		return nil
	}
	deadline := time.Now().Add(testTimeout())
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for newConn() == nil {
		require.True(t, time.Now().Before(deadline), "the new connection never reached the HTTP/1 engine")
		<-tick.C
	}
	newConn().curState.Store(uint64(time.Now().Unix()-10)<<8 | uint64(http.StateNew))
}

// requireAnsweredThenClosed reads the answer to drainPost from br: it must
// come, say Connection: close, and be followed by a clean close.
func requireAnsweredThenClosed(t *testing.T, br *bufio.Reader) {
	t.Helper()
	resp, body, err := readOne(br, "POST")
	require.NoError(t, err, "the request was lost")
	assert.Equal(t, "ok:x", body)
	assert.True(t, resp.Close, "Connection: close")
	_, err = br.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "the connection must end with a clean close")
}
