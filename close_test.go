package httpsrv

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
)

// closeSlack is how long Close, or Shutdown past its context, may take to
// close connections whose peers do not read. Before they bounded their
// closes, each such connection held them up for crypto/tls's 5 s
// close_notify limit, one after another.
const closeSlack = 500 * time.Millisecond

// dialStuckPeer opens a TLS connection to addr offering proto, with a
// small receive buffer, which the test then never reads; closed at
// cleanup.
func dialStuckPeer(t testing.TB, addr, proto string) *tls.Conn {
	t.Helper()
	_, pool := testCertificate(t)
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: testTimeout(), Control: smallWindowControl},
		Config:    &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{proto}},
	}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c.(*tls.Conn)
}

// fillSendBuffer fills the kernel's send buffer of the server's end of a
// connection whose peer does not read, so that any further write, a TLS
// close_notify included, blocks. It writes under the TLS layer, as the
// peer will never look at the bytes: the state is that of a server whose
// last response the client stopped reading, without depending on where
// the response's last write left the kernel's buffers. Each chunk size is
// written until a write times out, then a size four times smaller, down
// to one byte: a small write may still fit in the last queued segment
// after a large one no longer does, and each step leaves room for a few
// writes of the next size at most.
func fillSendBuffer(serverSide net.Conn) error {
	raw := serverSide.(*tls.Conn).NetConn()
	defer raw.SetWriteDeadline(time.Time{})
	buf := make([]byte, 64<<10)
	for size := 64 << 10; size > 0; size /= 4 {
		wait := 20 * time.Millisecond
		if size == 1 {
			wait = 50 * time.Millisecond
		}
		for {
			raw.SetWriteDeadline(time.Now().Add(wait))
			if _, err := raw.Write(buf[:size]); err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					return err
				}
				break
			}
		}
	}
	return nil
}

// serverConns returns the server's ends of the connections rec has seen,
// in order of arrival.
func (r *stateRecorder) serverConns() []net.Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]net.Conn(nil), r.order...)
}

// allReach returns a waitFor condition: n connections have been seen and
// each has been in state s.
func allReach(n int, s http.ConnState) func([][]http.ConnState) bool {
	return func(all [][]http.ConnState) bool {
		if len(all) != n {
			return false
		}
		for _, states := range all {
			found := false
			for _, st := range states {
				found = found || st == s
			}
			if !found {
				return false
			}
		}
		return true
	}
}

// TestCloseStuckPeers checks that Close, and Shutdown once its context
// ends, close connections whose peers stopped reading promptly: a TLS
// close_notify that cannot be sent holds them up neither per connection
// nor while the server's lock is held. Every connection must then reach
// StateClosed.
func TestCloseStuckPeers(t *testing.T) {
	const n = 4
	type serverSide int
	const (
		idle      serverSide = iota // HTTP/1 connections idle after a response
		waiting                     // handlers waiting after a flushed header
		writing                     // handlers writing an endless body
		h2Started                   // HTTP/2 connections, no request
	)
	shutdownCtx := func(t *testing.T, srv *Server) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		err := srv.Shutdown(ctx)
		took := time.Since(start)
		t.Logf("Shutdown returned %v after %v", err, took)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, took, time.Second+closeSlack, "Shutdown overran its context")
	}
	closeNow := func(t *testing.T, srv *Server) {
		start := time.Now()
		require.NoError(t, srv.Close())
		took := time.Since(start)
		t.Logf("Close took %v", took)
		assert.Less(t, took, closeSlack, "Close took too long")
	}
	closeDuringShutdown := func(t *testing.T, srv *Server) {
		// Close, called while Shutdown is closing the idle connections,
		// needs the server's lock.
		started := make(chan struct{})
		srv.RegisterOnShutdown(func() { close(started) })
		shutdownErr := make(chan error, 1)
		go func() { shutdownErr <- srv.Shutdown(context.Background()) }()
		<-started
		start := time.Now()
		require.NoError(t, srv.Close())
		assert.Less(t, time.Since(start), closeSlack, "Close took too long")
		select {
		case err := <-shutdownErr:
			took := time.Since(start)
			t.Logf("Shutdown returned %v %v after Close started", err, took)
			assert.NoError(t, err)
			assert.Less(t, took, closeSlack, "Shutdown did not return after Close")
		case <-time.After(testTimeout()):
			t.Fatal("Shutdown did not return after Close")
		}
	}
	cases := []struct {
		name string
		side serverSide
		stop func(*testing.T, *Server)
	}{
		{"Shutdown/idle", idle, shutdownCtx},
		{"Close/idle", idle, closeNow},
		{"Close/handler waiting", waiting, closeNow},
		{"Close/handler writing", writing, closeNow},
		{"Close/HTTP2", h2Started, closeNow},
		{"Close during Shutdown/idle", idle, closeDuringShutdown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := newStateRecorder()
			inHandler := make(chan struct{}, n)
			srv := &Server{
				ConnState: rec.hook,
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					switch tc.side {
					case waiting:
						w.WriteHeader(http.StatusOK)
						http.NewResponseController(w).Flush()
						inHandler <- struct{}{}
						<-r.Context().Done()
					case writing:
						inHandler <- struct{}{}
						chunk := make([]byte, 64<<10)
						for {
							if _, err := w.Write(chunk); err != nil {
								return
							}
						}
					default:
						io.WriteString(w, "ok")
					}
				}),
				// No rate floor: it would end the writing handlers itself.
				MinResponseRate: -1,
			}
			addr := startTLS(t, srv)
			// Registered after startTLS's, so run before the server is
			// closed: with the connections closed, their goroutines
			// have ended, for goleak.
			t.Cleanup(func() {
				rec.waitFor(t, "every connection closed", allReach(n, http.StateClosed))
			})

			proto := "http/1.1"
			if tc.side == h2Started {
				proto = "h2"
			}
			for range n {
				c := dialStuckPeer(t, addr, proto)
				c.SetDeadline(time.Now().Add(testTimeout()))
				if tc.side == h2Started {
					_, err := io.WriteString(c, http2.ClientPreface)
					require.NoError(t, err)
					fr := http2.NewFramer(c, c)
					require.NoError(t, fr.WriteSettings())
					// Read what the server sends at the start, up to
					// its acknowledgment of our settings, so that it
					// has no frame left to write when the test starts
					// writing under it.
					for {
						f, err := fr.ReadFrame()
						require.NoError(t, err)
						if sf, ok := f.(*http2.SettingsFrame); ok && sf.IsAck() {
							break
						}
					}
				} else {
					_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
					require.NoError(t, err)
				}
			}
			switch tc.side {
			case idle:
				rec.waitFor(t, "idle connections", allReach(n, http.StateIdle))
			case h2Started:
				// x/net reports a state once it has read the preface.
				rec.waitFor(t, "HTTP/2 connections", allReach(n, http.StateActive))
			default:
				for range n {
					select {
					case <-inHandler:
					case <-time.After(testTimeout()):
						t.Fatal("handler not called")
					}
				}
			}
			if tc.side != writing {
				var wg sync.WaitGroup
				errs := make(chan error, n)
				for _, sc := range rec.serverConns() {
					wg.Go(func() { errs <- fillSendBuffer(sc) })
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					require.NoError(t, err)
				}
			}
			tc.stop(t, srv)
			rec.waitFor(t, "every connection closed", allReach(n, http.StateClosed))
		})
	}
}

// TestCloseNotifyToReadingPeers checks that Close and Shutdown still send
// a TLS close_notify alert to a peer that reads, before closing its
// connection. The client speaks TLS 1.2, where the alert's record type is
// not encrypted.
func TestCloseNotifyToReadingPeers(t *testing.T) {
	cases := []struct {
		name string
		stop func(*Server) error
	}{
		{"Shutdown", func(srv *Server) error { return srv.Shutdown(context.Background()) }},
		{"Close", func(srv *Server) error { return srv.Close() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := newStateRecorder()
			srv := &Server{ConnState: rec.hook, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "ok")
			})}
			addr := startTLS(t, srv)
			_, pool := testCertificate(t)
			c, err := tls.Dial("tcp", addr, &tls.Config{
				RootCAs: pool, ServerName: "localhost", NextProtos: []string{"http/1.1"},
				MaxVersion: tls.VersionTLS12,
			})
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			c.SetDeadline(time.Now().Add(testTimeout()))
			_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
			require.NoError(t, err)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			resp.Body.Close()
			rec.waitFor(t, "idle connection", lastStateIs(http.StateIdle))

			require.NoError(t, tc.stop(srv))
			rest, err := io.ReadAll(c.NetConn())
			require.NoError(t, err)
			require.NotEmpty(t, rest, "no close_notify")
			assert.Equal(t, byte(21), rest[0], "not an alert record")
			rec.waitFor(t, "connection closed", lastStateIs(http.StateClosed))
		})
	}
}
