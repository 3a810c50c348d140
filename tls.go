package httpsrv

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// ErrMissingCertificate is returned by ServeTLS and ListenAndServeTLS when
// no certificate file is named and the TLS configuration has no certificate
// source (Certificates, GetCertificate or GetConfigForClient).
var ErrMissingCertificate = errors.New("httpsrv: no certificate: pass certFile and keyFile, or set TLSConfig.Certificates, GetCertificate or GetConfigForClient")

// ErrNoCertificateFiles is returned by [Server.ReloadCertificate] when the
// server has nothing to reload: no certificate loaded from files by
// ServeTLS or ListenAndServeTLS, no ClientCAFile and no
// SessionTicketKeyFile.
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
// ClientCAFile (reloaded when the file changes, through a
// GetConfigForClient), the session ticket keys of SessionTicketKeyFile
// (likewise; see tickets.go) and, when file names are given, a GetCertificate
// serving the pair loaded from them. s.TLSConfig is not modified.
//
// The defaults, applied only to unset fields:
//
//   - MinVersion 0 becomes DefaultMinTLSVersion (TLS 1.2); with a
//     MaxVersion below TLS 1.2 the configuration is refused instead.
//   - CipherSuites nil becomes DefaultCipherSuites (ECDHE with AEAD only),
//     unless MinVersion is set below TLS 1.2: the clients it lets in can
//     use only Go's default list (see applyTLSDefaults).
//   - CurvePreferences stays nil, so that crypto/tls picks its modern
//     defaults, which include the hybrid post-quantum X25519MLKEM768 key
//     exchange from Go 1.24 and follow each Go release.
//   - Session tickets stay on (SessionTicketsDisabled false), with the
//     ticket keys crypto/tls rotates itself, so clients resume cheaply;
//     with SessionTicketKeyFile, with its keys, on every handshake path
//     (see tickets.go).
//
// crypto/tls uses a configuration returned by the caller's
// GetConfigForClient in place of the whole configuration, so the
// GetConfigForClient of the result wraps the caller's and applies the same
// additions to a clone of what it returns (see forClient); nil still means
// the base configuration.
func (s *Server) serveTLSConfig(certFile, keyFile string) (*tls.Config, error) {
	config := cloneTLSConfig(s.TLSConfig)
	if err := applyTLSDefaults(config); err != nil {
		return nil, err
	}
	protos := s.protocols()
	config.NextProtos = adjustNextProtos(config.NextProtos, protos)
	if s.shouldSetupHTTP2() {
		if err := checkHTTP2CipherSuites(config); err != nil {
			return nil, err
		}
	}
	// The reloaders are registered for ReloadCertificate only once the
	// whole configuration is built: a ServeTLS that fails serves nothing
	// and must leave nothing to reload.
	var ca, pair, tickets *certReloader // of ClientCAFile, the key pair, SessionTicketKeyFile
	if s.ClientCAFile != "" {
		if config.ClientAuth != tls.NoClientCert || config.ClientCAs != nil {
			return nil, errors.New("httpsrv: both ClientCAFile and TLSConfig.ClientAuth or TLSConfig.ClientCAs are set; set one or the other")
		}
		var err error
		ca, err = newCAReloader(s.ClientCAFile, s.certReloadInterval(), time.Now, s.logAtf)
		if err != nil {
			return nil, err
		}
		config.ClientAuth = tls.RequireAndVerifyClientCert
		config.ClientCAs = ca.pool.Load()
	}
	if s.SessionTicketKeyFile != "" {
		if config.SessionTicketsDisabled {
			return nil, errors.New("httpsrv: both SessionTicketKeyFile and TLSConfig.SessionTicketsDisabled are set; set one or the other")
		}
		if config.WrapSession != nil || config.UnwrapSession != nil {
			return nil, errWrapSessionWithKeyFile
		}
		var err error
		tickets, err = newTicketKeyReloader(s.SessionTicketKeyFile, config, s.certReloadInterval(), time.Now, s.logAtf)
		if err != nil {
			return nil, err
		}
	}
	if !configHasCert(config) || certFile != "" || keyFile != "" {
		if certFile == "" && keyFile == "" {
			return nil, ErrMissingCertificate
		}
		r, err := newCertReloader(certFile, keyFile, s.certReloadInterval(), time.Now, s.logAtf)
		if err != nil {
			return nil, err
		}
		pair = r
		// The files replace TLSConfig.Certificates, as in net/http. A
		// GetCertificate of the caller's keeps the turn crypto/tls gives it
		// when Certificates is set: it is asked first when the client sent
		// a server name, and the files' pair serves when it returns nil.
		userGet := s.slotFreeGetCertificate(config.GetCertificate)
		config.Certificates = nil
		config.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if userGet != nil && hello.ServerName != "" {
				if cert, err := userGet(hello); cert != nil || err != nil {
					return cert, err
				}
			}
			return r.GetCertificate(hello)
		}
	} else {
		config.GetCertificate = s.slotFreeGetCertificate(config.GetCertificate)
	}
	if userFn := config.GetConfigForClient; userFn != nil {
		add := configAdditions{
			protos:       protos,
			clientCAs:    ca,
			tickets:      tickets,
			certificates: config.Certificates,
			getCert:      config.GetCertificate,
			slotFree:     s.slotFreeGetCertificate,
		}
		base := config
		config.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := userFn(hello)
			if err != nil {
				return nil, err
			}
			if c == nil {
				if ca != nil {
					// The base configuration, with the current CAs.
					return withTicketKeys(tickets, ca.clientConfig(base)), nil
				}
				return nil, nil
			}
			return add.forClient(c)
		}
	} else if ca != nil {
		// ClientCAs of the configuration a handshake uses must be the
		// pool as of the handshake: see certReloader.clientConfig.
		base := config
		config.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return withTicketKeys(tickets, ca.clientConfig(base)), nil
		}
	}
	if tickets != nil {
		// Every handshake calls the base's GetConfigForClient first, and
		// crypto/tls picks the ticket keys after it returns: a check of
		// the key file made here serves rotated keys to this handshake.
		next := config.GetConfigForClient
		config.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			tickets.checkIfDue()
			if next == nil {
				return nil, nil
			}
			return next(hello)
		}
	}
	// MaxConcurrentHandshakes: see limitHandshakes.
	config.GetConfigForClient = s.limitHandshakes(config, config.GetConfigForClient)
	for _, r := range []*certReloader{ca, pair, tickets} {
		if r != nil {
			s.addCertReloader(r)
		}
	}
	return config, nil
}

// configAdditions are the settings serveTLSConfig adds to the base
// configuration, kept to be applied to the configurations the caller's
// GetConfigForClient returns.
type configAdditions struct {
	protos       http.Protocols
	clientCAs    *certReloader // of ClientCAFile; nil if it is not set
	tickets      *certReloader // of SessionTicketKeyFile; nil if it is not set
	certificates []tls.Certificate
	getCert      func(*tls.ClientHelloInfo) (*tls.Certificate, error)

	// slotFree wraps a GetCertificate of the returned configuration's
	// (see Server.slotFreeGetCertificate).
	slotFree func(func(*tls.ClientHelloInfo) (*tls.Certificate, error)) func(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// forClient returns a clone of c, a configuration returned by the caller's
// GetConfigForClient, with the server's additions, so that no handshake
// escapes them:
//
//   - The defaults of applyTLSDefaults fill MinVersion and CipherSuites if
//     they are unset; a returned configuration they would contradict (a
//     MaxVersion below TLS 1.2 without a MinVersion) fails the handshake.
//   - NextProtos is adjusted to the server's protocols as the base's is
//     (adjustNextProtos), so that HTTP/2 is offered exactly when it is
//     served.
//   - With ClientCAFile set, client certificates are required and verified
//     against its CAs, as last loaded (see certReloader.clientConfig). A
//     returned configuration that sets ClientAuth or ClientCAs itself
//     fails the handshake, as the same base configuration fails ServeTLS:
//     the requirement must not be weakened per client. A nil one gets the
//     base configuration with the current CAs.
//   - A configuration without Certificates or GetCertificate gets the
//     base's certificate source: the files' pair, reloaded when they
//     change, or TLSConfig.Certificates.
//   - Its own GetCertificate gives the handshake slot back while it runs
//     (MaxConcurrentHandshakes; see Server.slotFreeGetCertificate).
//   - With SessionTicketKeyFile set, the file's keys, as last loaded,
//     replace any ticket keys of its own (crypto/tls would use those in
//     place of the base's), and a returned configuration that sets
//     WrapSession or UnwrapSession fails the handshake, as the same base
//     configuration fails ServeTLS. Without it, crypto/tls uses the base
//     configuration's keys, which it rotates, unless the returned one sets
//     its own.
func (a *configAdditions) forClient(c *tls.Config) (*tls.Config, error) {
	c = c.Clone()
	if err := applyTLSDefaults(c); err != nil {
		return nil, fmt.Errorf("httpsrv: the config TLSConfig.GetConfigForClient returned: %w", err)
	}
	c.NextProtos = adjustNextProtos(c.NextProtos, a.protos)
	if a.clientCAs != nil {
		if c.ClientAuth != tls.NoClientCert || c.ClientCAs != nil {
			return nil, errors.New("httpsrv: TLSConfig.GetConfigForClient returned a config with ClientAuth or ClientCAs set while ClientCAFile is set")
		}
		a.clientCAs.setClientCAs(c, nil)
	}
	if len(c.Certificates) == 0 && c.GetCertificate == nil {
		c.Certificates = a.certificates
		c.GetCertificate = a.getCert
	} else if a.slotFree != nil {
		c.GetCertificate = a.slotFree(c.GetCertificate)
	}
	if a.tickets != nil {
		if c.WrapSession != nil || c.UnwrapSession != nil {
			return nil, errors.New("httpsrv: TLSConfig.GetConfigForClient returned a config with WrapSession or UnwrapSession set while SessionTicketKeyFile is set: they would encrypt and decrypt the tickets without the file's keys")
		}
		a.tickets.setTicketKeys(c)
	}
	return c, nil
}

// errWrapSessionWithKeyFile is ServeTLS's error for a TLSConfig that sets
// WrapSession or UnwrapSession with SessionTicketKeyFile. crypto/tls then
// seals and opens every ticket through those callbacks alone, and the
// EncryptTicket and DecryptTicket they may call are those of the
// configuration they were written for, the caller's, whose keys httpsrv
// cannot set (it never modifies the caller's configuration): the file
// would be silently ignored.
var errWrapSessionWithKeyFile = errors.New("httpsrv: both SessionTicketKeyFile and TLSConfig.WrapSession or UnwrapSession are set; set one or the other (WrapSession and UnwrapSession replace the ticket keys: the file's would not be used)")

// applyTLSDefaults fills httpsrv's safe defaults into the fields of config
// that are unset, where they cannot contradict a field the caller set:
//
//   - MinVersion 0 becomes DefaultMinTLSVersion (TLS 1.2). A MaxVersion
//     below that is refused with an error instead: it asks for versions
//     the floor shuts out, and a caller who wants them says so with
//     MinVersion.
//   - CipherSuites nil becomes DefaultCipherSuites (ECDHE with AEAD) only
//     when the minimum version is TLS 1.2 or more. AEAD suites exist only
//     in TLS 1.2, so a caller who set MinVersion below it to reach TLS 1.0
//     and 1.1 clients keeps Go's default list, whose ECDHE-CBC suites are
//     the only ones those clients can use; crypto/tls still prefers the
//     AEAD suites with every client that offers them.
func applyTLSDefaults(config *tls.Config) error {
	if config.MinVersion == 0 {
		if config.MaxVersion != 0 && config.MaxVersion < DefaultMinTLSVersion {
			return fmt.Errorf("httpsrv: TLSConfig.MaxVersion %s is below httpsrv's default minimum %s; set MinVersion to allow older versions",
				tls.VersionName(config.MaxVersion), tls.VersionName(DefaultMinTLSVersion))
		}
		config.MinVersion = DefaultMinTLSVersion
	}
	if config.CipherSuites == nil && config.MinVersion >= tls.VersionTLS12 {
		config.CipherSuites = DefaultCipherSuites()
	}
	return nil
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
