package httpsrv

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
)

// ErrMissingCertificate is returned by ServeTLS and ListenAndServeTLS when
// no certificate file is named and the TLS configuration has no certificate
// source (Certificates, GetCertificate or GetConfigForClient).
var ErrMissingCertificate = errors.New("httpsrv: no certificate: pass certFile and keyFile, or set TLSConfig.Certificates, GetCertificate or GetConfigForClient")

// serveTLSConfig returns the TLS configuration ServeTLS serves with: a clone
// of s.TLSConfig with the ALPN protocols of s.protocols() and, when needed,
// the key pair loaded from certFile and keyFile. s.TLSConfig is not
// modified.
func (s *Server) serveTLSConfig(certFile, keyFile string) (*tls.Config, error) {
	config := cloneTLSConfig(s.TLSConfig)
	protos := s.protocols()
	config.NextProtos = adjustNextProtos(config.NextProtos, protos)
	if protos.HTTP2() && s.TLSNextProto["h2"] == nil {
		if err := checkHTTP2CipherSuites(config); err != nil {
			return nil, err
		}
	}
	if !configHasCert(config) || certFile != "" || keyFile != "" {
		if certFile == "" && keyFile == "" {
			return nil, ErrMissingCertificate
		}
		cert, err := loadKeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		config.Certificates = []tls.Certificate{cert}
	}
	return config, nil
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

// loadKeyPair reads and parses a PEM certificate chain and private key,
// naming the file that failed in the error.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("httpsrv: reading certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("httpsrv: reading key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("httpsrv: loading key pair from %s and %s: %w", certFile, keyFile, err)
	}
	return cert, nil
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

// http2ServerDisabledByGODEBUG reports whether GODEBUG has http2server=0,
// which turns HTTP/2 off in net/http's servers, and so in ours.
func http2ServerDisabledByGODEBUG() bool {
	for _, kv := range strings.Split(os.Getenv("GODEBUG"), ",") {
		if strings.TrimSpace(kv) == "http2server=0" {
			return true
		}
	}
	return false
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
