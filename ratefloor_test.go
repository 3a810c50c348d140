package httpsrv

import (
	"bufio"
	"bytes"
	"crypto/tls"
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

// The floor the rate tests run under, and the rates of their clients: an
// honest client at four times the floor, an attacker at a tenth of it.
// The grace period leaves room for a loaded test machine to pause the
// honest client.
const (
	testFloor     = 200 << 10 // bytes per second
	testGrace     = 500 * time.Millisecond
	honestRate    = 4 * testFloor
	tricklingRate = testFloor / 10
	// floorBodySize is large enough that a transfer at honestRate takes
	// twice the grace period beyond what the socket buffers absorb.
	floorBodySize = 1 << 20
)

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

// pacer lets a client move bytes at rate bytes per second on average: it
// catches up after a late wake-up, so a loaded test machine slows the
// client only when it cannot run at all.
type pacer struct {
	rate  int
	start time.Time
	moved int
}

// wait blocks until n more bytes may move.
func (p *pacer) wait(n int) {
	if p.start.IsZero() {
		p.start = time.Now()
	}
	p.moved += n
	due := p.start.Add(time.Duration(float64(p.moved) / float64(p.rate) * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		time.Sleep(d) // pacing the client, not waiting for the server
	}
}

// dialSmallWindow connects to addr with a small receive buffer, so that
// the server's writes wait for the client's reads, over TLS when tlsOn.
func dialSmallWindow(t *testing.T, addr string, tlsOn bool) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: testTimeout(), Control: smallWindowControl}
	nc, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	if !tlsOn {
		return nc
	}
	_, pool := testCertificate(t)
	tc := tls.Client(nc, &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	require.NoError(t, tc.Handshake())
	return tc
}

// startPlain serves srv without TLS on a fresh 127.0.0.1 listener and
// returns its address.
func startPlain(t *testing.T, srv *Server) string {
	t.Helper()
	return serveOn(t, localListener(t), srv.Serve, srv.Close)
}

// pacedReader reads from r at rate bytes per second, at most 4 KiB at a
// time.
type pacedReader struct {
	r io.Reader
	p pacer
}

func (r *pacedReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b[:min(len(b), 4<<10)])
	r.p.wait(n)
	return n, err
}

// readPaced reads a response from c at rate bytes per second (negative:
// read the head, then stop), and returns the body bytes read and the error
// that ended the read, if any.
func readPaced(c net.Conn, rate int) (int64, error) {
	c.SetReadDeadline(time.Now().Add(3 * testTimeout()))
	var src io.Reader = c
	if rate > 0 {
		src = &pacedReader{r: c, p: pacer{rate: rate}}
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(src, 4<<10), nil)
	if err != nil || rate < 0 {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(io.Discard, resp.Body)
}

// TestResponseRateFloorBothWays checks the response floor end to end, for
// every way a handler can hand the server a large body: an honest client
// reading at four times the floor gets the whole body, however large the
// handler's writes; a client reading at a tenth of the floor, and one
// that stops reading, are cut.
func TestResponseRateFloorBothWays(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), floorBodySize/16)
	file := filepath.Join(t.TempDir(), "payload")
	require.NoError(t, os.WriteFile(file, payload, 0o600))

	handlers := map[string]http.HandlerFunc{
		// One Write larger than every buffer.
		"/one-write": func(w http.ResponseWriter, r *http.Request) { w.Write(payload) },
		// io.Copy from a bytes.Reader: ReadFrom, then WriteTo, then one
		// Write.
		"/copy-reader": func(w http.ResponseWriter, r *http.Request) { io.Copy(w, bytes.NewReader(payload)) },
		"/buffer-writeto": func(w http.ResponseWriter, r *http.Request) {
			bytes.NewBuffer(payload).WriteTo(w)
		},
		// http.ServeContent from a file: sendfile on plaintext TCP.
		"/file": func(w http.ResponseWriter, r *http.Request) {
			f, err := os.Open(file)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer f.Close()
			http.ServeContent(w, r, "payload", time.Time{}, f)
		},
	}
	type result struct {
		path string
		err  error
	}
	// startServer starts a server, over TLS when tlsOn, whose handlers
	// report to done when they return.
	startServer := func(t *testing.T, tlsOn bool, done chan<- result) string {
		mux := http.NewServeMux()
		for path, h := range handlers {
			mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
				h(w, r)
				done <- result{path, http.NewResponseController(w).Flush()}
			})
		}
		srv := &Server{Handler: mux, MinResponseRate: testFloor, MinRateGracePeriod: testGrace}
		if tlsOn {
			return startTLS(t, srv)
		}
		return startPlain(t, srv)
	}

	clients := []struct {
		name   string
		rate   int // bytes per second; -1 stops after the head
		wantOK bool
	}{
		{"honest", honestRate, true},
		{"trickling", tricklingRate, false},
		{"stalled", -1, false},
	}
	for _, tlsOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("tls=%v", tlsOn), func(t *testing.T) {
			t.Parallel()
			done := make(chan result, 1)
			addr := startServer(t, tlsOn, done)
			for path := range handlers {
				for _, cl := range clients {
					t.Run(strings.TrimPrefix(path, "/")+"/"+cl.name, func(t *testing.T) {
						if !cl.wantOK && (path == "/copy-reader" || path == "/buffer-writeto") {
							t.Skip("the same writes as /one-write: only the honest client tells them apart")
						}
						c := dialSmallWindow(t, addr, tlsOn)
						_, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: localhost\r\n\r\n")
						require.NoError(t, err)
						got := make(chan int64, 1)
						go func() {
							n, _ := readPaced(c, cl.rate)
							got <- n
						}()
						// At tricklingRate the whole body would take 20 s.
						var res result
						select {
						case res = <-done:
						case <-time.After(testTimeout()):
							t.Fatal("the handler did not finish: the client was not cut")
						}
						require.Equal(t, path, res.path)
						if cl.wantOK {
							assert.NoError(t, res.err, "the server cut an honest client")
							assert.Equal(t, int64(floorBodySize), <-got, "the server cut an honest client")
							return
						}
						c.Close()
						assert.Less(t, <-got, int64(floorBodySize), "the client below the floor got everything")
					})
				}
			}
		})
	}
}

// TestRequestBodyRateFloorBothWays checks the request body floor end to
// end: an upload at four times the floor succeeds, whether the handler
// reads with small or large buffers; a trickle and a stalled upload are
// cut.
func TestRequestBodyRateFloorBothWays(t *testing.T) {
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	srv := &Server{
		MinRequestBodyRate: testFloor, MinRateGracePeriod: testGrace,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			bufSize := 512
			if r.URL.Path == "/large-reads" {
				bufSize = 4 << 20
			}
			n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r.Body}, make([]byte, bufSize))
			done <- result{n, err}
		}),
	}
	addr := startTLS(t, srv)
	clients := []struct {
		name   string
		rate   int // 0 stops after the first 16 KiB
		wantOK bool
	}{
		{"honest", honestRate, true},
		{"trickling", tricklingRate, false},
		{"stalled", 0, false},
	}
	for _, path := range []string{"/small-reads", "/large-reads"} {
		for _, cl := range clients {
			t.Run(strings.TrimPrefix(path, "/")+"/"+cl.name, func(t *testing.T) {
				c := dialTLS(t, addr, "http/1.1")
				fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n", path, floorBodySize)
				sent := make(chan error, 1)
				go func() {
					chunk := make([]byte, 4<<10)
					p := pacer{rate: max(cl.rate, 1)}
					for n := 0; n < floorBodySize; n += len(chunk) {
						if cl.rate == 0 && n >= 16<<10 {
							break
						}
						if cl.rate > 0 {
							p.wait(len(chunk))
						}
						if _, err := c.Write(chunk); err != nil {
							sent <- err
							return
						}
					}
					sent <- nil
				}()
				var res result
				select {
				case res = <-done:
				case <-time.After(3 * testTimeout()):
					t.Fatal("the handler did not finish")
				}
				if cl.wantOK {
					assert.NoError(t, res.err, "the server cut an honest upload")
					assert.Equal(t, int64(floorBodySize), res.n)
				} else {
					var ne net.Error
					assert.True(t, errors.As(res.err, &ne) && ne.Timeout(), "want a timeout, got %v", res.err)
					assert.Less(t, res.n, int64(floorBodySize))
				}
				c.Close()
				<-sent
			})
		}
	}
}
