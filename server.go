// Package httpsrv is a drop-in HTTPS server for Go that mirrors the TLS
// serve path of net/http and is safer by default.
//
// Code written for [net/http.Server] compiles against [Server] with only the
// type name changed: the fields, methods and package functions have the same
// names, types and contracts, every [net/http.Handler] sees the same
// [*net/http.Request] and ResponseWriter behaviour, and the errors and
// context keys callers already check ([net/http.ErrServerClosed],
// [net/http.LocalAddrContextKey], [net/http.ConnState]) are net/http's own.
//
// # Getting started
//
// Swap the type and keep the rest:
//
//	srv := &httpsrv.Server{Addr: ":8443", Handler: mux}
//	log.Fatal(srv.ListenAndServeTLS("cert.pem", "key.pem"))
//
// or call the package function, as with net/http:
//
//	log.Fatal(httpsrv.ListenAndServeTLS(":8443", "cert.pem", "key.pem", mux))
//
// # Differences from net/http
//
// httpsrv differs from net/http only where net/http's behaviour is unsafe or
// surprising, and each difference is listed in the README. The main ones:
//
//   - ServeTLS never modifies the caller's Server or tls.Config: HTTP/2 is set
//     up on private copies.
//   - A TLS handshake is always bounded in time, even on the zero Server.
//   - Shutdown and Close interrupt the accept back-off at once.
//   - Shutdown does not close an idle HTTP/1 connection under a request
//     arriving on it: idle connections drain for up to 500 ms, and a
//     request that arrives meanwhile is answered with "Connection: close".
//   - The functions passed to [Server.RegisterOnShutdown] run once, however
//     many times Shutdown is called.
//
// HTTP/2 is served by golang.org/x/net/http2, so that the same code works on
// every supported Go release; see h2.go.
package httpsrv

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Server defines parameters for running an HTTPS server. Its exported fields
// are those of [net/http.Server], with the same names, types and meanings,
// except where a field's documentation says otherwise.
//
// The zero value for Server is a valid configuration. A Server must not be
// copied after first use, and may not be reused after Shutdown or Close.
type Server struct {
	// Addr optionally specifies the TCP address for the server to listen on,
	// in the form "host:port". If empty, ":https" (port 443) is used by
	// ListenAndServeTLS and ":http" (port 80) by ListenAndServe.
	// Serve and ServeTLS ignore it.
	Addr string

	// Handler is the handler to invoke; nil means http.DefaultServeMux.
	Handler http.Handler

	// DisableGeneralOptionsHandler, if true, passes "OPTIONS *" requests to
	// the Handler; otherwise they are answered with 200 and an empty body.
	DisableGeneralOptionsHandler bool

	// TLSConfig optionally provides a TLS configuration for use by ServeTLS
	// and ListenAndServeTLS. It is cloned when serving starts, and never
	// modified, so later changes to it have no effect. Nil means an empty
	// configuration.
	TLSConfig *tls.Config

	// ReadTimeout is the maximum duration for reading the entire request,
	// including the body. Zero or negative means no limit.
	ReadTimeout time.Duration

	// ReadHeaderTimeout is the amount of time allowed to read request
	// headers. Zero means the value of ReadTimeout is used, and when that is
	// zero too, DefaultReadHeaderTimeout (net/http then has no limit);
	// negative means no limit.
	ReadHeaderTimeout time.Duration

	// WriteTimeout is the maximum duration before timing out writes of the
	// response. It is reset whenever a new request's header is read. Zero or
	// negative means no limit.
	WriteTimeout time.Duration

	// IdleTimeout is the maximum amount of time to wait for the next request
	// when keep-alives are enabled. Zero means the value of ReadTimeout is
	// used, and when that is zero too, DefaultIdleTimeout (net/http then has
	// no limit); negative means no limit. It also bounds idle HTTP/2
	// connections.
	IdleTimeout time.Duration

	// MaxHeaderBytes controls the maximum number of bytes the server will
	// read parsing the request header's keys and values, including the
	// request line. Zero or negative means http.DefaultMaxHeaderBytes.
	MaxHeaderBytes int

	// MaxHeaderValueCount controls the maximum number of header values the
	// server is willing to parse from a request; a request with more is
	// rejected with 431 Request Header Fields Too Large, as in Go 1.27.
	// Zero or negative means DefaultMaxHeaderValueCount. Go 1.27 added this
	// field to net/http; httpsrv enforces it on every Go release, for
	// HTTP/1 and HTTP/2. HTTP/2 counts pseudo-header fields too, as Go 1.27
	// does; before Go 1.27 the count is rebuilt from the decoded request,
	// where repeated cookie fields have been joined into one.
	MaxHeaderValueCount int

	// TLSNextProto optionally specifies a function to take over ownership of
	// the provided TLS connection when an ALPN protocol upgrade has occurred.
	// The map key is the negotiated protocol name. The function receives a
	// *http.Server carrying this Server's settings (httpsrv keeps one per
	// Server for this purpose) and must serve the connection; the connection
	// is closed when it returns. A non-nil TLSNextProto without an "h2" key
	// disables HTTP/2, unless Protocols says otherwise; an "h2" key replaces
	// the built-in HTTP/2 server. As in net/http, the key counts whatever
	// its value: with a nil function, "h2" is still offered and connections
	// that negotiate it are closed.
	TLSNextProto map[string]func(*http.Server, *tls.Conn, http.Handler)

	// ConnState specifies an optional callback function that is called when
	// a client connection changes state, with the same states and
	// transitions as net/http.
	ConnState func(net.Conn, http.ConnState)

	// ErrorLog specifies an optional logger for errors accepting connections,
	// unexpected behavior from handlers, and underlying FileSystem errors.
	// When set, it receives net/http's own lines. If nil, the server logs
	// through Logger, or slog.Default() if Logger is nil too (net/http
	// uses the log package's standard logger).
	ErrorLog *log.Logger

	// BaseContext optionally specifies a function that returns the base
	// context for incoming requests on this server. The provided Listener is
	// the specific Listener that's about to start accepting requests, as the
	// caller passed it (before any TLS wrapping). If BaseContext is nil, the
	// default is context.Background(). If non-nil, it must return a non-nil
	// context.
	BaseContext func(net.Listener) context.Context

	// ConnContext optionally specifies a function that modifies the context
	// used for a new connection c. The provided ctx is derived from the base
	// context and has a ServerContextKey value. It must return a non-nil
	// context.
	ConnContext func(ctx context.Context, c net.Conn) context.Context

	// HTTP2 configures HTTP/2 connections. Nil means the defaults of
	// golang.org/x/net/http2, except that WriteByteTimeout, when zero,
	// becomes 30 seconds while the response rate floor is on, so that an
	// HTTP/2 client that stops reading is dropped. The config is not
	// modified.
	HTTP2 *http.HTTP2Config

	// Protocols is the set of protocols accepted by the server. With
	// UnencryptedHTTP2, Serve serves HTTP/2 with prior knowledge (h2c) on
	// plaintext connections that start with the HTTP/2 client preface, as
	// net/http does; ConnState and ConnContext then see each plaintext
	// connection wrapped (its NetConn method returns the one accepted),
	// since the bytes read to look for the preface are kept in it.
	//
	// If Protocols is nil, the server accepts HTTP/1 and HTTP/2, unless
	// TLSNextProto is non-nil and has no "h2" key, or GODEBUG has
	// http2server=0 and TLSNextProto has no "h2" key. GODEBUG is read as the runtime reads it: the environment
	// variable over the binary's defaults (go.mod godebug lines and
	// //go:debug directives). As in net/http, http2server=0 also keeps the
	// built-in HTTP/2 server from being set up when Protocols is set.
	Protocols *http.Protocols

	// DisableClientPriority specifies whether client-specified priority (RFC
	// 9218) should be ignored by HTTP/2 connections. Go 1.27 added this field
	// to net/http; on earlier releases HTTP/2 always ignores client priority
	// and the field has no effect.
	DisableClientPriority bool

	// ListenConfig, if non-nil, is used by ListenAndServe and
	// ListenAndServeTLS to create their listener, for example to set socket
	// options in its Control function or to change the TCP keep-alive
	// settings. Nil means a zero net.ListenConfig, which enables TCP
	// keep-alive with the net package's defaults. This field has no
	// counterpart in net/http.
	ListenConfig *net.ListenConfig

	// The fields below have no counterpart in net/http.

	// TLSHandshakeTimeout bounds each TLS handshake. Zero means the smallest
	// positive of ReadHeaderTimeout, ReadTimeout and WriteTimeout, as in
	// net/http, or 10 seconds when none is positive (net/http then has no
	// limit); negative means no limit.
	TLSHandshakeTimeout time.Duration

	// MinRequestBodyRate is the slowest rate, in bytes per second, at which
	// a client may send a request body once MinRateGracePeriod has passed
	// since the handler first read it; a slower body read fails and, on
	// HTTP/1, the connection is closed. On HTTP/2 the floor applies to
	// each stream. Zero means DefaultMinDataRate; negative means no floor.
	MinRequestBodyRate int64

	// MinResponseRate is the slowest rate, in bytes per second, at which a
	// client must take a response once MinRateGracePeriod has passed since
	// its first byte was written; a slower client gets its write failed
	// and the connection closed (on HTTP/2, the stream reset). On HTTP/2
	// the floor applies to each stream. Zero means DefaultMinDataRate;
	// negative means no floor.
	MinResponseRate int64

	// MinRateGracePeriod is how long a transfer may run below
	// MinRequestBodyRate or MinResponseRate before the floor applies. Zero
	// means DefaultMinRateGracePeriod.
	MinRateGracePeriod time.Duration

	// Logger, if non-nil, receives the server's log records through
	// log/slog. When ErrorLog is set it takes precedence and gets
	// net/http's log lines unchanged, as in net/http; when both are nil,
	// slog.Default() is used. Accept errors, handler panics (with the
	// stack in a "stack" attribute) and the other errors net/http logs
	// are records at slog.LevelError. Failed TLS handshakes are not logged
	// one by one: they are counted (see HandshakeErrors) and summarized at
	// most once a minute in a slog.LevelWarn record with the count and one
	// sample (remote address and error) per kind of failure.
	Logger *slog.Logger

	// ClientCAFile, if non-empty, names a PEM file of certificate
	// authorities. Clients must then present a certificate that verifies
	// against them (tls.RequireAndVerifyClientCert), and handlers find the
	// verified chains in Request.TLS.VerifiedChains. This holds too for the
	// configurations TLSConfig.GetConfigForClient returns; one that sets
	// ClientAuth or ClientCAs itself fails the handshake.
	//
	// The file is reloaded as the certificate files are (see
	// CertReloadInterval and ReloadCertificate), so that CAs can be rotated
	// without a restart: new handshakes use the CAs as last loaded, both
	// for the list of acceptable CAs sent to clients and for verification,
	// and a file without a certificate keeps the previous CAs. A session
	// resumed from a client certificate whose CA has been removed is
	// refused (the client must make a full handshake, and fails it);
	// connections already established are not affected.
	ClientCAFile string

	// StrictTransportSecurity, if non-empty, is sent as the
	// Strict-Transport-Security header of every HTTPS response whose
	// handler did not set one, e.g. "max-age=63072000; includeSubDomains".
	StrictTransportSecurity string

	// CertReloadInterval is how often the certificate and key files given
	// to ServeTLS or ListenAndServeTLS, ClientCAFile and
	// SessionTicketKeyFile are checked for a renewed pair, new CAs or new
	// keys. Zero means DefaultCertReloadInterval;
	// negative turns the automatic check off: ReloadCertificate still
	// works, and the retries below of a failed load, and the load of a
	// renewal refused until its NotBefore, are still made by the first
	// handshake once due, but unchanged files are never checked.
	//
	// A check is made by the first TLS handshake after the interval; it
	// stats the files and loads them if they changed (path, inode, size,
	// mode, modification or change time). A renewal that is rejected for
	// its content (it does not parse, the key does not match, it has
	// expired while the one served has not; a ClientCAFile without a
	// certificate, or with anything but complete PEM blocks, as when it
	// is caught half-written) is logged once as an error and not tried
	// again until the files change. A renewal whose NotBefore is in the
	// future is refused until then, and served at the first check after
	// it (without automatic checks, the first handshake after it); if the
	// certificate served has expired, it is served at once, with an error
	// logged. A load that fails for another reason
	// (permission denied, too many open files, an I/O error on network
	// storage, a file missing in the middle of a swap) is retried after a
	// second, then two, four and so on, up to the interval or a minute,
	// whichever is shorter; it is logged once as a warning
	// (slog.LevelWarn), and once as an error if it still fails a minute
	// after the first failure. A successful reload is logged at
	// slog.LevelInfo. When the certificate served has less than a quarter
	// of its lifetime (at most seven days) left and no newer one can be
	// loaded, or one just loaded is that close to expiry, checks log a
	// warning (slog.LevelWarn), at most once an hour. With ErrorLog set,
	// all these lines go to ErrorLog.
	CertReloadInterval time.Duration

	// MaxConns limits the connections the server holds open at once, over
	// all its listeners. At the limit the accept loops stop accepting, so
	// new connections wait in the kernel's listen backlog (a load balancer
	// or client sees back-pressure, not a reset) until a connection ends;
	// waiting never holds up Shutdown or Close. Every connection counts
	// from its accept, through its TLS handshake, until it is closed: an
	// HTTP/2 connection counts once, whatever its streams, and one handed
	// to a TLSNextProto function counts until the function returns and
	// the connection is closed. A hijacked connection stops counting when
	// it is hijacked, since the handler then owns it. An accept loop
	// checks the limit before it waits in Accept, so with several
	// listeners (several Serve calls) the server may hold up to one more
	// connection per listener beyond the first; an idle listener holds no
	// share of the limit. When no connection has ended within 250 ms at
	// the limit, the server takes idle HTTP/1 keep-alive connections back
	// (the longest idle first, a sixty-fourth of the limit at a time, as
	// nginx does when it runs out of connections) through the same drain
	// as Shutdown: each closes once idle for 500 ms, and a request that
	// arrives meanwhile is answered with "Connection: close". Idle HTTP/2
	// connections are not taken back.
	//
	// Zero means a limit derived from the process's RLIMIT_NOFILE soft
	// limit when serving starts: the limit less a quarter of it (at least
	// 64 descriptors, at most half of them), left for the program's own
	// files: listeners, log and certificate files, and what handlers open
	// (a file served, a connection to a backend), so that at the limit the
	// program can still open files and accept does not run into EMFILE.
	// Go raises the soft limit to the hard limit at start-up on Unix, so
	// with a hard limit of 1048576 the default is 786432, and with 1024 it
	// is 768. Where there is no RLIMIT_NOFILE (Windows), zero means no
	// limit. Negative means no limit. This field has no counterpart in
	// net/http, which accepts connections until accept fails.
	MaxConns int

	// MaxConcurrentHandshakes limits the TLS handshakes that do their
	// cryptography at once, so that a flood of new connections cannot
	// starve requests on established ones. A handshake holds a slot only
	// while the server computes its part: from when the client's
	// ClientHello has been read and TLSConfig.GetConfigForClient, if set,
	// has returned, until the server writes its handshake messages or
	// reads from the client. Clients that connect and send nothing, send
	// slowly, or stop after their ClientHello hold no slot. The callbacks
	// that may wait (GetCertificate, for a certificate store or an
	// issuance; WrapSession and UnwrapSession, for a session store;
	// VerifyConnection) run with the slot given back, and the handshake
	// takes one again when they return; when a configuration sets one of
	// the last three, it is cloned for each handshake. After a
	// HelloRetryRequest, the handshake takes a slot again once the
	// client's second ClientHello has arrived whole.
	//
	// Handshakes beyond the limit wait for a slot within the handshake
	// timeout (see TLSHandshakeTimeout), which bounds the wait and the
	// handshake together; one still waiting then fails, and one whose
	// client closed the connection while it waited is dropped without
	// computing. When handshakes come back to back (or one had to wait),
	// each lets the requests already waiting on established connections
	// run before it computes; Go's scheduler would otherwise keep the
	// processors busy with handshakes and look at the network only every
	// 10 ms. Under a flood this trades some handshakes a second for the
	// latency of established connections. A request that arrives while a
	// handshake computes still waits for it: with one processor and an
	// RSA-2048 certificate, up to one signature (1.2–1.5 ms here); ECDSA
	// certificates, whose signatures are far cheaper, keep that wait short
	// (README, "Overload and faults"). Shutdown lets waiting handshakes go
	// on; Close fails them.
	//
	// Zero means runtime.GOMAXPROCS(0) when serving starts: a handshake's
	// server work is CPU-bound (a key exchange, a signature), so more of
	// them at once than there are processors to run them does not make
	// handshakes faster, it only lengthens the run queue that requests on
	// established connections wait in. Negative means no limit, as in
	// net/http. The limit applies to connections served through ServeTLS
	// and ListenAndServeTLS, whose TLS configuration httpsrv builds; it
	// does not apply to TLS listeners given to Serve.
	MaxConcurrentHandshakes int

	// ProxyProtocol, if non-nil, makes the server read a PROXY protocol
	// header (version 1 or 2) at the start of each connection, before the
	// TLS handshake, and serve the connection as the client's that the
	// header names, when it comes from a peer the policy trusts: handlers
	// see the client's address in Request.RemoteAddr, ConnContext and
	// ConnState see a connection whose RemoteAddr is the client's, and
	// ProxyInfoFromContext gives the rest of the header. Headers from
	// other peers are refused; see ProxyPolicy for what is refused,
	// ProxyHeaderErrors for the counts. Refused connections are logged
	// (at most a line a second, slog.LevelWarn), and are never seen by
	// ConnContext, ConnState or a handler.
	//
	// With ProxyProtocol set, ConnContext and the StateNew hook are called
	// on the connection's goroutine once the header has been read, not
	// by the accept loop; the other hooks follow as without it. The
	// server still makes one ConnContext call at a time, as net/http's
	// accept loop does, so a ConnContext that blocks delays every
	// connection's start. Under Serve, a handler that hijacks the
	// connection gets a net.Conn whose RemoteAddr and LocalAddr are the
	// header's, not the listener's *net.TCPConn; its NetConn method
	// returns that connection, as *tls.Conn's does (under ServeTLS the
	// hijacked connection is the *tls.Conn, as without ProxyProtocol).
	//
	// Nil, the default, reads no header (net/http has no such field). The
	// policy is checked when serving starts: Serve and ServeTLS return an
	// error wrapping ErrProxyPolicy for an invalid one.
	ProxyProtocol *ProxyPolicy

	// SessionTicketKeyFile, if non-empty, names a file of TLS session
	// ticket keys, so that several servers (processes, or instances behind
	// one load balancer) resume each other's sessions. Empty means Go's
	// default: each ServeTLS makes random keys of its own and rotates them
	// daily, so a session resumes only on the server that issued it. It
	// applies to ServeTLS and ListenAndServeTLS; Serve, given a TLS
	// listener, serves with that listener's configuration.
	//
	// The file holds one key per line, the standard base64 of 32 random
	// bytes, as `openssl rand -base64 32` prints. The first key encrypts
	// new tickets; every key decrypts. Blank lines, and lines whose first
	// non-blank character is '#', are ignored. The keys take precedence
	// over TLSConfig.SessionTicketKey. ServeTLS fails if the file cannot
	// be read or is malformed, or if TLSConfig sets
	// SessionTicketsDisabled, WrapSession or UnwrapSession (crypto/tls
	// seals and opens tickets through those callbacks alone, so the file
	// would be ignored).
	//
	// The keys apply to every handshake, on every
	// TLSConfig.GetConfigForClient path: they replace the ticket keys of
	// each configuration GetConfigForClient returns. Per-tenant (per-SNI)
	// ticket keys set there, with SessionTicketKey or
	// SetSessionTicketKeys, are therefore not used: every tenant's tickets
	// are sealed with the file's keys. A returned configuration that sets
	// WrapSession or UnwrapSession fails its handshake with an error; one
	// that sets SessionTicketsDisabled keeps tickets off.
	//
	// The file is reloaded as the certificate files are (see
	// CertReloadInterval and ReloadCertificate), with the same retries and
	// logging. A malformed file (a line that is not the base64 of 32 bytes,
	// an all-zero key, no key at all) keeps the previous keys and is logged
	// once as an error. A file caught between two lines of a rewrite in
	// place looks valid: a key that leaves the file therefore stops
	// encrypting at once but keeps decrypting until a check (automatic, or
	// ReloadCertificate) made at least 3 seconds after the load that found
	// it gone finds the file unmodified for 3 seconds and still without
	// it. Handshakes make that check, even with automatic checks off, so
	// a removed key stops decrypting 3 to 4 seconds after it is loaded as
	// removed, if the server gets handshakes and the file is left alone;
	// the reload logs list the keys concerned by their ids. Replacing the
	// file atomically (write a temporary file, then rename it over the old
	// one) avoids the cut altogether.
	//
	// To rotate, put a new key on the first line and keep the old ones
	// below it: sessions issued under them keep resuming. Remove an old key
	// once no ticket it encrypted can still be used: crypto/tls accepts a
	// ticket for 7 days after its session was established, so 7 days after
	// the key stopped being first. With several servers, one that has
	// loaded a new first key issues tickets that the others cannot decrypt
	// until they load it too (their clients then make a full handshake,
	// which succeeds); to avoid that, first add the new key as the second
	// line on every server, and move it to the top once all have loaded
	// it (after CertReloadInterval, or ReloadCertificate on each).
	//
	// Whoever reads a key can decrypt the tickets it encrypted: with them,
	// recorded TLS 1.2 connections, and pose as the server to a client
	// resuming such a session. Keep the file readable by the server's user
	// only (mode 0600 or 0400; a file readable by others is served, with a
	// warning logged at the first load and whenever a check finds its
	// mode changed to such a mode), never log or commit it, and rotate
	// regularly (daily, as crypto/tls does with its own keys) so a leaked
	// key exposes little. To withdraw a leaked key, remove it from the
	// file and call ReloadCertificate (or wait for the next check); it
	// stops decrypting within seconds, as above, and sessions issued under
	// it then make a full handshake.
	SessionTicketKeyFile string

	// ReusePort, if true, makes ListenAndServe, ListenAndServeTLS and
	// ListenAndServeHTTPRedirect set SO_REUSEPORT on their listening
	// socket, so that several processes, or several Servers in one
	// process, can listen on the same address, each with ReusePort set.
	// On Linux the kernel then spreads new connections across them, and a
	// listener that closes (on Shutdown, say) stops getting any while the
	// others go on serving; on macOS and the BSDs the sockets can bind but
	// the kernel does not balance connections between them (FreeBSD's
	// SO_REUSEPORT_LB can be set through ListenConfig.Control). Connections
	// waiting in a closed listener's queue are reset, as without
	// ReusePort. The option is set before ListenConfig.Control runs, which
	// can change it. On systems without SO_REUSEPORT (Windows), the
	// listen fails with an error matching errors.ErrUnsupported. False
	// means Go's default: a second listen on a bound address fails with
	// EADDRINUSE. It does not affect Serve and ServeTLS, whose listener
	// the caller creates.
	ReusePort bool

	inShutdown        atomic.Bool // true when server is in shutdown
	disableKeepAlives atomic.Bool
	drainLimit        atomic.Int64 // Unix ns by which idle HTTP/1 drains end, 0 for none; see boundDrain

	h2Once sync.Once                // guards h2Err and the store to h2
	h2     atomic.Pointer[h2Server] // the HTTP/2 engine; nil until setupHTTP2 ran, or when HTTP/2 is off
	h2Err  error

	mirrorOnce sync.Once    // guards mirrorSrv
	mirrorSrv  *http.Server // see httpServer

	// hsErrs counts failed TLS handshakes and rate-limits their log; see
	// handshake_errors.go.
	hsErrs handshakeErrorLog

	// stats holds the counters Stats reports; see stats.go.
	stats serverStats

	// proxyErrs counts the connections refused at their PROXY header and
	// rate-limits their log; see proxy.go.
	proxyErrs proxyErrorLog

	// connContextMu serializes the ConnContext calls that connections
	// read through ProxyProtocol make on their own goroutines, as the
	// accept loop serializes the others; see proxyConnContext.
	connContextMu sync.Mutex

	// mu guards the fields below it.
	mu         sync.Mutex
	listeners  map[*net.Listener]struct{}
	activeConn map[*conn]struct{}
	closing    map[*conn]chan struct{} // untracked connections being closed; see startCloseLocked
	closeWake  chan struct{}           // tells Shutdown a close has ended; see closeEndedLocked
	onShutdown []func()
	ranHooks   bool            // the onShutdown funcs have been started
	done       chan struct{}   // closed when shutdown starts; created lazily
	linked     []*Server       // servers started on s's behalf, stopped with it
	certs      []*certReloader // files served (pairs, CAs, ticket keys), for ReloadCertificate

	listenerGroup sync.WaitGroup

	adm admission // MaxConns and MaxConcurrentHandshakes; see admission.go
}

// ListenAndServeTLS listens on the TCP network address srv.Addr and then
// calls ServeTLS to handle requests on incoming TLS connections. Accepted
// connections are configured to enable TCP keep-alives.
//
// Filenames containing a certificate and matching private key for the server
// must be provided if neither the Server's TLSConfig.Certificates,
// TLSConfig.GetCertificate nor TLSConfig.GetConfigForClient are populated. If
// the certificate is signed by a certificate authority, the certFile should
// be the concatenation of the server's certificate, any intermediates, and
// the CA's certificate.
//
// If srv.Addr is blank, ":https" is used.
//
// ListenAndServeTLS always returns a non-nil error. After Shutdown or Close,
// the returned error is http.ErrServerClosed.
func (s *Server) ListenAndServeTLS(certFile, keyFile string) error {
	if s.shuttingDown() {
		return http.ErrServerClosed
	}
	addr := s.Addr
	if addr == "" {
		addr = ":https"
	}
	ln, err := s.listen(addr)
	if err != nil {
		return err
	}
	return s.ServeTLS(ln, certFile, keyFile)
}

// ListenAndServe listens on the TCP network address srv.Addr and then calls
// Serve to handle requests on incoming connections, without TLS. Accepted
// connections are configured to enable TCP keep-alives.
//
// If srv.Addr is blank, ":http" is used.
//
// ListenAndServe always returns a non-nil error. After Shutdown or Close, the
// returned error is http.ErrServerClosed.
func (s *Server) ListenAndServe() error {
	if s.shuttingDown() {
		return http.ErrServerClosed
	}
	addr := s.Addr
	if addr == "" {
		addr = ":http"
	}
	ln, err := s.listen(addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// ServeTLS accepts incoming connections on the Listener l, creating a new
// service goroutine for each. The service goroutines perform the TLS setup
// and then read requests, calling s.Handler to reply to them.
//
// Files containing a certificate and matching private key for the server
// must be provided if neither the Server's TLSConfig.Certificates,
// TLSConfig.GetCertificate nor TLSConfig.GetConfigForClient are populated.
// If certFile or keyFile is not empty, the pair is loaded and used in place
// of TLSConfig.Certificates. The Server and its TLSConfig are never modified.
//
// ServeTLS always closes l and returns a non-nil error. After Shutdown or
// Close, the returned error is http.ErrServerClosed.
func (s *Server) ServeTLS(l net.Listener, certFile, keyFile string) error {
	if s.shuttingDown() {
		l.Close()
		return http.ErrServerClosed
	}
	pl, err := s.proxyListener(l) // l itself unless ProxyProtocol is set
	if err != nil {
		l.Close()
		return err
	}
	config, err := s.serveTLSConfig(certFile, keyFile)
	if err != nil {
		l.Close()
		return err
	}
	return s.serve(tlsCountListener{pl, config}, l, s.shouldSetupHTTP2())
}

// Serve accepts incoming connections on the Listener l, creating a new
// service goroutine for each. The service goroutines read requests and then
// call s.Handler to reply to them. Connections that are *tls.Conn values
// (from a TLS listener) get the TLS handshake and ALPN dispatch as under
// ServeTLS. As in net/http, HTTP/2 is set up only if TLSConfig is nil, has
// "h2" in NextProtos, or Protocols enables unencrypted HTTP/2; otherwise a
// connection that negotiates "h2" is closed.
//
// Serve always closes l and returns a non-nil error. After Shutdown or
// Close, the returned error is http.ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	pl, err := s.proxyListener(l) // l itself unless ProxyProtocol is set
	if err != nil {
		l.Close()
		return err
	}
	return s.serve(pl, l, s.shouldSetupHTTP2() && s.shouldConfigureHTTP2ForServe())
}

// serve is the accept loop. l is the listener to accept from; orig is the
// listener the caller passed in, given to BaseContext. setupH2 says whether
// to set up the built-in HTTP/2 engine first.
func (s *Server) serve(l, orig net.Listener, setupH2 bool) error {
	if fn := testHookServerServe; fn != nil {
		fn(s, orig)
	}
	l = &onceCloseListener{Listener: l}
	defer l.Close()

	if !s.trackListener(&l, true) {
		return http.ErrServerClosed
	}
	defer s.trackListener(&l, false)

	if setupH2 {
		if err := s.setupHTTP2(); err != nil {
			return err
		}
	}
	ctx := s.baseContext(orig)
	done := s.doneChan()
	protos := s.protocols()
	al := s.newAcceptLoop(orig, done) // see backoff.go
	defer al.close()
	// With MaxConns, the loop waits while the server is at its limit
	// before each Accept, and the connection accepted takes a slot.
	limit := s.connLimit()
	for {
		if limit != nil && !limit.wait(s, done) {
			return http.ErrServerClosed
		}
		rw, err := l.Accept()
		if err != nil {
			if s.shuttingDown() {
				return http.ErrServerClosed
			}
			// Classified in backoff.go: back off (EMFILE and the like),
			// retry at once (ECONNABORTED and the like), or end Serve.
			if err := al.handle(err); err != nil {
				return err
			}
			continue
		}
		al.accepted()
		if wantsPrefaceConn(rw, protos) {
			// Unencrypted HTTP/2: serve looks for the client preface;
			// see prefaceConn.
			rw = &prefaceConn{Conn: rw}
		}
		c := s.newConn(rw)
		// With PROXY protocol, ConnContext and the StateNew hook run once
		// the connection's goroutine has read the header (serveProxyHeader).
		connCtx := ctx
		if cc := s.ConnContext; cc != nil && c.proxy == nil {
			connCtx = cc(connCtx, rw)
			if connCtx == nil {
				panic("ConnContext returned nil")
			}
		}
		if limit != nil {
			limit.add()
			c.connSlot = limit // released when c is closed or hijacked
		}
		c.setState(http.StateNew, c.proxy == nil) // before Serve can return
		go c.serve(connCtx)
	}
}

// trackListener adds or removes a net.Listener to the set of tracked
// listeners. It reports whether the listener was added: it is not once
// shutdown has started.
//
// A pointer to the interface value is tracked because a net.Listener's
// dynamic type may not be comparable.
func (s *Server) trackListener(ln *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listeners == nil {
		s.listeners = make(map[*net.Listener]struct{})
	}
	if add {
		if s.shuttingDown() {
			return false
		}
		s.listeners[ln] = struct{}{}
		s.listenerGroup.Add(1)
	} else {
		delete(s.listeners, ln)
		s.listenerGroup.Done()
	}
	return true
}

// trackConn adds c to the set of tracked connections when it enters
// StateNew, and removes it when it enters StateHijacked or StateClosed,
// counting each for Stats.
func (s *Server) trackConn(c *conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.activeConn == nil {
		s.activeConn = make(map[*conn]struct{})
	}
	switch state {
	case http.StateNew:
		s.stats.connsAccepted.Add(1)
		s.activeConn[c] = struct{}{}
		return
	case http.StateHijacked:
		s.stats.connsHijacked.Add(1)
	case http.StateClosed:
		s.stats.connsClosed.Add(1)
	}
	delete(s.activeConn, c)
	// A connection that ended on its own may be the last one a Shutdown
	// waits for.
	s.closeEndedLocked()
}

// DefaultMaxHeaderValueCount is the maximum number of header values
// permitted in a request when Server.MaxHeaderValueCount is zero. It
// has the value of Go 1.27's http.DefaultMaxHeaderValueCount.
const DefaultMaxHeaderValueCount = 500

// maxHeaderValueCount returns the limit on header values per request.
func (s *Server) maxHeaderValueCount() int {
	if s.MaxHeaderValueCount > 0 {
		return s.MaxHeaderValueCount
	}
	return DefaultMaxHeaderValueCount
}

// testHookServerServe, if non-nil, is called by Serve with the listener it
// was given, before accepting. Tests set it through export_test.go.
var testHookServerServe func(*Server, net.Listener)

// shutdownPollIntervalMax is the longest Shutdown waits between two checks
// for quiescence.
const shutdownPollIntervalMax = 500 * time.Millisecond

// nextShutdownPoll returns the wait before the next quiescence check, given
// the base interval of the previous one, and the new base. jitter is a
// random value in [0, 1) so that many servers shutting down at once do not
// poll in lockstep.
func nextShutdownPoll(base time.Duration, jitter float64) (wait, nextBase time.Duration) {
	wait = base + time.Duration(float64(base)*0.1*jitter)
	nextBase = min(2*base, shutdownPollIntervalMax)
	return wait, nextBase
}

// Shutdown gracefully shuts down the server without interrupting any active
// connections. It closes all open listeners, makes HTTP/2 connections send
// GOAWAY, closes idle connections, and then waits for active connections to
// become idle and be closed. If ctx expires before that, Shutdown returns the
// context's error; otherwise it returns any error from closing the listeners.
//
// Unlike net/http, Shutdown does not close an idle HTTP/1 connection under
// a client that may be sending a request on it: a connection is closed only
// once it has been idle for a drain period of 500 ms (at once if it has been
// idle that long already), and a request that arrives meanwhile is answered,
// with "Connection: close", before the connection closes. When ctx has a
// deadline, the drain ends half way to it at the latest; when ctx ends,
// the drain ends at once. A connection that stayed idle through the drain
// has no request byte unread and is closed at once with close_notify. So
// Shutdown takes up to about half a second longer than net/http's when
// connections were in use just before it.
//
// Idle connections are closed concurrently, and never while the server's
// lock is held. Closing a TLS connection sends a close_notify alert, which
// crypto/tls lets wait up to 5 seconds for a peer that stopped reading;
// Shutdown waits for such a close as for an active connection. When ctx
// expires first, the connections Shutdown is still closing are closed at
// once, without close_notify, before it returns (idle connections still
// draining are first given up to 100 ms to close with it); connections
// that are still active are left to Close, as in net/http. When Shutdown returns
// nil, every connection it closed is closed.
//
// When Shutdown is called, Serve, ListenAndServe, ServeTLS and
// ListenAndServeTLS immediately return http.ErrServerClosed. Make sure the
// program doesn't exit and waits instead for Shutdown to return.
//
// Shutdown does not attempt to close nor wait for hijacked connections such
// as WebSockets; register a function with RegisterOnShutdown to notify them.
//
// Once Shutdown has been called on a server, it may not be reused; future
// calls to methods such as Serve will return http.ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	defer s.flushHandshakeErrors()
	// Handshakes waiting for a slot go on (within their handshake
	// timeout): only Close fails them.
	defer s.closeHandshakeLimit(false)
	s.boundDrain(ctx) // before connections can see the shutdown
	s.inShutdown.Store(true)

	s.mu.Lock()
	lnerr := s.closeListenersLocked()
	s.closeDoneLocked()
	if !s.ranHooks {
		s.ranHooks = true
		for _, f := range s.onShutdown {
			go f()
		}
	}
	linked := s.linked
	if s.closeWake == nil {
		s.closeWake = make(chan struct{}, 1)
	}
	closeWake := s.closeWake
	s.mu.Unlock()
	linkedDone := make(chan error, 1)
	go func() { linkedDone <- shutdownAll(ctx, linked) }()
	s.listenerGroup.Wait()

	if h2 := s.h2.Load(); h2 != nil {
		h2.shutdown()
	}

	base := time.Millisecond
	var wait time.Duration
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if s.closeIdleConns() {
			if err := <-linkedDone; err != nil && lnerr == nil {
				lnerr = err
			}
			return lnerr
		}
		wait, base = nextShutdownPoll(base, rand.Float64())
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			// Idle connections still draining close now, and
			// Shutdown waits a little for them (cutDrain).
			s.cutDrain(closeWake)
			// The closes Shutdown started must not outlive it: cut
			// their close_notify short. (net/http's closeIdleConns
			// closes each idle connection in turn, holding its lock,
			// however long the close takes.)
			s.finishClosing(ctx.Done())
			return ctx.Err()
		case <-timer.C:
		case <-closeWake:
			// Look again now; the poll interval keeps growing.
		}
	}
}

// closeNotifyGrace is how long Close lets TLS connections try to send
// close_notify, all together, before it closes their network connections
// underneath. Sending close_notify to a peer that reads takes microseconds;
// one that does not read would hold Close for crypto/tls's 5 s limit.
const closeNotifyGrace = 100 * time.Millisecond

// Close immediately closes all active listeners and all connections in
// state StateNew, StateActive or StateIdle, HTTP/2 connections included.
// For a graceful shutdown, use Shutdown.
//
// TLS connections are given at most 100 milliseconds, all together, to
// send a close_notify alert; then the network connections under them are
// closed, so that a peer that stopped reading cannot hold Close up. When
// Close returns, every connection it closed, and every connection Shutdown
// or SetKeepAlivesEnabled was closing, is closed; the connections'
// goroutines may still be ending (a ConnState hook may still be called
// with StateClosed), as in net/http.
//
// Close does not attempt to close (and does not even know about) any
// hijacked connections, such as WebSockets.
//
// Close returns any error returned from closing the Server's underlying
// listeners.
func (s *Server) Close() error {
	defer s.flushHandshakeErrors()
	s.inShutdown.Store(true)
	s.closeHandshakeLimit(true)
	s.mu.Lock()
	err := s.closeListenersLocked()
	s.closeDoneLocked()
	s.mu.Unlock()

	// Wait for the Serve loops to return, unlocked: they take mu to
	// untrack their listeners. No connection is tracked after that.
	s.listenerGroup.Wait()

	s.mu.Lock()
	for c := range s.activeConn {
		s.startCloseLocked(c)
	}
	linked := s.linked
	s.mu.Unlock()

	linkedErrs := make(chan error, len(linked))
	for _, l := range linked {
		go func() { linkedErrs <- l.Close() }()
	}
	grace, cancel := context.WithTimeout(context.Background(), closeNotifyGrace)
	s.finishClosing(grace.Done())
	cancel()
	for range linked {
		if lerr := <-linkedErrs; lerr != nil && err == nil {
			err = lerr
		}
	}
	return err
}

// link registers l, a server started on s's behalf, so that Shutdown and
// Close stop it with s. It reports false, and registers nothing, once
// shutdown has started.
func (s *Server) link(l *Server) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shuttingDown() {
		return false
	}
	s.linked = append(s.linked, l)
	return true
}

// shutdownAll shuts the servers down concurrently and returns the first
// error.
func shutdownAll(ctx context.Context, servers []*Server) error {
	errs := make(chan error, len(servers))
	for _, l := range servers {
		go func() { errs <- l.Shutdown(ctx) }()
	}
	var first error
	for range servers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// RegisterOnShutdown registers a function to call on Shutdown. This can be
// used to gracefully shut down connections that have undergone ALPN protocol
// upgrade or that have been hijacked. The function should start
// protocol-specific graceful shutdown, but should not wait for it to
// complete.
//
// Each registered function runs once, in its own goroutine, when Shutdown is
// first called; a function registered after that is not run. Close does not
// run them.
func (s *Server) RegisterOnShutdown(f func()) {
	s.mu.Lock()
	s.onShutdown = append(s.onShutdown, f)
	s.mu.Unlock()
}

// SetKeepAlivesEnabled controls whether HTTP keep-alives are enabled. By
// default, keep-alives are always enabled. Only very resource-constrained
// environments or servers in the process of shutting down should disable
// them. Disabling them closes idle HTTP/1 connections as Shutdown does: each
// is closed once it has been idle for a drain period of 500 ms (at once if
// it has been idle that long already), and a request that arrives on it
// meanwhile is answered with "Connection: close". Nothing waits for those
// closes. Connections that have not sent their first request, and those
// accepted later, keep their ReadHeaderTimeout for it.
func (s *Server) SetKeepAlivesEnabled(v bool) {
	if v {
		s.disableKeepAlives.Store(false)
	} else {
		s.disableKeepAlives.Store(true)
		s.closeIdleConns()
	}
	if h2 := s.h2.Load(); h2 != nil {
		h2.setKeepAlivesEnabled(v)
	}
}

// closeIdleConns starts closing all idle connections and reports whether
// the server is quiescent: no connection is left but idle ones, and every
// close started has ended. It does not wait for the closes; see
// startCloseLocked. Idle HTTP/1 connections are not closed here but woken
// to drain and close themselves (drain.go); they count as not quiescent
// until they have.
func (s *Server) closeIdleConns() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	quiescent := true
	for c := range s.activeConn {
		st, unixSec := c.getState()
		if h := c.h1.Load(); h != nil && (st == http.StateIdle && unixSec != 0 || st == http.StateNew) {
			// An idle or new HTTP/1 connection closes itself once it
			// has been idle through the drain period (five seconds
			// for a new one, as below), answering any request that
			// arrives meanwhile (drain.go); it is not closed under a
			// client that is sending.
			h.drainIdle()
			quiescent = false
			continue
		}
		// A connection that has stayed in StateNew for more than five
		// seconds (its client sent nothing) counts as idle, as in net/http.
		if st == http.StateNew && unixSec < time.Now().Unix()-5 {
			st = http.StateIdle
		}
		if st != http.StateIdle || unixSec == 0 {
			// HTTP/2 connections stay StateActive here until they close:
			// they shut down gracefully with GOAWAY.
			quiescent = false
			continue
		}
		s.startCloseLocked(c)
	}
	return quiescent && len(s.closing) == 0
}

// startCloseLocked untracks c and closes it on a goroutine of its own, so
// that neither s.mu nor the caller is held while a TLS close_notify waits
// for a peer that does not read (net/http's closeIdleConns and Close close
// connections in turn with their lock held). Until the close has ended, c
// is in s.closing, with a channel closed then; finishClosing cuts it
// short. It requires that s.mu is held.
func (s *Server) startCloseLocked(c *conn) {
	delete(s.activeConn, c)
	if _, ok := s.closing[c]; ok {
		return
	}
	if s.closing == nil {
		s.closing = make(map[*conn]chan struct{})
	}
	done := make(chan struct{})
	s.closing[c] = done
	go func() {
		c.closeFromServer()
		s.mu.Lock()
		delete(s.closing, c)
		s.closeEndedLocked()
		s.mu.Unlock()
		close(done)
	}()
}

// closeEndedLocked wakes a Shutdown waiting for the server to become
// quiescent when a close it waits for ends, so that it need not wait for
// its next poll (up to 500 ms later). It requires that s.mu is held.
func (s *Server) closeEndedLocked() {
	select {
	case s.closeWake <- struct{}{}:
	default:
	}
}

// finishClosing waits until the closes in progress have ended or stop is
// closed, whichever comes first. Then it closes the network connections
// of those still in progress, which makes them end at once, and waits for
// them.
func (s *Server) finishClosing(stop <-chan struct{}) {
	s.mu.Lock()
	closing := maps.Clone(s.closing)
	s.mu.Unlock()
	for c, done := range closing {
		select {
		case <-done:
		case <-stop:
			select {
			case <-done:
			default:
				c.abort()
			}
		}
	}
	for _, done := range closing {
		<-done
	}
}

// closeListenersLocked closes every tracked listener and returns the first
// error. It requires that s.mu is held.
func (s *Server) closeListenersLocked() error {
	var err error
	for ln := range s.listeners {
		if cerr := (*ln).Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// doneChan returns the channel that is closed when shutdown starts.
func (s *Server) doneChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.doneChanLocked()
}

func (s *Server) doneChanLocked() chan struct{} {
	if s.done == nil {
		s.done = make(chan struct{})
	}
	return s.done
}

// closeDoneLocked closes the done channel once. It requires that s.mu is
// held.
func (s *Server) closeDoneLocked() {
	ch := s.doneChanLocked()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (s *Server) shuttingDown() bool {
	return s.inShutdown.Load()
}

// doKeepAlives reports whether connections may be kept open for another
// request.
func (s *Server) doKeepAlives() bool {
	return !s.disableKeepAlives.Load() && !s.shuttingDown()
}

// protocols resolves the set of protocols served, as net/http does.
func (s *Server) protocols() http.Protocols {
	if s.Protocols != nil {
		return *s.Protocols
	}
	// As in net/http, the presence of the "h2" key counts, whatever its
	// value: a non-nil TLSNextProto without it turns HTTP/2 off, and with
	// it GODEBUG=http2server=0 does not.
	_, hasH2 := s.TLSNextProto["h2"]
	http2Disabled := s.TLSNextProto != nil && !hasH2
	if !hasH2 && http2ServerDisabledByGODEBUG() {
		http2Disabled = true
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(!http2Disabled)
	return p
}

// shouldSetupHTTP2 reports whether the built-in HTTP/2 engine serves this
// server, as net/http's onceSetNextProtoDefaults decides: HTTP/2 (over TLS
// or unencrypted) is among the protocols, GODEBUG does not have
// http2server=0, and TLSNextProto has no "h2" key (a nil function
// included: net/http then installs nothing, and closes connections that
// negotiate "h2").
func (s *Server) shouldSetupHTTP2() bool {
	p := s.protocols()
	if !p.HTTP2() && !p.UnencryptedHTTP2() {
		return false
	}
	if http2ServerDisabledByGODEBUG() {
		return false
	}
	_, ok := s.TLSNextProto["h2"]
	return !ok
}

// shouldConfigureHTTP2ForServe reports whether Serve, as opposed to
// ServeTLS, sets HTTP/2 up, with net/http's policy of the same name: when
// TLSConfig is nil (the listener may be a TLS listener built elsewhere),
// when unencrypted HTTP/2 is on, or when TLSConfig.NextProtos has "h2".
func (s *Server) shouldConfigureHTTP2ForServe() bool {
	if s.TLSConfig == nil || s.protocols().UnencryptedHTTP2() {
		return true
	}
	return slices.Contains(s.TLSConfig.NextProtos, "h2")
}

// handler returns the Handler requests go to: s.Handler or
// http.DefaultServeMux, with "OPTIONS *" answered by the server itself
// unless DisableGeneralOptionsHandler is set.
func (s *Server) handler(r *http.Request) http.Handler {
	if !s.DisableGeneralOptionsHandler && r.RequestURI == "*" && r.Method == http.MethodOptions {
		return globalOptionsHandler{}
	}
	if s.Handler != nil {
		return s.Handler
	}
	return http.DefaultServeMux
}

// serveHTTP routes a request: it adds the Strict-Transport-Security header
// to HTTPS responses when configured, then calls the handler.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s.StrictTransportSecurity != "" && r.TLS != nil {
		// Set before the handler runs, so that a handler's own value wins.
		h := w.Header()
		if _, ok := h["Strict-Transport-Security"]; !ok {
			h["Strict-Transport-Security"] = []string{s.StrictTransportSecurity}
		}
	}
	s.handler(r).ServeHTTP(w, r)
}

// globalOptionsHandler answers "OPTIONS *" requests with 200 and no body.
type globalOptionsHandler struct{}

func (globalOptionsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
	if r.ContentLength != 0 {
		// Read up to 4 KiB of the body, reserved for future use by the
		// spec; more is a waste of server resources, and MaxBytesReader
		// makes the server close the connection.
		mb := http.MaxBytesReader(w, r.Body, 4<<10)
		_, _ = io.Copy(io.Discard, mb)
	}
}

// httpServer returns the *http.Server that stands for s where an API needs
// one: the TLSNextProto functions receive it, the HTTP/2 engine reads its
// settings from it, and request contexts carry it under
// http.ServerContextKey, so that net/http helpers that log through it
// (http.FileServer) use ErrorLog. It is built once, from the settings s has
// when serving starts.
func (s *Server) httpServer() *http.Server {
	s.mirrorOnce.Do(func() {
		s.mirrorSrv = &http.Server{
			Addr:                         s.Addr,
			Handler:                      s.Handler,
			DisableGeneralOptionsHandler: s.DisableGeneralOptionsHandler,
			ReadTimeout:                  s.ReadTimeout,
			ReadHeaderTimeout:            s.ReadHeaderTimeout,
			WriteTimeout:                 s.WriteTimeout,
			IdleTimeout:                  s.IdleTimeout,
			MaxHeaderBytes:               s.MaxHeaderBytes,
			ErrorLog:                     s.errorLog(),
			HTTP2:                        s.http2Config(),
			ConnState:                    s.h2ConnState,
		}
		setGo127Fields(s.mirrorSrv, s)
	})
	return s.mirrorSrv
}

// ListenAndServeTLS acts identically to ListenAndServe, except that it
// expects HTTPS connections. Additionally, files containing a certificate and
// matching private key for the server must be provided.
//
// It listens on the TCP network address addr and then calls ServeTLS with
// handler to handle requests on incoming connections. The handler is
// typically nil, in which case http.DefaultServeMux is used. Unlike the
// net/http function, the server it starts has httpsrv's safe defaults.
//
// ListenAndServeTLS always returns a non-nil error.
func ListenAndServeTLS(addr, certFile, keyFile string, handler http.Handler) error {
	srv := &Server{Addr: addr, Handler: handler}
	return srv.ListenAndServeTLS(certFile, keyFile)
}

// ListenAndServe listens on the TCP network address addr and then calls
// Serve with handler to handle requests on incoming connections, without
// TLS. The handler is typically nil, in which case http.DefaultServeMux is
// used.
//
// ListenAndServe always returns a non-nil error.
func ListenAndServe(addr string, handler http.Handler) error {
	srv := &Server{Addr: addr, Handler: handler}
	return srv.ListenAndServe()
}

// ServeTLS accepts incoming HTTPS connections on the listener l, creating a
// new service goroutine for each. The service goroutines read requests and
// then call handler to reply to them. The handler is typically nil, in which
// case http.DefaultServeMux is used.
//
// ServeTLS always closes l and returns a non-nil error.
func ServeTLS(l net.Listener, handler http.Handler, certFile, keyFile string) error {
	srv := &Server{Handler: handler}
	return srv.ServeTLS(l, certFile, keyFile)
}

// Serve accepts incoming connections on the listener l, creating a new
// service goroutine for each. The service goroutines read requests and then
// call handler to reply to them. The handler is typically nil, in which case
// http.DefaultServeMux is used.
//
// Serve always closes l and returns a non-nil error.
func Serve(l net.Listener, handler http.Handler) error {
	srv := &Server{Handler: handler}
	return srv.Serve(l)
}
