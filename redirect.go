package httpsrv

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits of the server ListenAndServeHTTPRedirect starts. It reads one
// request head and writes a short answer, so they are tight.
const (
	redirectReadHeaderTimeout = 5 * time.Second
	redirectReadTimeout       = 10 * time.Second
	redirectWriteTimeout      = 10 * time.Second
	redirectIdleTimeout       = 5 * time.Second
	// 16 KiB leaves room for a browser's cookies on the plain-HTTP origin;
	// net/http's default is 1 MiB.
	redirectMaxHeaderBytes = 16 << 10
)

// ListenAndServeHTTPRedirect listens on the TCP network address addr and
// answers every plaintext HTTP request on it with a redirect to the same
// host, path and query over HTTPS, as [RedirectHTTPSHandler] does. The
// HTTPS port is the port of s.Addr, left out of the redirect when it is
// 443 or s.Addr is empty. If addr is blank, ":http" is used.
//
// It is meant to run beside ListenAndServeTLS, typically in its own
// goroutine:
//
//	srv := &httpsrv.Server{Addr: ":https", Handler: mux}
//	go srv.ListenAndServeHTTPRedirect("")
//	log.Fatal(srv.ListenAndServeTLS("cert.pem", "key.pem"))
//
// The redirect server uses s.ListenConfig, ReusePort, ErrorLog, Logger and
// ProxyProtocol (its refusals are counted in s.ProxyHeaderErrors), and limits
// of its own: 5 s to read the request head, 10 s for the whole request and
// for writing the answer, and 16 KiB of header. Other settings of s,
// ConnState included, do not apply to it. Accepted connections are
// configured to enable TCP keep-alives.
//
// s.Shutdown and s.Close stop the redirect server too.
//
// ListenAndServeHTTPRedirect always returns a non-nil error. It returns an
// error at once if s.Addr names no usable port (such as port 0). After
// Shutdown or Close, the returned error is http.ErrServerClosed.
func (s *Server) ListenAndServeHTTPRedirect(addr string) error {
	if s.shuttingDown() {
		return http.ErrServerClosed
	}
	port, err := httpsPortOf(s.Addr)
	if err != nil {
		return err
	}
	if addr == "" {
		addr = ":http"
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	child := &Server{
		Addr:              addr,
		Handler:           redirectHandler{port: port},
		ReadHeaderTimeout: redirectReadHeaderTimeout,
		ReadTimeout:       redirectReadTimeout,
		WriteTimeout:      redirectWriteTimeout,
		IdleTimeout:       redirectIdleTimeout,
		MaxHeaderBytes:    redirectMaxHeaderBytes,
		Protocols:         protos,
		ListenConfig:      s.ListenConfig,
		ReusePort:         s.ReusePort,
		ErrorLog:          s.ErrorLog,
		Logger:            s.Logger,
		ProxyProtocol:     s.ProxyProtocol,
	}
	if !s.link(child) {
		return http.ErrServerClosed
	}
	return child.ListenAndServe()
}

// httpsPortOf returns the port to put in redirects to a server listening
// on addr: "" for 443 or an empty addr, else the decimal port.
func httpsPortOf(addr string) (string, error) {
	if addr == "" {
		return "", nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("httpsrv: HTTP redirect: parsing Addr: %w", err)
	}
	n, err := net.LookupPort("tcp", port)
	if err != nil {
		return "", fmt.Errorf("httpsrv: HTTP redirect: port of Addr %q: %w", addr, err)
	}
	switch n {
	case 0:
		return "", fmt.Errorf("httpsrv: HTTP redirect: Addr %q has no fixed port to redirect to", addr)
	case 443:
		return "", nil
	}
	return strconv.Itoa(n), nil
}

// RedirectHTTPSHandler returns a handler that answers every request with a
// 308 Permanent Redirect to the same host, path and query over HTTPS on
// httpsPort. The port of the request's Host is dropped; httpsPort is put in
// its place unless it is empty or "443". A request with a missing or
// invalid Host gets 400 Bad Request. Every answer closes the connection,
// since the client goes elsewhere next.
//
// 308, unlike 301, obliges clients to repeat the method and body, so a POST
// stays a POST instead of silently becoming a GET.
//
// Use it to serve redirects on a server of your own, for example when a
// proxy maps public port 443 to another port; ListenAndServeHTTPRedirect
// is the simpler choice otherwise. httpsPort must be empty or a decimal
// port number; RedirectHTTPSHandler panics otherwise.
func RedirectHTTPSHandler(httpsPort string) http.Handler {
	if httpsPort != "" {
		n, err := strconv.ParseUint(httpsPort, 10, 16)
		if err != nil || n == 0 {
			panic(fmt.Sprintf("httpsrv: RedirectHTTPSHandler: invalid port %q", httpsPort))
		}
		httpsPort = strconv.FormatUint(n, 10)
		if n == 443 {
			httpsPort = ""
		}
	}
	return redirectHandler{port: httpsPort}
}

// redirectHandler redirects to HTTPS on port, or the default port when it
// is empty.
type redirectHandler struct {
	port string
}

func (h redirectHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	target, ok := httpsURL(r.Host, r.URL, h.port)
	if !ok {
		http.Error(w, "Bad Request: missing or invalid Host", http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, target, http.StatusPermanentRedirect)
}

// httpsURL returns the https URL for a request to host for u, on port
// (empty for the default). It reports false if host is not a valid
// "host[:port]" or u has no absolute path.
func httpsURL(host string, u *url.URL, port string) (string, bool) {
	h, ok := redirectHost(host)
	if !ok {
		return "", false
	}
	uri := u.RequestURI()
	if !strings.HasPrefix(uri, "/") {
		return "", false
	}
	if port != "" {
		h += ":" + port
	}
	return "https://" + h + uri, true
}

// redirectHost returns the host of a Host header value without its port:
// a DNS name or IPv4 address, or an IPv6 literal in brackets (without a
// zone). It reports false for an empty or malformed value, so that nothing
// but a host name can reach the Location header.
func redirectHost(hostport string) (string, bool) {
	host, port := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return "", false
		}
		host, rest := hostport[1:end], hostport[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return "", false
			}
			port = rest[1:]
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() || ip.Zone() != "" || !validPort(port) {
			return "", false
		}
		return "[" + ip.String() + "]", true
	}
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
		host, port = hostport[:i], hostport[i+1:]
	}
	if !validHostName(host) || !validPort(port) {
		return "", false
	}
	return host, true
}

// validPort reports whether p is empty (RFC 3986 allows "host:") or at
// most five digits.
func validPort(p string) bool {
	if len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// validHostName reports whether h is a DNS name or IPv4 address: dot
// separated labels of 1 to 63 letters, digits, '-' or '_', at most 253
// bytes, with an optional final dot.
func validHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
			default:
				return false
			}
		}
	}
	return true
}
