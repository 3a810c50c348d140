package httpsrv

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrMissingCertificate is returned by ServeTLS and ListenAndServeTLS when
// no certificate file is named and the TLS configuration has no certificate
// source (Certificates, GetCertificate or GetConfigForClient).
var ErrMissingCertificate = errors.New("httpsrv: no certificate: pass certFile and keyFile, or set TLSConfig.Certificates, GetCertificate or GetConfigForClient")

// ErrNoCertificateFiles is returned by [Server.ReloadCertificate] when the
// server does not serve a certificate loaded from files by ServeTLS or
// ListenAndServeTLS.
var ErrNoCertificateFiles = errors.New("httpsrv: the server does not serve a certificate from files")

// DefaultMinTLSVersion is the lowest TLS version the server accepts when
// TLSConfig is nil or its MinVersion is zero. TLS 1.0 and 1.1 were
// deprecated by RFC 8996 and HTTP/2 forbids them (RFC 9113 §9.2). Go's own
// server default is also TLS 1.2, but GODEBUG=tls10server=1 lowers it;
// httpsrv sets it explicitly, so no GODEBUG setting can.
const DefaultMinTLSVersion = tls.VersionTLS12

// DefaultCipherSuites returns the TLS 1.0–1.2 cipher suites the server
// enables when TLSConfig is nil or its CipherSuites is nil: ECDHE key
// exchange (forward secrecy) with an AEAD cipher, AES-GCM or
// ChaCha20-Poly1305. It returns a new slice on each call.
//
// Go's default list adds the ECDHE suites with AES-CBC and SHA-1 or
// SHA-256 MACs, which are open to padding-oracle timing attacks such as
// Lucky Thirteen and are on HTTP/2's blocklist (RFC 9113 Appendix A), and
// GODEBUG settings (tlsrsakex=1, tls3des=1) bring back RSA key exchange and
// 3DES; none of them is in this list. It contains both suites HTTP/2 makes
// mandatory, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 and its ECDSA
// counterpart, and nothing on HTTP/2's blocklist. TLS 1.3 suites are not
// configurable in crypto/tls and are all AEAD.
func DefaultCipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// DefaultCertReloadInterval is how often the certificate and key files are
// checked for a renewed pair when Server.CertReloadInterval is zero. A check
// is two stat calls, made by one TLS handshake at most once per interval,
// so it costs nothing measurable; renewals happen days before expiry, and
// Kubernetes takes up to a minute or two to update a mounted secret, so ten
// seconds adds little to the time a renewal takes to be served.
const DefaultCertReloadInterval = 10 * time.Second

// certReloadInterval returns the time between two checks of the
// certificate files, or a negative value for no automatic check.
func (s *Server) certReloadInterval() time.Duration {
	if s.CertReloadInterval == 0 {
		return DefaultCertReloadInterval
	}
	return s.CertReloadInterval
}

// serveTLSConfig returns the TLS configuration ServeTLS serves with: a clone
// of s.TLSConfig with httpsrv's defaults filled in where the caller left a
// setting unset, the ALPN protocols of s.protocols(), the client CAs of
// ClientCAFile and, when file names are given, a GetCertificate serving the
// pair loaded from them. s.TLSConfig is not modified.
//
// The defaults, applied only to unset fields:
//
//   - MinVersion 0 becomes DefaultMinTLSVersion (TLS 1.2).
//   - CipherSuites nil becomes DefaultCipherSuites (ECDHE with AEAD only).
//   - CurvePreferences stays nil, so that crypto/tls picks its modern
//     defaults, which include the hybrid post-quantum X25519MLKEM768 key
//     exchange from Go 1.24 and follow each Go release.
//   - Session tickets stay on (SessionTicketsDisabled false), with the
//     ticket keys crypto/tls rotates itself, so clients resume cheaply.
//
// crypto/tls uses a configuration returned by the caller's
// GetConfigForClient in place of the whole configuration, so the
// GetConfigForClient of the result wraps the caller's and applies the same
// additions to a clone of what it returns (see forClient); nil still means
// the base configuration.
func (s *Server) serveTLSConfig(certFile, keyFile string) (*tls.Config, error) {
	config := cloneTLSConfig(s.TLSConfig)
	applyTLSDefaults(config)
	protos := s.protocols()
	config.NextProtos = adjustNextProtos(config.NextProtos, protos)
	if s.shouldSetupHTTP2() {
		if err := checkHTTP2CipherSuites(config); err != nil {
			return nil, err
		}
	}
	if s.ClientCAFile != "" {
		if config.ClientAuth != tls.NoClientCert || config.ClientCAs != nil {
			return nil, errors.New("httpsrv: both ClientCAFile and TLSConfig.ClientAuth or TLSConfig.ClientCAs are set; set one or the other")
		}
		pool, err := loadCertPool(s.ClientCAFile)
		if err != nil {
			return nil, err
		}
		config.ClientAuth = tls.RequireAndVerifyClientCert
		config.ClientCAs = pool
	}
	if !configHasCert(config) || certFile != "" || keyFile != "" {
		if certFile == "" && keyFile == "" {
			return nil, ErrMissingCertificate
		}
		r, err := newCertReloader(certFile, keyFile, s.certReloadInterval(), time.Now, s.logf)
		if err != nil {
			return nil, err
		}
		s.addCertReloader(r)
		// The files replace TLSConfig.Certificates, as in net/http. A
		// GetCertificate of the caller's keeps the turn crypto/tls gives it
		// when Certificates is set: it is asked first when the client sent
		// a server name, and the files' pair serves when it returns nil.
		userGet := config.GetCertificate
		config.Certificates = nil
		config.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if userGet != nil && hello.ServerName != "" {
				if cert, err := userGet(hello); cert != nil || err != nil {
					return cert, err
				}
			}
			return r.GetCertificate(hello)
		}
	}
	if userFn := config.GetConfigForClient; userFn != nil {
		add := configAdditions{
			protos:       protos,
			clientCAs:    config.ClientCAs,
			certificates: config.Certificates,
			getCert:      config.GetCertificate,
		}
		if s.ClientCAFile == "" {
			add.clientCAs = nil
		}
		config.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := userFn(hello)
			if c == nil || err != nil {
				return c, err
			}
			return add.forClient(c)
		}
	}
	return config, nil
}

// configAdditions are the settings serveTLSConfig adds to the base
// configuration, kept to be applied to the configurations the caller's
// GetConfigForClient returns.
type configAdditions struct {
	protos       http.Protocols
	clientCAs    *x509.CertPool // from ClientCAFile; nil if it is not set
	certificates []tls.Certificate
	getCert      func(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// forClient returns a clone of c, a configuration returned by the caller's
// GetConfigForClient, with the server's additions, so that no handshake
// escapes them:
//
//   - The defaults of applyTLSDefaults fill MinVersion and CipherSuites if
//     they are unset.
//   - NextProtos is adjusted to the server's protocols as the base's is
//     (adjustNextProtos), so that HTTP/2 is offered exactly when it is
//     served.
//   - With ClientCAFile set, client certificates are required and verified
//     against its CAs. A returned configuration that sets ClientAuth or
//     ClientCAs itself fails the handshake, as the same base configuration
//     fails ServeTLS: the requirement must not be weakened per client.
//   - A configuration without Certificates or GetCertificate gets the
//     base's certificate source: the files' pair, reloaded when they
//     change, or TLSConfig.Certificates.
//
// Session tickets need nothing: crypto/tls uses the base configuration's
// ticket keys, which it rotates, unless the returned one sets its own.
func (a *configAdditions) forClient(c *tls.Config) (*tls.Config, error) {
	c = c.Clone()
	applyTLSDefaults(c)
	c.NextProtos = adjustNextProtos(c.NextProtos, a.protos)
	if a.clientCAs != nil {
		if c.ClientAuth != tls.NoClientCert || c.ClientCAs != nil {
			return nil, errors.New("httpsrv: TLSConfig.GetConfigForClient returned a config with ClientAuth or ClientCAs set while ClientCAFile is set")
		}
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = a.clientCAs
	}
	if len(c.Certificates) == 0 && c.GetCertificate == nil {
		c.Certificates = a.certificates
		c.GetCertificate = a.getCert
	}
	return c, nil
}

// applyTLSDefaults fills httpsrv's safe defaults into the fields of config
// that are unset; see serveTLSConfig.
func applyTLSDefaults(config *tls.Config) {
	if config.MinVersion == 0 {
		config.MinVersion = DefaultMinTLSVersion
	}
	if config.CipherSuites == nil {
		config.CipherSuites = DefaultCipherSuites()
	}
}

// cloneTLSConfig returns a shallow clone of cfg, or a new zero tls.Config
// if cfg is nil.
func cloneTLSConfig(cfg *tls.Config) *tls.Config {
	if cfg == nil {
		return &tls.Config{}
	}
	return cfg.Clone()
}

// adjustNextProtos returns the ALPN list to offer: protos without the HTTP
// versions that are off, then "h2" and "http/1.1" appended if they are on and
// missing. Other protocols keep their place. protos itself is not modified,
// since tls.Config.Clone shares the slice with the caller's config.
func adjustNextProtos(protos []string, p http.Protocols) []string {
	protos = slices.Clone(protos)
	protos = slices.DeleteFunc(protos, func(s string) bool {
		return (s == "http/1.1" && !p.HTTP1()) || (s == "h2" && !p.HTTP2())
	})
	if p.HTTP2() && !slices.Contains(protos, "h2") {
		protos = append(protos, "h2")
	}
	if p.HTTP1() && !slices.Contains(protos, "http/1.1") {
		protos = append(protos, "http/1.1")
	}
	return protos
}

// configHasCert reports whether cfg has a source of certificates.
func configHasCert(cfg *tls.Config) bool {
	return len(cfg.Certificates) > 0 || cfg.GetCertificate != nil || cfg.GetConfigForClient != nil
}

// loadCertPool reads a PEM file of CA certificates into a new pool, naming
// the file in the error if it cannot be read or holds no certificate.
func loadCertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("httpsrv: reading ClientCAFile: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("httpsrv: ClientCAFile %s holds no PEM certificate", file)
	}
	return pool, nil
}

// ReloadCertificate loads the certificate and key files given to ServeTLS
// or ListenAndServeTLS again, and serves the new pair to the handshakes
// that follow if it is valid; connections already established keep theirs.
// It is meant for a signal handler (SIGHUP) or an admin endpoint, and works
// whatever CertReloadInterval is.
//
// If the pair cannot be read, does not parse, has a key that does not match
// the certificate, or has expired while the one served has not, the server
// keeps the pair it serves and ReloadCertificate returns the error. When
// the server serves several listeners with certificate files, each is
// reloaded and the errors are joined.
//
// ReloadCertificate returns ErrNoCertificateFiles if the server does not
// serve a certificate from files, and http.ErrServerClosed after Shutdown
// or Close. It is safe for concurrent use, with itself and with handshakes.
func (s *Server) ReloadCertificate() error {
	if s.shuttingDown() {
		return http.ErrServerClosed
	}
	rs := s.certReloaders()
	if len(rs) == 0 {
		return ErrNoCertificateFiles
	}
	var errs []error
	for _, r := range rs {
		errs = append(errs, r.reload())
	}
	return errors.Join(errs...)
}

// addCertReloader registers r as serving a key pair of s, for
// ReloadCertificate. The list only grows: ServeTLS returns only when the
// server stops, and a stopped server cannot be reused.
func (s *Server) addCertReloader(r *certReloader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.certs = append(s.certs, r)
}

// certReloaders returns the reloaders of s.
func (s *Server) certReloaders() []*certReloader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.certs)
}

// certReloader serves a key pair loaded from a certificate file and a key
// file, and loads it again when the files change.
//
// Changes are found lazily: the first handshake after the interval has
// passed stats both files (after resolving symbolic links, so that the
// Kubernetes secret layout, where ..data is a link swapped to a new
// directory, counts as a change) and, if the target, inode, size or
// modification time of either differs from the last check, or the last
// check saw a file modified within racyStatWindow, reads them again. A
// pair whose content hashes as the served one's is not parsed again.
// Handshakes that arrive during a check get the current pair without
// waiting. There is no goroutine to stop.
type certReloader struct {
	// Immutable.
	certFile, keyFile string
	interval          time.Duration // between checks; <= 0 means none
	now               func() time.Time
	logf              func(format string, args ...any)
	epoch             time.Time // now() at creation; due counts from it

	// cert is the pair served. Never nil after newCertReloader.
	cert atomic.Pointer[tls.Certificate]

	// due is when the next check is due, as a duration since epoch.
	due atomic.Int64

	// mu serializes checks and loads, and guards the fields below it.
	mu      sync.Mutex
	stamp   pairStamp // the files as of the last check
	sum     [sha256.Size]byte
	lastErr string // the last error logged, so that it is logged once
}

// newCertReloader loads the pair from certFile and keyFile. An expired
// certificate is served, with a log message, as net/http would serve it.
func newCertReloader(certFile, keyFile string, interval time.Duration, now func() time.Time, logf func(string, ...any)) (*certReloader, error) {
	r := &certReloader{
		certFile: certFile,
		keyFile:  keyFile,
		interval: interval,
		now:      now,
		logf:     logf,
		epoch:    now(),
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stamp, _ = statPair(certFile, keyFile) // a failure shows in the load
	if err := r.loadLocked(); err != nil {
		return nil, err
	}
	r.due.Store(int64(interval))
	return r, nil
}

// GetCertificate returns the pair to serve, first checking the files if a
// check is due. It never returns an error and is safe for use as a
// tls.Config.GetCertificate callback.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if r.interval > 0 && r.now().Sub(r.epoch) >= time.Duration(r.due.Load()) && r.mu.TryLock() {
		// Another handshake may have checked between the Load and the
		// TryLock; then the due time has moved on.
		if r.now().Sub(r.epoch) >= time.Duration(r.due.Load()) {
			r.checkLocked()
			r.scheduleLocked()
		}
		r.mu.Unlock()
	}
	return r.cert.Load(), nil
}

// reload loads the pair whether or not the files changed, and returns the
// error if it is rejected.
func (r *certReloader) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.scheduleLocked()
	if st, err := statPair(r.certFile, r.keyFile); err == nil {
		r.stamp = st
	}
	err := r.loadLocked()
	if err != nil {
		r.logErrorLocked(err)
	} else {
		r.lastErr = ""
	}
	return err
}

// scheduleLocked sets the time of the next check. It requires r.mu.
func (r *certReloader) scheduleLocked() {
	r.due.Store(int64(r.now().Sub(r.epoch) + r.interval))
}

// checkLocked loads the pair if the files changed since the last check.
// Rejected pairs and unreadable files are logged once each; the current
// pair stays. It requires r.mu.
func (r *certReloader) checkLocked() {
	st, err := statPair(r.certFile, r.keyFile)
	if err != nil {
		r.logErrorLocked(err)
		return
	}
	if st.equal(r.stamp) {
		return
	}
	// Record the new state even if the load fails, so that a broken pair
	// is tried and logged once, not at every check: the write that fixes
	// it changes the files again.
	r.stamp = st
	if err := r.loadLocked(); err != nil {
		r.logErrorLocked(err)
		return
	}
	r.lastErr = ""
}

// logErrorLocked logs err unless it is the one logged last. It requires
// r.mu.
func (r *certReloader) logErrorLocked(err error) {
	if msg := err.Error(); msg != r.lastErr {
		r.lastErr = msg
		r.logf("httpsrv: certificate reload failed, still serving the previous certificate: %v", err)
	}
}

// loadLocked reads and checks the pair and, if it differs from the one
// served, serves it. It requires r.mu.
func (r *certReloader) loadLocked() error {
	certPEM, err := os.ReadFile(r.certFile)
	if err != nil {
		return fmt.Errorf("httpsrv: reading certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(r.keyFile)
	if err != nil {
		return fmt.Errorf("httpsrv: reading key: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%d\n", len(certPEM))
	h.Write(certPEM)
	h.Write(keyPEM)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	cur := r.cert.Load()
	if cur != nil && sum == r.sum {
		return nil // same content, e.g. touched or copied again
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("httpsrv: loading key pair from %s and %s: %w", r.certFile, r.keyFile, err)
	}
	if cert.Leaf == nil { // GODEBUG=x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("httpsrv: parsing certificate in %s: %w", r.certFile, err)
		}
	}
	now := r.now()
	if expired := now.After(cert.Leaf.NotAfter); expired {
		if cur != nil && !now.After(cur.Leaf.NotAfter) {
			return fmt.Errorf("httpsrv: certificate in %s expired at %v; keeping the current one, valid until %v",
				r.certFile, cert.Leaf.NotAfter, cur.Leaf.NotAfter)
		}
		r.logf("httpsrv: serving certificate from %s that expired at %v", r.certFile, cert.Leaf.NotAfter)
	}
	r.cert.Store(&cert)
	r.sum = sum
	if cur != nil {
		r.logf("httpsrv: reloaded certificate from %s: serial %x, valid until %v",
			r.certFile, cert.Leaf.SerialNumber, cert.Leaf.NotAfter)
	}
	return nil
}

// pairStamp is what a check compares: the state of both files.
type pairStamp struct {
	cert, key fileStamp
}

func (a pairStamp) equal(b pairStamp) bool {
	return a.cert.equal(b.cert) && a.key.equal(b.key)
}

func statPair(certFile, keyFile string) (pairStamp, error) {
	c, err := statFile(certFile)
	if err != nil {
		return pairStamp{}, err
	}
	k, err := statFile(keyFile)
	if err != nil {
		return pairStamp{}, err
	}
	return pairStamp{cert: c, key: k}, nil
}

// fileStamp identifies the content of a file cheaply: the path it resolves
// to after symbolic links, and the stat of that target.
type fileStamp struct {
	path string
	info os.FileInfo // nil in the zero stamp

	// racy is set when the file was modified so shortly before the stat
	// that a later write could leave size and modification time unchanged
	// (file systems store times at a coarse granularity, up to two
	// seconds). A racy stamp never compares equal, so the next check reads
	// the file; the idea is Git's "racy clean" index entries.
	racy bool
}

// racyStatWindow is how recent a modification time makes a stamp racy.
const racyStatWindow = 3 * time.Second

func statFile(name string) (fileStamp, error) {
	path, err := filepath.EvalSymlinks(name)
	if err != nil {
		return fileStamp{}, fmt.Errorf("httpsrv: checking certificate file: %w", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, fmt.Errorf("httpsrv: checking certificate file: %w", err)
	}
	// The file system's clock is the real one, whatever clock the
	// reloader was given.
	racy := time.Since(info.ModTime()) < racyStatWindow
	return fileStamp{path: path, info: info, racy: racy}, nil
}

// equal reports whether a, the earlier stamp, and b describe the same file
// content, as far as stat can tell: same target path, same file (device
// and inode on Unix), same size and modification time, and a not racy.
func (a fileStamp) equal(b fileStamp) bool {
	if a.info == nil || b.info == nil || a.racy {
		return false
	}
	return a.path == b.path && os.SameFile(a.info, b.info) &&
		a.info.Size() == b.info.Size() && a.info.ModTime().Equal(b.info.ModTime())
}

// checkHTTP2CipherSuites returns an error if cfg restricts the TLS 1.2
// cipher suites to a list without the one RFC 9113 §9.2.2 requires.
func checkHTTP2CipherSuites(cfg *tls.Config) error {
	if cfg.CipherSuites == nil || (cfg.MinVersion >= tls.VersionTLS13) {
		return nil
	}
	if slices.Contains(cfg.CipherSuites, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) ||
		slices.Contains(cfg.CipherSuites, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256) {
		return nil
	}
	return errors.New("httpsrv: TLSConfig.CipherSuites is missing an HTTP/2-required AES_128_GCM_SHA256 cipher (need at least one of TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 or TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)")
}

// validNextProto reports whether proto is an ALPN protocol a TLSNextProto
// function may take over. HTTP/1 is always served by the server itself.
func validNextProto(proto string) bool {
	switch proto {
	case "", "http/1.1", "http/1.0":
		return false
	}
	return true
}

// tlsRecordHeaderLooksLikeHTTP reports whether a TLS record header looks
// like it might have been a plaintext HTTP request.
func tlsRecordHeaderLooksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}
