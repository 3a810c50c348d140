package httpsrv

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// parseWithBody parses in and returns the request with our body attached.
func parseWithBody(t *testing.T, in string) (*http.Request, *bufio.Reader, io.ReadCloser) {
	t.Helper()
	br := bufio.NewReader(strings.NewReader(in))
	req, f, _, err := readRequest(br, 1<<20)
	require.NoError(t, err)
	return req, br, newBody(br, req, f)
}

const chunkedHead = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"

// TestBodyMatchesNetHTTP decodes bodies with ours and net/http's and
// compares data, error text, trailer and what is left on the stream.
func TestBodyMatchesNetHTTP(t *testing.T) {
	tests := []struct {
		name string
		body string
		err  string // expected error text, "" for none
	}{
		{"simple", "5\r\nhello\r\n0\r\n\r\nNEXT", ""},
		{"extensions", "5;a=b;c=\"d\"\r\nhello\r\n0;last\r\n\r\n", ""},
		{"upper hex and padding", "A \r\n0123456789\r\n00\r\n\r\n", ""},
		{"trailer", "3\r\nabc\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\nNEXT", ""},
		{"folded trailer", "0\r\nX-Sum: 1\r\n 2\r\n\r\n", ""},
		{"bare LF size line", "3\nabc\r\n0\r\n\r\n", "chunked line ends with bare LF"},
		{"CR inside size line", "3\r;\r\nabc\r\n0\r\n\r\n", "invalid CR in chunked line"},
		{"missing CRLF after data", "3\r\nabcX\r\n0\r\n\r\n", "malformed chunked encoding"},
		{"bad hex", "g\r\n", "invalid byte in chunk length"},
		{"empty size", "\r\n", "empty hex number for chunk length"},
		{"size overflow", "10000000000000000\r\n", "http chunk length too large"},
		{"16 digits fit", "0000000000000003\r\nabc\r\n0\r\n\r\n", ""},
		{"long size line", strings.Repeat("0", 4094) + "1\r\na\r\n0\r\n\r\n", "header line too long"},
		{"too much non-data", strings.Repeat("1;"+strings.Repeat("x", 200)+"\r\na\r\n", 100) + "0\r\n\r\n", "chunked encoding contains too much non-data"},
		{"truncated data", "5\r\nhel", "unexpected EOF"},
		{"truncated size", "5", "unexpected EOF"},
		{"no trailer end", "0\r\n", "http: unexpected EOF reading trailer"},
		{"trailer without CRLFCRLF", "0\r\nX-Sum: 1\r\n", "http: suspiciously long trailer after chunked body"},
		{"long trailer", "0\r\nX-Sum: " + strings.Repeat("v", 5000) + "\r\n\r\n", "http: suspiciously long trailer after chunked body"},
		{"bad trailer line", "0\r\nnocolon\r\n\r\n", `malformed MIME header: missing colon: "nocolon"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := chunkedHead + tt.body
			want, err := http.ReadRequest(bufio.NewReader(strings.NewReader(in)))
			require.NoError(t, err)
			wdata, werr := io.ReadAll(want.Body)

			req, br, rc := parseWithBody(t, in)
			data, err := io.ReadAll(rc)
			assert.Equal(t, wdata, data)
			if tt.err == "" {
				require.NoError(t, werr)
				require.NoError(t, err)
				assert.Equal(t, want.Trailer, req.Trailer)
				assert.True(t, rc.(*body).sawEOF())
				rest, _ := io.ReadAll(br)
				assert.Equal(t, tt.body[strings.Index(tt.body, "\r\n\r\n")+4:], string(rest))
				return
			}
			require.Error(t, werr)
			require.Error(t, err)
			assert.Equal(t, tt.err, werr.Error(), "net/http")
			assert.Equal(t, tt.err, err.Error())
			assert.False(t, rc.(*body).sawEOF())
		})
	}
}

func TestBodyContentLength(t *testing.T) {
	_, br, rc := parseWithBody(t, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloNEXT")
	b := rc.(*body)
	assert.Equal(t, int64(5), b.remaining())
	p := make([]byte, 3)
	n, err := b.Read(p)
	assert.Equal(t, 3, n)
	assert.NoError(t, err)
	assert.Equal(t, int64(2), b.remaining())
	n, err = b.Read(p)
	assert.Equal(t, 2, n)
	assert.Equal(t, io.EOF, err, "EOF comes with the last bytes, as in net/http")
	assert.True(t, b.sawEOF())
	n, err = b.Read(p)
	assert.Equal(t, 0, n)
	assert.Equal(t, io.EOF, err)
	rest, _ := io.ReadAll(br)
	assert.Equal(t, "NEXT", string(rest))

	// A body cut short by EOF: net/http's body.readLocked reports
	// io.ErrUnexpectedEOF once and then counts the body as read to its
	// end, so the server neither says "Connection: close" nor drains it.
	short := "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nshort"
	want, err := http.ReadRequest(bufio.NewReader(strings.NewReader(short)))
	require.NoError(t, err)
	wdata, werr := io.ReadAll(want.Body)
	_, werr2 := want.Body.Read(p)
	_, _, rc = parseWithBody(t, short)
	data, err := io.ReadAll(rc)
	_, err2 := rc.Read(p)
	assert.Equal(t, string(wdata), string(data))
	assert.Equal(t, werr, err)
	assert.Equal(t, io.ErrUnexpectedEOF, err)
	assert.Equal(t, werr2, err2)
	assert.Equal(t, io.EOF, err2)
	assert.True(t, rc.(*body).sawEOF())
	assert.True(t, rc.(*body).drain(100))
}

func TestBodyNone(t *testing.T) {
	for _, in := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
		"POST / HTTP/1.0\r\n\r\nnot a body",
		"PRI * HTTP/2.0\r\n\r\n",
	} {
		_, _, rc := parseWithBody(t, in)
		assert.Equal(t, http.NoBody, rc, in)
	}
	_, _, rc := parseWithBody(t, chunkedHead)
	assert.Equal(t, int64(-1), rc.(*body).remaining())
}

func TestBodyReadAfterClose(t *testing.T) {
	_, _, rc := parseWithBody(t, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
	require.NoError(t, rc.Close())
	require.NoError(t, rc.Close())
	_, err := rc.Read(make([]byte, 5))
	assert.Equal(t, http.ErrBodyReadAfterClose, err)
}

func TestBodyBadTrailerClosesBody(t *testing.T) {
	_, _, rc := parseWithBody(t, chunkedHead+"0\r\nX: 1\r\n")
	_, err := io.ReadAll(rc)
	require.Error(t, err)
	_, err = rc.Read(make([]byte, 1))
	assert.Equal(t, http.ErrBodyReadAfterClose, err, "issue 12027: nothing more may be read")
	assert.False(t, rc.(*body).drain(1<<20))
	// The end of the body can never be reached: like net/http's body
	// closed before EOF, the server must close the connection after
	// the response, and say so.
	assert.True(t, rc.(*body).unfinishable())
}

func TestBodyDrain(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		limit int64
		ok    bool
		rest  string
	}{
		{"CL within limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloNEXT", 5, true, "NEXT"},
		{"CL over limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloNEXT", 4, false, "helloNEXT"},
		// The early EOF counts as the end of the body, as in net/http,
		// but the drain did not end cleanly.
		{"CL short", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel", 10, false, ""},
		{"chunked within limit", chunkedHead + "5\r\nhello\r\n3\r\nabc\r\n0\r\nX-Sum: 3\r\n\r\nNEXT", 8, true, "NEXT"},
		{"chunked over limit", chunkedHead + "5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\nNEXT", 7, false, ""},
		{"chunked zero limit, empty", chunkedHead + "0\r\n\r\nNEXT", 0, true, "NEXT"},
		{"chunked bad", chunkedHead + "5\nhello\r\n0\r\n\r\n", 100, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, br, rc := parseWithBody(t, tt.in)
			b := rc.(*body)
			require.NoError(t, b.Close())
			assert.Equal(t, tt.ok, b.drain(tt.limit))
			assert.Equal(t, tt.ok || tt.name == "CL short", b.sawEOF())
			if tt.ok {
				assert.True(t, b.drain(0), "drain after EOF")
				rest, _ := io.ReadAll(br)
				assert.Equal(t, tt.rest, string(rest))
				if strings.Contains(tt.in, "X-Sum: 3") {
					assert.Equal(t, http.Header{"X-Sum": {"3"}}, req.Trailer)
				}
			} else if tt.rest != "" {
				rest, _ := io.ReadAll(br)
				assert.Equal(t, tt.rest, string(rest))
			}
		})
	}
}

// TestBodyConcurrentReadClose is for the race detector.
func TestBodyConcurrentReadClose(t *testing.T) {
	in := chunkedHead + strings.Repeat("4\r\nabcd\r\n", 1000) + "0\r\n\r\n"
	_, _, rc := parseWithBody(t, in)
	b := rc.(*body)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 7)
		for {
			if _, err := b.Read(buf); err != nil {
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		_ = b.sawEOF()
		_ = b.remaining()
		_ = b.Close()
		_ = b.drain(1 << 20)
	}()
	wg.Wait()
	assert.True(t, b.sawEOF())
}
