package httpsrv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// closingServer is one of the servers TestUnreadBodyOnClose runs each case
// against: ours or net/http's.
type closingServer struct {
	name     string
	start    func(t *testing.T, h http.Handler) string
	shutdown func(ctx context.Context) error
	onStart  func(func())
	noKA     func()
}

// startShutdown starts a graceful shutdown and returns once it has
// started.
func (s closingServer) startShutdown() {
	started := make(chan struct{})
	s.onStart(func() { close(started) })
	go s.shutdown(context.Background())
	<-started
}

// TestUnreadBodyOnClose checks the unread-body policy on every path that
// closes the connection after a response while the client is still
// sending a body the handler never read: the whole response must reach
// the client, not be cut by a reset because of the unread bytes. The
// client sends half its 200 KiB body, reads the response head, then sends
// the other half, and reads the 1 MiB response to its end. net/http, run
// beside ours, delivers the response whole when the handler asks to close
// (it drains the body then), but resets the connection under it on other
// paths (an HTTP/1.0 request, a request's Connection: close), or waits for
// the body before the head (a GET with a body, a 413) so that this client
// never gets an answer: those cases run on ours only.
func TestUnreadBodyOnClose(t *testing.T) {
	const (
		bodySize = 200 << 10
		respSize = 1 << 20
	)
	payload := bytes.Repeat([]byte("r"), respSize)
	cases := []struct {
		name string
		// head is the request head; the body follows.
		head string
		// handler answers without reading the body; act, if set, runs
		// first with the server's shutdown and keep-alive switches.
		status int
		header string
		act    func(s closingServer)
		// oracle runs the case on net/http's server too.
		oracle bool
		// readSome reads 10 bytes of the body through an
		// http.MaxBytesReader, which then refuses the rest.
		readSome bool
	}{
		{name: "handler Connection: close", status: http.StatusForbidden, header: "close", oracle: true,
			head: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"},
		{name: "keep-alives off", status: http.StatusOK,
			head: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
			act:  func(s closingServer) { s.noKA() }},
		{name: "shutdown started", status: http.StatusOK,
			head: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
			act:  func(s closingServer) { s.startShutdown() }},
		{name: "HTTP/1.0", status: http.StatusOK,
			head: "POST / HTTP/1.0\r\nHost: x\r\nContent-Length: %d\r\n\r\n"},
		{name: "request Connection: close", status: http.StatusOK,
			head: "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"},
		{name: "stricter framing: GET with a body", status: http.StatusOK,
			head: "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"},
		{name: "413 after a partial read", status: http.StatusRequestEntityTooLarge, readSome: true,
			head: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, s := range closingServers() {
				t.Run(s.name, func(t *testing.T) {
					if s.name != "httpsrv" && !tc.oracle {
						t.Skip("net/http does not deliver this response whole")
					}
					h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if tc.act != nil {
							tc.act(s)
						}
						if tc.readSome {
							io.ReadAll(http.MaxBytesReader(w, r.Body, 10))
						}
						if tc.header != "" {
							w.Header().Set("Connection", tc.header)
						}
						w.Header().Set("Content-Length", fmt.Sprint(respSize))
						w.WriteHeader(tc.status)
						w.Write(payload)
					})
					addr := s.start(t, h)
					c := dialTLS(t, addr, "http/1.1")
					c.SetDeadline(time.Now().Add(testTimeout()))
					half := bytes.Repeat([]byte("b"), bodySize/2)
					_, err := fmt.Fprintf(c, tc.head, bodySize)
					require.NoError(t, err)
					_, err = c.Write(half)
					require.NoError(t, err)

					br := bufio.NewReader(c)
					resp, err := http.ReadResponse(br, nil)
					require.NoError(t, err)
					assert.Equal(t, tc.status, resp.StatusCode)
					sent := make(chan error, 1)
					go func() {
						_, err := c.Write(half)
						sent <- err
					}()
					n, err := io.Copy(io.Discard, resp.Body)
					assert.NoError(t, err, "the response was cut after %d bytes", n)
					assert.Equal(t, int64(respSize), n)
					assert.True(t, resp.Close, "the connection must close after the response")
					<-sent
				})
			}
		})
	}
}

// closingServers returns our server and net/http's, each started by its
// start function with a handler, and switched by shutdown and noKA.
func closingServers() []closingServer {
	var ours Server
	var oracle http.Server
	return []closingServer{
		{
			name: "httpsrv",
			start: func(t *testing.T, h http.Handler) string {
				ours.Handler = h
				return startTLS(t, &ours)
			},
			shutdown: ours.Shutdown,
			onStart:  ours.RegisterOnShutdown,
			noKA:     func() { ours.SetKeepAlivesEnabled(false) },
		},
		{
			name: "net/http",
			start: func(t *testing.T, h http.Handler) string {
				oracle.Handler = h
				oracle.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
				return startNetHTTPWaiting(t, &oracle)
			},
			shutdown: oracle.Shutdown,
			onStart:  oracle.RegisterOnShutdown,
			noKA:     func() { oracle.SetKeepAlivesEnabled(false) },
		},
	}
}

// TestLateResponseWriterCalls checks that a goroutine the handler started
// can call every ResponseWriter method after the handler returned: each
// fails with an error or does nothing, and nothing reaches the next
// request's response (run with -race).
func TestLateResponseWriterCalls(t *testing.T) {
	const requests = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	var succeeded []string
	check := func(what string, err error) {
		if err == nil {
			mu.Lock()
			succeeded = append(succeeded, what)
			mu.Unlock()
		}
	}
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-r.Context().Done() // cancelled when the handler returns
			for range 50 {
				_, err := w.Write([]byte("LATE"))
				check("Write", err)
				check("Flush", rc.Flush())
				_, err = io.WriteString(w, "LATE")
				check("WriteString", err)
				w.WriteHeader(http.StatusTeapot)
				w.(http.Flusher).Flush()
				_, err = w.(io.ReaderFrom).ReadFrom(strings.NewReader("LATE"))
				check("ReadFrom", err)
				check("SetWriteDeadline", rc.SetWriteDeadline(time.Now().Add(time.Hour)))
				check("SetReadDeadline", rc.SetReadDeadline(time.Now().Add(time.Hour)))
			}
		}()
		io.WriteString(w, "on time "+r.URL.Path)
	})}
	srv.ErrorLog, _ = newTestLogger()
	addr := startTLS(t, srv)
	c := newClient(t, false)
	for i := range requests {
		resp, err := c.Get(fmt.Sprintf("https://%s/%d", addr, i))
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("on time /%d", i), string(b))
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	}
	wg.Wait()
	assert.Empty(t, succeeded, "late calls succeeded")
}

// TestMaxBytesReaderClosesConnection checks that a handler that answers
// 413 after http.MaxBytesReader stopped reading gets "Connection: close"
// and a closed connection, as under net/http, and that a 413 written after
// the whole body was read keeps the connection.
func TestMaxBytesReaderClosesConnection(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/unread" {
			http.Error(w, "refused unread", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 10)
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "fits, still refused", http.StatusRequestEntityTooLarge)
	})
	p := startPair(t, h, nil)
	for _, tc := range []struct {
		name      string
		path      string
		body      string
		wantClose bool
	}{
		{"over the limit", "/", strings.Repeat("x", 4000), true},
		{"within the limit", "/", "short", false},
		// Not a MaxBytesReader: net/http discards the body and keeps
		// the connection.
		{"413 without reading", "/unread", "short", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", tc.path, len(tc.body), tc.body)
			res := p.compare(t, raw)
			require.Len(t, res.Responses, 1)
			assert.Equal(t, "HTTP/1.1 413 Request Entity Too Large", res.Responses[0].Status)
			assert.Equal(t, tc.wantClose, res.Closed)
			assert.Equal(t, tc.wantClose, res.Responses[0].Close)
		})
	}
}

// TestHTTP10KeepAliveClaim checks the README's HTTP/1.0 keep-alive row: a
// close known as the head goes out (shutdown started) is not contradicted
// by "Connection: keep-alive", while a close decided after the head was
// sent still closes a connection the head called keep-alive.
func TestHTTP10KeepAliveClaim(t *testing.T) {
	for _, tc := range []struct {
		name          string
		shutdownFirst bool
		wantHeader    string
	}{
		{"shutdown before the head", true, ""},
		{"shutdown after the head", false, "keep-alive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var srv Server
			s := closingServer{shutdown: srv.Shutdown, onStart: srv.RegisterOnShutdown}
			srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "2")
				if tc.shutdownFirst {
					s.startShutdown()
				}
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
				if !tc.shutdownFirst {
					s.startShutdown()
				}
				io.WriteString(w, "ok")
			})
			addr := startTLS(t, &srv)
			resp, body, closed := roundTripRaw(t, addr, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
			assert.Equal(t, "ok", body)
			assert.Equal(t, tc.wantHeader, resp.Header.Get("Connection"))
			assert.True(t, closed, "the connection must close")
		})
	}
}
