package httpsrv

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Raw is a raw HTTP/2 client connection for tests that look at frames
// and settings the http.Client hides.
type h2Raw struct {
	t  *testing.T
	c  net.Conn
	fr *http2.Framer

	enc    *hpack.Encoder
	encBuf bytes.Buffer
	dec    *hpack.Decoder

	fields     []hpack.HeaderField        // the last header block read
	settings   map[http2.SettingID]uint32 // the server's first SETTINGS
	connWindow int64                      // the server's connection receive window, as announced so far
	nextID     uint32
}

// dialH2Raw opens an HTTP/2 connection to addr, sends the preface and
// settings, and reads the server's SETTINGS.
func dialH2Raw(t *testing.T, addr string, settings ...http2.Setting) *h2Raw {
	t.Helper()
	return startH2Raw(t, dialTLS(t, addr, "h2"), settings...)
}

func startH2Raw(t *testing.T, c net.Conn, settings ...http2.Setting) *h2Raw {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(testTimeout())))
	_, err := io.WriteString(c, http2.ClientPreface)
	require.NoError(t, err)
	h := &h2Raw{t: t, c: c, fr: http2.NewFramer(c, c), dec: hpack.NewDecoder(4096, nil), connWindow: 65535, nextID: 1}
	h.enc = hpack.NewEncoder(&h.encBuf)
	require.NoError(t, h.fr.WriteSettings(settings...))
	f, err := h.fr.ReadFrame()
	require.NoError(t, err)
	sf, ok := f.(*http2.SettingsFrame)
	require.True(t, ok, "first frame %v, want SETTINGS", f.Header())
	h.settings = map[http2.SettingID]uint32{}
	require.NoError(t, sf.ForeachSetting(func(s http2.Setting) error {
		h.settings[s.ID] = s.Val
		return nil
	}))
	require.NoError(t, h.fr.WriteSettingsAck())
	return h
}

// setting returns the server's value of id, or "absent".
func (h *h2Raw) setting(id http2.SettingID) string {
	if v, ok := h.settings[id]; ok {
		return strconv.FormatUint(uint64(v), 10)
	}
	return "absent"
}

// request sends a request on a new stream with the pseudo-header fields of
// a GET for path, then the fields extra, and returns the stream ID.
func (h *h2Raw) request(method, path string, endStream bool, extra ...[2]string) uint32 {
	h.t.Helper()
	fields := [][2]string{{":method", method}, {":scheme", "https"}, {":authority", "localhost"}, {":path", path}}
	return h.requestFields(endStream, append(fields, extra...)...)
}

// requestFields sends a request made of exactly fields.
func (h *h2Raw) requestFields(endStream bool, fields ...[2]string) uint32 {
	h.t.Helper()
	h.encBuf.Reset()
	for _, f := range fields {
		require.NoError(h.t, h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}))
	}
	id := h.nextID
	h.nextID += 2
	require.NoError(h.t, h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.encBuf.Bytes(), EndStream: endStream, EndHeaders: true}))
	return id
}

// h2Response is what the server sent on one stream.
type h2Response struct {
	status    int
	body      string
	rawHeader []byte        // the first header block, undecoded
	reset     http2.ErrCode // the RST_STREAM code, if reset
	wasReset  bool
}

// readFrame reads the next frame, acknowledging SETTINGS and counting
// connection WINDOW_UPDATEs on the way, and decoding header blocks (which
// must fit one frame) into h.fields.
func (h *h2Raw) readFrame() (http2.Frame, error) {
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := h.fr.WriteSettingsAck(); err != nil {
					return nil, err
				}
			}
			continue
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				h.connWindow += int64(f.Increment)
			}
			continue
		case *http2.HeadersFrame:
			if !f.HeadersEnded() {
				return nil, errors.New("the test client cannot read CONTINUATION")
			}
			fields, err := h.dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				return nil, err
			}
			h.fields = fields
		}
		return f, nil
	}
}

// response reads frames until stream id ends, and fails on GOAWAY or a
// read error.
func (h *h2Raw) response(id uint32) h2Response {
	h.t.Helper()
	var r h2Response
	for {
		f, err := h.readFrame()
		require.NoError(h.t, err, "reading the response on stream %d", id)
		if f.Header().StreamID != id {
			_, goAway := f.(*http2.GoAwayFrame)
			require.False(h.t, goAway, "GOAWAY while waiting for stream %d", id)
			continue
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			if r.rawHeader == nil {
				r.rawHeader = append([]byte{}, f.HeaderBlockFragment()...)
			}
			for _, hf := range h.fields {
				if hf.Name == ":status" {
					r.status, _ = strconv.Atoi(hf.Value)
				}
			}
			if f.StreamEnded() {
				return r
			}
		case *http2.DataFrame:
			r.body += string(f.Data())
			if f.StreamEnded() {
				return r
			}
		case *http2.RSTStreamFrame:
			r.wasReset, r.reset = true, f.ErrCode
			return r
		}
	}
}

// pingOrder sends a PING and reads until its ACK, then another, and
// reports whether a GOAWAY came before the second ACK. Two round trips
// make sure the server has handled everything the first response caused.
func (h *h2Raw) goAwayBeforePings() bool {
	h.t.Helper()
	sawGoAway := false
	for i := range 2 {
		data := [8]byte{byte(i + 1)}
		require.NoError(h.t, h.fr.WritePing(false, data))
		for {
			f, err := h.readFrame()
			require.NoError(h.t, err)
			if _, ok := f.(*http2.GoAwayFrame); ok {
				sawGoAway = true
			}
			if p, ok := f.(*http2.PingFrame); ok && p.IsAck() && p.Data == data {
				break
			}
		}
	}
	return sawGoAway
}

// tableSizeUpdate returns the dynamic table size update that starts the
// HPACK header block b, if any (RFC 7541, section 6.3).
func tableSizeUpdate(b []byte) (uint64, bool) {
	if len(b) == 0 || b[0]&0xe0 != 0x20 {
		return 0, false
	}
	v := uint64(b[0] & 0x1f)
	if v < 0x1f {
		return v, true
	}
	var m uint
	for _, c := range b[1:] {
		v += uint64(c&0x7f) << m
		if c&0x80 == 0 {
			return v, true
		}
		m += 7
	}
	return 0, false
}

// notifyWriter is an io.Writer that keeps what is written and signals
// each write.
type notifyWriter struct {
	syncBuffer
	wrote chan struct{}
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	select {
	case w.wrote <- struct{}{}:
	default:
	}
	return n, err
}

// h2Effect says on which builds a setting changes what HTTP/2 does.
type h2Effect int

const (
	h2Always      h2Effect = iota
	h2OnGo127              // Go 1.27's http.Server has the field; before, HTTP/2 ignores client priority
	h2WrapperOnly          // only net/http's HTTP/2 server reads it; x/net's standalone one cannot
)

func (e h2Effect) applies(t *testing.T) bool {
	switch e {
	case h2OnGo127:
		return !strings.HasPrefix(runtime.Version(), "go1.26")
	case h2WrapperOnly:
		wraps, err := h2EngineWraps()
		require.NoError(t, err)
		return wraps
	}
	return true
}

// TestHTTP2ServerFields checks that each Server field with a meaning for
// HTTP/2 reaches the HTTP/2 server, observed over a real connection, on
// the standalone x/net server (Go 1.26) and on the Go 1.27 wrapper alike
// (issue 11, item 3). Where a field cannot have an effect on one build,
// effect says so and the check asserts that it has none.
//
// Fields without an HTTP/2 meaning in net/http are left out:
// ReadHeaderTimeout (HTTP/2 reads no header in its time; it only bounds
// the TLS handshake), TLSNextProto, Protocols and Addr. HTTP2's
// StrictMaxConcurrentRequests is for clients.
func TestHTTP2ServerFields(t *testing.T) {
	okHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

	// settingRow observes a SETTINGS parameter: want with the field set,
	// and the value of a zero Server when the field has no effect.
	settingRow := func(id http2.SettingID, want string) func(t *testing.T, addr string, _ *Server, effect bool, zero *h2Raw) {
		return func(t *testing.T, addr string, _ *Server, effect bool, zero *h2Raw) {
			got := dialH2Raw(t, addr).setting(id)
			if !effect {
				want = zero.setting(id)
			}
			assert.Equal(t, want, got, "SETTINGS parameter %v", id)
		}
	}

	tests := []struct {
		name    string
		set     func(s *Server)
		handler http.Handler // nil means okHandler
		effect  h2Effect
		// parallel marks a slow row; it runs along the other tests.
		parallel bool
		check    func(t *testing.T, addr string, s *Server, effect bool, zero *h2Raw)
	}{{
		name:  "MaxHeaderBytes",
		set:   func(s *Server) { s.MaxHeaderBytes = 3000 },
		check: settingRow(http2.SettingMaxHeaderListSize, "3320"), // plus 10 fields' overhead, as net/http adds
	}, {
		name:  "HTTP2.MaxConcurrentStreams",
		set:   func(s *Server) { s.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 3} },
		check: settingRow(http2.SettingMaxConcurrentStreams, "3"),
	}, {
		name:  "HTTP2.MaxDecoderHeaderTableSize",
		set:   func(s *Server) { s.HTTP2 = &http.HTTP2Config{MaxDecoderHeaderTableSize: 8192} },
		check: settingRow(http2.SettingHeaderTableSize, "8192"),
	}, {
		name:  "HTTP2.MaxReadFrameSize",
		set:   func(s *Server) { s.HTTP2 = &http.HTTP2Config{MaxReadFrameSize: 32768} },
		check: settingRow(http2.SettingMaxFrameSize, "32768"),
	}, {
		name:  "HTTP2.MaxReceiveBufferPerStream",
		set:   func(s *Server) { s.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: 100000} },
		check: settingRow(http2.SettingInitialWindowSize, "100000"),
	}, {
		name: "DisableClientPriority",
		// The response floor is off on both servers: under it a large
		// write reaches the scheduler 16 KiB at a time (h2Piece), so
		// the streams alternate whatever the scheduler.
		set:     func(s *Server) { s.DisableClientPriority = true; s.MinResponseRate = -1 },
		handler: priorityHandler,
		effect:  h2OnGo127,
		check: func(t *testing.T, addr string, _ *Server, effect bool, _ *h2Raw) {
			// The RFC 9218 scheduler sends all of the urgent stream
			// first; round robin, which ignores client priority,
			// alternates. Before Go 1.27 there is only round robin.
			other := startTLS(t, &Server{Handler: priorityHandler, MinResponseRate: -1})
			assert.True(t, prioritizedSeen(t, other, effect), "without DisableClientPriority")
			assert.True(t, prioritizedSeen(t, addr, false), "with DisableClientPriority")
		},
	}, {
		name: "HTTP2.MaxReceiveBufferPerConnection",
		set:  func(s *Server) { s.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerConnection: 2 << 20} },
		check: func(t *testing.T, addr string, _ *Server, _ bool, _ *h2Raw) {
			h := dialH2Raw(t, addr)
			h.response(h.request("GET", "/", true))
			assert.Equal(t, int64(2<<20), h.connWindow)
		},
	}, {
		name: "HTTP2.MaxEncoderHeaderTableSize",
		set:  func(s *Server) { s.HTTP2 = &http.HTTP2Config{MaxEncoderHeaderTableSize: 1024} },
		check: func(t *testing.T, addr string, _ *Server, _ bool, _ *h2Raw) {
			h := dialH2Raw(t, addr, http2.Setting{ID: http2.SettingHeaderTableSize, Val: 1 << 16})
			r := h.response(h.request("GET", "/", true))
			size, ok := tableSizeUpdate(r.rawHeader)
			require.True(t, ok, "the response header block does not shrink the table: % x", r.rawHeader)
			assert.Equal(t, uint64(1024), size)
		},
	}, {
		name: "HTTP2.SendPingTimeout",
		set:  func(s *Server) { s.HTTP2 = &http.HTTP2Config{SendPingTimeout: 20 * time.Millisecond} },
		check: func(t *testing.T, addr string, _ *Server, _ bool, _ *h2Raw) {
			h := dialH2Raw(t, addr)
			for {
				f, err := h.readFrame()
				require.NoError(t, err, "waiting for the server's PING")
				if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
					return
				}
			}
		},
	}, {
		name: "HTTP2.PingTimeout",
		set: func(s *Server) {
			s.HTTP2 = &http.HTTP2Config{SendPingTimeout: 20 * time.Millisecond, PingTimeout: 20 * time.Millisecond}
			s.ErrorLog = log.New(io.Discard, "", 0)
		},
		check: func(t *testing.T, addr string, _ *Server, _ bool, _ *h2Raw) {
			// The PING goes unanswered; the default PingTimeout (15s)
			// is past the read deadline.
			h := dialH2Raw(t, addr)
			for {
				_, err := h.readFrame()
				if err != nil {
					var ne net.Error
					require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server kept the connection: %v", err)
					return
				}
			}
		},
	}, {
		name:     "HTTP2.WriteByteTimeout",
		parallel: true, // the server's close_notify waits 5s for the client that reads nothing
		set: func(s *Server) {
			s.MinResponseRate = -1 // no other reason to drop the connection
			s.HTTP2 = &http.HTTP2Config{WriteByteTimeout: 50 * time.Millisecond}
		},
		handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			buf := make([]byte, 64<<10)
			for {
				if _, err := w.Write(buf); err != nil {
					writeErrs <- err
					return
				}
			}
		}),
		check: func(t *testing.T, addr string, _ *Server, _ bool, _ *h2Raw) {
			// A client that reads nothing, with windows so large that
			// only the socket stops the server.
			nc, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			t.Cleanup(func() { nc.Close() })
			require.NoError(t, nc.(*net.TCPConn).SetReadBuffer(4096))
			_, pool := testCertificate(t)
			tc := tls.Client(nc, &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"h2"}})
			h := startH2Raw(t, tc, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
			require.NoError(t, h.fr.WriteWindowUpdate(0, 1<<31-1-65535))
			h.request("GET", "/", true)
			// The default (30s) is past the wait.
			select {
			case <-writeErrs:
			case <-time.After(testTimeout()):
				t.Fatal("the handler's writes did not fail")
			}
		},
	}, {
		name: "HTTP2.PermitProhibitedCipherSuites",
		set: func(s *Server) {
			s.TLSConfig = &tls.Config{
				MaxVersion:   tls.VersionTLS12,
				CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
			}
			s.HTTP2 = &http.HTTP2Config{PermitProhibitedCipherSuites: true}
		},
		check: func(t *testing.T, addr string, _ *Server, _ bool, _ *h2Raw) {
			_, pool := testCertificate(t)
			tc, err := tls.Dial("tcp", addr, &tls.Config{
				RootCAs: pool, ServerName: "localhost", NextProtos: []string{"h2"},
				MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
			})
			require.NoError(t, err)
			t.Cleanup(func() { tc.Close() })
			require.Equal(t, "h2", tc.ConnectionState().NegotiatedProtocol)
			// Without the field: GOAWAY INADEQUATE_SECURITY.
			h := startH2Raw(t, tc)
			r := h.response(h.request("GET", "/", true))
			assert.Equal(t, http.StatusOK, r.status)
		},
	}, {
		name: "HTTP2.CountError",
		set: func(s *Server) {
			s.HTTP2 = &http.HTTP2Config{CountError: func(errType string) {
				select {
				case countErrors <- errType:
				default:
				}
			}}
		},
		check: func(t *testing.T, addr string, _ *Server, _ bool, _ *h2Raw) {
			h := dialH2Raw(t, addr)
			id := h.requestFields(true, [2]string{":method", "GET"}, [2]string{":scheme", "https"}) // no :path
			r := h.response(id)
			require.True(t, r.wasReset)
			deadline := time.After(testTimeout())
			for {
				select {
				case name := <-countErrors:
					if strings.HasSuffix(name, "_bad_path_method") { // stream_PROTOCOL_bad_path_method
						return
					}
				case <-deadline:
					t.Fatal("CountError was not called with bad_path_method")
				}
			}
		},
	}, {
		name: "MaxHeaderValueCount",
		set:  func(s *Server) { s.MaxHeaderValueCount = 10 },
		check: func(t *testing.T, addr string, _ *Server, _ bool, _ *h2Raw) {
			checkHeaderValueCount(t, dialH2Raw(t, addr), 10)
		},
	}, {
		name: "MaxHeaderValueCount default",
		set:  func(s *Server) {},
		check: func(t *testing.T, addr string, _ *Server, _ bool, _ *h2Raw) {
			checkHeaderValueCount(t, dialH2Raw(t, addr), DefaultMaxHeaderValueCount)
		},
	}, {
		name: "IdleTimeout",
		set:  func(s *Server) { s.IdleTimeout = 20 * time.Millisecond },
		check: func(t *testing.T, addr string, _ *Server, _ bool, _ *h2Raw) {
			h := dialH2Raw(t, addr)
			h.response(h.request("GET", "/", true))
			for {
				f, err := h.readFrame()
				require.NoError(t, err, "waiting for GOAWAY")
				if g, ok := f.(*http2.GoAwayFrame); ok {
					assert.Equal(t, http2.ErrCodeNo, g.ErrCode)
					return
				}
			}
		},
	}, {
		name: "ReadTimeout",
		set: func(s *Server) {
			s.ReadTimeout = 20 * time.Millisecond
			s.IdleTimeout = -1
			s.TLSHandshakeTimeout = testTimeout()
		},
		handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := io.ReadAll(r.Body)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				w.WriteHeader(http.StatusRequestTimeout)
			}
		}),
		check: func(t *testing.T, addr string, _ *Server, _ bool, _ *h2Raw) {
			// The body never comes: the stream's read deadline ends
			// it, and the connection stays.
			h := dialH2Raw(t, addr)
			assert.Equal(t, http.StatusRequestTimeout, h.response(h.request("POST", "/", false)).status)
			assert.False(t, h.goAwayBeforePings())
		},
	}, {
		name: "WriteTimeout",
		set: func(s *Server) {
			s.WriteTimeout = 20 * time.Millisecond
			s.TLSHandshakeTimeout = testTimeout()
		},
		handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}),
		check: func(t *testing.T, addr string, _ *Server, _ bool, _ *h2Raw) {
			h := dialH2Raw(t, addr)
			r := h.response(h.request("GET", "/", true))
			assert.True(t, r.wasReset, "the stream was not reset")
			assert.False(t, h.goAwayBeforePings())
		},
	}, {
		name:   "SetKeepAlivesEnabled",
		set:    func(s *Server) { s.SetKeepAlivesEnabled(false) },
		effect: h2WrapperOnly,
		check: func(t *testing.T, addr string, _ *Server, effect bool, _ *h2Raw) {
			// With keep-alives off, the wrapper sends GOAWAY when the
			// connection goes idle.
			h := dialH2Raw(t, addr)
			h.response(h.request("GET", "/", true))
			assert.Equal(t, effect, h.goAwayBeforePings())
		},
	}, {
		name: "ConnState",
		set: func(s *Server) {
			rec := newStateRecorder()
			s.ConnState = rec.hook
			stateRecorders.Store(s, rec)
		},
		check: func(t *testing.T, addr string, s *Server, _ bool, _ *h2Raw) {
			rec, _ := stateRecorders.Load(s)
			h := dialH2Raw(t, addr)
			h.response(h.request("GET", "/", true))
			// StateIdle comes from the HTTP/2 server.
			rec.(*stateRecorder).waitFor(t, "StateIdle after the request", lastStateIs(http.StateIdle))
		},
	}, {
		name: "ErrorLog",
		set: func(s *Server) {
			w := &notifyWriter{wrote: make(chan struct{}, 1)}
			s.ErrorLog = log.New(w, "", 0)
			errorLogs.Store(s, w)
		},
		handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("h2settings-boom") }),
		check: func(t *testing.T, addr string, s *Server, _ bool, _ *h2Raw) {
			v, _ := errorLogs.Load(s)
			w := v.(*notifyWriter)
			h := dialH2Raw(t, addr)
			h.response(h.request("GET", "/", true))
			deadline := time.After(testTimeout())
			for !strings.Contains(w.String(), "h2settings-boom") {
				select {
				case <-w.wrote:
				case <-deadline:
					t.Fatalf("the panic was not logged to ErrorLog; log: %q", w.String())
				}
			}
			assert.Contains(t, w.String(), "http2: panic serving")
		},
	}, {
		name: "BaseContext and ConnContext",
		set: func(s *Server) {
			s.BaseContext = func(net.Listener) context.Context {
				return context.WithValue(context.Background(), ctxKeyBase{}, "base")
			}
			s.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
				return context.WithValue(ctx, ctxKeyConn{}, "conn")
			}
		},
		handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, r.Context().Value(ctxKeyBase{}), r.Context().Value(ctxKeyConn{}))
		}),
		check: func(t *testing.T, addr string, _ *Server, _ bool, _ *h2Raw) {
			h := dialH2Raw(t, addr)
			assert.Equal(t, "baseconn", h.response(h.request("GET", "/", true)).body)
		},
	}}

	t.Parallel()
	zeroAddr := startTLS(t, &Server{Handler: okHandler})
	zero := dialH2Raw(t, zeroAddr)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.parallel {
				t.Parallel()
			}
			srv := &Server{Handler: tt.handler}
			if srv.Handler == nil {
				srv.Handler = okHandler
			}
			tt.set(srv)
			addr := startTLS(t, srv)
			tt.check(t, addr, srv, tt.effect.applies(t), zero)
		})
	}
}

type (
	ctxKeyBase struct{}
	ctxKeyConn struct{}
)

// Per-server state of TestHTTP2ServerFields rows.
var (
	countErrors    = make(chan string, 100)
	writeErrs      = make(chan error, 1)
	stateRecorders sync.Map // *Server → *stateRecorder
	errorLogs      sync.Map // *Server → *notifyWriter
)

// checkHeaderValueCount checks that a request of max header fields,
// pseudo-header fields included, is served, and that one more gets Go
// 1.27's 431 without the handler and keeps the connection.
func checkHeaderValueCount(t *testing.T, h *h2Raw, max int) {
	t.Helper()
	fields := func(n int) [][2]string {
		var f [][2]string
		for i := range n - 4 { // :method, :scheme, :authority, :path
			f = append(f, [2]string{"x-h" + strconv.Itoa(i), "v"})
		}
		return f
	}
	r := h.response(h.request("GET", "/", true, fields(max)...))
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "ok", r.body)

	r = h.response(h.request("GET", "/", true, fields(max+1)...))
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, r.status)
	assert.Equal(t, "<h1>HTTP Error 431</h1><p>Request Header Field(s) Too Large</p>", r.body)

	r = h.response(h.request("GET", "/", true))
	assert.Equal(t, http.StatusOK, r.status, "the connection after a 431")
}

// priorityHandler serves prioritized: /fill answers 65535 bytes, the
// whole initial connection window; other paths 32 KiB in one Write, so
// that the write scheduler alone splits it into frames.
var priorityHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/fill" {
		w.Write(make([]byte, 65535))
		return
	}
	w.Write(make([]byte, 32<<10))
})

// prioritizedSeen reports whether prioritized gives want in one of three
// tries. The order of DATA frames is decided only once both handlers have
// queued theirs, which the client cannot see; a handler still on its way
// when the window opens shows the other order. A scheduler that gives the
// wrong order does so every time both are queued, so a try that matches
// is the scheduler's answer, not chance.
func prioritizedSeen(t *testing.T, addr string, want bool) bool {
	t.Helper()
	for range 3 {
		if prioritized(t, addr) == want {
			return true
		}
	}
	return false
}

// prioritized reports whether the server at addr, serving
// priorityHandler, sends a stream of urgency 0 before one of urgency 7
// (RFC 9218) when both wait for the connection window, rather than
// alternating between them.
func prioritized(t *testing.T, addr string) bool {
	t.Helper()
	h := dialH2Raw(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
	h.response(h.request("GET", "/fill", true))
	low := h.request("GET", "/", true, [2]string{"priority", "u=7"})
	high := h.request("GET", "/", true, [2]string{"priority", "u=0"})
	// Once a response's HEADERS are out, its handler queues its DATA;
	// PING round trips give it the time to.
	for seen := map[uint32]bool{}; !seen[low] || !seen[high]; {
		f, err := h.readFrame()
		require.NoError(t, err)
		if _, ok := f.(*http2.HeadersFrame); ok {
			seen[f.Header().StreamID] = true
		}
	}
	h.goAwayBeforePings()
	require.NoError(t, h.fr.WriteWindowUpdate(0, 65535))
	var order []uint32
	for len(order) < 2 {
		f, err := h.readFrame()
		require.NoError(t, err)
		if d, ok := f.(*http2.DataFrame); ok && len(d.Data()) > 0 {
			order = append(order, d.StreamID)
		}
	}
	return order[0] == high && order[1] == high
}

// TestUnencryptedHTTP2MaxHeaderValueCount checks MaxHeaderValueCount on
// prior-knowledge HTTP/2 over plaintext (h2c), which x/net serves as it
// serves HTTP/2 over TLS.
func TestUnencryptedHTTP2MaxHeaderValueCount(t *testing.T) {
	p := protocols(true, false)
	p.SetUnencryptedHTTP2(true)
	srv := &Server{
		Handler:             http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		Protocols:           &p,
		MaxHeaderValueCount: 10,
	}
	addr := servePlain(t, srv.Serve, srv.Close)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	checkHeaderValueCount(t, startH2Raw(t, c), 10)
}

// deadlineConn is a net.Conn whose SetWriteDeadline calls are recorded.
type deadlineConn struct {
	net.Conn
	mu  sync.Mutex
	set []time.Time
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set = append(c.set, t)
	return nil
}

func (c *deadlineConn) calls() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.set)
}

// TestH2WriteWatch checks that h2WriteWatch fails a write pending past the
// deadline the HTTP/2 server set for it, as the connection's own deadline
// would, and otherwise never touches the connection's deadline.
func TestH2WriteWatch(t *testing.T) {
	const timeout = 30 * time.Second
	tests := []struct {
		name string
		// The server's calls: a write of each duration in turn, with
		// a pause after each, then one left pending if pending is set.
		writes  []time.Duration
		pause   time.Duration
		pending bool
		// want is the deadlines the watch sets on the connection:
		// "past" for a cut, "clear" for a zero deadline.
		want []string
	}{
		{name: "writes in time", writes: []time.Duration{time.Second, 29 * time.Second, 0}, pause: time.Second},
		{name: "writes for longer than the timeout in all", writes: slices.Repeat([]time.Duration{10 * time.Second}, 10)},
		{name: "idle between writes", writes: []time.Duration{time.Second, time.Second}, pause: 5 * time.Minute},
		{name: "stalled write", writes: []time.Duration{time.Second}, pending: true, want: []string{"past"}},
		{name: "stalled write after others", writes: []time.Duration{time.Second, time.Second, 0}, pause: 40 * time.Second, pending: true, want: []string{"past"}},
		{name: "too slow write", writes: []time.Duration{31 * time.Second, time.Second}, want: []string{"past", "clear"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dc := &deadlineConn{}
				w := &h2WriteWatch{conn: dc}
				for _, d := range tt.writes {
					require.NoError(t, w.setWriteDeadline(time.Now().Add(timeout)))
					time.Sleep(d)
					require.NoError(t, w.setWriteDeadline(time.Time{}))
					time.Sleep(tt.pause)
				}
				if tt.pending {
					require.NoError(t, w.setWriteDeadline(time.Now().Add(timeout)))
					time.Sleep(2 * timeout)
				}
				time.Sleep(2 * timeout)
				var got []string
				for _, d := range dc.calls() {
					switch {
					case d.IsZero():
						got = append(got, "clear")
					case d.Equal(deadlinePast):
						got = append(got, "past")
					default:
						got = append(got, d.String())
					}
				}
				assert.Equal(t, tt.want, got)
				w.mu.Lock()
				assert.Nil(t, w.timer, "timer armed on an idle connection")
				w.mu.Unlock()
				w.stop()
			})
		})
	}
}
