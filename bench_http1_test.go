package httpsrv

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// benchHandler answers GET with a short body and reads POST bodies.
func benchHandler(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		io.Copy(io.Discard, r.Body)
	}
	io.WriteString(w, "hello, world\n")
}

var (
	benchGET  = []byte("GET /bench HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	benchPOST = []byte("POST /bench HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("x", 1024))
)

// benchClient is a keep-alive HTTP/1.1 client over one TLS connection that
// allocates nothing per request, so that allocations measured are the
// server's.
type benchClient struct {
	w  io.Writer
	br *bufio.Reader
}

func newBenchClient(tb testing.TB, addr string) *benchClient {
	tb.Helper()
	conn := dialTLS(tb, addr, "http/1.1")
	return &benchClient{w: conn, br: bufio.NewReaderSize(conn, 16<<10)}
}

var clPrefix = []byte("Content-Length: ")

// roundTrip sends req and reads one response with a Content-Length.
func (c *benchClient) roundTrip(req []byte) error {
	if _, err := c.w.Write(req); err != nil {
		return err
	}
	n := -1
	for first := true; ; first = false {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if first && !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
			return errors.New("unexpected status line " + string(line))
		}
		if len(line) == 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, clPrefix); ok {
			n = 0
			for _, d := range bytes.TrimSpace(v) {
				n = n*10 + int(d-'0')
			}
		}
	}
	if n < 0 {
		return errors.New("response without Content-Length")
	}
	_, err := c.br.Discard(n)
	return err
}

// benchServers starts both servers with benchHandler and returns their
// addresses, ours first.
func benchServers(tb testing.TB) (ours, oracle string) {
	tb.Helper()
	h := http.HandlerFunc(benchHandler)
	ours = startTLS(tb, &Server{Handler: h})
	oracle = startNetHTTP(tb, &http.Server{Handler: h,
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}})
	return ours, oracle
}

func BenchmarkHTTP1(b *testing.B) {
	ours, oracle := benchServers(b)
	for _, req := range []struct {
		name string
		raw  []byte
	}{{"GET", benchGET}, {"POST1KiB", benchPOST}} {
		for _, srv := range []struct{ name, addr string }{{"httpsrv", ours}, {"net-http", oracle}} {
			b.Run(req.name+"/"+srv.name, func(b *testing.B) {
				c := newBenchClient(b, srv.addr)
				if err := c.roundTrip(req.raw); err != nil { // warm up
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if err := c.roundTrip(req.raw); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// allocsPerRequest measures the allocations of one keep-alive round trip,
// the client's included (it allocates nothing).
func h1AllocsPerRequest(t testing.TB, addr string, req []byte) float64 {
	t.Helper()
	c := newBenchClient(t, addr)
	for range 10 {
		if err := c.roundTrip(req); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	n := testing.AllocsPerRun(200, func() {
		if e := c.roundTrip(req); e != nil {
			err = e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func formatAllocs(n float64) string { return strconv.FormatFloat(n, 'f', 1, 64) }

// BenchmarkHTTP1Parallel makes keep-alive GETs on several connections at
// once, so that the server's per-request work, its shared counters
// included, runs on every core.
func BenchmarkHTTP1Parallel(b *testing.B) {
	addr := startTLS(b, &Server{Handler: http.HandlerFunc(benchHandler)})
	const perProc = 4
	b.SetParallelism(perProc)
	n := perProc * runtime.GOMAXPROCS(0)
	clients := make(chan *benchClient, n)
	for range n {
		c := newBenchClient(b, addr)
		if err := c.roundTrip(benchGET); err != nil { // warm up
			b.Fatal(err)
		}
		clients <- c
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := <-clients
		for pb.Next() {
			if err := c.roundTrip(benchGET); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
