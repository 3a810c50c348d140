//go:build !race

package httpsrv

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// browserGET is a typical browser request with 10 header fields.
const browserGET = "GET /static/app.js?v=1234 HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Referer: https://www.example.com/index.html\r\n" +
	"Cookie: session=0123456789abcdef; theme=dark\r\n" +
	"Connection: keep-alive\r\n" +
	"Upgrade-Insecure-Requests: 1\r\n" +
	"Cache-Control: max-age=0\r\n" +
	"\r\n"

const postCL = "POST /api/v1/items HTTP/1.1\r\n" +
	"Host: api.example.com\r\n" +
	"User-Agent: client/1.0\r\n" +
	"Content-Type: application/json\r\n" +
	"Content-Length: 27\r\n" +
	"\r\n" +
	`{"name":"widget","qty":100}`

// repeatReader serves the same request forever.
type repeatReader struct {
	data string
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

var benchRequests = []struct {
	name string
	in   string
}{
	{"BrowserGET", browserGET},
	{"PostContentLength", postCL},
}

func BenchmarkReadRequest(b *testing.B) {
	for _, bb := range benchRequests {
		b.Run(bb.name+"/httpsrv", func(b *testing.B) {
			br := bufio.NewReader(&repeatReader{data: bb.in})
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.in)))
			for b.Loop() {
				req, f, _, err := readRequest(br, http.DefaultMaxHeaderBytes)
				if err != nil {
					b.Fatal(err)
				}
				if body := newBody(br, req, f); body != http.NoBody {
					if _, err := io.Copy(io.Discard, body); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(bb.name+"/net-http", func(b *testing.B) {
			br := bufio.NewReader(&repeatReader{data: bb.in})
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.in)))
			for b.Loop() {
				req, err := http.ReadRequest(br)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, req.Body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// allocsPerRequest measures allocations per parsed request (head and body).
func allocsPerRequest(in string, ours bool) float64 {
	br := bufio.NewReader(&repeatReader{data: in})
	buf := make([]byte, 64)
	return testing.AllocsPerRun(200, func() {
		if ours {
			req, f, _, err := readRequest(br, http.DefaultMaxHeaderBytes)
			if err != nil {
				panic(err)
			}
			body := newBody(br, req, f)
			for {
				if _, err := body.Read(buf); err != nil {
					break
				}
			}
			return
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			panic(err)
		}
		for {
			if _, err := req.Body.Read(buf); err != nil {
				break
			}
		}
	})
}

// TestReadRequestAllocs guards the acceptance bar: fewer allocations per
// request than http.ReadRequest.
func TestReadRequestAllocs(t *testing.T) {
	for _, bb := range benchRequests {
		t.Run(bb.name, func(t *testing.T) {
			ours := allocsPerRequest(bb.in, true)
			theirs := allocsPerRequest(bb.in, false)
			t.Logf("allocs per request: httpsrv %.0f, net/http %.0f", ours, theirs)
			assert.Less(t, ours, theirs)
		})
	}
}

// TestBodyReadAllocs checks that reading a body does not allocate per Read.
func TestBodyReadAllocs(t *testing.T) {
	tests := []struct {
		name   string
		head   string
		stream string
	}{
		{"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", "4\r\nabcd\r\n"},
		{"content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9000000000000000000\r\n\r\n", "abcd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(io.MultiReader(strings.NewReader(tt.head), &repeatReader{data: tt.stream}))
			req, f, _, err := readRequest(br, 1<<20)
			require.NoError(t, err)
			b := newBody(br, req, f)
			buf := make([]byte, 100)
			allocs := testing.AllocsPerRun(1000, func() {
				if _, err := b.Read(buf); err != nil {
					panic(err)
				}
			})
			assert.Equal(t, 0.0, allocs)
		})
	}
}
