//go:build !race

package httpsrv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2BenchClient makes HTTP/2 GET requests, one stream after another, on
// one TLS connection, and allocates little per request (it does not
// decode response headers), so that allocations measured are mostly the
// server's.
type h2BenchClient struct {
	fr    *http2.Framer
	block []byte // the request's header block
	next  uint32 // the next stream ID
}

func newH2BenchClient(tb testing.TB, addr, path string) *h2BenchClient {
	tb.Helper()
	conn := dialTLS(tb, addr, "h2")
	_, err := io.WriteString(conn, http2.ClientPreface)
	require.NoError(tb, err)
	fr := http2.NewFramer(conn, conn)
	fr.SetReuseFrames()
	require.NoError(tb, fr.WriteSettings())
	require.NoError(tb, fr.WriteWindowUpdate(0, 1<<30))
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "localhost"}, {":path", path}} {
		require.NoError(tb, enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1], Sensitive: true}))
	}
	return &h2BenchClient{fr: fr, block: hb.Bytes(), next: 1}
}

// roundTrip sends a GET and reads frames until its stream ends.
func (c *h2BenchClient) roundTrip() error {
	id := c.next
	c.next += 2
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block, EndStream: true, EndHeaders: true}); err != nil {
		return err
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := c.fr.WriteSettingsAck(); err != nil {
					return err
				}
			}
		case *http2.RSTStreamFrame:
			return fmt.Errorf("stream reset: %v", f.ErrCode)
		case *http2.GoAwayFrame:
			return errors.New("GOAWAY")
		case *http2.DataFrame:
			if n := f.Length; n > 0 && !f.StreamEnded() {
				if err := c.fr.WriteWindowUpdate(id, n); err != nil {
					return err
				}
			}
		}
		if f.Header().StreamID == id && f.Header().Flags.Has(http2.FlagDataEndStream) {
			return nil
		}
	}
}

// h2AllocsPerRequest measures the allocations of one HTTP/2 request on a
// connection to addr, the client's included.
func h2AllocsPerRequest(t testing.TB, addr string) float64 {
	t.Helper()
	c := newH2BenchClient(t, addr, "/bench")
	for range 10 {
		require.NoError(t, c.roundTrip())
	}
	var err error
	n := testing.AllocsPerRun(200, func() {
		if e := c.roundTrip(); e != nil {
			err = e
		}
	})
	require.NoError(t, err)
	return n
}

// TestHTTP2FloorAllocs is the allocation guard of the HTTP/2 rate floors:
// with the floors on, a request whose response stays in the server's
// buffer costs the wrapper and the stream's write deadline for the
// server's final flush, a few allocations and no more.
func TestHTTP2FloorAllocs(t *testing.T) {
	allocs := map[string]float64{}
	for _, floors := range []int64{-1, 0} {
		addr := startTLS(t, &Server{Handler: http.HandlerFunc(benchHandler), MinResponseRate: floors, MinRequestBodyRate: floors})
		allocs[fmt.Sprint(floors)] = h2AllocsPerRequest(t, addr)
	}
	t.Logf("allocs per HTTP/2 request: floors off %s, on %s", formatAllocs(allocs["-1"]), formatAllocs(allocs["0"]))
	assert.LessOrEqual(t, allocs["0"]-allocs["-1"], 5.0)
}

// BenchmarkHTTP2Floor measures HTTP/2 requests with the floors off and
// on: a short response, and a 1 MiB one written at once (which the floor
// passes to the server in pieces of h2Piece bytes).
func BenchmarkHTTP2Floor(b *testing.B) {
	big := make([]byte, 1<<20)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write(big)
			return
		}
		benchHandler(w, r)
	})
	for _, path := range []string{"/bench", "/big"} {
		for _, floors := range []int64{-1, 0} {
			b.Run(fmt.Sprintf("%s/floors=%d", path[1:], floors), func(b *testing.B) {
				addr := startTLS(b, &Server{Handler: h, MinResponseRate: floors, MinRequestBodyRate: floors})
				c := newH2BenchClient(b, addr, path)
				b.ReportAllocs()
				for b.Loop() {
					if err := c.roundTrip(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
