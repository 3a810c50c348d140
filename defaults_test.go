package httpsrv

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDefaults checks every safe default, that a value the user sets keeps
// net/http's meaning, and that a negative value turns the limit off.
func TestDefaults(t *testing.T) {
	const s = time.Second
	dur := func(f func(*Server) time.Duration) func(*Server) any { return func(s *Server) any { return f(s) } }
	rate := func(f func(*Server) int64) func(*Server) any { return func(s *Server) any { return f(s) } }
	tests := []struct {
		name string
		srv  *Server
		get  func(*Server) any
		want any
	}{
		{"ReadHeaderTimeout default", &Server{}, dur((*Server).readHeaderTimeout), DefaultReadHeaderTimeout},
		{"ReadHeaderTimeout from ReadTimeout", &Server{ReadTimeout: 3 * s}, dur((*Server).readHeaderTimeout), 3 * s},
		{"ReadHeaderTimeout set", &Server{ReadHeaderTimeout: 2 * s, ReadTimeout: 3 * s}, dur((*Server).readHeaderTimeout), 2 * s},
		{"ReadHeaderTimeout off", &Server{ReadHeaderTimeout: -1, ReadTimeout: 3 * s}, dur((*Server).readHeaderTimeout), time.Duration(0)},
		{"IdleTimeout default", &Server{}, dur((*Server).idleTimeout), DefaultIdleTimeout},
		{"IdleTimeout from ReadTimeout", &Server{ReadTimeout: 3 * s}, dur((*Server).idleTimeout), 3 * s},
		{"IdleTimeout set", &Server{IdleTimeout: 7 * s}, dur((*Server).idleTimeout), 7 * s},
		{"IdleTimeout off", &Server{IdleTimeout: -1}, dur((*Server).idleTimeout), time.Duration(0)},
		{"MinRequestBodyRate default", &Server{}, rate((*Server).minRequestBodyRate), int64(DefaultMinDataRate)},
		{"MinRequestBodyRate set", &Server{MinRequestBodyRate: 1000}, rate((*Server).minRequestBodyRate), int64(1000)},
		{"MinRequestBodyRate off", &Server{MinRequestBodyRate: -1}, rate((*Server).minRequestBodyRate), int64(0)},
		{"MinResponseRate default", &Server{}, rate((*Server).minResponseRate), int64(DefaultMinDataRate)},
		{"MinResponseRate off", &Server{MinResponseRate: -5}, rate((*Server).minResponseRate), int64(0)},
		{"grace default", &Server{}, dur((*Server).minRateGracePeriod), DefaultMinRateGracePeriod},
		{"grace set", &Server{MinRateGracePeriod: s}, dur((*Server).minRateGracePeriod), s},
		{"TLS handshake default", &Server{}, dur((*Server).tlsHandshakeTimeout), defaultTLSHandshakeTimeout},
		{"HTTP/2 WriteByteTimeout default", &Server{}, func(s *Server) any { return s.http2Config().WriteByteTimeout }, defaultHTTP2WriteByteTimeout},
		{"HTTP/2 WriteByteTimeout set", &Server{HTTP2: &http.HTTP2Config{WriteByteTimeout: s}}, func(s *Server) any { return s.http2Config().WriteByteTimeout }, s},
		{"HTTP/2 WriteByteTimeout off with the floor", &Server{MinResponseRate: -1}, func(s *Server) any { return s.http2Config().WriteByteTimeout }, time.Duration(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fmt.Sprintf("%+v", tt.srv.HTTP2)
			assert.Equal(t, tt.want, tt.get(tt.srv))
			assert.Equal(t, before, fmt.Sprintf("%+v", tt.srv.HTTP2), "HTTP2 config modified")
		})
	}
	// The accessors never write the defaults back.
	var zero Server
	zero.readHeaderTimeout()
	zero.idleTimeout()
	zero.http2Config()
	assert.Zero(t, zero.ReadHeaderTimeout)
	assert.Zero(t, zero.IdleTimeout)
	assert.Nil(t, zero.HTTP2)
}

func TestRateFloorDeadline(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var f rateFloor
	f.start(1000, time.Second, time.Time{})
	// Nothing moved yet: the grace period.
	assert.Equal(t, t0.Add(time.Second), f.deadline(t0, 4096))
	// 10 kB in 1 s of blocking: 10 s of credit, but one operation of 500
	// bytes may block only grace + 0.5 s.
	f.done(10000, time.Second)
	assert.Equal(t, t0.Add(1500*time.Millisecond), f.deadline(t0, 500))
	// Blocked far longer than the bytes allow: the deadline has passed.
	f.done(0, 20*time.Second)
	assert.True(t, f.deadline(t0, 4096).Before(t0))
	// An outer deadline wins when earlier.
	f.start(1000, time.Second, t0.Add(100*time.Millisecond))
	assert.Equal(t, t0.Add(100*time.Millisecond), f.deadline(t0, 4096))
	// Off means off.
	f.start(0, time.Second, time.Time{})
	assert.False(t, f.on.Load())
}

// pacedReader yields chunk bytes every interval, n times.
type pacedReader struct {
	chunk    []byte
	n        int
	interval time.Duration
	tick     *time.Ticker
}

func (r *pacedReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	if r.tick == nil {
		r.tick = time.NewTicker(r.interval)
	}
	<-r.tick.C
	r.n--
	return copy(p, r.chunk), nil
}

// TestRequestBodyRateFloor checks the request body floor end to end over
// HTTP/1.1: a fast large upload and a slow upload that still meets the
// floor both succeed; a trickle below it is cut.
func TestRequestBodyRateFloor(t *testing.T) {
	type result struct {
		n   int64
		sum [32]byte
		err error
	}
	results := make(chan result, 1)
	srv := &Server{
		MinRequestBodyRate: 1000, MinRateGracePeriod: 300 * time.Millisecond,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			var res result
			res.n, res.err = n, err
			copy(res.sum[:], h.Sum(nil))
			results <- res
		}),
	}
	addr := startTLS(t, srv)
	c := newClient(t, false)
	c.Timeout = time.Minute

	t.Run("fast large upload", func(t *testing.T) {
		// 1 GiB, streamed; 64 MiB with -short.
		size := int64(1 << 30)
		if testing.Short() {
			size = 64 << 20
		}
		body := io.LimitReader(cyclicReader("httpsrv!"), size)
		want := sha256.New()
		io.Copy(want, io.LimitReader(cyclicReader("httpsrv!"), size))
		resp, err := c.Post("https://"+addr+"/", "application/octet-stream", body)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		res := <-results
		require.NoError(t, res.err)
		assert.Equal(t, size, res.n)
		assert.Equal(t, want.Sum(nil), res.sum[:])
	})
	t.Run("slow stream above the floor", func(t *testing.T) {
		// 400 bytes every 100 ms is 4000 B/s, above 1000 B/s, for 1.5 s.
		r := &pacedReader{chunk: bytes.Repeat([]byte("a"), 400), n: 15, interval: 100 * time.Millisecond}
		resp, err := c.Post("https://"+addr+"/", "application/octet-stream", r)
		require.NoError(t, err)
		resp.Body.Close()
		res := <-results
		require.NoError(t, res.err)
		assert.Equal(t, int64(6000), res.n)
	})
	t.Run("trickle below the floor", func(t *testing.T) {
		// 10 bytes every 200 ms is 50 B/s.
		r := &pacedReader{chunk: []byte("0123456789"), n: 50, interval: 200 * time.Millisecond}
		resp, err := c.Post("https://"+addr+"/", "application/octet-stream", r)
		if err == nil {
			resp.Body.Close()
		}
		res := <-results
		assert.Error(t, res.err, "a body below the floor must fail")
		assert.Less(t, res.n, int64(500), "the trickle was read to its end")
	})
}

// TestResponseRateFloor checks the response floor over HTTP/1.1: a client
// that stops reading has its response cut, while a long-lived stream with
// quiet gaps, read by a normal client, is not.
func TestResponseRateFloor(t *testing.T) {
	writeErr := make(chan error, 1)
	srv := &Server{
		MinResponseRate: 1000, MinRateGracePeriod: 100 * time.Millisecond,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/stream" {
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for i := range 15 {
					<-tick.C
					fmt.Fprintf(w, "event %d\n", i)
					w.(http.Flusher).Flush()
				}
				return
			}
			_, err := w.Write(bytes.Repeat([]byte("x"), 16<<20))
			writeErr <- err
		}),
	}
	addr := startTLS(t, srv)

	t.Run("stream with gaps", func(t *testing.T) {
		resp, err := newClient(t, false).Get("https://" + addr + "/stream")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, 15, strings.Count(string(b), "event"))
	})
	t.Run("client stops reading", func(t *testing.T) {
		c := dialTLS(t, addr, "http/1.1")
		_, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
		require.NoError(t, err)
		// Read the status line, then nothing more.
		line, err := bufio.NewReader(c).ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, "HTTP/1.1 200 OK\r\n", line)
		select {
		case err := <-writeErr:
			assert.Error(t, err, "the server must give up on a client that stopped reading")
		case <-time.After(testTimeout()):
			t.Fatal("the write to a client that stopped reading was not cut")
		}
	})
}

// cyclicReader reads its string over and over.
type cyclicReader string

func (r cyclicReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], r)
	}
	return n, nil
}
