package httpsrv

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// outcome is what a server does with the head of a byte stream: an error
// reply (code and reason text), a clean close, or a request to serve.
type outcome struct {
	eof  bool // clean close before any byte
	code int  // status of the error reply; 0 when a request was read
	text string
	req  *http.Request
	br   *bufio.Reader // positioned after the head
	f    framing       // ours only
}

// netHTTPOutcome reads data with http.ReadRequest and then applies the checks
// net/http's conn.readRequest makes (server.go ~1006-1031).
func netHTTPOutcome(data []byte) outcome {
	br := bufio.NewReader(bytes.NewReader(data))
	req, err := http.ReadRequest(br)
	if err != nil {
		switch {
		case err == io.EOF:
			return outcome{eof: true}
		case strings.HasPrefix(err.Error(), "too many transfer encodings"),
			strings.HasPrefix(err.Error(), "unsupported transfer encoding"):
			return outcome{code: http.StatusNotImplemented}
		}
		return outcome{code: http.StatusBadRequest}
	}
	// ReadRequest has already dropped Host from req.Header; read the raw
	// fields again with net/textproto to apply the server's Host rules.
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(data)))
	if _, err := tp.ReadLine(); err != nil {
		panic(err)
	}
	raw, err := tp.ReadMIMEHeader()
	if err != nil {
		panic(err)
	}
	isH2Upgrade := req.Method == "PRI" && len(req.Header) == 0 && req.URL.Path == "*" && req.Proto == "HTTP/2.0"
	if req.ProtoMajor != 1 && !(req.ProtoMajor == 2 && req.ProtoMinor == 0 && req.Method == "PRI" && req.RequestURI == "*") {
		return outcome{code: 505, text: "unsupported protocol version"}
	}
	hosts, haveHost := raw["Host"]
	if req.ProtoAtLeast(1, 1) && (!haveHost || len(hosts) == 0) && !isH2Upgrade && req.Method != "CONNECT" {
		return outcome{code: 400, text: "missing required Host header"}
	}
	if len(hosts) == 1 && !validHostOracle(hosts[0]) {
		return outcome{code: 400, text: "malformed Host header"}
	}
	for k, vv := range req.Header {
		if !validNameOracle(k) {
			return outcome{code: 400, text: "invalid header name"}
		}
		for _, v := range vv {
			if !validValueOracle(v) {
				return outcome{code: 400, text: "invalid header value"}
			}
		}
	}
	return outcome{req: req, br: br}
}

// The oracle's copies of the httpguts checks, written from its source
// independently of ours.
func validHostOracle(h string) bool {
	return !strings.ContainsFunc(h, func(r rune) bool {
		return r >= 0x80 || !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!$%&()*+,-.:;=[']_~", r)
	})
}

func validNameOracle(k string) bool {
	return k != "" && !strings.ContainsFunc(k, func(r rune) bool {
		return r >= 0x80 || !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~", r)
	})
}

func validValueOracle(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func ourOutcome(data []byte) (outcome, error) {
	br := bufio.NewReader(bytes.NewReader(data))
	req, f, _, err := readRequest(br, http.DefaultMaxHeaderBytes)
	if err != nil {
		if err == io.EOF {
			return outcome{eof: true}, nil
		}
		var re *requestError
		if !errors.As(err, &re) {
			return outcome{}, err
		}
		return outcome{code: re.code, text: re.text}, nil
	}
	return outcome{req: req, br: br, f: f}, nil
}

// expectedForceClose encodes our deliberate differences from net/http for
// an accepted request req read from data: the cases where we close the
// connection after the response and net/http may not.
func expectedForceClose(data []byte, req *http.Request) bool {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(data)))
	if _, err := tp.ReadLine(); err != nil {
		return false
	}
	raw, err := tp.ReadMIMEHeader()
	if err != nil {
		return false
	}
	_, hasTE := raw["Transfer-Encoding"]
	_, hasCL := raw["Content-Length"]
	chunked := len(req.TransferEncoding) > 0
	switch {
	case chunked && hasCL: // RFC 9112 §6.1: TE and CL together
		return true
	case hasTE && !chunked: // TE on HTTP/1.0
		return true
	case len(raw["Content-Length"]) > 1: // identical copies merged
		return true
	case (req.Method == "GET" || req.Method == "HEAD") && (chunked || req.ContentLength > 0):
		return true
	}
	for k := range raw {
		norm := strings.Map(func(r rune) rune {
			if 'a' <= r && r <= 'z' {
				return r
			}
			if 'A' <= r && r <= 'Z' {
				return r + 'a' - 'A'
			}
			return -1
		}, k)
		if (norm == "transferencoding" || norm == "contentlength") && k != "Transfer-Encoding" && k != "Content-Length" {
			return true
		}
	}
	// obs-fold: a line of the header block starting with white space.
	lines := strings.Split(string(data), "\n")
	for _, line := range lines[1:] {
		if line == "" || line == "\r" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return true
		}
	}
	return false
}

// readBody reads all of a body and what follows it on the stream.
func readBody(rc io.ReadCloser, br *bufio.Reader) (data, rest []byte, err error) {
	data, err = io.ReadAll(rc)
	if err == nil {
		rest, _ = io.ReadAll(br)
	}
	return data, rest, err
}

// compareWithNetHTTP fails t if our parser and net/http disagree about data.
func compareWithNetHTTP(t *testing.T, data []byte) {
	t.Helper()
	want := netHTTPOutcome(data)
	got, err := ourOutcome(data)
	if err != nil {
		t.Fatalf("unexpected error type %T: %v\ninput %q", err, err, data)
	}
	if want.eof && len(data) > 0 && !bytes.Contains(data, []byte("\n")) {
		// Deliberate difference: net/http's bufio.ReadLine reports a
		// request line that fills whole buffers up to EOF as a clean EOF
		// (silent close). A partial request line is a 400 to us, always.
		want = outcome{code: http.StatusBadRequest}
	}
	if want.eof != got.eof || want.code != got.code || want.text != got.text {
		t.Fatalf("outcome: net/http eof=%v %d %q, ours eof=%v %d %q\ninput %q", want.eof, want.code, want.text, got.eof, got.code, got.text, data)
	}
	checkEarlyAnswers(t, data, got)
	if want.req == nil {
		return
	}
	w, g := want.req, got.req
	check := func(what string, wv, gv any) {
		t.Helper()
		if !reflect.DeepEqual(wv, gv) {
			t.Fatalf("%s: net/http %#v, ours %#v\ninput %q", what, wv, gv, data)
		}
	}
	check("Method", w.Method, g.Method)
	check("RequestURI", w.RequestURI, g.RequestURI)
	check("Proto", [3]any{w.Proto, w.ProtoMajor, w.ProtoMinor}, [3]any{g.Proto, g.ProtoMajor, g.ProtoMinor})
	check("URL", w.URL, g.URL)
	check("Header", w.Header, g.Header)
	check("Host", w.Host, g.Host)
	check("ContentLength", w.ContentLength, g.ContentLength)
	check("TransferEncoding", w.TransferEncoding, g.TransferEncoding)
	check("Trailer", w.Trailer, g.Trailer)
	force := expectedForceClose(data, w)
	check("forceClose", force, got.f.forceClose)
	check("Close", w.Close || force, g.Close)
	check("chunked", len(w.TransferEncoding) > 0, got.f.chunked)
	if !got.f.chunked && !(w.ContentLength == -1 && w.Method == "PRI") {
		check("framing.contentLength", w.ContentLength, got.f.contentLength)
	}
	if u, ok := fastOriginForm(g.RequestURI); ok {
		ref, err := url.ParseRequestURI(g.RequestURI)
		if err != nil {
			t.Fatalf("fast path accepted %q, url.ParseRequestURI: %v", g.RequestURI, err)
		}
		check("fast URL", ref, u)
	}

	gb := newBody(got.br, g, got.f)
	check("NoBody", w.Body == http.NoBody, gb == http.NoBody)
	wData, wRest, wErr := readBody(w.Body, want.br)
	gData, gRest, gErr := readBody(gb, got.br)
	check("body", wData, gData)
	if (wErr == nil) != (gErr == nil) {
		t.Fatalf("body error: net/http %v, ours %v\ninput %q", wErr, gErr, data)
	}
	if wErr != nil && wErr.Error() != gErr.Error() {
		t.Fatalf("body error text: net/http %q, ours %q\ninput %q", wErr, gErr, data)
	}
	check("rest of stream", wRest, gRest)
	check("Trailer after body", w.Trailer, g.Trailer)
}

// checkEarlyAnswers checks that an answer readRequest gives while it waits
// for more of the stream (a bad line answered as soon as it is complete,
// issue 7) is the answer it gives to the whole stream: an early answer
// must never depend on bytes not read yet. The stream is cut after each
// of its first 16 lines, and at its end.
func checkEarlyAnswers(t *testing.T, data []byte, whole outcome) {
	t.Helper()
	cuts := 0
	for i := 0; i <= len(data) && cuts < 16; i++ {
		if i < len(data) && data[i] != '\n' {
			continue
		}
		cuts++
		end := min(i+1, len(data))
		br := bufio.NewReader(&errAfterReader{data: data[:end], err: errWouldBlock})
		_, _, _, err := readRequest(br, http.DefaultMaxHeaderBytes)
		var re *requestError
		if !errors.As(err, &re) {
			continue
		}
		if re.code != whole.code || re.text != whole.text {
			t.Fatalf("answer to the first %d bytes: %d %q; to the whole stream: eof=%v %d %q\ninput %q", end, re.code, re.text, whole.eof, whole.code, whole.text, data)
		}
	}
}

func FuzzReadRequest(f *testing.F) {
	for _, s := range seedRequests {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		compareWithNetHTTP(t, data)
	})
}

// seedRequests are also checked in-tree by TestSeedsMatchNetHTTP.
var seedRequests = []string{
	"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
	"GET /index.html?q=1&r=%20x HTTP/1.1\r\nHost: example.com\r\nUser-Agent: x\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n",
	"POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1;q=\"x\"\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum, X-Other\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 42\r\nX-Extra: 1\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\tthree\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\nX: y\n\n",
	"GET http://example.com:8080/path?x=y HTTP/1.1\r\nHost: other\r\n\r\n",
	"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
	"CONNECT /rpc HTTP/1.1\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
	"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"GET / HTTP/3.0\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\nConnection: close\r\n\r\n",
	"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a%2Fb?q HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nshort",
	"get / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\nx-lower-case: v\r\n\r\n",
	"GET /\r\n",
	"SSH-2.0-OpenSSH_9.6\r\n",
	"EHLO x\r\nMAIL FROM:<a@b>\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-A\r\nY: 1\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;x\r\nok\r\n0\r\nX-T: 1\r\n 2\r\n\r\n",
}
