package httpsrv

// Tests of the connection loop between requests and of the background
// read (http1.go, connReader): what an idle connection holds, and which
// handlers get a background read.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHTTP1IdleConnHoldsNoBuffers checks that a connection waiting for its
// next request has given its reader, writer and response buffer back to
// their pools, and waits with its own read: no background read, so one
// goroutine per idle connection, as in net/http (issue 9). Not parallel:
// it sets a package hook.
func TestHTTP1IdleConnHoldsNoBuffers(t *testing.T) {
	tests := []struct {
		name string
		req  string
	}{
		{"GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"POST read", "POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"},
		{"POST unread", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"},
		{"POST after CRLF", "POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idle := make(chan *h1conn, 4)
			SetTestHookIdleRead(t, func(h *h1conn) { idle <- h })
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/read" {
					io.Copy(io.Discard, r.Body)
				}
				io.WriteString(w, "ok")
			})
			addr := startTLS(t, &Server{Handler: h})
			c := dialTLS(t, addr, "http/1.1")
			br := bufio.NewReader(c)
			// The wait for the first request, then for the next ones.
			for i := range 3 {
				if i > 0 {
					_, err := io.WriteString(c, tt.req)
					require.NoError(t, err)
					_, body, err := readOne(br, "POST")
					require.NoError(t, err)
					require.Equal(t, "ok", body, "request %d", i)
				}
				var hc *h1conn
				select {
				case hc = <-idle:
				case <-t.Context().Done():
					t.Fatal("no idle read")
				}
				// The owner set these before its idle read started,
				// and changes them only after it ends, under cr.mu.
				hc.cr.mu.Lock()
				waiting, bg := hc.cr.idle && hc.cr.inRead, hc.cr.bgRead
				held := []bool{hc.bufr != nil, hc.bufw != nil, hc.respBuf != nil}
				hc.cr.mu.Unlock()
				assert.True(t, waiting, "not in the idle read")
				assert.False(t, bg, "a background read is under way")
				assert.Equal(t, []bool{false, false, false}, held, "reader, writer, response buffer held")
			}
		})
	}
}

// TestHTTP1ClientGoneWatchers checks that every way a handler can watch for
// the client going away sees it, on both servers: the background read
// starts when the handler first looks (Done, Err, CloseNotify, and what
// calls them: derived contexts, AfterFunc), also when it looked before
// reading the body to its end.
func TestHTTP1ClientGoneWatchers(t *testing.T) {
	t.Parallel()
	type key struct{}
	tests := []struct {
		name  string
		post  bool
		watch func(w http.ResponseWriter, r *http.Request) <-chan struct{} // closed once the client has gone
	}{
		{name: "Done", watch: func(w http.ResponseWriter, r *http.Request) <-chan struct{} {
			return r.Context().Done()
		}},
		{name: "Err then Done", watch: func(w http.ResponseWriter, r *http.Request) <-chan struct{} {
			if r.Context().Err() != nil {
				return nil
			}
			return r.Context().Done()
		}},
		{name: "WithCancel", watch: func(w http.ResponseWriter, r *http.Request) <-chan struct{} {
			ctx, cancel := context.WithCancel(r.Context())
			context.AfterFunc(ctx, cancel)
			return ctx.Done()
		}},
		{name: "WithValue", watch: func(w http.ResponseWriter, r *http.Request) <-chan struct{} {
			return r.WithContext(context.WithValue(r.Context(), key{}, 1)).Context().Done()
		}},
		{name: "AfterFunc", watch: func(w http.ResponseWriter, r *http.Request) <-chan struct{} {
			gone := make(chan struct{})
			context.AfterFunc(r.Context(), func() { close(gone) })
			return gone
		}},
		{name: "CloseNotify", watch: func(w http.ResponseWriter, r *http.Request) <-chan struct{} {
			gone := make(chan struct{})
			//lint:ignore SA1019 testing the deprecated API.
			ch := w.(http.CloseNotifier).CloseNotify()
			go func() {
				<-ch
				close(gone)
			}()
			return gone
		}},
		{name: "Done before the body", post: true, watch: func(w http.ResponseWriter, r *http.Request) <-chan struct{} {
			done := r.Context().Done()
			if b, err := io.ReadAll(r.Body); err != nil || string(b) != "abc" {
				return nil
			}
			return done
		}},
	}
	for _, tt := range tests {
		for _, oracle := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/oracle=%v", tt.name, oracle), func(t *testing.T) {
				t.Parallel()
				started := make(chan struct{}, 1)
				result := make(chan error, 1)
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					gone := tt.watch(w, r)
					if gone == nil {
						result <- fmt.Errorf("the request went wrong")
						return
					}
					started <- struct{}{}
					select {
					case <-gone:
						result <- nil
					case <-t.Context().Done():
						result <- fmt.Errorf("the client's close was not seen")
					}
				})
				p := startPair(t, h, nil)
				addr := p.ours
				if oracle {
					addr = p.oracle
				}
				c := dialTLS(t, addr, "http/1.1")
				req := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
				if tt.post {
					req = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
				}
				_, err := io.WriteString(c, req)
				require.NoError(t, err)
				waitChan(t, started)
				c.Close()
				assert.NoError(t, waitResult(t, result))
			})
		}
	}
}

// TestHTTP1UnwatchedHandlerNoBackgroundRead checks that a handler that
// never looks at its request context runs with no background read, and
// that a pipelined request is still served after it.
func TestHTTP1UnwatchedHandlerNoBackgroundRead(t *testing.T) {
	t.Parallel()
	var srv *Server
	bgSeen := make(chan bool, 2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.mu.Lock()
		for c := range srv.activeConn {
			if hc := c.h1.Load(); hc != nil {
				hc.cr.mu.Lock()
				bgSeen <- hc.cr.bgRead
				hc.cr.mu.Unlock()
			}
		}
		srv.mu.Unlock()
		io.WriteString(w, "ok")
	})
	srv = &Server{Handler: h}
	addr := startTLS(t, srv)
	c := dialTLS(t, addr, "http/1.1")
	_, err := io.WriteString(c, strings.Repeat("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 2))
	require.NoError(t, err)
	br := bufio.NewReader(c)
	for range 2 {
		_, body, err := readOne(br, "GET")
		require.NoError(t, err)
		assert.Equal(t, "ok", body)
		assert.False(t, <-bgSeen, "a background read ran for a handler that does not watch")
	}
}

// TestHTTP1WriteErrorCancelsContext checks that a failed response write
// cancels the request context, on both servers, for a handler that had
// not looked at it before (so no background read ran): the connection's
// failure reaches the request in progress (cancelConn).
func TestHTTP1WriteErrorCancelsContext(t *testing.T) {
	t.Parallel()
	for _, oracle := range []bool{false, true} {
		t.Run(fmt.Sprintf("oracle=%v", oracle), func(t *testing.T) {
			t.Parallel()
			started := make(chan struct{}, 1)
			closed := make(chan struct{})
			result := make(chan error, 1)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				started <- struct{}{}
				<-closed
				chunk := []byte(strings.Repeat("x", 16<<10))
				for {
					if _, err := w.Write(chunk); err != nil {
						break
					}
					if err := http.NewResponseController(w).Flush(); err != nil {
						break
					}
				}
				result <- context.Cause(r.Context())
			})
			closeMidRequest(t, startPair(t, h, nil), oracle, started, closed, result)
		})
	}
}

// closeMidRequest sends a GET to p's server (net/http's when oracle is
// set), closes the connection once the handler has signalled started,
// then closes closed, and checks that the handler reports its request
// context cancelled on result.
func closeMidRequest(t *testing.T, p pair, oracle bool, started <-chan struct{}, closed chan struct{}, result <-chan error) {
	t.Helper()
	addr := p.ours
	if oracle {
		addr = p.oracle
	}
	c := dialTLS(t, addr, "http/1.1")
	_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	waitChan(t, started)
	c.Close()
	close(closed)
	assert.ErrorIs(t, waitResult(t, result), context.Canceled)
}
