package httpsrv

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeCountListener counts the writes made to the connections it
// accepts: under a TLS layer, one per record the layer sends unless it
// coalesces them, and one write system call each over TCP.
type writeCountListener struct {
	net.Listener
	writes    atomic.Int64
	deadlines atomic.Int64 // write deadline changes (SetWriteDeadline, SetDeadline)
}

func (l *writeCountListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &writeCountConn{Conn: c, l: l}, nil
}

type writeCountConn struct {
	net.Conn
	l *writeCountListener
}

func (c *writeCountConn) Write(p []byte) (int, error) {
	c.l.writes.Add(1)
	return c.Conn.Write(p)
}

func (c *writeCountConn) SetWriteDeadline(t time.Time) error {
	c.l.deadlines.Add(1)
	return c.Conn.SetWriteDeadline(t)
}

func (c *writeCountConn) SetDeadline(t time.Time) error {
	c.l.deadlines.Add(1)
	return c.Conn.SetDeadline(t)
}

// writePathBodies are the response bodies of writePathHandler, by path:
// the bodies of the load-test suite (bench/load).
var writePathBodies = map[string][]byte{
	"/small": []byte("hello, world\n"),
	"/1k":    bytes.Repeat([]byte("abcdefghijklmnop"), 1<<10/16),
	"/64k":   bytes.Repeat([]byte("abcdefghijklmnop"), 64<<10/16),
}

// writePathHandler answers as the load-test suite's servers do: a declared
// Content-Type and Content-Length, then the body in one Write.
func writePathHandler(w http.ResponseWriter, r *http.Request) {
	body := writePathBodies[r.URL.Path]
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// startCountingServers serves writePathHandler from srv and from net/http's
// server, both over TLS on listeners that count their connections'
// writes, and returns the addresses and the listeners, ours first.
func startCountingServers(t testing.TB, srv *Server) (ours, oracle string, oursL, oracleL *writeCountListener) {
	t.Helper()
	srv.Handler = http.HandlerFunc(writePathHandler)
	oursL = &writeCountListener{Listener: localListener(t)}
	ours = serveOn(t, oursL, func(ln net.Listener) error { return srv.ServeTLS(ln, testCertFile, testKeyFile) }, srv.Close)
	hs := &http.Server{Handler: http.HandlerFunc(writePathHandler),
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
	oracleL = &writeCountListener{Listener: localListener(t)}
	oracle = serveOn(t, oracleL, func(ln net.Listener) error { return hs.ServeTLS(ln, testCertFile, testKeyFile) }, hs.Close)
	return ours, oracle, oursL, oracleL
}

// writesPerResponse makes keep-alive GETs of path on a connection to addr
// and returns the writes and the write deadline changes l counted per
// response, once crypto/tls has sent enough to use full-size records.
func writesPerResponse(t testing.TB, addr, path string, l *writeCountListener) (writes, deadlines float64) {
	t.Helper()
	c := newBenchClient(t, addr)
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n")
	// crypto/tls sends small records until 128 KiB have gone.
	for range 4 + 256<<10/max(len(writePathBodies[path]), 1<<10) {
		require.NoError(t, c.roundTrip(req))
	}
	const n = 20
	w0, d0 := l.writes.Load(), l.deadlines.Load()
	for range n {
		require.NoError(t, c.roundTrip(req))
	}
	return float64(l.writes.Load()-w0) / n, float64(l.deadlines.Load()-d0) / n
}

// TestHTTP1WritesPerResponse counts the writes to the network connection
// (TLS records, write system calls) per keep-alive response: a small
// response's head and body go in one, and no response takes more than
// net/http's server takes for it, with the response rate floor on (the
// default) or off. It counts the write deadline changes too: with the floor
// on, a response over TLS sets its deadline and clears it at its end, so
// that no deadline lingers into the idle connection, where crypto/tls may
// write on its own (TestReviewWinKeyUpdateAfterIdle); net/http, without
// WriteTimeout, sets none. (The bounds leave room for the close_notify of
// the previous subtest's connection, two changes, landing in the count.)
func TestHTTP1WritesPerResponse(t *testing.T) {
	tests := []struct {
		path      string
		want      float64 // writes, at most, with the floor on or off
		deadlines float64 // deadline changes with the floor on, at most
	}{
		{"/small", 1, 2.5},
		{"/1k", 1, 2.5},
		// The head and the first 4 KiB fill the connection's writer; the
		// rest goes to crypto/tls at once, in 16 KiB records, under the
		// deadline of a window; the end of the response clears it.
		{"/64k", 5, 3.5},
	}
	for _, floor := range []int64{0, -1} {
		t.Run(fmt.Sprintf("MinResponseRate=%d", floor), func(t *testing.T) {
			ours, oracle, oursL, oracleL := startCountingServers(t, &Server{MinResponseRate: floor})
			for _, tt := range tests {
				t.Run(tt.path[1:], func(t *testing.T) {
					got, deadlines := writesPerResponse(t, ours, tt.path, oursL)
					theirs, _ := writesPerResponse(t, oracle, tt.path, oracleL)
					t.Logf("per response: writes: httpsrv %.2f, net/http %.2f; write deadline changes: httpsrv %.2f", got, theirs, deadlines)
					assert.LessOrEqual(t, got, tt.want)
					assert.LessOrEqual(t, got, theirs, "more writes than net/http")
					if floor == 0 {
						assert.LessOrEqual(t, deadlines, tt.deadlines, "write deadline changes")
					} else {
						assert.Zero(t, deadlines, "write deadline changes with the floor off")
					}
				})
			}
		})
	}
}

// BenchmarkHTTP1Sizes makes keep-alive GETs of the load-test suite's
// response sizes from httpsrv (with the response rate floor on, the
// default) and from net/http's server.
func BenchmarkHTTP1Sizes(b *testing.B) {
	ours, oracle, _, _ := startCountingServers(b, &Server{})
	for _, path := range []string{"/small", "/64k"} {
		req := []byte("GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n")
		for _, srv := range []struct{ name, addr string }{{"httpsrv", ours}, {"net-http", oracle}} {
			b.Run(path[1:]+"/"+srv.name, func(b *testing.B) {
				c := newBenchClient(b, srv.addr)
				for range 4 {
					if err := c.roundTrip(req); err != nil { // warm up
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				for b.Loop() {
					if err := c.roundTrip(req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestResponseFloorStallAfterFastStart checks the response floor's bound
// on a client that reads a large response fast, then stops: the
// handler's one large Write (timed by windows over TLS and plaintext TCP)
// fails within the time one piece of floorPiece bytes is allowed (two
// windows) once the kernel's buffers are full, whatever credit the fast
// start earned.
func TestResponseFloorStallAfterFastStart(t *testing.T) {
	const size, fast = 1 << 20, 512 << 10
	payload := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	for _, tlsOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("tls=%v", tlsOn), func(t *testing.T) {
			t.Parallel()
			type result struct {
				n   int
				err error
				at  time.Time
			}
			done := make(chan result, 1)
			srv := &Server{ErrorLog: discardLogger(), MinResponseRate: testFloor, MinRateGracePeriod: testGrace,
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					n, err := w.Write(payload)
					done <- result{n, err, time.Now()}
				})}
			var addr string
			if tlsOn {
				addr = startTLS(t, srv)
			} else {
				addr = startPlain(t, srv)
			}
			c := dialSmallWindow(t, addr, tlsOn)
			_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
			require.NoError(t, err)
			c.SetReadDeadline(time.Now().Add(testTimeout()))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			_, err = io.CopyN(io.Discard, resp.Body, fast)
			require.NoError(t, err)
			stopped := time.Now()
			var res result
			select {
			case res = <-done:
			case <-time.After(testTimeout()):
				t.Fatal("the handler's write did not fail: the stalled client was not cut")
			}
			t.Logf("handler: %d bytes, err %v, %v after the client stopped", res.n, res.err, res.at.Sub(stopped))
			require.Error(t, res.err)
			assert.Less(t, res.n, size)
			bound := testGrace + time.Duration(float64(floorPiece)/testFloor*float64(time.Second))
			assert.Less(t, res.at.Sub(stopped), bound+testTimeout()/5, "cut later than one piece's time after the kernel's buffers filled")
		})
	}
}
