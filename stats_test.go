package httpsrv

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// statsModes are the protocols the end-to-end Stats tests run over.
var statsModes = []struct {
	name string
	h2   bool
}{{"HTTP/1.1", false}, {"HTTP/2", true}}

// withRequests returns st with n requests of the protocol h2 says.
func withRequests(st Stats, h2 bool, n uint64) Stats {
	if h2 {
		st.RequestsHTTP2 = n
	} else {
		st.RequestsHTTP1 = n
	}
	return st
}

// recordStates makes rec record srv's connection states.
func recordStates(srv *Server) *stateRecorder {
	rec := newStateRecorder()
	srv.ConnState = rec.hook
	return rec
}

// allClosed is a waitFor condition: n connections were seen and each has
// ended (closed or hijacked).
func allClosed(n int) func([][]http.ConnState) bool {
	return func(all [][]http.ConnState) bool {
		if len(all) != n {
			return false
		}
		for _, states := range all {
			if last := states[len(states)-1]; last != http.StateClosed && last != http.StateHijacked {
				return false
			}
		}
		return true
	}
}

// TestStatsConnections follows one keep-alive connection through idle,
// active and closed, with the request, handshake and connection counters
// at each step.
func TestStatsConnections(t *testing.T) {
	for _, mode := range statsModes {
		t.Run(mode.name, func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/block" {
					entered <- struct{}{}
					<-release
				}
				io.WriteString(w, "ok")
			})}
			rec := recordStates(srv)
			addr := startTLS(t, srv)
			c := newClient(t, mode.h2)
			url := "https://" + addr

			assert.Equal(t, Stats{}, srv.Stats(), "before any connection")
			for range 3 {
				resp, err := c.Get(url + "/")
				require.NoError(t, err)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				require.Equal(t, mode.h2, resp.ProtoMajor == 2)
			}
			rec.waitFor(t, "the connection to be idle", lastStateIs(http.StateIdle))
			idle := Stats{ConnsAccepted: 1, ConnsOpen: 1, ConnsIdle: 1, Handshakes: 1}
			assert.Equal(t, withRequests(idle, mode.h2, 3), srv.Stats(), "idle")

			// The body is read to its end, so that the client keeps the
			// connection (getAsync's unread body may make it close).
			errc := make(chan error, 1)
			go func() {
				resp, err := c.Get(url + "/block")
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				errc <- err
			}()
			<-entered
			active := Stats{ConnsAccepted: 1, ConnsOpen: 1, ConnsActive: 1, Handshakes: 1}
			assert.Equal(t, withRequests(active, mode.h2, 4), srv.Stats(), "active")
			close(release)
			require.NoError(t, <-errc)
			rec.waitFor(t, "the connection to be idle again", lastStateIs(http.StateIdle))
			assert.Equal(t, withRequests(idle, mode.h2, 4), srv.Stats(), "idle again")

			c.Transport.(*http.Transport).CloseIdleConnections()
			rec.waitFor(t, "the connection to close", allClosed(1))
			closed := Stats{ConnsAccepted: 1, Handshakes: 1}
			assert.Equal(t, withRequests(closed, mode.h2, 4), srv.Stats(), "closed")
		})
	}
}

// TestStatsHijacked: a hijacked connection leaves the open connections
// and is counted in ConnsHijacked.
func TestStatsHijacked(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		c.Close()
	})}
	rec := recordStates(srv)
	addr := startTLS(t, srv)
	_, _, closed := roundTripRaw(t, addr, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
	assert.True(t, closed)
	rec.waitFor(t, "the hijack", allClosed(1))
	assert.Equal(t, Stats{ConnsAccepted: 1, ConnsHijacked: 1, Handshakes: 1, RequestsHTTP1: 1}, srv.Stats())
}

// TestStatsHandshakes counts successful and failed handshakes, and checks
// that Stats carries what HandshakeErrors returns.
func TestStatsHandshakes(t *testing.T) {
	// The good handshake runs under the same timeout as the silent
	// client: 1 s cut it on a loaded machine (a broken pipe at the
	// request). Parallel, so that the wait for the silent client's
	// timeout costs the suite nothing.
	t.Parallel()
	srv := &Server{TLSHandshakeTimeout: 3 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	rec := recordStates(srv)
	addr := startTLS(t, srv)

	// One good handshake and request.
	_, _, _ = roundTripRaw(t, addr, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
	// A client that goes away before its ClientHello: EOF.
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	nc.Close()
	// Plain HTTP to the TLS port: answered with 400.
	nc, err = net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	_, err = io.WriteString(nc, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
	require.NoError(t, err)
	nc.SetDeadline(time.Now().Add(testTimeout()))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	// A client that sends nothing: the handshake times out.
	silent, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { silent.Close() })

	rec.waitFor(t, "four connections to end", allClosed(4))
	want := HandshakeErrorCounts{EOF: 1, PlainHTTP: 1, Timeout: 1}
	st := srv.Stats()
	assert.Equal(t, Stats{ConnsAccepted: 4, Handshakes: 1, HandshakeErrors: want, RequestsHTTP1: 1}, st)
	assert.Equal(t, srv.HandshakeErrors(), st.HandshakeErrors)
}

// timeoutStats returns the timeout and rate-floor fields of st, the
// others zero.
func timeoutStats(st Stats) Stats {
	return Stats{
		TimeoutsHeader:        st.TimeoutsHeader,
		TimeoutsIdle:          st.TimeoutsIdle,
		TimeoutsRead:          st.TimeoutsRead,
		TimeoutsWrite:         st.TimeoutsWrite,
		RateFloorBodyCuts:     st.RateFloorBodyCuts,
		RateFloorResponseCuts: st.RateFloorResponseCuts,
	}
}

// statsBigWrites writes up to 64 MiB to w, and returns the first error.
func statsBigWrites(w http.ResponseWriter) error {
	chunk := make([]byte, 64<<10)
	for range 1024 {
		if _, err := w.Write(chunk); err != nil {
			return err
		}
	}
	return errors.New("64 MiB written to a client that does not read")
}

// TestStatsHTTP1Timeouts shows each HTTP/1 deadline counted once, in its
// own field, and the handler's own deadlines not counted.
func TestStatsHTTP1Timeouts(t *testing.T) {
	const short = 200 * time.Millisecond
	long := testTimeout()
	readBody := func(w http.ResponseWriter, r *http.Request) error {
		_, err := io.ReadAll(r.Body)
		return err
	}
	handlerRead := func(w http.ResponseWriter, r *http.Request) error {
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(short))
		return readBody(w, r)
	}
	write := func(w http.ResponseWriter, r *http.Request) error { return statsBigWrites(w) }
	handlerWrite := func(w http.ResponseWriter, r *http.Request) error {
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(short))
		return statsBigWrites(w)
	}
	// Every server keeps the handshake, head and idle timeouts long
	// unless the case is about them.
	base := func(s *Server) *Server {
		s.TLSHandshakeTimeout = long
		if s.ReadHeaderTimeout == 0 {
			s.ReadHeaderTimeout = long
		}
		if s.IdleTimeout == 0 {
			s.IdleTimeout = long
		}
		return s
	}
	const post = "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nx"
	const get = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
	tests := []struct {
		name    string
		srv     *Server
		handler func(http.ResponseWriter, *http.Request) error // reports the error it met; nil: none runs
		send    string                                         // what the client sends
		read    bool                                           // the client reads the response and waits for the close
		want    Stats
	}{{
		name: "header timeout, nothing sent",
		srv:  base(&Server{ReadHeaderTimeout: short}),
		want: Stats{TimeoutsHeader: 1},
	}, {
		name: "header timeout, part of a head",
		srv:  base(&Server{ReadHeaderTimeout: short}),
		send: "GET / HTTP/1.1\r\nHost: local",
		want: Stats{TimeoutsHeader: 1},
	}, {
		name: "idle timeout",
		srv:  base(&Server{IdleTimeout: short}),
		send: get,
		read: true,
		want: Stats{TimeoutsIdle: 1},
	}, {
		name:    "read timeout, floor off",
		srv:     base(&Server{ReadTimeout: short, MinRequestBodyRate: -1}),
		handler: readBody,
		send:    post,
		want:    Stats{TimeoutsRead: 1},
	}, {
		name:    "read timeout before the floor's",
		srv:     base(&Server{ReadTimeout: short}),
		handler: readBody,
		send:    post,
		want:    Stats{TimeoutsRead: 1},
	}, {
		name:    "body rate floor",
		srv:     base(&Server{MinRequestBodyRate: 1 << 20, MinRateGracePeriod: short}),
		handler: readBody,
		send:    post,
		want:    Stats{RateFloorBodyCuts: 1},
	}, {
		name:    "handler's read deadline",
		srv:     base(&Server{ReadTimeout: long}),
		handler: handlerRead,
		send:    post,
		want:    Stats{},
	}, {
		name:    "write timeout, floor off",
		srv:     base(&Server{WriteTimeout: short, MinResponseRate: -1}),
		handler: write,
		send:    get,
		want:    Stats{TimeoutsWrite: 1},
	}, {
		name:    "write timeout before the floor's",
		srv:     base(&Server{WriteTimeout: short}),
		handler: write,
		send:    get,
		want:    Stats{TimeoutsWrite: 1},
	}, {
		name:    "response rate floor",
		srv:     base(&Server{MinResponseRate: 1 << 20, MinRateGracePeriod: short}),
		handler: write,
		send:    get,
		want:    Stats{RateFloorResponseCuts: 1},
	}, {
		name:    "handler's write deadline",
		srv:     base(&Server{WriteTimeout: long}),
		handler: handlerWrite,
		send:    get,
		want:    Stats{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			results := make(chan error, 1)
			srv := tt.srv
			if tt.handler != nil {
				srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					results <- tt.handler(w, r)
				})
			}
			rec := recordStates(srv)
			addr := startTLS(t, srv)
			c := dialSmallWindow(t, addr, true)
			if tt.send != "" {
				_, err := io.WriteString(c, tt.send)
				require.NoError(t, err)
			}
			if tt.handler != nil {
				select {
				case err := <-results:
					require.Error(t, err)
					assert.True(t, isTimeout(err), "handler's error %v", err)
				case <-time.After(testTimeout()):
					t.Fatal("the handler did not report")
				}
			} else {
				c.SetReadDeadline(time.Now().Add(testTimeout()))
				br := bufio.NewReader(c)
				if tt.read {
					resp, err := http.ReadResponse(br, nil)
					require.NoError(t, err)
					io.Copy(io.Discard, resp.Body)
				}
				_, err := br.ReadByte()
				require.ErrorIs(t, err, io.EOF, "the server should close the connection")
				rec.waitFor(t, "the connection to close", allClosed(1))
			}
			assert.Equal(t, tt.want, timeoutStats(srv.Stats()))
		})
	}
}

// TestStatsHTTP2RateFloorCuts shows the HTTP/2 floors' cuts counted once
// per stream.
func TestStatsHTTP2RateFloorCuts(t *testing.T) {
	const grace = 200 * time.Millisecond
	tests := []struct {
		name    string
		method  string
		bodyLen int // -1: none
		handler func(http.ResponseWriter, *http.Request) error
		want    Stats
	}{{
		name:    "response",
		method:  http.MethodGet,
		bodyLen: -1,
		handler: func(w http.ResponseWriter, r *http.Request) error { return statsBigWrites(w) },
		want:    Stats{RateFloorResponseCuts: 1},
	}, {
		name:    "request body",
		method:  http.MethodPost,
		bodyLen: 10,
		handler: func(w http.ResponseWriter, r *http.Request) error {
			_, err := io.ReadAll(r.Body)
			return err
		},
		want: Stats{RateFloorBodyCuts: 1},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			results := make(chan error, 1)
			srv := &Server{
				MinRequestBodyRate: 1 << 20, MinResponseRate: 1 << 20, MinRateGracePeriod: grace,
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { results <- tt.handler(w, r) }),
			}
			addr := startTLS(t, srv)
			c := dialH2Floor(t, addr, 0) // no window: the response cannot be sent
			c.request(1, tt.method, "/", tt.bodyLen, 0)
			select {
			case err := <-results:
				require.Error(t, err)
			case <-time.After(testTimeout()):
				t.Fatal("the handler did not report")
			}
			st := srv.Stats()
			assert.Equal(t, tt.want, timeoutStats(st))
			assert.Equal(t, uint64(1), st.RequestsHTTP2)
		})
	}
}

// statsPanicHandler panics with the value the request's path names.
func statsPanicHandler(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/abort" {
		panic(http.ErrAbortHandler)
	}
	panic("stats test panic")
}

// TestStatsPanics counts handler panics on both protocols, apart from
// http.ErrAbortHandler, and checks that they are logged as before: the
// line the engine always wrote (net/http's for HTTP/1, the HTTP/2
// server's for HTTP/2) with the handler's frames in its stack, and
// nothing for an abort.
func TestStatsPanics(t *testing.T) {
	for _, mode := range statsModes {
		t.Run(mode.name, func(t *testing.T) {
			lines := make(chan string, 10)
			srv := &Server{
				Handler:  http.HandlerFunc(statsPanicHandler),
				ErrorLog: log.New(chanWriter(lines), "", 0),
			}
			addr := startTLS(t, srv)
			c := newClient(t, mode.h2)

			_, err := c.Get("https://" + addr + "/abort")
			require.Error(t, err)
			assert.Equal(t, Stats{HandlerAborts: 1}, panicStats(srv.Stats()))

			_, err = c.Get("https://" + addr + "/panic")
			require.Error(t, err)
			assert.Equal(t, Stats{PanicsRecovered: 1, HandlerAborts: 1}, panicStats(srv.Stats()))

			prefix := "http: panic serving "
			if mode.h2 {
				prefix = "http2: panic serving "
			}
			select {
			case line := <-lines:
				assert.True(t, strings.HasPrefix(line, prefix), "log line %q", line)
				assert.Contains(t, line, ": stats test panic\n")
				assert.Contains(t, line, "statsPanicHandler")
			case <-time.After(testTimeout()):
				t.Fatal("the panic was not logged")
			}
			assert.Empty(t, lines, "more than one line logged: the abort is logged")
		})
	}
}

// panicStats returns the panic fields of st, the others zero.
func panicStats(st Stats) Stats {
	return Stats{PanicsRecovered: st.PanicsRecovered, HandlerAborts: st.HandlerAborts}
}

// chanWriter sends each write, a log line, on a channel.
type chanWriter chan string

func (w chanWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

// TestStatsTLSNextProto counts the requests of a TLSNextProto function's
// server in RequestsOther, and a panic of the function itself.
func TestStatsTLSNextProto(t *testing.T) {
	lines := make(chan string, 10)
	srv := &Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		TLSConfig: &tls.Config{NextProtos: []string{"stats-other", "stats-panic"}},
		ErrorLog:  log.New(chanWriter(lines), "", 0),
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){
			"stats-other": func(_ *http.Server, _ *tls.Conn, h http.Handler) {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
			},
			"stats-panic": func(*http.Server, *tls.Conn, http.Handler) { panic("stats-panic") },
		},
	}
	rec := recordStates(srv)
	addr := startTLS(t, srv)
	for _, proto := range []string{"stats-other", "stats-panic"} {
		c := dialTLS(t, addr, proto)
		require.Equal(t, proto, c.ConnectionState().NegotiatedProtocol)
		c.SetReadDeadline(time.Now().Add(testTimeout()))
		_, err := c.Read(make([]byte, 1))
		require.Error(t, err, "the server should close the connection")
	}
	rec.waitFor(t, "both connections to end", allClosed(2))
	assert.Equal(t, Stats{ConnsAccepted: 2, Handshakes: 2, RequestsOther: 1, PanicsRecovered: 1}, srv.Stats())
	select {
	case line := <-lines:
		assert.Contains(t, line, "http: panic serving ")
	case <-time.After(testTimeout()):
		t.Fatal("the panic was not logged")
	}
}

// TestStatsConcurrent calls Stats while HTTP/1 and HTTP/2 clients make
// requests (run it with -race), and checks that each snapshot is
// consistent and that the counters only grow.
func TestStatsConcurrent(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	addr := startTLS(t, srv)
	const clients, requests = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, clients*requests)
	for i := range clients {
		c := newClient(t, i%2 == 1)
		wg.Go(func() {
			for range requests {
				resp, err := c.Get("https://" + addr + "/")
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	done := make(chan struct{})
	problems := make(chan string, 100)
	scraped := make(chan int)
	go func() {
		var prev Stats
		n := 0
		defer func() { scraped <- n }()
		for {
			st := srv.Stats()
			n++
			if st.ConnsActive+st.ConnsIdle > st.ConnsOpen || st.ConnsOpen > st.ConnsAccepted {
				problems <- fmt.Sprintf("inconsistent connection counts: %+v", st)
			}
			if st.RequestsHTTP1 < prev.RequestsHTTP1 || st.RequestsHTTP2 < prev.RequestsHTTP2 ||
				st.ConnsAccepted < prev.ConnsAccepted || st.Handshakes < prev.Handshakes {
				problems <- fmt.Sprintf("a counter went down: %+v after %+v", st, prev)
			}
			prev = st
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	wg.Wait()
	close(done)
	assert.Positive(t, <-scraped)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	close(problems)
	for p := range problems {
		t.Error(p)
	}
	st := srv.Stats()
	assert.Equal(t, uint64(clients/2*requests), st.RequestsHTTP1)
	assert.Equal(t, uint64(clients/2*requests), st.RequestsHTTP2)
	assert.Equal(t, uint64(clients), st.ConnsAccepted)
	assert.Equal(t, uint64(clients), st.Handshakes)
}

// BenchmarkServerStats measures Stats with n connections open, which it
// looks at one by one.
func BenchmarkServerStats(b *testing.B) {
	for _, n := range []int{0, 1000, 10000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			srv := &Server{}
			for i := range n {
				c := srv.newConn(nil)
				c.setState(http.StateNew, skipHooks)
				c.setState([]http.ConnState{http.StateActive, http.StateIdle}[i%2], skipHooks)
			}
			b.ReportAllocs()
			for b.Loop() {
				srv.Stats()
			}
		})
	}
}
