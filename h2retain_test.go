//go:build linux

package httpsrv

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
)

// TestHTTP2ClosedConnReleasedAfterIdleTimeout: an HTTP/2 connection that
// ends while a stream is open becomes garbage once IdleTimeout has passed
// after it closed, not sooner. Found by TestSoak, whose live heap after a
// 3-minute soak was 12 MiB above the baseline (8.5 MiB for 300 such
// connections, 28 KiB each; nothing with IdleTimeout -1, nor with
// net/http's zero http.Server, which has no idle timeout).
//
// The cause is in x/net's serverConn.serve (and in net/http's bundled
// HTTP/2 server, Go 1.26 and 1.27): its deferred idleTimer.Stop runs
// before the deferred closeAllStreamsOnConnClose, whose closeStream of the
// last stream re-arms the idle timer (sc.idleTimer.Reset(IdleTimeout)), so
// the timer keeps the serverConn, its framer, HPACK tables and the
// *tls.Conn with its buffers reachable for IdleTimeout after the
// connection closed: 2 minutes at httpsrv's default. httpsrv has no handle
// on the timer; the README lists it under the known limitations. This test
// pins the bound (IdleTimeout), and keeps passing once x/net releases the
// connection at once.
func TestHTTP2ClosedConnReleasedAfterIdleTimeout(t *testing.T) {
	const n = 10
	var released, closed atomic.Int64
	srv := &Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			_ = http.NewResponseController(w).Flush()
			<-r.Context().Done() // the stream stays open until the connection ends
		}),
		ErrorLog:    discardLogger(),
		IdleTimeout: time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			tc, ok := c.(*tls.Conn) // as in net/http, under ServeTLS
			if !ok {
				panic(fmt.Sprintf("ConnContext got a %T", c))
			}
			runtime.AddCleanup(tc, func(r *atomic.Int64) { r.Add(1) }, &released)
			return ctx
		},
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed {
				closed.Add(1)
			}
		},
	}
	addr := startTLS(t, srv)
	_, pool := testCertificate(t)
	r := &soakRun{addr: addr, tls: &tls.Config{RootCAs: pool, ServerName: "localhost"}}
	for range n {
		_, tcp, fr, err := r.h2Open(nil)
		require.NoError(t, err)
		require.NoError(t, soakH2Headers(fr, 1, "GET", "/", true))
		require.NoError(t, tcp.SetReadDeadline(time.Now().Add(testTimeout())))
		for {
			f, err := fr.ReadFrame()
			require.NoError(t, err)
			if h, ok := f.(*http2.HeadersFrame); ok && h.StreamID == 1 {
				break // the handler is running: the stream is open
			}
		}
		tcp.Close()
	}

	deadline := time.Now().Add(srv.IdleTimeout + testTimeout())
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for closed.Load() < n || released.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d HTTP/2 connections closed by the server, %d of them garbage-collected within IdleTimeout (%v) and %v",
				closed.Load(), n, released.Load(), srv.IdleTimeout, testTimeout())
		}
		runtime.GC()
		<-tick.C
	}
}
