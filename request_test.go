package httpsrv

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadRequestMatchesNetHTTP runs the fuzz seeds and the checked-in fuzz
// corpus through the same comparison the fuzz target makes.
func TestReadRequestMatchesNetHTTP(t *testing.T) {
	inputs := append([]string(nil), seedRequests...)
	inputs = append(inputs,
		"",
		"\r\n",
		"GET",
		"GET / HTTP/1.1",
		"GET / HTTP/1.1\r\nHost: a\r\n",
		"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX\t: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n   \r\nY: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
		"GET / HTTP/1.1\r\r\nHost: a\r\n\r\n",
		"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
		"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.12\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
		"GET / HTTP/0.9\r\nHost: a\r\n\r\n",
		"GET / http/1.1\r\nHost: a\r\n\r\n",
		"GET foo HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET //a/b HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a?b? HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a? HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /é HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a?q=\xff HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://user:pw@h:1/p?q HTTP/1.1\r\n\r\n",
		"CONNECT [::1]:443 HTTP/1.1\r\n\r\n",
		"CONNECT a b:443 HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: \r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n1234567",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length:  3 \r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTrailer: X\r\nContent-Length: 1\r\n\r\nx",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: ,x-a , ,X-B\r\n\r\n0\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A: 1\n\nrest",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n X-A: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A: 1\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\r\na\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1 ;x\r\na\r\n0 \t\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\na\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"+strings.Repeat("1;"+strings.Repeat("e", 1000)+"\r\na\r\n", 40)+"0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"+strings.Repeat("0", 5000)+"\r\n",
		"PRI * HTTP/2.0\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
		"GET / HTTP/1.1\r\nConnection: foo,  CLOSE \r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nPragma: no-cache\r\nCache-Control: max-age=0\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-Long: "+strings.Repeat("v", 10000)+"\r\n\r\n",
		"GET /"+strings.Repeat("p", 5000)+" HTTP/1.1\r\nHost: a\r\n\r\n",
		strings.Repeat("x", 4096),
		strings.Repeat("x", 5000),
	)
	entries, err := os.ReadDir("testdata/fuzz/FuzzReadRequest")
	require.NoError(t, err)
	for _, e := range entries {
		raw, err := os.ReadFile("testdata/fuzz/FuzzReadRequest/" + e.Name())
		require.NoError(t, err)
		inputs = append(inputs, decodeCorpusFile(t, raw))
	}
	for _, in := range inputs {
		compareWithNetHTTP(t, []byte(in))
	}
}

// decodeCorpusFile decodes a "go test fuzz v1" file with one []byte value.
func decodeCorpusFile(t *testing.T, raw []byte) string {
	t.Helper()
	_, val, ok := strings.Cut(string(raw), "\n")
	require.True(t, ok)
	val = strings.TrimSpace(val)
	require.True(t, strings.HasPrefix(val, "[]byte(") && strings.HasSuffix(val, ")"), val)
	s, err := unquoteGo(val[len("[]byte(") : len(val)-1])
	require.NoError(t, err)
	return s
}

func unquoteGo(q string) (string, error) {
	var sb strings.Builder
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return "", errors.New("not a quoted string")
	}
	q = q[1 : len(q)-1]
	for len(q) > 0 {
		c := q[0]
		if c != '\\' {
			sb.WriteByte(c)
			q = q[1:]
			continue
		}
		if len(q) < 2 {
			return "", errors.New("bad escape")
		}
		switch q[1] {
		case 'x':
			var v byte
			for _, h := range q[2:4] {
				v <<= 4
				switch {
				case '0' <= h && h <= '9':
					v |= byte(h - '0')
				case 'a' <= h && h <= 'f':
					v |= byte(h - 'a' + 10)
				case 'A' <= h && h <= 'F':
					v |= byte(h - 'A' + 10)
				}
			}
			sb.WriteByte(v)
			q = q[4:]
			continue
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'v':
			sb.WriteByte('\v')
		case 'f':
			sb.WriteByte('\f')
		case 'a':
			sb.WriteByte('\a')
		case 'b':
			sb.WriteByte('\b')
		case '\\', '"', '\'':
			sb.WriteByte(q[1])
		default:
			return "", errors.New("unsupported escape \\" + string(q[1]))
		}
		q = q[2:]
	}
	return sb.String(), nil
}

// TestReadRequestErrors checks the status and reason the server sends for
// each kind of bad head (nethttp-behaviour.md §4.13 and Appendix A).
func TestReadRequestErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		code int
		text string
	}{
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400, "missing required Host header"},
		{"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, ""},
		{"Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "malformed Host header"},
		{"TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501, ""},
		{"two TE fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501, ""},
		{"TE list", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, ""},
		{"CL 1 and CL 2", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, ""},
		{"bad CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, ""},
		{"HTTP/3.0", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505, "unsupported protocol version"},
		{"space in name", "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400, "invalid header name"},
		{"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nX : v\r\n\r\n", 400, "invalid header name"},
		{"malformed request line", "GET /\r\nHost: a\r\n\r\n", 400, ""},
		{"bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, ""},
		{"bad version", "GET / HTTP/1\r\nHost: a\r\n\r\n", 400, ""},
		{"bad URL", "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400, ""},
		{"bad trailer key", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: Trailer\r\n\r\n", 400, ""},
		{"cut short", "GET / HTTP/1.1\r\nHost: a\r\n", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, consumed, err := readRequest(bufio.NewReader(strings.NewReader(tt.in)), 1<<20)
			var re *requestError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, tt.code, re.code)
			assert.Equal(t, tt.text, re.text)
			assert.Positive(t, consumed)
			assert.Contains(t, re.Error(), http.StatusText(tt.code))
		})
	}
}

func TestReadRequestEOF(t *testing.T) {
	_, _, consumed, err := readRequest(bufio.NewReader(strings.NewReader("")), 1<<20)
	assert.Equal(t, io.EOF, err)
	assert.Equal(t, 0, consumed)

	_, _, consumed, err = readRequest(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\n")), 1<<20)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Equal(t, len("GET / HTTP/1.1\r\nHost: a\r\n"), consumed)
}

// errAfterReader returns data, then err.
type errAfterReader struct {
	data []byte
	err  error
}

func (r *errAfterReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestReadRequestPassesReadErrors(t *testing.T) {
	tests := []struct {
		name     string
		data     string
		consumed int
	}{
		{"before any byte", "", 0},
		{"mid request line", "GET / HT", 8},
		{"mid header", "GET / HTTP/1.1\r\nHost: a\r\nX-Lo", 29},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(&errAfterReader{data: []byte(tt.data), err: timeoutError{}})
			_, _, consumed, err := readRequest(br, 1<<20)
			assert.Equal(t, error(timeoutError{}), err)
			assert.Equal(t, tt.consumed, consumed)
		})
	}
}

func TestReadRequestHeaderLimit(t *testing.T) {
	const max = 100
	build := func(size int) string {
		head := "GET / HTTP/1.1\r\nHost: a\r\nX: "
		return head + strings.Repeat("v", size-len(head)-4) + "\r\n\r\n"
	}
	tests := []struct {
		name    string
		size    int
		bufSize int
		tooBig  bool
	}{
		{"at limit, small buffer", max + headSlack, 16, false},
		{"over limit, small buffer", max + headSlack + 1, 16, true},
		{"at limit, big buffer", max + headSlack, 1 << 16, false},
		{"over limit, big buffer", max + headSlack + 1, 1 << 16, true},
		{"far over limit", 1 << 16, 4096, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := build(tt.size)
			require.Len(t, in, tt.size)
			req, _, consumed, err := readRequest(bufio.NewReaderSize(strings.NewReader(in), tt.bufSize), max)
			if !tt.tooBig {
				require.NoError(t, err)
				assert.Equal(t, tt.size, consumed)
				assert.Len(t, req.Header.Get("X"), tt.size-len("GET / HTTP/1.1\r\nHost: a\r\nX: ")-4)
				return
			}
			var re *requestError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, re.code)
			assert.ErrorIs(t, err, errHeaderTooLarge)
		})
	}
	t.Run("request line over limit", func(t *testing.T) {
		in := "GET /" + strings.Repeat("p", 10000) + " HTTP/1.1\r\nHost: a\r\n\r\n"
		_, _, _, err := readRequest(bufio.NewReader(strings.NewReader(in)), max)
		var re *requestError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, re.code)
	})
	t.Run("syntax error before the limit wins", func(t *testing.T) {
		in := "GET / HTTP/1.1\r\nNo colon here\r\n" + strings.Repeat("x", 10000)
		_, _, _, err := readRequest(bufio.NewReader(strings.NewReader(in)), max)
		var re *requestError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, http.StatusBadRequest, re.code)
	})
}

// TestReadRequestTrickle feeds requests one byte per Read, through a small
// buffer, so that the head is found across many fills and the slow path.
func TestReadRequestTrickle(t *testing.T) {
	for _, in := range seedRequests {
		for _, size := range []int{16, 64, 4096} {
			br := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(in)), size)
			got, gf, _, gerr := readRequest(br, 1<<20)
			want, wf, _, werr := readRequest(bufio.NewReader(strings.NewReader(in)), 1<<20)
			require.Equal(t, werr == nil, gerr == nil, "%q size %d: %v vs %v", in, size, werr, gerr)
			if werr != nil {
				continue
			}
			assert.Equal(t, wf, gf)
			assert.Equal(t, want.Header, got.Header)
			assert.Equal(t, want.URL, got.URL)
			wb, _ := io.ReadAll(newBody(bufio.NewReader(strings.NewReader(in[len(in)-len(mustRest(t, in)):])), want, wf))
			gb, _ := io.ReadAll(newBody(br, got, gf))
			assert.Equal(t, wb, gb)
		}
	}
}

// mustRest returns what follows the head of in.
func mustRest(t *testing.T, in string) string {
	t.Helper()
	br := bufio.NewReader(strings.NewReader(in))
	_, _, n, err := readRequest(br, 1<<20)
	require.NoError(t, err)
	return in[n:]
}

func TestReadRequestPipelined(t *testing.T) {
	in := "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" +
		"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ndef\r\n0\r\n\r\n" +
		"GET /c HTTP/1.1\r\nHost: a\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(in))
	var paths, bodies []string
	for {
		req, f, _, err := readRequest(br, 1<<20)
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(newBody(br, req, f))
		require.NoError(t, err)
		paths = append(paths, req.URL.Path)
		bodies = append(bodies, string(b))
	}
	assert.Equal(t, []string{"/a", "/b", "/c"}, paths)
	assert.Equal(t, []string{"abc", "def", ""}, bodies)
}

// TestReadRequestForceClose covers our deliberate differences from net/http.
func TestReadRequestForceClose(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		chunked bool
		cl      int64
	}{
		{"TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", true, -1},
		{"TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n", false, 3},
		{"identical CLs", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", false, 3},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", false, 0},
		{"Transfer_Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n", false, 0},
		{"Content--Length", "POST / HTTP/1.1\r\nHost: a\r\nContent--Length: 3\r\n\r\n", false, 0},
		{"GET with CL", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", false, 3},
		{"HEAD with TE", "HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", true, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, f, _, err := readRequest(bufio.NewReader(strings.NewReader(tt.in)), 1<<20)
			require.NoError(t, err)
			assert.True(t, f.forceClose)
			assert.True(t, req.Close)
			assert.Equal(t, tt.chunked, f.chunked)
			assert.Equal(t, tt.cl, f.contentLength)
			nreq, err := http.ReadRequest(bufio.NewReader(strings.NewReader(tt.in)))
			require.NoError(t, err, "net/http accepts it too")
			assert.Equal(t, nreq.Header, req.Header)
			assert.Equal(t, nreq.ContentLength, req.ContentLength)
		})
	}
	for _, in := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-Transfer-Encoding: chunked\r\nContent-Type: x\r\n\r\n",
	} {
		_, f, _, err := readRequest(bufio.NewReader(strings.NewReader(in)), 1<<20)
		require.NoError(t, err)
		assert.False(t, f.forceClose, in)
	}
}

func TestReadRequestFields(t *testing.T) {
	in := "POST http://example.com/x?y=1 HTTP/1.1\r\nhost: ignored\r\ncontent-length: 3\r\nACCEPT: a\r\nAccept: b\r\nX-Long-Custom-Header-Name-That-Is-Not-Common: v\r\n\r\nabc"
	req, f, consumed, err := readRequest(bufio.NewReader(strings.NewReader(in)), 1<<20)
	require.NoError(t, err)
	assert.Equal(t, len(in)-3, consumed)
	assert.Equal(t, framing{contentLength: 3}, f)
	assert.Equal(t, "POST", req.Method)
	assert.Equal(t, "example.com", req.Host)
	assert.Equal(t, "http://example.com/x?y=1", req.RequestURI)
	assert.Equal(t, http.Header{
		"Content-Length": {"3"},
		"Accept":         {"a", "b"},
		"X-Long-Custom-Header-Name-That-Is-Not-Common": {"v"},
	}, req.Header)
	assert.Nil(t, req.Body)

	// Values share one backing array; appending must not clobber a neighbour.
	req.Header["Content-Length"] = append(req.Header["Content-Length"], "x")
	assert.Equal(t, []string{"a", "b"}, req.Header["Accept"])
	assert.Equal(t, []string{"v"}, req.Header["X-Long-Custom-Header-Name-That-Is-Not-Common"])
}

func TestPathByteMatchesURL(t *testing.T) {
	for c := 0; c < 256; c++ {
		p := "/" + string([]byte{byte(c)})
		u := url.URL{Path: p}
		unchanged := u.EscapedPath() == p && c != '%' && c != '?'
		assert.Equal(t, unchanged, pathByte[c], "byte %q", c)
	}
}

func TestFastOriginForm(t *testing.T) {
	tests := []string{"*", "/", "/a/b", "/a?", "/a?b", "/a?b?", "/a??", "/?x=%zz", "/a:b@c;d=e,f+g$h&i~j_k.l-m", "/a?q=\xff"}
	for _, raw := range tests {
		u, ok := fastOriginForm(raw)
		require.True(t, ok, raw)
		want, err := url.ParseRequestURI(raw)
		require.NoError(t, err)
		assert.Equal(t, want, u, raw)
	}
	for _, raw := range []string{"", "a", "/%41", "/a b", "/é", "/a#b", "/a!", "http://x/", "/a?\x01", "/a\x7f"} {
		_, ok := fastOriginForm(raw)
		assert.False(t, ok, raw)
	}
}

func TestSkipLeadingCRLF(t *testing.T) {
	tests := []struct {
		in   string
		skip int
	}{
		{"GET", 0},
		{"\r\nGET", 2},
		{"\n\n\r\nGET", 4},
		{"\r\n\r\n\r\nGET", 4},
		{"\r", 1},
	}
	for _, tt := range tests {
		br := bufio.NewReader(strings.NewReader(tt.in))
		assert.Equal(t, tt.skip, skipLeadingCRLF(br, 4), "%q", tt.in)
		rest, _ := io.ReadAll(br)
		assert.Equal(t, tt.in[tt.skip:], string(rest))
	}
}

func TestRequestErrorText(t *testing.T) {
	err := &requestError{code: 400, text: "malformed Host header"}
	assert.Equal(t, "httpsrv: 400 Bad Request: malformed Host header", err.Error())
	err = &requestError{code: 501, err: errors.New(`unsupported transfer encoding: "gzip"`)}
	assert.Equal(t, `httpsrv: 501 Not Implemented: unsupported transfer encoding: "gzip"`, err.Error())
	assert.True(t, bytes.Contains([]byte(badRequest(io.ErrUnexpectedEOF).Error()), []byte("unexpected EOF")))
}

// errWouldBlock stands for a client that has sent everything it will send
// for now.
var errWouldBlock = errors.New("would block")

// TestReadRequestAnswersBadLineEarly checks that a line net/http rejects as
// soon as it has read it is rejected without waiting for the rest of the
// head (issue 7, defect 9), and that a good line still waits.
func TestReadRequestAnswersBadLineEarly(t *testing.T) {
	tests := []struct {
		name string
		in   string
		bad  bool // a 400 at once; else the read error, after waiting
	}{
		{"HTTP/0.9 request", "GET /\r\n", true},
		{"HTTP/0.9 bare LF", "GET /\n", true},
		{"SSH banner", "SSH-2.0-OpenSSH_9.6\r\n", true},
		{"SMTP", "EHLO x\r\n", true},
		{"empty line", "\r\n", true},
		{"bad method", "G(T / HTTP/1.1\r\n", true},
		{"bad version", "GET / HTTP/1.10\r\n", true},
		{"bad target", "GET foo HTTP/1.1\r\n", true},
		{"header without colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n", true},
		{"first field folded", "GET / HTTP/1.1\r\n Host: a\r\n", true},
		{"bad name", "GET / HTTP/1.1\r\nX(A: 1\r\n", true},
		{"bad value", "GET / HTTP/1.1\r\nX-A: a\x01\r\n", true},
		{"partial end of head", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r", false},
		{"partial request line", "GET / HTTP/1.1", false},
		{"partial line CR", "GET / HTTP/1.1\r", false},
		{"request line", "GET / HTTP/1.1\r\n", false},
		{"HTTP/3 line waits for the 505", "GET / HTTP/3.0\r\n", false},
		{"fields", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n", false},
		{"folded field", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n", false},
		{"partial field", "GET / HTTP/1.1\r\nX-A", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{16, 4096} {
				br := bufio.NewReaderSize(&errAfterReader{data: []byte(tt.in), err: errWouldBlock}, size)
				_, _, _, err := readRequest(br, 1<<20)
				if !tt.bad {
					assert.Equal(t, errWouldBlock, err, "size %d", size)
					continue
				}
				var re *requestError
				if assert.ErrorAs(t, err, &re, "size %d", size) {
					assert.Equal(t, http.StatusBadRequest, re.code)
					assert.Empty(t, re.text)
				}
			}
		})
	}
}
