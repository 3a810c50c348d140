package httpsrv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2FloorClient is a raw HTTP/2 client over TLS for the rate-floor tests.
// It runs flow control itself: the server sends a stream's response only
// as fast as the client grants window for it (readRate), and the client
// sends request bodies at a chosen rate within the windows the server
// grants.
type h2FloorClient struct {
	t    testing.TB
	conn net.Conn
	fr   *http2.Framer

	wmu  sync.Mutex // serialises frame writes and hb
	hb   bytes.Buffer
	henc *hpack.Encoder

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change below
	connSend int64         // connection send window
	initSend int64         // the server's SETTINGS_INITIAL_WINDOW_SIZE
	streams  map[uint32]*h2FloorStream
	goAway   bool
	readErr  error // what ended the read loop
}

// h2FloorStream is one stream's state, guarded by the client's mu.
type h2FloorStream struct {
	readRate int   // bytes per second of window granted as DATA arrives; 0: none
	pace     pacer // used by the read loop only
	send     int64 // stream send window
	status   string
	got      int64 // response body bytes
	ended    bool  // END_STREAM or RST_STREAM received
	reset    bool
	code     http2.ErrCode
}

// dialH2Floor connects to addr over TLS with ALPN h2 and starts an HTTP/2
// connection on it; see startH2FloorClient.
func dialH2Floor(t testing.TB, addr string, initWindow uint32) *h2FloorClient {
	t.Helper()
	tc := dialTLS(t, addr, "h2")
	require.Equal(t, "h2", tc.ConnectionState().NegotiatedProtocol)
	return startH2FloorClient(t, tc, initWindow)
}

// startH2FloorClient starts an HTTP/2 connection on nc whose streams start
// with the receive window initWindow. The connection's own window is
// large, so that only the streams' count. nc is closed at cleanup.
func startH2FloorClient(t testing.TB, nc net.Conn, initWindow uint32) *h2FloorClient {
	t.Helper()
	c := &h2FloorClient{
		t: t, conn: nc,
		changed: make(chan struct{}), connSend: 65535, initSend: 65535,
		streams: map[uint32]*h2FloorStream{},
	}
	c.henc = hpack.NewEncoder(&c.hb)
	_, err := io.WriteString(nc, http2.ClientPreface)
	require.NoError(t, err)
	c.fr = http2.NewFramer(nc, nc)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	require.NoError(t, c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: initWindow}))
	require.NoError(t, c.fr.WriteWindowUpdate(0, 1<<30))
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.readLoop()
	}()
	t.Cleanup(func() {
		nc.Close()
		<-done
	})
	return c
}

// broadcastLocked wakes the waiters. It requires that c.mu is held.
func (c *h2FloorClient) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitFor waits until cond, called with c.mu held, holds, or the read loop
// ends, or testTimeout passes; it reports whether cond held.
func (c *h2FloorClient) waitFor(cond func() bool) bool {
	return c.waitWithin(testTimeout(), cond)
}

// waitWithin is waitFor with a bound of d, for waiting on something that
// is expected not to happen.
func (c *h2FloorClient) waitWithin(d time.Duration, cond func() bool) bool {
	deadline := time.After(d)
	for {
		c.mu.Lock()
		ok, ended, ch := cond(), c.readErr != nil, c.changed
		c.mu.Unlock()
		if ok || ended {
			return ok
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

// write runs fn, which writes frames, under the write lock.
func (c *h2FloorClient) write(fn func() error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return fn()
}

func (c *h2FloorClient) readLoop() {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.broadcastLocked()
			c.mu.Unlock()
			return
		}
		var grant uint32
		var grantStream *h2FloorStream
		c.mu.Lock()
		st := c.streams[f.Header().StreamID]
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				f.ForeachSetting(func(s http2.Setting) error {
					if s.ID == http2.SettingInitialWindowSize {
						for _, st := range c.streams {
							st.send += int64(s.Val) - c.initSend
						}
						c.initSend = int64(s.Val)
					}
					return nil
				})
				go c.write(c.fr.WriteSettingsAck)
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				c.connSend += int64(f.Increment)
			} else if st != nil {
				st.send += int64(f.Increment)
			}
		case *http2.MetaHeadersFrame:
			if st != nil {
				if st.status == "" {
					st.status = f.PseudoValue("status")
				}
				st.ended = st.ended || f.StreamEnded()
			}
		case *http2.DataFrame:
			if st != nil {
				st.got += int64(len(f.Data()))
				st.ended = st.ended || f.StreamEnded()
				if st.readRate > 0 && f.Length > 0 && !st.ended {
					grant, grantStream = f.Length, st
				}
			}
		case *http2.RSTStreamFrame:
			if st != nil {
				st.ended, st.reset, st.code = true, true, f.ErrCode
			}
		case *http2.GoAwayFrame:
			c.goAway = true
		case *http2.PingFrame:
			if !f.IsAck() {
				data := f.Data
				go c.write(func() error { return c.fr.WritePing(true, data) })
			}
		}
		idle := c.goAway
		for _, st := range c.streams {
			idle = idle && st.ended
		}
		c.broadcastLocked()
		c.mu.Unlock()
		if idle {
			// As a client does once the server has said GOAWAY and
			// its streams are done.
			c.conn.Close()
		}
		if grantStream != nil {
			// Take the data at readRate: the window comes back as the
			// data is consumed. The pacer is the read loop's only.
			grantStream.pace.wait(int(grant))
			id := f.Header().StreamID
			c.write(func() error { return c.fr.WriteWindowUpdate(id, grant) })
		}
	}
}

// request opens stream id with a request for path, with a body of
// bodyLen bytes to come unless bodyLen is negative, and takes the response
// at readRate bytes per second (0: never grant window).
func (c *h2FloorClient) request(id uint32, method, path string, bodyLen int, readRate int) {
	c.t.Helper()
	c.mu.Lock()
	c.streams[id] = &h2FloorStream{readRate: readRate, pace: pacer{rate: max(readRate, 1)}, send: c.initSend}
	c.mu.Unlock()
	err := c.write(func() error {
		c.hb.Reset()
		fields := [][2]string{{":method", method}, {":scheme", "https"}, {":authority", "localhost"}, {":path", path}}
		if bodyLen >= 0 {
			fields = append(fields, [2]string{"content-length", strconv.Itoa(bodyLen)})
		}
		for _, f := range fields {
			if err := c.henc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
				return err
			}
		}
		return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hb.Bytes(), EndStream: bodyLen < 0, EndHeaders: true})
	})
	require.NoError(c.t, err)
}

// sendBody sends size bytes of body on stream id in 4 KiB DATA frames at
// rate bytes per second, within the server's windows, ending the stream;
// with stopAfter > 0 it stops after that many bytes and leaves the stream
// open. It returns the error that ended it early, if any.
func (c *h2FloorClient) sendBody(id uint32, size, rate, stopAfter int) error {
	chunk := make([]byte, 4<<10)
	p := pacer{rate: rate}
	for sent := 0; sent < size; {
		if stopAfter > 0 && sent >= stopAfter {
			return nil
		}
		n := min(len(chunk), size-sent)
		p.wait(n)
		granted := false
		if !c.waitFor(func() bool {
			st := c.streams[id]
			if !st.ended && c.connSend >= int64(n) && st.send >= int64(n) {
				c.connSend -= int64(n)
				st.send -= int64(n)
				granted = true
			}
			return granted || st.ended
		}) || !granted {
			return errors.New("the stream ended, or the server granted no window")
		}
		sent += n
		if err := c.write(func() error { return c.fr.WriteData(id, sent == size, chunk[:n]) }); err != nil {
			return err
		}
	}
	return nil
}

// stream returns a copy of stream id's state.
func (c *h2FloorClient) stream(id uint32) h2FloorStream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *c.streams[id]
}

// waitEnded waits for stream id to end and returns its state.
func (c *h2FloorClient) waitEnded(t *testing.T, id uint32) h2FloorStream {
	t.Helper()
	if !c.waitFor(func() bool { return c.streams[id].ended }) {
		st := c.stream(id)
		t.Fatalf("stream %d did not end: %+v (read loop: %v)", id, st, c.readErr)
	}
	return c.stream(id)
}

// h2FloorResult is what a test handler reports: the error of its blocking
// operation and how long the operation took.
type h2FloorResult struct {
	n       int64
	err     error
	elapsed time.Duration
}

// waitH2FloorResult waits for a handler's report.
func waitH2FloorResult(t *testing.T, results <-chan h2FloorResult) h2FloorResult {
	t.Helper()
	select {
	case res := <-results:
		return res
	case <-time.After(testTimeout()):
		t.Fatal("the handler did not finish: the stream was not cut")
		return h2FloorResult{}
	}
}

// shutdownPromptly checks that Shutdown completes: no stream is left
// waiting on the client.
func shutdownPromptly(t *testing.T, srv *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout())
	defer cancel()
	start := time.Now()
	require.NoError(t, srv.Shutdown(ctx), "Shutdown waited for a stream stuck on the client")
	t.Logf("Shutdown took %v", time.Since(start).Round(time.Millisecond))
}

// maxCut is the longest a stream blocked from its start may wait before
// the floor cuts it: the grace period plus one piece at the floor, plus
// room for a loaded machine.
func maxCut() time.Duration {
	return testGrace + time.Duration(float64(h2Piece)/testFloor*float64(time.Second)) + testTimeout()/5
}

// TestHTTP2ResponseRateFloorBothWays checks the response floor on HTTP/2
// streams end to end, for the ways a handler hands over its body: a
// client that grants window at four times the floor gets the whole body,
// one that grants it at a tenth of the floor, or advertises a zero window
// and never grants any, is cut (the stream reset, the handler's write
// failed), and Shutdown then completes. "final-flush" leaves its whole
// body in the server's buffer when it returns: the server's last flush,
// after the handler, waits on the client too.
func TestHTTP2ResponseRateFloorBothWays(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), floorBodySize/16)
	payloadString := string(payload)
	small := payload[:100]
	handlers := map[string]func(w http.ResponseWriter) (int64, error){
		"one-write": func(w http.ResponseWriter) (int64, error) {
			n, err := w.Write(payload)
			return int64(n), err
		},
		"small-writes": func(w http.ResponseWriter) (int64, error) {
			var n int64
			for p := payload; len(p) > 0; p = p[1000:] {
				m, err := w.Write(p[:min(len(p), 1000)])
				n += int64(m)
				if err != nil || len(p) <= 1000 {
					return n, err
				}
			}
			return n, nil
		},
		"write-string": func(w http.ResponseWriter) (int64, error) {
			n, err := io.WriteString(w, payloadString)
			return int64(n), err
		},
		"copy-reader": func(w http.ResponseWriter) (int64, error) {
			return io.Copy(w, bytes.NewReader(payload))
		},
		"flush": func(w http.ResponseWriter) (int64, error) {
			w.Write(small)
			return int64(len(small)), http.NewResponseController(w).Flush()
		},
		"final-flush": func(w http.ResponseWriter) (int64, error) {
			n, err := w.Write(small)
			return int64(n), err
		},
	}
	clients := []struct {
		name     string
		window   uint32 // initial stream window
		readRate int    // 0: never grant window
		wantOK   bool
	}{
		{"honest", 16 << 10, honestRate, true},
		{"trickling", 16 << 10, tricklingRate, false},
		{"stalled", 0, 0, false},
	}
	for name, h := range handlers {
		for _, cl := range clients {
			t.Run(name+"/"+cl.name, func(t *testing.T) {
				if cl.name == "trickling" && (name == "flush" || name == "final-flush") {
					t.Skip("100 bytes fit in the window: only a stalled client tells them apart")
				}
				if !cl.wantOK && (name == "copy-reader" || name == "write-string") {
					t.Skip("the same waits as one-write: only the honest client tells them apart")
				}
				t.Parallel()
				results := make(chan h2FloorResult, 1)
				srv := &Server{
					ErrorLog: discardLogger(), MinResponseRate: testFloor, MinRateGracePeriod: testGrace,
					Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						start := time.Now()
						n, err := h(w)
						results <- h2FloorResult{n, err, time.Since(start)}
					}),
				}
				addr := startTLS(t, srv)
				c := dialH2Floor(t, addr, cl.window)
				c.request(1, "GET", "/", -1, cl.readRate)
				res := waitH2FloorResult(t, results)
				st := c.waitEnded(t, 1)
				t.Logf("handler: %d bytes in %v, err %v; client: %+v", res.n, res.elapsed.Round(time.Millisecond), res.err, st)
				wantLen := int64(len(payload))
				if name == "flush" || name == "final-flush" {
					wantLen = int64(len(small))
				}
				if cl.wantOK {
					assert.NoError(t, res.err, "the server cut an honest client")
					assert.False(t, st.reset, "the server reset an honest stream")
					assert.Equal(t, wantLen, st.got, "the server cut an honest client")
				} else {
					assert.True(t, st.reset, "the stream was not reset")
					assert.Less(t, st.got, wantLen, "the client below the floor got everything")
					if name != "final-flush" {
						assert.Error(t, res.err, "the handler's write did not fail")
					}
					if cl.name == "stalled" && name != "final-flush" {
						assert.GreaterOrEqual(t, res.elapsed, testGrace-50*time.Millisecond, "cut before the grace period")
						assert.Less(t, res.elapsed, maxCut(), "cut later than the grace period and one piece")
					}
				}
				shutdownPromptly(t, srv)
			})
		}
	}
}

// TestHTTP2RequestBodyRateFloorBothWays checks the request body floor on
// HTTP/2 streams end to end: an upload at four times the floor succeeds,
// whether the handler reads with small or large buffers; a trickle and a
// stalled upload are cut with a timeout error, and Shutdown then
// completes.
func TestHTTP2RequestBodyRateFloorBothWays(t *testing.T) {
	clients := []struct {
		name      string
		rate      int
		stopAfter int
		wantOK    bool
	}{
		{"honest", honestRate, 0, true},
		{"trickling", tricklingRate, 0, false},
		{"stalled", honestRate, 16 << 10, false},
	}
	for _, bufSize := range []int{512, 4 << 20} {
		for _, cl := range clients {
			t.Run(fmt.Sprintf("read-%d/%s", bufSize, cl.name), func(t *testing.T) {
				t.Parallel()
				results := make(chan h2FloorResult, 1)
				srv := &Server{
					ErrorLog: discardLogger(), MinRequestBodyRate: testFloor, MinRateGracePeriod: testGrace,
					Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						start := time.Now()
						n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{r.Body}, make([]byte, bufSize))
						results <- h2FloorResult{n, err, time.Since(start)}
					}),
				}
				addr := startTLS(t, srv)
				c := dialH2Floor(t, addr, 65535)
				c.request(1, "POST", "/", floorBodySize, honestRate)
				sent := make(chan error, 1)
				go func() { sent <- c.sendBody(1, floorBodySize, cl.rate, cl.stopAfter) }()
				res := waitH2FloorResult(t, results)
				t.Logf("handler: %d bytes in %v, err %v", res.n, res.elapsed.Round(time.Millisecond), res.err)
				if cl.wantOK {
					assert.NoError(t, res.err, "the server cut an honest upload")
					assert.Equal(t, int64(floorBodySize), res.n)
				} else {
					var ne net.Error
					assert.True(t, errors.As(res.err, &ne) && ne.Timeout(), "want a timeout, got %v", res.err)
					assert.ErrorIs(t, res.err, os.ErrDeadlineExceeded)
					assert.Less(t, res.n, int64(floorBodySize))
				}
				c.waitEnded(t, 1)
				shutdownPromptly(t, srv)
				if err := <-sent; cl.wantOK {
					assert.NoError(t, err)
				}
			})
		}
	}
}

// TestHTTP2FloorHandlerDeadlines checks that a handler's own deadlines,
// set through http.ResponseController, are honoured on HTTP/2 as on
// HTTP/1: they replace the floor for the rest of the request, whether
// they come earlier than the floor would cut the stream or later.
func TestHTTP2FloorHandlerDeadlines(t *testing.T) {
	tests := []struct {
		name     string
		write    bool          // a write to a stalled client, else a read of a stalled upload
		grace    time.Duration // the floor's grace period
		deadline time.Duration // the handler's deadline, from its start
	}{
		{"write/later-than-floor", true, testGrace, 3 * testGrace},
		{"write/earlier-than-floor", true, 10 * testGrace, testGrace / 2},
		{"read/later-than-floor", false, testGrace, 3 * testGrace},
		{"read/earlier-than-floor", false, 10 * testGrace, testGrace / 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			results := make(chan h2FloorResult, 1)
			srv := &Server{
				ErrorLog:        discardLogger(),
				MinResponseRate: testFloor, MinRequestBodyRate: testFloor, MinRateGracePeriod: tt.grace,
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					start := time.Now()
					rc := http.NewResponseController(w)
					var n int64
					var err error
					if tt.write {
						err = rc.SetWriteDeadline(start.Add(tt.deadline))
						if err == nil {
							var m int
							m, err = w.Write(make([]byte, 64<<10))
							n = int64(m)
						}
					} else {
						err = rc.SetReadDeadline(start.Add(tt.deadline))
						if err == nil {
							n, err = io.Copy(io.Discard, r.Body)
						}
					}
					results <- h2FloorResult{n, err, time.Since(start)}
				}),
			}
			addr := startTLS(t, srv)
			sent := make(chan error, 1)
			var c *h2FloorClient
			if tt.write {
				c = dialH2Floor(t, addr, 0)
				c.request(1, "GET", "/", -1, 0)
				sent <- nil
			} else {
				c = dialH2Floor(t, addr, 65535)
				c.request(1, "POST", "/", floorBodySize, honestRate)
				go func() { sent <- c.sendBody(1, floorBodySize, honestRate, 16<<10) }()
			}
			res := waitH2FloorResult(t, results)
			t.Logf("handler: %d bytes in %v, err %v", res.n, res.elapsed.Round(time.Millisecond), res.err)
			assert.Error(t, res.err, "the handler's deadline did not end the operation")
			assert.GreaterOrEqual(t, res.elapsed, tt.deadline-50*time.Millisecond, "cut before the handler's deadline")
			assert.Less(t, res.elapsed, tt.deadline+testTimeout()/5, "cut after the handler's deadline")
			c.waitEnded(t, 1)
			shutdownPromptly(t, srv)
			<-sent
		})
	}
}

// TestHTTP2FloorUnencrypted checks that the floors apply to the built-in
// unencrypted HTTP/2 server too.
func TestHTTP2FloorUnencrypted(t *testing.T) {
	results := make(chan h2FloorResult, 1)
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &Server{
		ErrorLog: discardLogger(), Protocols: &protos,
		MinResponseRate: testFloor, MinRateGracePeriod: testGrace,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			n, err := w.Write(make([]byte, 64<<10))
			results <- h2FloorResult{int64(n), err, time.Since(start)}
		}),
	}
	addr := startPlain(t, srv)
	nc, err := net.DialTimeout("tcp", addr, testTimeout())
	require.NoError(t, err)
	c := startH2FloorClient(t, nc, 0)
	c.request(1, "GET", "/", -1, 0)
	res := waitH2FloorResult(t, results)
	assert.Error(t, res.err, "the handler's write did not fail")
	assert.Less(t, res.elapsed, maxCut())
	assert.True(t, c.waitEnded(t, 1).reset, "the stream was not reset")
	shutdownPromptly(t, srv)
}

// TestHTTP2FloorWriterMethods checks that a handler sees the same
// ResponseWriter and request body methods, and the same
// http.ResponseController behaviour, from httpsrv's HTTP/2 server with
// the floors on and off as from net/http's HTTP/2 server. Only the
// floors-on server wraps them.
func TestHTTP2FloorWriterMethods(t *testing.T) {
	type view struct {
		Proto        string
		Writer, Body []string
		Interfaces   []string
		Controller   []string
		writerType   string
	}
	views := make(chan view, 1)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := view{Proto: r.Proto, writerType: fmt.Sprintf("%T", w)}
		methods := func(x any) []string {
			typ := reflect.TypeOf(x)
			var names []string
			for i := range typ.NumMethod() {
				names = append(names, typ.Method(i).Name)
			}
			return names
		}
		v.Writer, v.Body = methods(w), methods(r.Body)
		for name, ok := range map[string]bool{
			"http.Flusher": is[http.Flusher](w),
			"http.Pusher":  is[http.Pusher](w),
			//lint:ignore SA1019 CloseNotifier is deprecated but still offered, as in net/http.
			"http.CloseNotifier": is[http.CloseNotifier](w),
			"http.Hijacker":      is[http.Hijacker](w),
			"io.StringWriter":    is[io.StringWriter](w),
			"io.ReaderFrom":      is[io.ReaderFrom](w),
			"Unwrap":             is[interface{ Unwrap() http.ResponseWriter }](w),
			"FlushError":         is[interface{ FlushError() error }](w),
			"SetReadDeadline":    is[interface{ SetReadDeadline(time.Time) error }](w),
			"SetWriteDeadline":   is[interface{ SetWriteDeadline(time.Time) error }](w),
			"EnableFullDuplex":   is[interface{ EnableFullDuplex() error }](w),
			"body io.WriterTo":   is[io.WriterTo](r.Body),
		} {
			if ok {
				v.Interfaces = append(v.Interfaces, name)
			}
		}
		slices.Sort(v.Interfaces)
		rc := http.NewResponseController(w)
		_, _, hijackErr := rc.Hijack()
		far := time.Now().Add(time.Hour)
		for name, err := range map[string]error{
			"SetReadDeadline":  rc.SetReadDeadline(far),
			"SetWriteDeadline": rc.SetWriteDeadline(far),
			"EnableFullDuplex": rc.EnableFullDuplex(),
			"Flush":            rc.Flush(),
			"Hijack":           hijackErr,
		} {
			v.Controller = append(v.Controller, fmt.Sprintf("%s: %v", name, err))
		}
		slices.Sort(v.Controller)
		views <- v
	})
	get := func(t *testing.T, addr string) view {
		t.Helper()
		resp, err := newClient(t, true).Post("https://"+addr+"/", "text/plain", bytes.NewReader([]byte("body")))
		require.NoError(t, err)
		resp.Body.Close()
		select {
		case v := <-views:
			return v
		case <-time.After(testTimeout()):
			t.Fatal("no request reached the handler")
			return view{}
		}
	}
	want := get(t, startNetHTTP(t, &http.Server{Handler: handler, ErrorLog: discardLogger()}))
	require.Equal(t, "HTTP/2.0", want.Proto)
	t.Logf("net/http: %s %+v", want.writerType, want)
	for _, floors := range []int64{0, -1} {
		t.Run(fmt.Sprintf("floors=%d", floors), func(t *testing.T) {
			got := get(t, startTLS(t, &Server{
				Handler: handler, ErrorLog: discardLogger(),
				MinResponseRate: floors, MinRequestBodyRate: floors,
			}))
			assert.Equal(t, floors == 0, got.writerType == "*httpsrv.h2Floor", "writer %s", got.writerType)
			got.writerType = want.writerType
			assert.Equal(t, want, got)
		})
	}
}

// is reports whether x implements T.
func is[T any](x any) bool {
	_, ok := x.(T)
	return ok
}

// TestHTTP2FloorBuiltinOnly checks that the floors wrap only requests of
// the built-in HTTP/2 server: a TLSNextProto function of the caller's
// serves its requests with its own ResponseWriter, whose buffering and
// deadlines the floors know nothing of.
func TestHTTP2FloorBuiltinOnly(t *testing.T) {
	types := make(chan string, 1)
	srv := &Server{
		ErrorLog: discardLogger(),
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){
			"h2": func(hs *http.Server, c *tls.Conn, h http.Handler) {
				new(http2.Server).ServeConn(c, &http2.ServeConnOpts{BaseConfig: hs, Handler: h})
			},
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			types <- fmt.Sprintf("%s %T", r.Proto, w)
		}),
	}
	resp, err := newClient(t, true).Get("https://" + startTLS(t, srv) + "/")
	require.NoError(t, err)
	resp.Body.Close()
	select {
	case got := <-types:
		assert.Equal(t, "HTTP/2.0", got[:len("HTTP/2.0")])
		assert.NotContains(t, got, "h2Floor")
	case <-time.After(testTimeout()):
		t.Fatal("no request reached the handler")
	}
}

// countingWriter counts the bytes written to it and the writes.
type countingWriter struct{ n, writes int }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	w.writes++
	return len(p), nil
}

// TestH2BufferWriteModel checks h2BufferWrite, and the pieces h2Floor
// cuts writes into, against a real bufio.Writer of the server's buffer
// size: for every sequence of writes, the bytes each write sends to the
// stream and leaves buffered are what the model says, and no piece sends
// more than h2Piece bytes.
func TestH2BufferWriteModel(t *testing.T) {
	buf := make([]byte, 1<<20)
	str := string(buf)
	sizes := []int{0, 1, 100, h2HandlerBuffer - 1, h2HandlerBuffer, h2HandlerBuffer + 1, 3000, 12 << 10, h2Piece - 1, h2Piece, h2Piece + 1, 40000, 1 << 20}
	for _, first := range sizes {
		for _, second := range sizes {
			for _, third := range sizes {
				cw := &countingWriter{}
				bw := bufio.NewWriterSize(cw, h2HandlerBuffer)
				f := &h2Floor{}
				for _, n := range []int{first, second, third} {
					for n > 0 {
						piece := f.pieceLen(n)
						require.Positive(t, piece)
						sent, after := h2BufferWrite(int(f.buffered), piece)
						before := cw.n
						_, err := bw.Write(buf[:piece])
						require.NoError(t, err)
						require.Equal(t, sent, cw.n-before, "sent by a write of %d with %d buffered (writes %v)", piece, f.buffered, []int{first, second, third})
						require.Equal(t, after, bw.Buffered(), "buffered after a write of %d with %d buffered", piece, f.buffered)
						require.LessOrEqual(t, sent, h2Piece)
						f.buffered = int32(after)
						n -= piece
					}
				}
				// WriteString, which bufio handles by its own rules when
				// the writer under it has no WriteString.
				cw, f = &countingWriter{}, &h2Floor{}
				bw = bufio.NewWriterSize(cw, h2HandlerBuffer)
				for _, n := range []int{first, second, third} {
					for n > 0 {
						piece := f.pieceLen(n)
						sent, after := h2BufferWriteString(int(f.buffered), piece)
						before := cw.n
						_, err := bw.WriteString(str[:piece])
						require.NoError(t, err)
						require.Equal(t, sent, cw.n-before, "sent by a WriteString of %d with %d buffered", piece, f.buffered)
						require.Equal(t, after, bw.Buffered(), "buffered after a WriteString of %d with %d buffered", piece, f.buffered)
						require.LessOrEqual(t, sent, h2Piece)
						f.buffered = int32(after)
						n -= piece
					}
				}
			}
		}
	}
}
