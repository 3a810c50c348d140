package httpsrv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// requestError is a client error the server answers with a status and closes.
type requestError struct {
	code int    // 400, 431, 501 or 505
	text string // reason appended to the status line as net/http does, or "" for a plain one
	err  error  // internal detail for logs and tests; may be nil
}

func (e *requestError) Error() string {
	s := "httpsrv: " + strconv.Itoa(e.code) + " " + http.StatusText(e.code)
	if e.text != "" {
		s += ": " + e.text
	}
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

// Unwrap returns the internal detail, so that errors.Is(err, io.ErrUnexpectedEOF)
// works for a head cut short.
func (e *requestError) Unwrap() error { return e.err }

// errHeaderTooLarge is the detail of the 431 requestError returned when the
// request head exceeds its byte budget.
var errHeaderTooLarge = errors.New("httpsrv: request header too large")

// badRequest returns a plain 400 requestError with the given detail.
func badRequest(err error) *requestError { return &requestError{code: http.StatusBadRequest, err: err} }

// badString mirrors net/http's badStringError wording.
func badString(what, val string) error { return fmt.Errorf("%s %q", what, val) }

// headSlack is the extra room net/http gives the head beyond MaxHeaderBytes
// (its "bufio slop").
const headSlack = 4096

// framing says how the body of a parsed request is delimited.
type framing struct {
	contentLength int64 // -1 when chunked
	chunked       bool
	forceClose    bool // a stricter-than-net/http rule tripped; close after the response
}

// readRequest reads and parses one request head from br.
//
// maxHeaderBytes bounds the request line and header block; like net/http the
// head may be up to maxHeaderBytes+4096 bytes before it fails with a 431
// requestError. readRequest returns io.EOF when br is at EOF before any byte
// of a request, passes other read errors through unchanged, and reports a head
// cut short by EOF as a plain 400 requestError wrapping io.ErrUnexpectedEOF.
// Client errors are *requestError values carrying the status net/http sends.
// consumed is the number of bytes taken from br, also on failure.
//
// On success req has everything http.ReadRequest fills in, with the
// server-side checks of net/http's conn.readRequest applied and the Host
// field removed from req.Header. req.Body is nil; see newBody.
func readRequest(br *bufio.Reader, maxHeaderBytes int) (req *http.Request, f framing, consumed int, err error) {
	limit := maxHeaderBytes + headSlack
	if maxHeaderBytes <= 0 || limit < 0 {
		limit = http.DefaultMaxHeaderBytes + headSlack
	}
	head, consumed, err := readHead(br, limit)
	if err != nil {
		return nil, framing{}, consumed, err
	}
	req = new(http.Request)
	folded, err := parseHead(req, head, true)
	if err != nil {
		return nil, framing{}, consumed, err
	}
	f, err = checkRequest(req, folded)
	if err != nil {
		return nil, framing{}, consumed, err
	}
	return req, f, consumed, nil
}

// skipLeadingCRLF discards up to n leading CR or LF bytes from br, the
// tolerance net/http shows old clients after a POST. Like net/http it waits
// for n bytes (or an error) before deciding. It returns the bytes discarded.
func skipLeadingCRLF(br *bufio.Reader, n int) int {
	peek, _ := br.Peek(n)
	i := 0
	for i < len(peek) && (peek[i] == '\r' || peek[i] == '\n') {
		i++
	}
	d, _ := br.Discard(i)
	return d
}

// headScan finds the end of a request head: the first empty line ("\n" or
// "\r\n") after the request line. Folded lines never end a head, as they
// start with a space or tab.
type headScan struct {
	off       int  // start of the line not yet scanned
	firstDone bool // the request line has been seen
	checked   int  // end of the lines checkLines has checked
	fields    bool // checkLines has seen a field line
}

// checkLines checks the complete lines of the incomplete head b that it
// has not checked yet, and returns the error of the first bad one. net/http
// reads a head line by line (readRequest, then net/textproto's
// readMIMEHeader) and answers a bad request line, a first field line that
// starts with white space or a field line without a colon as soon as it
// has read it; a server that waited for the end of the head would leave a
// client that speaks another protocol (or HTTP/0.9) waiting for its
// header timeout. A bad field name or value is reported at once too: the
// continuation lines that net/textproto waits for cannot make it good.
// readHead calls it only before it waits for more bytes, so a complete
// head is parsed once.
func (s *headScan) checkLines(b []byte) error {
	for s.checked < s.off {
		i := bytes.IndexByte(b[s.checked:s.off], '\n')
		line := b[s.checked : s.checked+i]
		first := s.checked == 0
		s.checked += i + 1
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		switch {
		case first:
			var req http.Request
			if err := parseRequestLineInto(&req, string(line)); err != nil {
				return err
			}
		case len(line) > 0 && (line[0] == ' ' || line[0] == '\t'):
			if !s.fields {
				_, _, err := parseFields(&lineReader{s: string(line)}, 0, false)
				return err
			}
			// A continuation: its bytes are checked with the field.
		default:
			s.fields = true
			if err := checkFieldLine(line); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkFieldLine checks one field line (not its continuation lines) as
// parseFields does, without allocating unless it is bad.
func checkFieldLine(line []byte) error {
	colon := bytes.IndexByte(line, ':')
	if colon < 0 || !validKeyBytes(line[:colon]) || !validValueBytes(line[colon+1:]) {
		_, _, err := parseFields(&lineReader{s: string(line)}, 0, false)
		return err
	}
	return nil
}

// validKeyBytes reports whether canonicalKey accepts k.
func validKeyBytes(k []byte) bool {
	if len(k) == 0 {
		return false
	}
	for _, c := range k {
		if !tokenByte[c] && c != ' ' {
			return false
		}
	}
	return true
}

func validValueBytes(v []byte) bool {
	for _, c := range v {
		if !validValueByte(c) {
			return false
		}
	}
	return true
}

// scan looks for the end of the head in b, resuming where it stopped last
// time. It returns the length of the head, or -1 when more bytes are needed.
func (s *headScan) scan(b []byte) int {
	for {
		i := bytes.IndexByte(b[s.off:], '\n')
		if i < 0 {
			return -1
		}
		start := s.off
		s.off += i + 1
		if !s.firstDone {
			s.firstDone = true
			continue
		}
		if i == 0 || (i == 1 && b[start] == '\r') {
			return s.off
		}
	}
}

// readHead returns one string copy of the request head taken from br.
func readHead(br *bufio.Reader, limit int) (head string, consumed int, err error) {
	var sc headScan
	// Fast path: the whole head lies in br's buffer.
	for {
		n := br.Buffered()
		if n > 0 {
			b, _ := br.Peek(n)
			if end := sc.scan(b); end >= 0 {
				if end > limit {
					return "", discard(br, n), headError(b[:sc.off], false)
				}
				head = string(b[:end])
				br.Discard(end)
				return head, end, nil
			}
			if n > limit {
				return "", discard(br, n), headError(b[:sc.off], false)
			}
			if err := sc.checkLines(b); err != nil {
				return "", discard(br, n), err
			}
			if n >= br.Size() {
				break
			}
		}
		b, err := br.Peek(n + 1)
		if err != nil && len(b) <= n {
			if err == bufio.ErrBufferFull {
				break
			}
			if n == 0 {
				return "", 0, err // io.EOF here is a clean close
			}
			return "", discard(br, n), endError(b, err)
		}
	}
	// Slow path: the head is bigger than br's buffer.
	buf := make([]byte, 0, 2*br.Size())
	b, _ := br.Peek(br.Buffered())
	buf = append(buf, b...)
	consumed = discard(br, len(b))
	for {
		line, err := br.ReadSlice('\n')
		buf = append(buf, line...)
		consumed += len(line)
		if end := sc.scan(buf); end >= 0 {
			if end > limit {
				return "", consumed, headError(buf[:sc.off], false)
			}
			return string(buf[:end]), consumed, nil
		}
		if len(buf) > limit {
			return "", consumed, headError(buf[:sc.off], false)
		}
		if err := sc.checkLines(buf); err != nil {
			return "", consumed, err
		}
		if err != nil && err != bufio.ErrBufferFull {
			return "", consumed, endError(buf, err)
		}
	}
}

func discard(br *bufio.Reader, n int) int {
	d, _ := br.Discard(n)
	return d
}

// endError is the error for a head ended by err after the bytes b.
func endError(b []byte, err error) error {
	if err != io.EOF {
		return err
	}
	return headError(b, true)
}

// headError is the error for an incomplete head b: the first syntax error in
// its lines if there is one (net/http reports that first), else
// io.ErrUnexpectedEOF at EOF or the 431 error at the size limit.
func headError(b []byte, atEOF bool) error {
	if len(b) == 0 && !atEOF {
		// Not even the request line fits.
		return &requestError{code: http.StatusRequestHeaderFieldsTooLarge, err: errHeaderTooLarge}
	}
	var req http.Request
	if _, err := parseHead(&req, string(b), false); err != nil {
		return err
	}
	if atEOF {
		return badRequest(io.ErrUnexpectedEOF)
	}
	return &requestError{code: http.StatusRequestHeaderFieldsTooLarge, err: errHeaderTooLarge}
}

// lineReader hands out the lines of s the way bufio.Reader.ReadLine does:
// without "\n" or "\r\n", and a final line without "\n" as is.
type lineReader struct {
	s   string
	off int
}

func (r *lineReader) next() (line string, ok bool) {
	if r.off >= len(r.s) {
		return "", false
	}
	rest := r.s[r.off:]
	i := strings.IndexByte(rest, '\n')
	if i < 0 {
		r.off = len(r.s)
		return rest, true
	}
	r.off += i + 1
	line = rest[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, true
}

// peekFolded reports whether the next line is an obs-fold continuation.
func (r *lineReader) peekFolded() bool {
	return r.off < len(r.s) && (r.s[r.off] == ' ' || r.s[r.off] == '\t')
}

// parseHead parses the request line and header block in head, which is the
// complete head when complete is set, or the incomplete bytes of one when
// looking for an earlier syntax error. It fills in what net/http's
// readRequest sets before readTransfer, and reports whether any field was
// folded (obs-fold).
func parseHead(req *http.Request, head string, complete bool) (folded bool, err error) {
	lr := lineReader{s: head}
	line, _ := lr.next()
	if err := parseRequestLineInto(req, line); err != nil {
		return false, err
	}
	// An upper bound on the number of fields (lines less the blank one), for
	// one allocation of values, capped as net/textproto caps its hint.
	n := min(max(strings.Count(head[lr.off:], "\n")-1, 0), 1000)
	hdr, folded, err := parseFields(&lr, n, complete)
	if err != nil {
		return false, err
	}
	req.Header = hdr
	return folded, nil
}

// parseRequestLineInto parses the request line into req, with the checks
// net/http's readRequest makes before it reads the header block.
func parseRequestLineInto(req *http.Request, line string) error {
	var ok bool
	req.Method, req.RequestURI, req.Proto, ok = parseRequestLine(line)
	if !ok {
		return badRequest(badString("malformed HTTP request", line))
	}
	if !validToken(req.Method) {
		return badRequest(badString("invalid method", req.Method))
	}
	if req.ProtoMajor, req.ProtoMinor, ok = parseHTTPVersion(req.Proto); !ok {
		return badRequest(badString("malformed HTTP version", req.Proto))
	}
	u, err := parseRequestURI(req.Method, req.RequestURI)
	if err != nil {
		return badRequest(err)
	}
	req.URL = u
	return nil
}

func parseRequestLine(line string) (method, requestURI, proto string, ok bool) {
	method, rest, ok1 := strings.Cut(line, " ")
	requestURI, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return "", "", "", false
	}
	return method, requestURI, proto, true
}

// parseHTTPVersion accepts exactly "HTTP/d.d", as http.ParseHTTPVersion does.
func parseHTTPVersion(v string) (major, minor int, ok bool) {
	switch v {
	case "HTTP/1.1":
		return 1, 1, true
	case "HTTP/1.0":
		return 1, 0, true
	}
	if len(v) != len("HTTP/X.Y") || v[:5] != "HTTP/" || v[6] != '.' || !isDigit(v[5]) || !isDigit(v[7]) {
		return 0, 0, false
	}
	return int(v[5] - '0'), int(v[7] - '0'), true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// parseRequestURI parses the request target as net/http does. The common
// origin form without escapes is built directly; it equals what
// url.ParseRequestURI returns for it.
func parseRequestURI(method, raw string) (*url.URL, error) {
	if u, ok := fastOriginForm(raw); ok {
		return u, nil
	}
	// CONNECT takes the authority form (or a path, as net/rpc uses).
	justAuthority := method == "CONNECT" && !strings.HasPrefix(raw, "/")
	if justAuthority {
		raw = "http://" + raw
	}
	u, err := url.ParseRequestURI(raw)
	if err != nil {
		return nil, err
	}
	if justAuthority {
		u.Scheme = ""
	}
	return u, nil
}

// fastOriginForm handles "*" and "/path[?query]" where the path needs no
// escaping and has no '%', so Path is the raw path and RawPath is empty.
func fastOriginForm(raw string) (*url.URL, bool) {
	if raw == "*" {
		return &url.URL{Path: "*"}, true
	}
	if len(raw) == 0 || raw[0] != '/' {
		return nil, false
	}
	q := -1
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '?' {
			q = i
			break
		}
		if !pathByte[c] {
			return nil, false
		}
	}
	if q < 0 {
		return &url.URL{Path: raw}, true
	}
	query := raw[q+1:]
	for i := 0; i < len(query); i++ {
		if c := query[i]; c < 0x20 || c == 0x7f {
			return nil, false
		}
	}
	u := &url.URL{Path: raw[:q]}
	if query == "" {
		u.ForceQuery = true
	} else {
		u.RawQuery = query
	}
	return u, true
}

// byteTable returns a table that marks ASCII letters, digits and the
// bytes of extra.
func byteTable(extra string) (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for i := 0; i < len(extra); i++ {
		t[extra[i]] = true
	}
	return t
}

// pathByte marks the bytes url.URL.EscapedPath leaves as they are, minus '%'
// (escapes need decoding) and '?' (the query).
var pathByte = byteTable("-._~/$&+,;=:@")

// tokenByte marks tchar, RFC 9110 §5.6.2.
var tokenByte = byteTable("!#$%&'*+-.^_`|~")

// validToken mirrors httpguts.ValidHeaderFieldName.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte[s[i]] {
			return false
		}
	}
	return true
}

// validValueByte mirrors net/textproto: VCHAR, obs-text, SP and HTAB.
func validValueByte(c byte) bool {
	return c >= 0x20 && c != 0x7f || c == '\t'
}

// validFieldValue mirrors httpguts.ValidHeaderFieldValue.
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// hostByte is httpguts' validHostByte table.
var hostByte = byteTable("!$%&()*+,-.:;=[']_~")

// validHost mirrors httpguts.ValidHostHeader.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if !hostByte[h[i]] {
			return false
		}
	}
	return true
}

// trimOWS trims spaces and tabs, as net/textproto's trim does.
func trimOWS(s string) string {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	return s[i:j]
}

// trimSpace trims ASCII space, tab, CR and LF, as textproto.TrimString does.
func trimSpace(s string) string {
	i, j := 0, len(s)
	for i < j && isSpace(s[i]) {
		i++
	}
	for j > i && isSpace(s[j-1]) {
		j--
	}
	return s[i:j]
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// parseFields reads header fields from lr up to the first empty line, with
// net/textproto's ReadMIMEHeader rules: obs-fold joined with a space, a
// first line starting with white space rejected, names of token bytes (or
// with a space, kept as is) canonicalised, values of VCHAR, obs-text, SP
// and HTAB with surrounding white space removed. n bounds the number of
// fields. When complete is false, running out of lines is not an error.
// folded reports whether any field used obs-fold.
func parseFields(lr *lineReader, n int, complete bool) (h http.Header, folded bool, err error) {
	h = make(http.Header, n)
	vals := make([]string, n)
	first := true
	for {
		line, ok := lr.next()
		if !ok {
			if !complete {
				return h, folded, nil
			}
			return h, folded, badRequest(io.ErrUnexpectedEOF)
		}
		if line == "" {
			return h, folded, nil
		}
		if first && (line[0] == ' ' || line[0] == '\t') {
			if len(line) > 80 {
				line = line[:80]
			}
			return h, folded, badRequest(fmt.Errorf("malformed MIME header initial line: %q", line))
		}
		first = false
		if strings.IndexByte(line, ':') < 0 {
			return h, folded, badRequest(fmt.Errorf("malformed MIME header: missing colon: %q", line))
		}
		kv := trimOWS(line)
		if lr.peekFolded() {
			kv = unfold(lr, kv)
			folded = true
		}
		k, v, _ := strings.Cut(kv, ":")
		key, ok := canonicalKey(k)
		if !ok {
			return h, folded, badRequest(fmt.Errorf("malformed MIME header line: %q", kv))
		}
		for i := 0; i < len(v); i++ {
			if !validValueByte(v[i]) {
				// net/textproto has canonicalised the name in place by now.
				return h, folded, badRequest(fmt.Errorf("malformed MIME header line: %q", key+":"+v))
			}
		}
		v = strings.TrimLeft(v, " \t")
		if vv, seen := h[key]; seen {
			h[key] = append(vv, v)
		} else if len(vals) > 0 {
			vv, vals = vals[:1:1], vals[1:]
			vv[0] = v
			h[key] = vv
		} else {
			h[key] = []string{v}
		}
	}
}

// unfold joins kv with the continuation lines that follow it in lr.
func unfold(lr *lineReader, kv string) string {
	b := make([]byte, 0, 2*len(kv))
	b = append(b, kv...)
	for lr.peekFolded() {
		line, _ := lr.next()
		b = append(b, ' ')
		b = append(b, trimOWS(line)...)
	}
	return string(b)
}

// canonicalKey returns the canonical form of a field name k, reusing k when
// it is canonical already and a shared string when it is a common name.
// Like net/textproto, a name with a space is kept as it is (the server then
// rejects it), and other bytes that are not tchar make it invalid.
func canonicalKey(k string) (string, bool) {
	if k == "" {
		return "", false
	}
	canonical := true
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !tokenByte[c] {
			if c != ' ' {
				return "", false
			}
			for i++; i < len(k); i++ {
				if c := k[i]; !tokenByte[c] && c != ' ' {
					return "", false
				}
			}
			return k, true
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
		}
		upper = c == '-'
	}
	if canonical {
		return k, true
	}
	var stack [64]byte
	var b []byte
	if len(k) <= len(stack) {
		b = stack[:len(k)]
	} else {
		b = make([]byte, len(k))
	}
	upper = true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
		upper = c == '-'
	}
	if s, ok := commonKeys[string(b)]; ok {
		return s, true
	}
	return string(b), true
}

// commonKeys interns canonical names of common request fields.
var commonKeys = func() map[string]string {
	m := make(map[string]string)
	for _, k := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language",
		"Authorization", "Cache-Control", "Connection", "Content-Encoding",
		"Content-Length", "Content-Type", "Cookie", "Date", "Dnt", "Expect",
		"Forwarded", "Host", "If-Match", "If-Modified-Since", "If-None-Match",
		"If-Range", "If-Unmodified-Since", "Keep-Alive", "Origin", "Pragma",
		"Priority", "Range", "Referer", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile",
		"Sec-Ch-Ua-Platform", "Sec-Fetch-Dest", "Sec-Fetch-Mode",
		"Sec-Fetch-Site", "Sec-Fetch-User", "Sec-Websocket-Extensions",
		"Sec-Websocket-Key", "Sec-Websocket-Protocol", "Sec-Websocket-Version",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Upgrade-Insecure-Requests", "User-Agent", "Via", "X-Forwarded-For",
		"X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id",
		"X-Requested-With",
	} {
		m[k] = k
	}
	return m
}()

// checkRequest applies what net/http does after the header block: the Host
// rules of readRequest, readTransfer's framing, and conn.readRequest's
// server-side checks, in that order, plus our stricter framing rules.
// folded says whether the head used obs-fold.
func checkRequest(req *http.Request, folded bool) (framing, error) {
	h := req.Header
	hosts, haveHost := h["Host"]
	if len(hosts) > 1 {
		return framing{}, badRequest(errors.New("too many Host headers"))
	}
	req.Host = req.URL.Host
	if req.Host == "" && len(hosts) > 0 {
		req.Host = hosts[0]
	}
	if pragma := h["Pragma"]; len(pragma) > 0 && pragma[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	req.Close = shouldClose(req.ProtoMajor, req.ProtoMinor, h["Connection"])

	f, err := transferFraming(req)
	if err != nil {
		return framing{}, err
	}

	isH2Upgrade := req.Method == "PRI" && len(h) == 0 && req.URL.Path == "*" && req.Proto == "HTTP/2.0"
	if isH2Upgrade {
		req.ContentLength = -1
		req.Close = true
	}

	// conn.readRequest's checks.
	if req.ProtoMajor != 1 && !(req.ProtoMajor == 2 && req.ProtoMinor == 0 && req.Method == "PRI" && req.RequestURI == "*") {
		return framing{}, &requestError{code: http.StatusHTTPVersionNotSupported, text: "unsupported protocol version"}
	}
	if req.ProtoAtLeast(1, 1) && (!haveHost || len(hosts) == 0) && !isH2Upgrade && req.Method != "CONNECT" {
		return framing{}, &requestError{code: http.StatusBadRequest, text: "missing required Host header"}
	}
	if len(hosts) == 1 && !validHost(hosts[0]) {
		return framing{}, &requestError{code: http.StatusBadRequest, text: "malformed Host header"}
	}
	lookalike := false
	for k, vv := range h {
		if !validToken(k) {
			return framing{}, &requestError{code: http.StatusBadRequest, text: "invalid header name"}
		}
		lookalike = lookalike || framingLookalike(k)
		for _, v := range vv {
			if !validFieldValue(v) {
				return framing{}, &requestError{code: http.StatusBadRequest, text: "invalid header value"}
			}
		}
	}
	delete(h, "Host")
	// Our stricter rules (see transferFraming for the framing ones). A front
	// end may have framed these requests differently, so whatever follows on
	// the connection cannot be trusted to be a new request:
	//   - obs-fold, RFC 9112 §5.2 (a folded line may hide a framing field);
	//   - a name that differs from Transfer-Encoding or Content-Length only
	//     in punctuation, e.g. Transfer_Encoding;
	//   - a body on GET or HEAD, which some front ends ignore, RFC 9110 §9.3.1.
	if folded || lookalike || (req.Method == "GET" || req.Method == "HEAD") && (f.chunked || f.contentLength > 0) {
		f.forceClose = true
	}
	if f.forceClose {
		req.Close = true
	}
	return f, nil
}

// framingLookalike reports whether the canonical field name k reads as
// Transfer-Encoding or Content-Length once punctuation is ignored, without
// being one of them.
func framingLookalike(k string) bool {
	if len(k) < len("ContentLength") || k == "Transfer-Encoding" || k == "Content-Length" {
		return false
	}
	isLetter := func(c byte) bool { return 'a' <= c && c <= 'z' }
	i := 0
	for i < len(k) && !isLetter(lowerASCII(k[i])) {
		i++
	}
	if i == len(k) || lowerASCII(k[i]) != 't' && lowerASCII(k[i]) != 'c' {
		return false
	}
	var buf [32]byte
	b := buf[:0]
	for ; i < len(k) && len(b) < len(buf); i++ {
		if c := lowerASCII(k[i]); isLetter(c) {
			b = append(b, c)
		}
	}
	return string(b) == "transferencoding" || string(b) == "contentlength"
}

// shouldClose mirrors net/http's shouldClose for requests.
func shouldClose(major, minor int, conn []string) bool {
	if major < 1 {
		return true
	}
	hasClose := valuesHaveToken(conn, "close")
	if major == 1 && minor == 0 {
		return hasClose || !valuesHaveToken(conn, "keep-alive")
	}
	return hasClose
}

// transferFraming mirrors net/http's readTransfer for a request: it removes
// Transfer-Encoding, merges or rejects several Content-Length fields, drops
// Content-Length under chunked, and declares the trailer. It adds our
// stricter rules as forceClose: chunked together with Content-Length (RFC
// 9112 §6.1) and Transfer-Encoding on HTTP/1.0 (RFC 9112 §6.1 last
// paragraph, the framing is faulty).
func transferFraming(req *http.Request) (framing, error) {
	h := req.Header
	var f framing
	major, minor := req.ProtoMajor, req.ProtoMinor
	if major == 0 && minor == 0 {
		major, minor = 1, 1
	}
	if te, ok := h["Transfer-Encoding"]; ok {
		delete(h, "Transfer-Encoding")
		if major > 1 || major == 1 && minor >= 1 {
			if len(te) != 1 {
				return f, &requestError{code: http.StatusNotImplemented, err: fmt.Errorf("too many transfer encodings: %q", te)}
			}
			if !asciiEqualFold(te[0], "chunked") {
				return f, &requestError{code: http.StatusNotImplemented, err: fmt.Errorf("unsupported transfer encoding: %q", te[0])}
			}
			f.chunked = true
		} else {
			f.forceClose = true
		}
	}

	cls := h["Content-Length"]
	if len(cls) > 1 {
		first := trimSpace(cls[0])
		for _, cl := range cls[1:] {
			if trimSpace(cl) != first {
				return f, badRequest(fmt.Errorf("http: message cannot contain multiple Content-Length headers; got %q", cls))
			}
		}
		cls = cls[:1:1]
		cls[0] = first
		h["Content-Length"] = cls
		// Stricter than net/http: identical copies are merged, but a
		// front end may have seen a different number of them.
		f.forceClose = true
	}
	var n int64
	if len(cls) > 0 {
		cl := trimSpace(cls[0])
		if cl == "" {
			return f, badRequest(badString("invalid empty Content-Length", cl))
		}
		v, err := strconv.ParseUint(cl, 10, 63)
		if err != nil {
			return f, badRequest(badString("bad Content-Length", cl))
		}
		n = int64(v)
	}
	switch {
	case f.chunked:
		if len(cls) > 0 {
			delete(h, "Content-Length")
			f.forceClose = true
		}
		f.contentLength = -1
		req.ContentLength = -1
	default:
		f.contentLength = n
		req.ContentLength = n
	}

	if tr, ok := h["Trailer"]; ok && f.chunked {
		delete(h, "Trailer")
		trailer, err := declaredTrailer(tr)
		if err != nil {
			return framing{}, err
		}
		req.Trailer = trailer
	}
	if f.chunked {
		req.TransferEncoding = []string{"chunked"}
	}
	return f, nil
}

// declaredTrailer turns the Trailer field values into the keys of
// req.Trailer, rejecting the fields that may not be trailers.
func declaredTrailer(values []string) (http.Header, error) {
	var trailer http.Header
	for _, v := range values {
		for elem := range strings.SplitSeq(v, ",") {
			elem = trimSpace(elem)
			if elem == "" {
				continue
			}
			key := http.CanonicalHeaderKey(elem)
			switch key {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return nil, badRequest(badString("bad trailer key", key))
			}
			if trailer == nil {
				trailer = make(http.Header)
			}
			trailer[key] = nil
		}
	}
	return trailer, nil
}
