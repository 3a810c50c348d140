package httpsrv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestResponseHasToken(t *testing.T) {
	tests := []struct {
		v, token string
		want     bool
	}{
		{"close", "close", true},
		{"Close", "close", true},
		{"keep-alive, close", "close", true},
		{"keep-alive,close", "close", true},
		{"\tclose ", "close", true},
		{"closed", "close", false},
		{"xclose", "close", false},
		{"", "close", false},
		{"100-Continue", "100-continue", true},
		{"100-continue;x", "100-continue", false},
	}
	for _, tt := range tests {
		t.Run(tt.v, func(t *testing.T) {
			assert.Equal(t, tt.want, hasToken(tt.v, tt.token))
		})
	}
}

func TestResponseAppendDate(t *testing.T) {
	now := time.Date(2026, 11, 24, 6, 15, 3, 500, time.UTC)
	got := string(appendDate(nil, now))
	assert.Equal(t, "Tue, 24 Nov 2026 06:15:03 GMT", got)
	d1 := currentDate.Load()
	appendDate(nil, now.Add(100*time.Millisecond))
	assert.Same(t, d1, currentDate.Load(), "same second: the formatted value is reused")
	assert.Equal(t, "Tue, 24 Nov 2026 06:15:04 GMT", string(appendDate(nil, now.Add(time.Second))))
	local := now.In(time.FixedZone("X", 3600))
	assert.Equal(t, "Tue, 24 Nov 2026 06:15:04 GMT", string(appendDate(nil, local.Add(time.Second))))
}

func TestResponseHeaderSnapshot(t *testing.T) {
	w := &response{status: 200, h: &h1conn{}}
	w.handlerHeader = http.Header{
		"Content-Type":                 {"text/plain"},
		"X-B":                          {" two\r\nlines "},
		"Connection":                   {"close", "x"},
		"Bad Name":                     {"dropped"},
		"Trailer":                      {"X-T, content-length"},
		"Trailer:X-Late":               {"1"},
		"Content-Length":               {"3"},
		"Transfer-Encoding":            {"chunked"},
		"Content-Encoding":             {"gzip"},
		"A":                            {"1", "2"},
		"Www-Authenticate":             nil,
		http.CanonicalHeaderKey("x-c"): {""},
	}
	hs := &w.h.head
	hs.take(w)
	assert.Equal(t, "A: 1\r\nA: 2\r\nConnection: close\r\nConnection: x\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n"+
		"Content-Type: text/plain\r\nTrailer: X-T, content-length\r\nTransfer-Encoding: chunked\r\nX-B: two  lines\r\nX-C: \r\n", string(hs.buf))
	assert.True(t, hs.hasTrailers)
	assert.Equal(t, []string{"X-T"}, w.trailers, "Content-Length is not a valid trailer")
	assert.Equal(t, "gzip", hs.contentEncoding)
	assert.Equal(t, "close", hs.get(hkConnection))

	hs.drop[hkConnection] = true
	hs.drop[hkTransferEncoding] = true
	var b strings.Builder
	bw := bufio.NewWriter(&b)
	w.writeHandlerFields(bw)
	bw.Flush()
	assert.Equal(t, "A: 1\r\nA: 2\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n"+
		"Content-Type: text/plain\r\nTrailer: X-T, content-length\r\nX-B: two  lines\r\nX-C: \r\n", b.String())
	assert.Equal(t, "", hs.get(hkConnection))
	assert.False(t, hs.has(hkConnection))
}

// TestResponseClientView runs handlers against both servers through
// net/http's client and compares what the client sees.
func TestResponseClientView(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "f.txt")
	require.NoError(t, os.WriteFile(file, []byte(strings.Repeat("file data\n", 1000)), 0o644))
	tests := []struct {
		name    string
		method  string
		handler http.HandlerFunc
	}{
		{name: "serve file", handler: func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) }},
		{name: "serve file HEAD", method: "HEAD", handler: func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) }},
		{name: "file server range", handler: func(w http.ResponseWriter, r *http.Request) {
			r.Header.Set("Range", "bytes=10-29")
			http.FileServer(http.Dir(dir)).ServeHTTP(w, r)
		}},
		{name: "trailers", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, strings.Repeat("z", 5000))
			w.Header().Set("X-Sum", "7")
		}},
		{name: "redirect", handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/" {
				http.Redirect(w, r, "/there", http.StatusFound)
				return
			}
			io.WriteString(w, "there")
		}},
		{name: "not found", handler: http.NotFound},
		{name: "flush error", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "a")
			fmt.Fprint(w, http.NewResponseController(w).Flush())
		}},
		{name: "deadlines", handler: func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			fmt.Fprint(w, rc.SetReadDeadline(time.Now().Add(time.Minute)), rc.SetWriteDeadline(time.Now().Add(time.Minute)))
		}},
		{name: "close notify", handler: func(w http.ResponseWriter, r *http.Request) {
			//lint:ignore SA1019 testing the deprecated API.
			ch := w.(http.CloseNotifier).CloseNotify()
			select {
			case <-ch:
				io.WriteString(w, "closed")
			default:
				io.WriteString(w, "open")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := startPair(t, tt.handler, nil)
			c := newClient(t, false)
			view := func(addr string) string {
				method := tt.method
				if method == "" {
					method = "GET"
				}
				req, err := http.NewRequest(method, "https://"+strings.Replace(addr, "127.0.0.1", "localhost", 1)+"/", nil)
				require.NoError(t, err)
				resp, err := c.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				resp.Header.Del("Date")
				return fmt.Sprintf("%s %s\n%v\n%q\ntrailer %v close %v cl %d te %v",
					resp.Proto, resp.Status, resp.Header, body, resp.Trailer, resp.Close, resp.ContentLength, resp.TransferEncoding)
			}
			assert.Equal(t, view(p.oracle), view(p.ours))
		})
	}
}

// TestResponseWriteTimeout checks that writes start failing once the
// WriteTimeout has passed, on both servers.
func TestResponseWriteTimeout(t *testing.T) {
	t.Parallel()
	errc := make(chan error, 2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("w", 32<<10))
		deadline := time.Now().Add(testTimeout())
		for time.Now().Before(deadline) {
			if _, err := w.Write(chunk); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	})
	p := startPair(t, h, func(s *Server, hs *http.Server) {
		// The handshake runs under WriteTimeout too (net/http's
		// tlsHandshakeTimeout, the least of the three timeouts): 100 ms
		// cut handshakes on a loaded machine (a dial EOF, or a request
		// never served); a second is long enough there.
		s.WriteTimeout, hs.WriteTimeout = time.Second, time.Second
	})
	for _, addr := range []string{p.oracle, p.ours} {
		conn := dialTLS(t, addr, "http/1.1")
		io.WriteString(conn, get) // and never read
		err := waitResult(t, errc)
		assert.True(t, errors.Is(err, os.ErrDeadlineExceeded), "write error %v", err)
	}
}

// TestResponseHijackedWritesLog checks the log line for a write on a
// hijacked connection.
func TestResponseHijackedWritesLog(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		w.Write([]byte("x"))
		w.WriteHeader(200)
		_, _, err = w.(http.Hijacker).Hijack()
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Second: "+fmt.Sprint(err)+"\r\n\r\n")
	})
	p := startPair(t, h, nil)
	p.compare(t, get)
	for _, buf := range []*syncBuffer{p.oracleLog, p.oursLog} {
		assert.Regexp(t, `http: response.Write on hijacked connection from .*TestResponseHijackedWritesLog.func1 \(response_test.go:\d+\)`, buf.String())
		assert.Regexp(t, `http: response.WriteHeader on hijacked connection from .*TestResponseHijackedWritesLog.func1 \(response_test.go:\d+\)`, buf.String())
	}
}

// TestResponseUnreadBody checks the handling of request bodies the handler
// does not read: small ones are discarded and the connection reused, big
// ones close it.
func TestResponseUnreadBody(t *testing.T) {
	t.Parallel()
	rec := newStateRecorder()
	p := startPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ignored")
	}), func(_ *Server, hs *http.Server) { hs.ConnState = rec.hook })
	small := "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("s", 1000) + get
	p.compare(t, small)
	bigChunked := "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	for range 70 {
		bigChunked += "1000\r\n" + strings.Repeat("c", 0x1000) + "\r\n"
	}
	bigChunked += "0\r\n\r\n" + get
	p.compare(t, bigChunked)
	// net/http sleeps 500 ms before closing; wait for it, for goleak.
	rec.waitFor(t, "net/http closed both", func(s [][]http.ConnState) bool {
		return len(s) == 2 && s[1][len(s[1])-1] == http.StateClosed
	})
}

// TestResponseReadFromPlaintext checks the sendfile path of ReadFrom, taken
// only on plaintext connections (Serve without TLS), against net/http.
func TestResponseReadFromPlaintext(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "big.bin")
	data := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB
	require.NoError(t, os.WriteFile(file, []byte(data), 0o644))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(file)
		if err != nil {
			panic(err)
		}
		defer f.Close()
		if r.URL.Path == "/cl" {
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		}
		io.Copy(w, f)
	})
	serve := func(srv interface{ Serve(net.Listener) error }) string {
		ln := localListener(t)
		go srv.Serve(ln)
		return ln.Addr().String()
	}
	ours := &Server{Handler: h}
	oracle := &http.Server{Handler: h}
	oursAddr, oracleAddr := serve(ours), serve(oracle)
	t.Cleanup(func() { ours.Close(); oracle.Close() })
	c := &http.Client{Timeout: testTimeout()}
	t.Cleanup(c.CloseIdleConnections)
	for _, path := range []string{"/", "/cl"} {
		view := func(addr string) string {
			resp, err := c.Get("http://" + addr + path)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, data, string(body))
			resp.Header.Del("Date")
			return fmt.Sprintf("%s %v %d %v", resp.Status, resp.Header, resp.ContentLength, resp.TransferEncoding)
		}
		assert.Equal(t, view(oracleAddr), view(oursAddr), path)
	}
}
