package httpsrv

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wireResponse is one response as read off the wire, Date removed.
type wireResponse struct {
	Status  string // "HTTP/1.1 200 OK"
	Close   bool   // the response said Connection: close (ReadResponse removes the field)
	Header  http.Header
	Body    string
	BodyErr string
	Trailer http.Header
}

// wireResult is what a raw exchange gave: the responses, and whether the
// server closed the connection after them.
type wireResult struct {
	Responses []wireResponse
	Closed    bool
}

// oracleIsGo126 says whether the oracle is Go 1.26's net/http, whose
// behaviour httpsrv mirrors (nethttp-behaviour.md). Newer releases changed
// a few answers; the tests that meet them say so.
var oracleIsGo126 = strings.HasPrefix(runtime.Version(), "go1.26")

// How an exchange ends the bytes it sends. The client cannot tell a server
// that keeps the connection open and waits for the next request from one
// that is about to close it, so each exchange ends with a signal instead of
// a spell of silence.
type streamEnd int

const (
	// endProbe sends probeRequest right after the raw bytes. A server that
	// kept the connection open answers it (the probe handler startPair
	// installs marks the answer with probeHeader); one that closed it
	// after the raw requests never reads it.
	endProbe streamEnd = iota
	// endHalfClose closes the write side (a TLS close_notify): the stream
	// ends at EOF, for raw bytes that stop mid-request.
	endHalfClose
	// endNone sends nothing more: the server must answer and close the
	// connection on its own, as it must for a request line it rejects.
	endNone
)

const (
	probePath   = "/__probe"
	probeHeader = "X-Httpsrv-Probe"
	// probeRequest asks for the connection to close after its answer,
	// so that no connection is left idle.
	probeRequest = "GET " + probePath + " HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"
)

// withProbe serves probeRequest itself and everything else with h.
func withProbe(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == probePath {
			w.Header().Set(probeHeader, "1")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// exchange sends raw over a new TLS connection to addr, then the probe,
// and reads every response until the probe's or until the server closes
// the connection. The server must be one startPair started.
func exchange(t testing.TB, addr, raw string) wireResult {
	t.Helper()
	res, err := exchangeErr(addr, raw, endProbe)
	require.NoError(t, err)
	return res
}

// exchangeErr is exchange for any goroutine, with the stream ended by end.
func exchangeErr(addr, raw string, end streamEnd) (wireResult, error) {
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: testTimeout()},
		Config:    &tls.Config{RootCAs: wirePool(), ServerName: "localhost", NextProtos: []string{"http/1.1"}},
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return wireResult{}, err
	}
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(testTimeout()))
	if _, err := io.WriteString(conn, raw); err != nil {
		return wireResult{}, err
	}
	return readResponsesErr(conn.(*tls.Conn), firstMethod(raw), end)
}

// wirePool returns a pool trusting the test certificate.
var wirePool = sync.OnceValue(func() *x509.CertPool {
	pem, err := os.ReadFile(testCertFile)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return pool
})

func firstMethod(raw string) string {
	m, _, _ := strings.Cut(raw, " ")
	return m
}

// readResponses sends the probe on conn, whose requests the caller has
// written, and reads the responses as exchange does.
func readResponses(t testing.TB, conn *tls.Conn, method string) wireResult {
	t.Helper()
	res, err := readResponsesErr(conn, method, endProbe)
	require.NoError(t, err)
	return res
}

func readResponsesErr(conn *tls.Conn, method string, end streamEnd) (wireResult, error) {
	var res wireResult
	switch end {
	case endProbe:
		// A server that closes the connection may reset it when the
		// probe is unread; the responses before it are in the socket
		// buffer by then and are still read.
		conn.SetWriteDeadline(time.Now().Add(testTimeout()))
		io.WriteString(conn, probeRequest)
	case endHalfClose:
		if err := conn.CloseWrite(); err != nil {
			return res, err
		}
	}
	if err := conn.SetReadDeadline(time.Now().Add(testTimeout())); err != nil {
		return res, err
	}
	br := bufio.NewReader(conn)
	for {
		if _, err := br.Peek(1); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return res, fmt.Errorf("neither an answer to the probe nor a close within %v; so far %+v", testTimeout(), res)
			}
			res.Closed = true
			return res, nil
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			rest, _ := io.ReadAll(br)
			res.Responses = append(res.Responses, wireResponse{Status: "unparsable: " + err.Error(), Body: string(rest)})
			res.Closed = true
			return res, nil
		}
		if end == endProbe && resp.Header.Get(probeHeader) != "" {
			return res, nil // the connection stayed open
		}
		wr := wireResponse{Status: resp.Proto + " " + resp.Status, Header: resp.Header, Close: resp.Close}
		body, err := io.ReadAll(resp.Body)
		// A body read until the close can hold the next response's head
		// (a handler's own Transfer-Encoding): its Date may differ
		// between the servers by a second boundary.
		wr.Body = dateLine.ReplaceAllString(string(body), "Date: <date>")
		if err != nil {
			wr.BodyErr = err.Error()
		}
		wr.Header.Del("Date")
		if len(resp.Trailer) > 0 {
			wr.Trailer = resp.Trailer
		}
		res.Responses = append(res.Responses, wr)
		if err != nil {
			res.Closed = true
			return res, nil
		}
	}
}

// dateLine matches a Date header line in a response body.
var dateLine = regexp.MustCompile(`(?m)^Date: [^\r\n]*`)

// pair is our server and net/http's, serving the same handler.
type pair struct {
	ours, oracle       string // addresses
	oursLog, oracleLog *syncBuffer
}

// startPair starts both servers with h; configure, if not nil, adjusts
// them before they start.
func startPair(t testing.TB, h http.Handler, configure func(*Server, *http.Server)) pair {
	t.Helper()
	ol, obuf := newTestLogger()
	nl, nbuf := newTestLogger()
	h = withProbe(h)
	ours := &Server{Handler: h, ErrorLog: ol}
	oracle := &http.Server{Handler: h, ErrorLog: nl,
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
	if configure != nil {
		configure(ours, oracle)
	}
	return pair{ours: startTLS(t, ours), oracle: startNetHTTPWaiting(t, oracle), oursLog: obuf, oracleLog: nbuf}
}

// compare sends raw to both servers at once, ended by the probe, and
// checks that the results agree.
func (p pair) compare(t *testing.T, raw string) wireResult {
	t.Helper()
	return p.compareEnd(t, raw, endProbe)
}

// compareEnd is compare with the stream ended by end.
func (p pair) compareEnd(t *testing.T, raw string, end streamEnd) wireResult {
	t.Helper()
	got, want := p.both(t, raw, end)
	assert.Equal(t, want, got, "request %q", raw)
	return got
}

// both sends raw to both servers at once and returns our result and
// net/http's.
func (p pair) both(t *testing.T, raw string, end streamEnd) (wireResult, wireResult) {
	t.Helper()
	type result struct {
		res wireResult
		err error
	}
	oracle := make(chan result, 1)
	go func() {
		res, err := exchangeErr(p.oracle, raw, end)
		oracle <- result{res, err}
	}()
	got, err := exchangeErr(p.ours, raw, end)
	want := <-oracle
	require.NoError(t, err)
	require.NoError(t, want.err)
	return got, want.res
}

const get = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"

func TestHTTP1Handlers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		raw     string // default: get
	}{
		{name: "implicit 200 sniffed", handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>hi") }},
		{name: "empty", handler: func(w http.ResponseWriter, r *http.Request) {}},
		{name: "explicit type", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{}`))
		}},
		{name: "nil content type suppresses sniffing", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil
			w.Write([]byte("hello"))
		}},
		{name: "content encoding suppresses sniffing", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write([]byte("hello"))
		}},
		{name: "nil date suppresses date", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Date"] = nil
			w.Write([]byte("hello"))
		}},
		{name: "exactly 2048 bytes", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(strings.Repeat("a", 2048)))
		}},
		{name: "2049 bytes chunked", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(strings.Repeat("a", 2049)))
		}},
		{name: "many small writes", handler: func(w http.ResponseWriter, r *http.Request) {
			for range 1000 {
				io.WriteString(w, "0123456789")
			}
		}},
		{name: "flush makes chunked", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		}},
		{name: "declared length", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		}},
		{name: "declared length too short", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "hello")
		}},
		{name: "declared length exceeded", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "2")
			_, err := io.WriteString(w, "hello")
			w.Header().Set("X-Err", fmt.Sprint(err))
		}},
		{name: "invalid content length", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "abc")
			io.WriteString(w, "hello")
		}},
		{name: "204 strips", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(204)
			_, err := w.Write([]byte("x"))
			if !errors.Is(err, http.ErrBodyNotAllowed) {
				panic(err)
			}
		}},
		{name: "304 strips", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Etag", `"x"`)
			w.WriteHeader(304)
		}},
		{name: "status without text", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(599) }},
		{name: "header change after WriteHeader ignored", handler: func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("X-A", "1")
			w.WriteHeader(201)
			h.Set("X-A", "2")
			w.Header().Set("X-B", "3")
			io.WriteString(w, "body")
		}},
		{name: "early hints", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</x>; rel=preload")
			w.WriteHeader(103)
			w.WriteHeader(103)
			io.WriteString(w, "hello")
		}},
		{name: "declared trailers", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum, X-Other")
			w.WriteHeader(200)
			io.WriteString(w, "data")
			w.Header().Set("X-Sum", "42")
			w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
		}},
		{name: "connection close from handler", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		}},
		{name: "identity TE", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Transfer-Encoding", "identity")
			io.WriteString(w, "stream")
		}},
		{name: "TE with CL", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Transfer-Encoding", "chunked")
			w.Header().Set("Content-Length", "3")
			io.WriteString(w, "abc")
		}},
		{name: "gzip TE", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Transfer-Encoding", "gzip")
			io.WriteString(w, "abc")
		}},
		{name: "CR LF in value", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header()["X-Bad"] = []string{" a\r\nb "}
			w.Header()["Bad Name"] = []string{"x"}
		}},
		{name: "http.Error", handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", http.StatusTeapot) }},
		{name: "string writer and reader from", handler: func(w http.ResponseWriter, r *http.Request) {
			w.(io.StringWriter).WriteString("a")
			w.(io.ReaderFrom).ReadFrom(strings.NewReader(strings.Repeat("b", 5000)))
		}},
		{name: "HEAD", raw: "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello")
		}},
		{name: "HEAD empty", raw: "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", handler: func(w http.ResponseWriter, r *http.Request) {}},
		{name: "HTTP/1.0", raw: "GET / HTTP/1.0\r\n\r\n", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "old")
		}},
		{name: "HTTP/1.0 keep-alive", raw: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "old")
		}},
		{name: "HTTP/1.0 keep-alive unknown length", raw: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", handler: func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
			io.WriteString(w, "old")
		}},
		{name: "request close", raw: "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello")
		}},
		{name: "pipelined", raw: get + get + "GET /x HTTP/1.1\r\nHost: y\r\n\r\n", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.URL.Path+" "+r.Host)
		}},
		{name: "unread small body kept alive", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + get, handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.Method)
		}},
		{name: "POST then CRLF", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx\r\n" + get, handler: func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			io.WriteString(w, r.Method+string(b))
		}},
		{name: "body read after flush fails", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", handler: func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
			_, err := io.ReadAll(r.Body)
			fmt.Fprint(w, err)
		}},
		{name: "full duplex", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", handler: func(w http.ResponseWriter, r *http.Request) {
			require.NoError(t, http.NewResponseController(w).EnableFullDuplex())
			w.(http.Flusher).Flush()
			b, err := io.ReadAll(r.Body)
			fmt.Fprint(w, string(b), err)
		}},
		{name: "chunked request with trailer", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n0\r\nX-T: v\r\n\r\n", handler: func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			fmt.Fprint(w, string(b), err, r.Trailer)
		}},
		{name: "OPTIONS star", raw: "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "handler")
		}},
		{name: "request fields", raw: "GET /a?b=c HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\nPragma: no-cache\r\n\r\n", handler: func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, r.Method, r.RequestURI, r.URL, r.Proto, r.Host, r.ContentLength, r.Close, r.TLS != nil, r.RemoteAddr != "")
			keys := slices.Sorted(func(yield func(string) bool) {
				for k := range r.Header {
					if !yield(k) {
						return
					}
				}
			})
			for _, k := range keys {
				fmt.Fprintln(w, k, r.Header[k])
			}
			_, isServer := r.Context().Value(http.ServerContextKey).(*http.Server)
			fmt.Fprintln(w, isServer, r.Context().Value(http.LocalAddrContextKey) != nil)
		}},
		// The client sends the body anyway: net/http's finishRequest
		// blocks reading it (see differential_test.go).
		{name: "expect 100-continue unread", raw: "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "no")
		}},
		{name: "expect 100-continue read", raw: "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", handler: func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		}},
		{name: "expect other", raw: "GET / HTTP/1.1\r\nHost: x\r\nExpect: foo\r\n\r\n", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "never")
		}},
		{name: "abort handler", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "partial")
			panic(http.ErrAbortHandler)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := startPair(t, tt.handler, nil)
			raw := tt.raw
			if raw == "" {
				raw = get
			}
			p.compare(t, raw)
		})
	}
}

func TestHTTP1KeepAlivesDisabled(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	})
	// Set before serving: SetKeepAlivesEnabled racing the start of
	// ServeTLS is a data race in server.go (s.h2), reported separately.
	p := startPair(t, h, func(s *Server, hs *http.Server) {
		s.SetKeepAlivesEnabled(false)
		hs.SetKeepAlivesEnabled(false)
	})

	// HTTP/1.1: both close with Connection: close.
	p.compare(t, get)

	// HTTP/1.0 keep-alive: net/http says keep-alive and closes (its
	// quirk); httpsrv does not say keep-alive.
	raw := "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
	want := exchange(t, p.oracle, raw)
	got := exchange(t, p.ours, raw)
	require.Len(t, want.Responses, 1)
	require.Len(t, got.Responses, 1)
	if oracleIsGo126 {
		assert.Equal(t, "keep-alive", want.Responses[0].Header.Get("Connection"))
	} // Go 1.27's net/http no longer says keep-alive here either.

	assert.Empty(t, got.Responses[0].Header.Values("Connection"))
	assert.True(t, want.Closed)
	assert.True(t, got.Closed)
}

func TestHTTP1NoInterimTo10(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</x>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "hello")
	})
	p := startPair(t, h, nil)
	raw := "GET / HTTP/1.0\r\n\r\n"
	want := exchange(t, p.oracle, raw)
	got := exchange(t, p.ours, raw)
	require.Len(t, want.Responses, 2, "net/http sends the 103 to HTTP/1.0")
	require.Len(t, got.Responses, 1)
	assert.Equal(t, want.Responses[1], got.Responses[0])
}

func TestHTTP1RequestErrors(t *testing.T) {
	t.Parallel()
	p := startPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), func(s *Server, hs *http.Server) {
		s.MaxHeaderBytes = 1024
		hs.MaxHeaderBytes = 1024
		s.MaxHeaderValueCount = 10
		setMaxHeaderValueCount(hs, 10)
	})
	tests := []struct{ name, raw string }{
		{"no host", "GET / HTTP/1.1\r\n\r\n"},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{"bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"},
		{"gzip TE", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"},
		{"two CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"},
		{"HTTP/3.0", "GET / HTTP/3.0\r\nHost: a\r\n\r\n"},
		{"bad name", "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n"},
		{"too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 6000) + "\r\n\r\n"},
		{"garbage", "XYZ\r\n\r\n"},
		{"truncated", "GET / HTTP/1.1\r\nHost: a\r\n"},
	}
	if !oracleIsGo126 {
		// Go 1.27 added MaxHeaderValueCount, which httpsrv enforces on
		// every release.
		tests = append(tests, struct{ name, raw string }{"too many values", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: 1\r\n", 10) + "\r\n"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			end := endProbe
			if tt.name == "truncated" {
				end = endHalfClose // the head ends at EOF, not in the probe
			}
			p.compareEnd(t, tt.raw, end)
		})
	}
}

// TestHTTP1StatesAndLogs checks ConnState transitions, the superfluous
// WriteHeader log line and panic logging against net/http.
func TestHTTP1StatesAndLogs(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/twice":
			w.WriteHeader(200)
			w.WriteHeader(201)
		case "/panic":
			panic("boom")
		}
	})
	oursRec, oracleRec := newStateRecorder(), newStateRecorder()
	p := startPair(t, h, func(s *Server, hs *http.Server) {
		s.ConnState = oursRec.hook
		hs.ConnState = oracleRec.hook
	})
	p.compare(t, "GET /twice HTTP/1.1\r\nHost: x\r\n\r\n")
	p.compare(t, "GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")

	// The first connection stays open, so the probe is served on it too
	// (and asks for the close); the panic closes the second one.
	done := func(s [][]http.ConnState) bool {
		return len(s) == 2 && slices.Equal(s[0], []http.ConnState{http.StateNew, http.StateActive, http.StateIdle, http.StateActive, http.StateClosed}) &&
			slices.Equal(s[1], []http.ConnState{http.StateNew, http.StateActive, http.StateClosed})
	}
	oracleRec.waitFor(t, "net/http states", done)
	oursRec.waitFor(t, "httpsrv states", done)

	for _, buf := range []*syncBuffer{p.oracleLog, p.oursLog} {
		assert.Regexp(t, `http: superfluous response.WriteHeader call from github.com/seed80f6b3e8/httpsrv.TestHTTP1StatesAndLogs.func1 \(http1_test.go:\d+\)`, buf.String())
		assert.Regexp(t, `http: panic serving 127.0.0.1:\d+: boom\ngoroutine`, buf.String())
	}
}

func TestHTTP1Hijack(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		// The pipelined bytes are in rw.
		line, _ := rw.ReadString('\n')
		fmt.Fprintf(rw, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(line), line)
		rw.Flush()
		_, err = w.Write([]byte("x"))
		if !errors.Is(err, http.ErrHijacked) {
			panic(err)
		}
	})
	rec := newStateRecorder()
	p := startPair(t, h, func(s *Server, hs *http.Server) { s.ConnState = rec.hook })
	p.compare(t, get+"extra line\n")
	rec.waitFor(t, "hijacked", func(s [][]http.ConnState) bool {
		return len(s) == 1 && slices.Equal(s[0], []http.ConnState{http.StateNew, http.StateActive, http.StateHijacked})
	})
}

// TestHTTP1ContextCancelOnClientGone checks that the request context ends
// when the client goes away while the handler runs, and that pipelined
// bytes do not cancel it.
func TestHTTP1ContextCancelOnClientGone(t *testing.T) {
	t.Parallel()
	for _, oracle := range []bool{false, true} {
		t.Run(fmt.Sprintf("oracle=%v", oracle), func(t *testing.T) {
			t.Parallel()
			// How long the pipelined request's handler watches for a
			// cancellation that must not come: a negative check can
			// only be bounded in time.
			const noCancelWait = 300 * time.Millisecond
			started := make(chan struct{}, 2)
			result := make(chan error, 2)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/pipelined" {
					select {
					case <-r.Context().Done():
						result <- r.Context().Err()
					case <-time.After(noCancelWait):
						result <- nil
					}
					return
				}
				started <- struct{}{}
				select {
				case <-r.Context().Done():
					result <- r.Context().Err()
				case <-time.After(testTimeout()):
					result <- errors.New("not cancelled")
				}
			})
			p := startPair(t, h, nil)
			addr := p.ours
			if oracle {
				addr = p.oracle
			}
			conn := dialTLS(t, addr, "http/1.1")
			io.WriteString(conn, "POST /pipelined HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"+get)
			assert.NoError(t, waitResult(t, result), "pipelined request must not cancel")

			conn2 := dialTLS(t, addr, "http/1.1")
			io.WriteString(conn2, get)
			waitChan(t, started)
			conn2.Close()
			assert.ErrorIs(t, waitResult(t, result), context.Canceled)
		})
	}
}

func waitResult(t testing.TB, c <-chan error) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(testTimeout()):
		t.Fatal("timed out")
		return nil
	}
}

func waitChan(t testing.TB, c <-chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(testTimeout()):
		t.Fatal("timed out")
	}
}

// TestHTTP1ShutdownAnswersRequest checks the deliberate difference: a
// request read after Shutdown started is answered, with Connection: close,
// where net/http drops it without a word.
func TestHTTP1ShutdownAnswersRequest(t *testing.T) {
	t.Parallel()
	var ours *Server
	var oracle *http.Server
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	// Both servers run their shutdown hooks after marking themselves as
	// shutting down: a hook that has run is the signal that Shutdown has
	// started.
	shutStarted := make(chan struct{}, 2)
	hook := func() { shutStarted <- struct{}{} }
	p := startPair(t, h, func(s *Server, hs *http.Server) {
		ours, oracle = s, hs
		s.RegisterOnShutdown(hook)
		hs.RegisterOnShutdown(hook)
	})

	// A new connection, its request sent only after Shutdown started.
	// Shutdown waits for it: a connection in StateNew counts as idle only
	// after 5 s.
	oursConn := dialTLS(t, p.ours, "http/1.1")
	oracleConn := dialTLS(t, p.oracle, "http/1.1")
	shut := make(chan error, 2)
	go func() { shut <- ours.Shutdown(context.Background()) }()
	go func() { shut <- oracle.Shutdown(context.Background()) }()
	waitChan(t, shutStarted)
	waitChan(t, shutStarted)
	require.True(t, ours.shuttingDown())
	io.WriteString(oursConn, get)
	io.WriteString(oracleConn, get)

	got := readResponses(t, oursConn, "GET")
	require.Len(t, got.Responses, 1)
	assert.True(t, got.Responses[0].Close, "Connection: close")
	assert.Equal(t, "ok", got.Responses[0].Body)
	assert.True(t, got.Closed)

	want := readResponses(t, oracleConn, "GET")
	if oracleIsGo126 {
		assert.Equal(t, wireResult{Closed: true}, want, "net/http drops the request")
	}
	assert.NoError(t, waitResult(t, shut))
	assert.NoError(t, waitResult(t, shut))
}

// TestHTTP1Timeouts checks the idle and header timeouts close the
// connection, on both servers.
func TestHTTP1Timeouts(t *testing.T) {
	t.Parallel()
	p := startPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), func(s *Server, hs *http.Server) {
		// The handshake runs under ReadHeaderTimeout too (net/http's
		// tlsHandshakeTimeout): long enough for a loaded machine.
		s.ReadHeaderTimeout, hs.ReadHeaderTimeout = 500*time.Millisecond, 500*time.Millisecond
		s.IdleTimeout, hs.IdleTimeout = 500*time.Millisecond, 500*time.Millisecond
	})
	for _, addr := range []string{p.oracle, p.ours} {
		conn := dialTLS(t, addr, "http/1.1")
		io.WriteString(conn, "GET / HTTP/1.1\r\n") // never finished
		conn.SetReadDeadline(time.Now().Add(testTimeout()))
		_, err := io.ReadAll(conn)
		assert.NoError(t, err, "header timeout closes silently")

		conn = dialTLS(t, addr, "http/1.1")
		io.WriteString(conn, get)
		conn.SetReadDeadline(time.Now().Add(testTimeout()))
		b, err := io.ReadAll(conn)
		assert.NoError(t, err, "idle timeout closes")
		assert.Contains(t, string(b), "200 OK")
	}
}

func TestHTTP1ClientKeepAlive(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	conns := map[string]int{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr]++
		mu.Unlock()
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	p := startPair(t, h, nil)
	c := newClient(t, false)
	for i := range 5 {
		body := strings.Repeat("x", i*1000)
		req, err := http.NewRequest("POST", "https://"+strings.Replace(p.ours, "127.0.0.1", "localhost", 1)+"/", strings.NewReader(body))
		require.NoError(t, err)
		if i%2 == 1 {
			req.Header.Set("Expect", "100-continue")
		}
		resp, err := c.Do(req)
		require.NoError(t, err)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, body, string(got))
		assert.Equal(t, "HTTP/1.1", resp.Proto)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Len(t, conns, 1, "one connection reused")
}

func TestHTTP1WriteHeaderInvalidCodePanics(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			fmt.Fprint(w, recover())
		}()
		w.WriteHeader(42)
	})
	p := startPair(t, h, nil)
	p.compare(t, get)
}

// setMaxHeaderValueCount sets http.Server.MaxHeaderValueCount where the
// field exists (Go 1.27 and later).
func setMaxHeaderValueCount(hs *http.Server, n int) {
	if f := reflect.ValueOf(hs).Elem().FieldByName("MaxHeaderValueCount"); f.IsValid() {
		f.SetInt(int64(n))
	}
}

func TestHTTP1MaxHeaderValueCount(t *testing.T) {
	t.Parallel()
	p := startPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), func(s *Server, _ *http.Server) {
		s.MaxHeaderValueCount = 3
	})
	ok := exchange(t, p.ours, "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nX: 2\r\n\r\n")
	require.Len(t, ok.Responses, 1)
	assert.Equal(t, "HTTP/1.1 200 OK", ok.Responses[0].Status)
	tooMany := exchange(t, p.ours, "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nX: 2\r\nY: 3\r\n\r\n")
	require.Len(t, tooMany.Responses, 1)
	assert.Equal(t, "HTTP/1.1 431 Request Header Fields Too Large", tooMany.Responses[0].Status)
	assert.True(t, tooMany.Closed)
}

// TestHTTP1ExchangeProbe checks the harness: the probe tells a connection
// kept open from a closed one on both servers, without waiting for
// silence, and is not counted as a response.
func TestHTTP1ExchangeProbe(t *testing.T) {
	t.Parallel()
	p := startPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) }), nil)
	tests := []struct {
		name   string
		raw    string
		end    streamEnd
		n      int
		closed bool
	}{
		{"kept open", get + get, endProbe, 2, false},
		{"closed by the request", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", endProbe, 1, true},
		{"closed by a bad request", "GET / HTTP/1.1\r\n\r\n", endProbe, 1, true},
		{"half-closed", get, endHalfClose, 1, true},
		{"server closes alone", "GET /\r\n", endNone, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, addr := range []string{p.oracle, p.ours} {
				res, err := exchangeErr(addr, tt.raw, tt.end)
				require.NoError(t, err)
				assert.Len(t, res.Responses, tt.n)
				assert.Equal(t, tt.closed, res.Closed)
				for _, r := range res.Responses {
					assert.NotContains(t, r.Body, probePath)
				}
			}
		})
	}
}

// TestHTTP1SlowClientByteByByte checks that a request sent one byte per
// TLS record is served on both servers: a request line or field line is
// never judged before it is complete (issue 7).
func TestHTTP1SlowClientByteByByte(t *testing.T) {
	t.Parallel()
	p := startPair(t, http.HandlerFunc(echoHandler), nil)
	raw := "POST /slow HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\nTransfer-Encoding: chunked\r\n\r\n2;x\r\nok\r\n0\r\nX-T: 3\r\n\r\n"
	var results []wireResult
	for _, addr := range []string{p.oracle, p.ours} {
		conn := dialTLS(t, addr, "http/1.1")
		conn.SetWriteDeadline(time.Now().Add(testTimeout()))
		for i := range len(raw) {
			_, err := io.WriteString(conn, raw[i:i+1])
			require.NoError(t, err)
		}
		res := readResponses(t, conn, "POST")
		require.Len(t, res.Responses, 1)
		assert.Equal(t, "HTTP/1.1 200 OK", res.Responses[0].Status)
		assert.Contains(t, res.Responses[0].Body, `body="ok"`)
		results = append(results, res)
	}
	// The folded field closes our connection after the response (a
	// deliberate difference, see differential_test.go); otherwise the
	// answers agree.
	want, got := results[0], results[1]
	assert.False(t, want.Closed)
	closesAfterFirst(t, p, raw, want, got)
}
