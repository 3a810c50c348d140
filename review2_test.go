package httpsrv

// Review 2 of the HTTP/2 per-stream rate floors (h2floor.go). Every test
// here fails on the code it was written against; each one's comment gives
// the scenario and the behaviour expected.

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
)

// TestReview2WriteStringTailUnbounded: h2BufferWrite models
// bufio.Writer.Write, but the server's WriteString goes through
// bufio.Writer.WriteString, which behaves differently because the
// server's chunkWriter is no io.StringWriter: a string larger than the
// free buffer is copied and flushed 4 KiB at a time, and what is left
// (up to 4 KiB) stays buffered, where Write would have sent it all
// directly. io.WriteString(w, 6000 bytes) sends 4096 and leaves 1904 in
// the buffer, while h2Floor believes it sent 6000 and holds 0.
//
// So with a client whose stream window is 4096 (a legal
// SETTINGS_INITIAL_WINDOW_SIZE) and which never sends WINDOW_UPDATE:
//   - "final-flush": the handler returns, finish() sees buffered == 0 and
//     sets no stream write deadline, and the server's last flush of the
//     1904 bytes waits for window for ever: the stream is never reset,
//     the handler goroutine is pinned, and Shutdown waits for its context.
//   - "flush": the handler's Flush after the WriteString is not timed
//     (FlushError sees buffered == 0), so Flush blocks for ever.
//
// Expected: as for Write, the stream is reset within the grace period plus
// one piece at the floor, the Flush fails, and Shutdown completes.
func TestReview2WriteStringTailUnbounded(t *testing.T) {
	body := strings.Repeat("x", 6000)
	for _, flush := range []bool{false, true} {
		name := "final-flush"
		if flush {
			name = "flush"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			results := make(chan h2FloorResult, 1)
			srv := &Server{
				ErrorLog: discardLogger(), MinResponseRate: testFloor, MinRateGracePeriod: testGrace,
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					start := time.Now()
					n, err := io.WriteString(w, body)
					if err == nil && flush {
						err = http.NewResponseController(w).Flush()
					}
					results <- h2FloorResult{int64(n), err, time.Since(start)}
				}),
			}
			addr := startTLS(t, srv)
			c := dialH2Floor(t, addr, 4096)
			c.request(1, "GET", "/", -1, 0)
			res := waitH2FloorResult(t, results)
			t.Logf("handler: %d bytes in %v, err %v", res.n, res.elapsed.Round(time.Millisecond), res.err)
			start := time.Now()
			ended := c.waitFor(func() bool { return c.streams[1].ended })
			st := c.stream(1)
			t.Logf("client: %+v after %v", st, time.Since(start).Round(time.Millisecond))
			require.True(t, ended, "the stream stalled on the tail of a WriteString was never reset: the floor does not bound it")
			assert.True(t, st.reset, "the stream was not reset")
			assert.Less(t, res.elapsed+time.Since(start), maxCut(), "cut later than the grace period and one piece")
			shutdownPromptly(t, srv)
		})
	}
}

// TestReview2ContentLengthOverflowTailUnbounded: when a write fails,
// endPiece sets f.buffered to 0 ("the server's writer keeps its error"),
// but not every failed write leaves the server's buffer empty or its
// writer broken. x/net (and Go 1.27's server) reject a write that would
// exceed the declared Content-Length before it reaches the bufio.Writer:
// the error is not sticky and the bytes buffered before stay there.
//
// Scenario: the handler declares Content-Length: 3000, flushes the head
// (HEADERS are not flow-controlled), writes 2000 bytes (buffered), then
// writes 2000 more (the kind of mismatch a proxy
// forwarding a wrong upstream length makes): the second write fails,
// h2Floor forgets the 2000 buffered bytes, finish() sets no deadline, and
// the server's last flush waits for ever on a client that advertised a
// zero window. Expected: the final flush is bounded like any other, the
// stream is reset within the grace period plus one piece at the floor,
// and Shutdown completes.
func TestReview2ContentLengthOverflowTailUnbounded(t *testing.T) {
	results := make(chan h2FloorResult, 1)
	srv := &Server{
		ErrorLog: discardLogger(), MinResponseRate: testFloor, MinRateGracePeriod: testGrace,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			w.Header().Set("Content-Length", "3000")
			// The server checks the length once the head is sent.
			w.(http.Flusher).Flush()
			n, _ := w.Write(make([]byte, 2000))
			_, err := w.Write(make([]byte, 2000))
			results <- h2FloorResult{int64(n), err, time.Since(start)}
		}),
	}
	addr := startTLS(t, srv)
	c := dialH2Floor(t, addr, 0)
	c.request(1, "GET", "/", -1, 0)
	res := waitH2FloorResult(t, results)
	require.Error(t, res.err, "the server accepted more than the declared Content-Length")
	start := time.Now()
	ended := c.waitFor(func() bool { return c.streams[1].ended })
	t.Logf("client: %+v after %v", c.stream(1), time.Since(start).Round(time.Millisecond))
	require.True(t, ended, "the final flush of the bytes buffered before the failed write was not bounded")
	assert.Less(t, time.Since(start), maxCut(), "cut later than the grace period and one piece")
	shutdownPromptly(t, srv)
}

// Silence unused-import complaints if a test above is trimmed.
var (
	_ = bytes.MinRead
	_ = errors.New
	_ = strconv.Itoa
	_ sync.Mutex
	_ = http2.ErrCodeNo
)

// TestReview2BodyFloorCutsIdleStreamingRequest: on HTTP/2 a request body
// is often a message stream rather than an upload: gRPC served through
// ServeHTTP (client-streaming and bidirectional RPCs), Connect streams,
// any full-duplex exchange where the client sends a message when it has
// one. Between messages the handler waits in Body.Read, and the floor
// counts that wait as the client trickling: after the grace period
// (plus the few bytes received at the floor rate) the read fails with
// os.ErrDeadlineExceeded and the stream is lost, although the client is
// healthy and every message arrived at once. net/http's HTTP/2 server,
// which httpsrv claims to replace drop-in, serves such streams for as
// long as they last. The README promises that an SSE stream with long
// quiet gaps is never cut; the same quiet gap on the request side is.
//
// Scenario: a client sends a 100-byte message, pauses for three grace
// periods (a deliberately slow client), then sends a second one and ends
// the stream. Expected: the handler reads both messages without error.
//
// Resolution: the floor cannot tell such a pause from a slow-body client,
// so the handler says which it serves. One that calls
// http.ResponseController's EnableFullDuplex (or sets its own read
// deadline) turns the body floor off for the request; one that does not
// has the pause cut, as the README documents.
func TestReview2BodyFloorCutsIdleStreamingRequest(t *testing.T) {
	for _, duplex := range []bool{true, false} {
		t.Run(fmt.Sprintf("EnableFullDuplex=%v", duplex), func(t *testing.T) {
			results := make(chan h2FloorResult, 1)
			srv := &Server{
				ErrorLog: discardLogger(), MinRequestBodyRate: testFloor, MinRateGracePeriod: testGrace,
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if duplex {
						require.NoError(t, http.NewResponseController(w).EnableFullDuplex())
					}
					start := time.Now()
					n, err := io.Copy(io.Discard, r.Body)
					results <- h2FloorResult{n, err, time.Since(start)}
				}),
			}
			addr := startTLS(t, srv)
			c := dialH2Floor(t, addr, 65535)
			c.request(1, "POST", "/", 200, honestRate)
			msg := make([]byte, 100)
			require.NoError(t, c.write(func() error { return c.fr.WriteData(1, false, msg) }))
			time.Sleep(3 * testGrace) // the client has nothing to send for a while
			// The stream may have been reset meanwhile; the write still succeeds.
			require.NoError(t, c.write(func() error { return c.fr.WriteData(1, true, msg) }))
			res := waitH2FloorResult(t, results)
			t.Logf("handler: %d bytes in %v, err %v", res.n, res.elapsed.Round(time.Millisecond), res.err)
			if duplex {
				assert.NoError(t, res.err, "the floor cut a full-duplex streaming request during a quiet gap")
				assert.Equal(t, int64(200), res.n)
			} else {
				assert.ErrorIs(t, res.err, os.ErrDeadlineExceeded, "a body paused for three grace periods is a slow body")
			}
			shutdownPromptly(t, srv)
		})
	}
}

// TestReview2BodyFloorFastStartBuysLongStall: for writes the floor cuts a
// large operation into 16 KiB pieces, so that "a stream stalled after a
// fast start is cut after at most the grace period plus h2Piece at the
// floor". Reads get no such cap: h2FloorBody.Read allows grace +
// len(p)/floor, although a Read returns as soon as any DATA is there, so
// len(p) says nothing about how long the client may take. A handler that
// reads with a large buffer (io.Copy into a file through a 1 MiB buffer,
// io.ReadAll once the body has grown) lets a client that sent fast stall
// for as long as its credit lasts: after a 1 MiB burst at the default
// 240 B/s that is 5 s + 1 MiB / 240 B/s, about 73 minutes, with one
// handler goroutine and up to 1 MiB of buffered body held per stream.
//
// Scenario (test floor 200 KiB/s, grace 0.5 s): the handler reads with a
// 4 MiB buffer; the client sends 1 MiB of a 4 MiB body fast, then stops.
// Expected: the read is cut within the grace period plus one piece at the
// floor after the stall, as a write would be. Observed: it waits for the
// whole credit (grace + 1 MiB at the floor, about 5.6 s here).
func TestReview2BodyFloorFastStartBuysLongStall(t *testing.T) {
	results := make(chan h2FloorResult, 1)
	srv := &Server{
		ErrorLog: discardLogger(), MinRequestBodyRate: testFloor, MinRateGracePeriod: testGrace,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			// Neither side may be a ReaderFrom/WriterTo, or CopyBuffer ignores
			// the buffer (io.Discard is an io.ReaderFrom with 8 KiB reads).
			n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{r.Body}, make([]byte, 4<<20))
			results <- h2FloorResult{n, err, time.Since(start)}
		}),
	}
	addr := startTLS(t, srv)
	c := dialH2Floor(t, addr, 65535)
	const size, burst = 4 << 20, 1 << 20
	c.request(1, "POST", "/", size, honestRate)
	require.NoError(t, c.sendBody(1, size, 64*honestRate, burst))
	stalled := time.Now()
	res := waitH2FloorResult(t, results)
	cut := time.Since(stalled)
	t.Logf("handler: %d bytes, err %v; cut %v after the client stalled", res.n, res.err, cut.Round(time.Millisecond))
	assert.Error(t, res.err)
	assert.Less(t, cut, maxCut(), "a stalled upload was kept for its whole credit: the fast start bought the stall")
	shutdownPromptly(t, srv)
}

// TestReview2NoResetAfterClientReset: finish() sets the stream's write
// deadline for the server's last flush whenever bytes are buffered, even
// if the stream is already closed. When the client has cancelled the
// request (RST_STREAM CANCEL, what browsers send on every navigation away
// or aborted fetch), closeStream has already stopped the stream's timers;
// SetWriteDeadline's message then finds no timer (without WriteTimeout)
// and arms a new one on the closed stream, which nothing stops. When it
// fires, grace + buffered/floor later, onWriteTimeout queues a
// StreamError, and x/net writes RST_STREAM even on closed streams: the
// server answers the client's RST_STREAM with a RST_STREAM
// (INTERNAL_ERROR) seconds later, which RFC 9113 5.4.2 forbids ("MUST NOT
// send a RST_STREAM frame in response to a RST_STREAM frame"), and keeps
// a timer and the dead stream alive for that long per cancelled request.
// With the floors off (and with net/http) nothing is sent.
//
// Expected: no frame on the stream after the client reset it.
func TestReview2NoResetAfterClientReset(t *testing.T) {
	wrote := make(chan struct{})
	returned := make(chan struct{})
	srv := &Server{
		ErrorLog: discardLogger(), MinResponseRate: testFloor, MinRateGracePeriod: testGrace,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer close(returned)
			w.Write(make([]byte, 100)) // stays in the server's buffer
			close(wrote)
			select {
			case <-r.Context().Done(): // the client cancelled
			case <-time.After(testTimeout()):
			}
		}),
	}
	addr := startTLS(t, srv)
	c := dialH2Floor(t, addr, 65535)
	c.request(1, "GET", "/", -1, honestRate)
	select {
	case <-wrote:
	case <-time.After(testTimeout()):
		t.Fatal("the handler did not run")
	}
	require.NoError(t, c.write(func() error { return c.fr.WriteRSTStream(1, http2.ErrCodeCancel) }))
	select {
	case <-returned:
	case <-time.After(testTimeout()):
		t.Fatal("the handler did not see the cancellation")
	}
	// Nothing is expected on stream 1 any more: wait, bounded, for the
	// RST_STREAM the stray deadline would send (grace + 100 bytes at the
	// floor after the handler returned).
	got := c.waitWithin(4*testGrace+testTimeout()/10, func() bool { return c.streams[1].reset })
	st := c.stream(1)
	t.Logf("client: %+v", st)
	assert.False(t, got, "the server sent RST_STREAM (%v) on a stream the client had reset", st.code)
}
