package httpsrv

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReviewWinBurstyClientAboveFloor runs one 64 KiB response write under
// the default response floor (240 B/s after 5 s) against clients that
// read in bursts, on a fake clock over an unbuffered pipe, as
// TestResponseFloorWindowsAndPieces does. README ("Safe by default")
// promises that "a write that blocks must see the client take 4 KiB" in
// the time one 4 KiB piece is allowed (5 s + 4 KiB at the floor, about
// 22 s), and that an honest client reading above the floor is never cut.
// A client that takes 4 KiB every 15 s (273 B/s) or 6 KiB every 20 s
// (307 B/s) keeps that promise, and the 4 KiB pieces served it; the
// windows cut it: a window of 11 s in which it happens to read nothing
// ends the write. The other rows check that the write is still cut for
// clients that break the promise.
func TestReviewWinBurstyClientAboveFloor(t *testing.T) {
	const size = 64 << 10
	srv := &Server{}
	perPiece := srv.minRateGracePeriod() + bytesAt(floorPiece, float64(srv.minResponseRate()))
	clients := []struct {
		name   string
		burst  int
		chunk  int
		every  time.Duration
		within time.Duration // the write must fail within this; succeed when 0
	}{
		{name: "4 KiB every 15 s (273 B/s)", burst: 8 << 10, chunk: 4 << 10, every: 15 * time.Second},
		{name: "6 KiB every 20 s (307 B/s)", burst: 8 << 10, chunk: 6 << 10, every: 20 * time.Second},
		{name: "stalled after a fast start", burst: 32 << 10, within: perPiece},
		{name: "4 KiB every 30 s", burst: 8 << 10, chunk: 4 << 10, every: 30 * time.Second, within: perPiece + time.Second},
	}
	for _, windows := range []bool{true, false} {
		mode := "pieces"
		if windows {
			mode = "windows"
		}
		for _, cl := range clients {
			t.Run(mode+"/"+cl.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					server, client := net.Pipe()
					t.Cleanup(func() { server.Close(); client.Close() })
					d := &connDeadlines{rwc: server, stats: &srv.stats}
					d.winKnown, d.winPlain = true, windows
					now := time.Now()
					d.startRequest(srv, now, now)
					got := make(chan int, 1)
					go func() {
						buf := make([]byte, size)
						n, _ := io.ReadFull(client, buf[:min(cl.burst, size)])
						for cl.chunk > 0 && n < size {
							time.Sleep(cl.every) // the fake clock: the client's pace
							m, err := io.ReadFull(client, buf[:min(cl.chunk, size-n)])
							n += m
							if err != nil {
								break
							}
						}
						got <- n
					}()
					start := time.Now()
					n, err := d.write(make([]byte, size))
					elapsed := time.Since(start)
					server.Close()
					read := <-got
					t.Logf("wrote %d bytes in %v, err %v", n, elapsed, err)
					if cl.within == 0 {
						require.NoError(t, err, "a client that takes 4 KiB within every piece's time was cut")
						assert.Equal(t, size, n)
						assert.Equal(t, size, read)
						return
					}
					require.Error(t, err, "the client was not cut")
					assert.True(t, isTimeout(err), "not a deadline: %v", err)
					assert.LessOrEqual(t, elapsed, cl.within, "cut too late")
				})
			})
		}
	}
}

// watchedOutput collects a process's output and lets a test wait, under a
// deadline, for a string to appear in it.
type watchedOutput struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	change chan struct{} // closed and replaced on every write
}

func newWatchedOutput() *watchedOutput { return &watchedOutput{change: make(chan struct{})} }

func (o *watchedOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	close(o.change)
	o.change = make(chan struct{})
	return len(p), nil
}

// waitCount waits until s has appeared n times, and reports whether it
// did before the deadline.
func (o *watchedOutput) waitCount(s string, n int, deadline <-chan time.Time) bool {
	for {
		o.mu.Lock()
		got := bytes.Count(o.buf.Bytes(), []byte(s))
		ch := o.change
		o.mu.Unlock()
		if got >= n {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

func (o *watchedOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// TestReviewWinKeyUpdateAfterIdle: c2b6e89 stopped clearing the write
// deadline at the end of a response, on the grounds that every write of
// the engine puts its own deadline in force first. crypto/tls writes on
// its own too: a TLS 1.3 KeyUpdate with update_requested, which a client
// may send at any time, is answered from inside tls.Conn.Read (here the
// background read of an idle keep-alive connection), under whatever write
// deadline is in force; when that write fails, crypto/tls keeps the error
// and fails every later Write (handleKeyUpdate: "Surface the error at the
// next write"). With the previous response's deadline left in force and
// passed, the next request on the connection gets no response: the
// connection dies. Before c2b6e89 the idle connection had no write
// deadline and the KeyUpdate was answered.
func TestReviewWinKeyUpdateAfterIdle(t *testing.T) {
	openssl := lookTool(t, "openssl")
	const grace = 100 * time.Millisecond
	srv := &Server{ErrorLog: discardLogger(), MinResponseRate: testFloor, MinRateGracePeriod: grace,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "response to "+r.URL.Path+"\n")
		})}
	addr := startTLS(t, srv)

	stdin, out := startSClient(t, openssl, addr)
	deadline := time.After(testTimeout())

	_, err := io.WriteString(stdin, "GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n")
	require.NoError(t, err)
	require.True(t, out.waitCount("response to /first", 1, deadline), "no first response; output:\n%s", out)
	// The connection idles past the first response's write deadline (the
	// grace period plus its few bytes at the floor, about 100 ms): the
	// idle time is the scenario, not a wait for an event.
	idle := time.NewTimer(10 * grace)
	t.Cleanup(func() { idle.Stop() })
	<-idle.C
	// s_client's "K" command: a KeyUpdate requesting the server's.
	_, err = io.WriteString(stdin, "K\n")
	require.NoError(t, err)
	require.True(t, out.waitCount("KEYUPDATE", 1, deadline), "s_client sent no KeyUpdate; output:\n%s", out)
	_, err = io.WriteString(stdin, "GET /second HTTP/1.1\r\nHost: localhost\r\n\r\n")
	require.NoError(t, err)
	assert.True(t, out.waitCount("response to /second", 1, deadline),
		"the request after a KeyUpdate on an idle keep-alive connection got no response; output:\n%s", out)
}

// TestReviewWinKeyUpdateMidResponse is TestReviewWinKeyUpdateAfterIdle
// within one response: a streaming handler (server-sent events) flushes an
// event, and waits; the floor's deadline for that write stays in force
// while it waits, and a KeyUpdate the client sends once it has passed
// breaks the connection, so the next event's write fails. This predates
// the windows (the pieces' deadlines linger between a handler's writes as
// well) and is not fixed: clearing the deadline after every write costs
// the system call the windows saved. It runs with HTTPSRV_KNOWN_DEFECTS=1.
func TestReviewWinKeyUpdateMidResponse(t *testing.T) {
	if os.Getenv("HTTPSRV_KNOWN_DEFECTS") != "1" {
		t.Skip("known defect, not fixed; set HTTPSRV_KNOWN_DEFECTS=1 to run")
	}
	openssl := lookTool(t, "openssl")
	const grace = 100 * time.Millisecond
	next := make(chan struct{})
	srv := &Server{ErrorLog: discardLogger(), MinResponseRate: testFloor, MinRateGracePeriod: grace,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			io.WriteString(w, "event one\n")
			rc.Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, "event two\n")
			rc.Flush()
		})}
	addr := startTLS(t, srv)

	stdin, out := startSClient(t, openssl, addr)
	deadline := time.After(testTimeout())
	_, err := io.WriteString(stdin, "GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
	require.NoError(t, err)
	require.True(t, out.waitCount("event one", 1, deadline), "no first event; output:\n%s", out)
	idle := time.NewTimer(10 * grace) // the stream's quiet gap: the scenario
	t.Cleanup(func() { idle.Stop() })
	<-idle.C
	_, err = io.WriteString(stdin, "K\n")
	require.NoError(t, err)
	require.True(t, out.waitCount("KEYUPDATE", 1, deadline), "s_client sent no KeyUpdate; output:\n%s", out)
	close(next)
	assert.True(t, out.waitCount("event two", 1, deadline),
		"the event after a KeyUpdate in the stream's quiet gap was lost; output:\n%s", out)
}

// startSClient runs openssl s_client against addr over TLS 1.3 with
// http/1.1 and returns its standard input and its watched output; the
// process is stopped at cleanup.
func startSClient(t *testing.T, openssl, addr string) (io.WriteCloser, *watchedOutput) {
	t.Helper()
	cmd := exec.Command(openssl, "s_client", "-connect", addr, "-servername", "localhost",
		"-CAfile", testCertFile, "-tls1_3", "-alpn", "http/1.1")
	out := newWatchedOutput()
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return stdin, out
}
