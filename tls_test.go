package httpsrv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
)

// TestServeTLSConfigDefaults checks the TLS settings ServeTLS fills in: the
// safe defaults where the caller's TLSConfig leaves a field unset, the
// caller's values where it does not, and the caller's config untouched.
func TestServeTLSConfigDefaults(t *testing.T) {
	userSuites := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
	tests := []struct {
		name           string
		cfg            *tls.Config
		wantMinVersion uint16
		wantSuites     []uint16
		wantCurves     []tls.CurveID
		wantNoTickets  bool
	}{
		{name: "nil TLSConfig", cfg: nil, wantMinVersion: tls.VersionTLS12, wantSuites: DefaultCipherSuites()},
		{name: "empty TLSConfig", cfg: &tls.Config{}, wantMinVersion: tls.VersionTLS12, wantSuites: DefaultCipherSuites()},
		{name: "MinVersion 1.3", cfg: &tls.Config{MinVersion: tls.VersionTLS13}, wantMinVersion: tls.VersionTLS13, wantSuites: DefaultCipherSuites()},
		// Issue 11, item 4: the AEAD-only default would shut out the TLS 1.0
		// and 1.1 clients MinVersion lets in, so Go's default list stays.
		{name: "MinVersion 1.0 is honoured with Go's suites", cfg: &tls.Config{MinVersion: tls.VersionTLS10}, wantMinVersion: tls.VersionTLS10, wantSuites: nil},
		{name: "MinVersion 1.0 with CipherSuites", cfg: &tls.Config{MinVersion: tls.VersionTLS10, CipherSuites: userSuites}, wantMinVersion: tls.VersionTLS10, wantSuites: userSuites},
		{name: "MaxVersion 1.2", cfg: &tls.Config{MaxVersion: tls.VersionTLS12}, wantMinVersion: tls.VersionTLS12, wantSuites: DefaultCipherSuites()},
		{name: "CipherSuites", cfg: &tls.Config{CipherSuites: userSuites}, wantMinVersion: tls.VersionTLS12, wantSuites: userSuites},
		{
			name:           "CurvePreferences and tickets off",
			cfg:            &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP256}, SessionTicketsDisabled: true},
			wantMinVersion: tls.VersionTLS12, wantSuites: DefaultCipherSuites(),
			wantCurves: []tls.CurveID{tls.CurveP256}, wantNoTickets: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before *tls.Config
			if tt.cfg != nil {
				before = tt.cfg.Clone()
			}
			s := &Server{TLSConfig: tt.cfg}
			got, err := s.serveTLSConfig(testCertFile, testKeyFile)
			require.NoError(t, err)

			assert.Equal(t, tt.wantMinVersion, got.MinVersion, "MinVersion")
			assert.Equal(t, tt.wantSuites, got.CipherSuites, "CipherSuites")
			assert.Equal(t, tt.wantCurves, got.CurvePreferences, "CurvePreferences")
			assert.Equal(t, tt.wantNoTickets, got.SessionTicketsDisabled, "SessionTicketsDisabled")
			assert.Equal(t, []string{"h2", "http/1.1"}, got.NextProtos, "NextProtos")
			assert.NotNil(t, got.GetCertificate, "GetCertificate serves the files")

			if tt.cfg == nil {
				assert.Nil(t, s.TLSConfig)
				return
			}
			assert.NotSame(t, tt.cfg, got)
			assert.Equal(t, before.MinVersion, tt.cfg.MinVersion, "caller's MinVersion")
			assert.Equal(t, before.CipherSuites, tt.cfg.CipherSuites, "caller's CipherSuites")
			assert.Equal(t, before.CurvePreferences, tt.cfg.CurvePreferences, "caller's CurvePreferences")
			assert.Equal(t, before.NextProtos, tt.cfg.NextProtos, "caller's NextProtos")
			assert.Nil(t, tt.cfg.GetCertificate, "caller's GetCertificate")
			assert.Empty(t, tt.cfg.Certificates, "caller's Certificates")
		})
	}
	t.Run("MaxVersion below the floor without MinVersion is refused", func(t *testing.T) {
		s := &Server{TLSConfig: &tls.Config{MaxVersion: tls.VersionTLS11}}
		_, err := s.serveTLSConfig(testCertFile, testKeyFile)
		require.ErrorContains(t, err, "MaxVersion TLS 1.1 is below httpsrv's default minimum TLS 1.2; set MinVersion")
	})
	t.Run("DefaultCipherSuites returns a new slice", func(t *testing.T) {
		a := DefaultCipherSuites()
		a[0] = 0
		assert.NotEqual(t, uint16(0), DefaultCipherSuites()[0])
	})
}

// TestDefaultCipherSuites checks that the default TLS 1.2 suites are
// ECDHE with AEAD only, include both suites HTTP/2 requires (RFC 9113
// §9.2.2) and none that crypto/tls counts as insecure.
func TestDefaultCipherSuites(t *testing.T) {
	names := map[uint16]string{}
	for _, cs := range tls.CipherSuites() {
		names[cs.ID] = cs.Name
	}
	for _, cs := range tls.InsecureCipherSuites() {
		names[cs.ID] = "insecure " + cs.Name
	}
	suites := DefaultCipherSuites()
	for _, id := range suites {
		name := names[id]
		t.Run(name, func(t *testing.T) {
			assert.True(t, strings.HasPrefix(name, "TLS_ECDHE_"), "key exchange is not ECDHE")
			assert.True(t, strings.Contains(name, "_GCM_") || strings.Contains(name, "_CHACHA20_POLY1305"), "cipher is not AEAD")
			assert.NotContains(t, name, "CBC")
		})
	}
	assert.Contains(t, suites, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "required by HTTP/2")
	assert.Contains(t, suites, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "required by HTTP/2 with ECDSA certificates")
	assert.NoError(t, checkHTTP2CipherSuites(&tls.Config{CipherSuites: suites}))
}

// TestTLSHandshakePolicy checks the defaults on the wire, against a
// zero-config server: old protocol versions and CBC suites are refused,
// and Go's default client gets TLS 1.3 with the hybrid post-quantum key
// exchange. net/http's server, with the same certificate, is the oracle:
// it accepts the CBC-only client.
func TestTLSHandshakePolicy(t *testing.T) {
	_, pool := testCertificate(t)
	ours := startTLS(t, &Server{ErrorLog: discardLogger()})
	std := startNetHTTP(t, &http.Server{ErrorLog: discardLogger()})
	cbcOnly := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	}
	tests := []struct {
		name      string
		cfg       *tls.Config
		wantErr   bool // from httpsrv
		netHTTPOK bool // whether net/http accepts it
	}{
		{name: "TLS 1.1 client", cfg: &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, wantErr: true},
		{name: "TLS 1.2 CBC-only client", cfg: &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: cbcOnly}, wantErr: true, netHTTPOK: true},
		{name: "TLS 1.2 AES-GCM client", cfg: &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, netHTTPOK: true},
		{name: "TLS 1.2 ChaCha20 client", cfg: &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}, netHTTPOK: true},
		{name: "default client", cfg: &tls.Config{}, netHTTPOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dial := func(addr string) (tls.ConnectionState, error) {
				cfg := tt.cfg.Clone()
				cfg.RootCAs, cfg.ServerName = pool, "localhost"
				d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: testTimeout()}, Config: cfg}
				c, err := d.DialContext(t.Context(), "tcp", addr)
				if err != nil {
					return tls.ConnectionState{}, err
				}
				defer c.Close()
				return c.(*tls.Conn).ConnectionState(), nil
			}
			_, err := dial(std)
			if tt.netHTTPOK {
				assert.NoError(t, err, "net/http")
			} else {
				assert.Error(t, err, "net/http")
			}
			st, err := dial(ours)
			if tt.wantErr {
				require.Error(t, err, "httpsrv accepted the handshake")
				return
			}
			require.NoError(t, err)
			if tt.cfg.MaxVersion == 0 {
				assert.Equal(t, "TLS 1.3", tls.VersionName(st.Version))
				assert.Equal(t, tls.X25519MLKEM768, st.CurveID, "key exchange")
			}
		})
	}
}

// TestExplicitOldTLSVersionsHonoured checks issue 11, item 4: a server
// whose TLSConfig sets MinVersion below TLS 1.2 (and no CipherSuites)
// accepts the TLS 1.0 and 1.1 clients net/http accepts with the same
// config, while TLS 1.2 and 1.3 clients still get an AEAD suite.
func TestExplicitOldTLSVersionsHonoured(t *testing.T) {
	_, pool := testCertificate(t)
	cfg := func() *tls.Config { return &tls.Config{MinVersion: tls.VersionTLS10} }
	ours := startTLS(t, &Server{ErrorLog: discardLogger(), TLSConfig: cfg()})
	std := startNetHTTP(t, &http.Server{ErrorLog: discardLogger(), TLSConfig: cfg()})
	tests := []struct {
		name        string
		client      *tls.Config
		wantVersion uint16
		wantAEAD    bool
	}{
		{name: "TLS 1.0 client", client: &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, wantVersion: tls.VersionTLS10},
		{name: "TLS 1.1 client", client: &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, wantVersion: tls.VersionTLS11},
		{name: "TLS 1.2 client", client: &tls.Config{MaxVersion: tls.VersionTLS12}, wantVersion: tls.VersionTLS12, wantAEAD: true},
		{name: "default client", client: &tls.Config{}, wantVersion: tls.VersionTLS13, wantAEAD: true},
	}
	for _, tt := range tests {
		for _, target := range []struct{ name, addr string }{{"net/http", std}, {"httpsrv", ours}} {
			t.Run(tt.name+"/"+target.name, func(t *testing.T) {
				cfg := tt.client.Clone()
				cfg.RootCAs, cfg.ServerName = pool, "localhost"
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: testTimeout()}, "tcp", target.addr, cfg)
				require.NoError(t, err)
				defer c.Close()
				st := c.ConnectionState()
				assert.Equal(t, tls.VersionName(tt.wantVersion), tls.VersionName(st.Version))
				if tt.wantAEAD {
					assert.NotContains(t, tls.CipherSuiteName(st.CipherSuite), "CBC")
				}
			})
		}
	}
}

// testPKI is a certificate with its key, in parsed and PEM form.
type testPKI struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

var testSerial atomic.Int64

// newTestCA returns a self-signed ECDSA P-256 CA named name.
func newTestCA(t testing.TB, name string) *testPKI {
	t.Helper()
	return issueTestCert(t, nil, func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: name}
		c.IsCA = true
		c.BasicConstraintsValid = true
		c.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	})
}

// issueTestCert returns an ECDSA P-256 certificate signed by ca (self-signed
// if ca is nil), with a serial number unique in the test binary, valid from
// an hour ago for a day, after edit has adjusted the template.
func issueTestCert(t testing.TB, ca *testPKI, edit func(*x509.Certificate)) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(testSerial.Add(1)),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if edit != nil {
		edit(tmpl)
	}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return &testPKI{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
}

// serverCert issues a server certificate for localhost and 127.0.0.1.
func (ca *testPKI) serverCert(t testing.TB) *testPKI {
	t.Helper()
	return issueTestCert(t, ca, func(c *x509.Certificate) {
		c.DNSNames = []string{"localhost"}
		c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
}

// clientCert issues a client certificate named name.
func (ca *testPKI) clientCert(t testing.TB, name string) *testPKI {
	t.Helper()
	return issueTestCert(t, ca, func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: name}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	})
}

// tlsCertificate returns p as a tls.Certificate.
func (p *testPKI) tlsCertificate(t testing.TB) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(p.certPEM, p.keyPEM)
	require.NoError(t, err)
	return c
}

// pool returns a pool trusting p.
func (p *testPKI) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.cert)
	return pool
}

// writeTestFile writes data to dir/name and returns the path.
func writeTestFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

// TestClientCAFile checks client certificate authentication over HTTP/2:
// handshakes without a certificate, or with one from another CA, fail; a
// certificate from the ClientCAFile's CA reaches the handler with its
// verified chain.
func TestClientCAFile(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "client CA")
	other := newTestCA(t, "other CA")
	caFile := writeTestFile(t, dir, "ca.pem", ca.certPEM)

	srv := &Server{
		ClientCAFile: caFile,
		ErrorLog:     discardLogger(),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
				http.Error(w, "no verified chain", http.StatusForbidden)
				return
			}
			io.WriteString(w, r.TLS.VerifiedChains[0][0].Subject.CommonName+" "+r.Proto)
		}),
	}
	addr := startTLS(t, srv)

	tests := []struct {
		name     string
		cert     *testPKI
		wantBody string // empty: the request must fail
	}{
		{name: "no certificate"},
		{name: "certificate from another CA", cert: other.clientCert(t, "mallory")},
		{name: "certificate from the CA", cert: ca.clientCert(t, "alice"), wantBody: "alice HTTP/2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, true)
			if tt.cert != nil {
				c.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{tt.cert.tlsCertificate(t)}
			}
			resp, err := c.Get("https://" + addr + "/")
			if tt.wantBody == "" {
				if err == nil {
					resp.Body.Close()
				}
				require.Error(t, err, "request without a valid client certificate succeeded")
				return
			}
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, tt.wantBody, string(body))
		})
	}
}

// TestClientCAFileErrors checks that ServeTLS fails with a clear error, and
// closes the listener, when ClientCAFile cannot be used.
func TestClientCAFileErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "client CA")
	caFile := writeTestFile(t, dir, "ca.pem", ca.certPEM)
	empty := writeTestFile(t, dir, "empty.pem", []byte("no PEM here\n"))
	tests := []struct {
		name          string
		file          string
		cfg           *tls.Config
		wantIs        error
		wantSubstring string
	}{
		{name: "missing file", file: filepath.Join(dir, "nope.pem"), wantIs: fs.ErrNotExist, wantSubstring: "nope.pem"},
		{name: "no certificates", file: empty, wantSubstring: "empty.pem holds no PEM certificate"},
		{name: "TLSConfig.ClientAuth also set", file: caFile, cfg: &tls.Config{ClientAuth: tls.RequestClientCert}, wantSubstring: "both ClientCAFile and TLSConfig"},
		{name: "TLSConfig.ClientCAs also set", file: caFile, cfg: &tls.Config{ClientCAs: ca.pool()}, wantSubstring: "both ClientCAFile and TLSConfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln := localListener(t)
			err := (&Server{ClientCAFile: tt.file, TLSConfig: tt.cfg}).ServeTLS(ln, testCertFile, testKeyFile)
			require.Error(t, err)
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
			assert.ErrorContains(t, err, tt.wantSubstring)
			_, aerr := ln.Accept()
			assert.ErrorIs(t, aerr, net.ErrClosed, "listener left open")
		})
	}
	t.Run("caller's config is honoured without ClientCAFile", func(t *testing.T) {
		cfg := &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool()}
		got, err := (&Server{TLSConfig: cfg}).serveTLSConfig(testCertFile, testKeyFile)
		require.NoError(t, err)
		assert.Equal(t, tls.RequireAndVerifyClientCert, got.ClientAuth)
		assert.Same(t, cfg.ClientCAs, got.ClientCAs)
	})
	t.Run("ClientCAFile sets the clone only", func(t *testing.T) {
		cfg := &tls.Config{}
		got, err := (&Server{TLSConfig: cfg, ClientCAFile: caFile}).serveTLSConfig(testCertFile, testKeyFile)
		require.NoError(t, err)
		assert.Equal(t, tls.RequireAndVerifyClientCert, got.ClientAuth)
		assert.NotNil(t, got.ClientCAs)
		assert.Equal(t, tls.NoClientCert, cfg.ClientAuth)
		assert.Nil(t, cfg.ClientCAs)
	})
}

// TestServeTLSFilesPrecedence checks that certificate files replace
// TLSConfig.Certificates, as in net/http, and that a GetCertificate of the
// caller's is asked first for clients that send a server name, falling
// back to the files' pair when it returns nil.
func TestServeTLSFilesPrecedence(t *testing.T) {
	ca := newTestCA(t, "precedence CA")
	files, fromCfg, fromGet := ca.serverCert(t), ca.serverCert(t), ca.serverCert(t)
	dir := t.TempDir()
	certFile := writeTestFile(t, dir, "tls.crt", files.certPEM)
	keyFile := writeTestFile(t, dir, "tls.key", files.keyPEM)
	getCert := fromGet.tlsCertificate(t)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{fromCfg.tlsCertificate(t)},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if hello.ServerName == "example.com" {
				return &getCert, nil
			}
			return nil, nil
		},
	}
	addr := serveTestFiles(t, &Server{TLSConfig: cfg, ErrorLog: discardLogger()}, certFile, keyFile)
	tests := []struct {
		serverName string
		want       *testPKI
	}{
		{serverName: "localhost", want: files},
		{serverName: "example.com", want: fromGet},
		{serverName: "", want: files},
	}
	for _, tt := range tests {
		t.Run("SNI "+tt.serverName, func(t *testing.T) {
			assert.Equal(t, tt.want.cert.SerialNumber, servedSerial(t, addr, tt.serverName))
		})
	}
}

// servedSerial makes a fresh TLS handshake with addr, sending serverName,
// and returns the serial number of the leaf certificate presented. It
// does not verify the certificate.
func servedSerial(t testing.TB, addr, serverName string) *big.Int {
	t.Helper()
	serial, err := dialSerial(addr, serverName)
	require.NoError(t, err)
	return serial
}

// dialSerial is servedSerial returning its error, for use off the test
// goroutine.
func dialSerial(addr, serverName string) (*big.Int, error) {
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: testTimeout()},
		Config:    &tls.Config{ServerName: serverName, InsecureSkipVerify: true, NextProtos: []string{"h2"}},
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	certs := c.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("no peer certificate")
	}
	return certs[0].SerialNumber, nil
}

// TestGetConfigForClientKeepsServerSettings checks that the settings
// httpsrv adds to the TLS configuration hold for a configuration the
// caller's GetConfigForClient returns, which crypto/tls uses in place of
// the whole configuration: the client certificate requirement of
// ClientCAFile (issue 7, defect 4: a client without a certificate got
// 200), the TLS 1.2 floor and AEAD-only suites, the ALPN protocols and the
// certificate files, each where the returned configuration leaves it
// unset. A nil result still means the base configuration.
func TestGetConfigForClientKeepsServerSettings(t *testing.T) {
	// tls10server=1 lowers crypto/tls's own floor, so that only httpsrv's
	// default holds TLS 1.0 and 1.1 off.
	t.Setenv("GODEBUG", "tls10server=1")
	dir := t.TempDir()
	serverCA := newTestCA(t, "server CA")
	serverPair := serverCA.serverCert(t)
	certFile := writeTestFile(t, dir, "server.crt", serverPair.certPEM)
	keyFile := writeTestFile(t, dir, "server.key", serverPair.keyPEM)
	clientCA := newTestCA(t, "client CA")
	caFile := writeTestFile(t, dir, "ca.pem", clientCA.certPEM)
	alice := clientCA.clientCert(t, "alice").tlsCertificate(t)
	serverCert := serverPair.tlsCertificate(t)

	withCert := func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{Certificates: []tls.Certificate{serverCert}}, nil
	}
	noCert := func(*tls.ClientHelloInfo) (*tls.Config, error) { return &tls.Config{}, nil }
	nilConfig := func(*tls.ClientHelloInfo) (*tls.Config, error) { return nil, nil }
	oldVersions := func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS10}, nil
	}
	maxTLS11 := func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{Certificates: []tls.Certificate{serverCert}, MaxVersion: tls.VersionTLS11}, nil
	}
	ownClientAuth := func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequestClientCert}, nil
	}

	type client struct {
		certs      []tls.Certificate
		minVersion uint16
		maxVersion uint16
		suites     []uint16
		protos     []string
	}
	h2client := []string{"h2", "http/1.1"}
	tests := []struct {
		name         string
		clientCAFile bool
		getConfig    func(*tls.ClientHelloInfo) (*tls.Config, error)
		files        bool // ServeTLS with certFile and keyFile
		client       client
		want         string // negotiated ALPN protocol, or "error"
	}{
		{name: "mTLS, no client certificate", clientCAFile: true, getConfig: withCert, client: client{protos: h2client}, want: "error"},
		{name: "mTLS, valid client certificate", clientCAFile: true, getConfig: withCert, client: client{certs: []tls.Certificate{alice}, protos: h2client}, want: "h2"},
		{name: "mTLS, nil config, no client certificate", clientCAFile: true, getConfig: nilConfig, files: true, client: client{protos: h2client}, want: "error"},
		{name: "mTLS, nil config, valid client certificate", clientCAFile: true, getConfig: nilConfig, files: true, client: client{certs: []tls.Certificate{alice}, protos: h2client}, want: "h2"},
		{name: "mTLS, returned config sets ClientAuth", clientCAFile: true, getConfig: ownClientAuth, client: client{certs: []tls.Certificate{alice}, protos: h2client}, want: "error"},
		{name: "TLS 1.1 client", getConfig: withCert, client: client{minVersion: tls.VersionTLS10, maxVersion: tls.VersionTLS11}, want: "error"},
		{name: "TLS 1.2 CBC-only client", getConfig: withCert, client: client{maxVersion: tls.VersionTLS12, suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, want: "error"},
		{name: "TLS 1.2 AEAD client", getConfig: withCert, client: client{maxVersion: tls.VersionTLS12, protos: h2client}, want: "h2"},
		{name: "ALPN h2", getConfig: withCert, client: client{protos: h2client}, want: "h2"},
		{name: "ALPN http/1.1", getConfig: withCert, client: client{protos: []string{"http/1.1"}}, want: "http/1.1"},
		{name: "no certificate in returned config, files", getConfig: noCert, files: true, client: client{protos: h2client}, want: "h2"},
		// Issue 11, item 4: the defaults never contradict a field the
		// returned configuration sets.
		{name: "returned MinVersion 1.0, TLS 1.1 client", getConfig: oldVersions, client: client{minVersion: tls.VersionTLS10, maxVersion: tls.VersionTLS11, protos: []string{"http/1.1"}}, want: "http/1.1"},
		{name: "returned MaxVersion 1.1 without MinVersion", getConfig: maxTLS11, client: client{minVersion: tls.VersionTLS10, maxVersion: tls.VersionTLS11}, want: "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &Server{
				TLSConfig: &tls.Config{GetConfigForClient: tt.getConfig},
				ErrorLog:  discardLogger(),
				Handler:   http.NotFoundHandler(),
			}
			if tt.clientCAFile {
				srv.ClientCAFile = caFile
			}
			var addr string
			if tt.files {
				addr = serveTestFiles(t, srv, certFile, keyFile)
			} else {
				addr = serveTestFiles(t, srv, "", "")
			}
			cfg := &tls.Config{
				RootCAs:      serverCA.pool(),
				ServerName:   "localhost",
				Certificates: tt.client.certs,
				MinVersion:   tt.client.minVersion,
				MaxVersion:   tt.client.maxVersion,
				CipherSuites: tt.client.suites,
				NextProtos:   tt.client.protos,
			}
			got := "error"
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: testTimeout()}, "tcp", addr, cfg)
			if err == nil {
				defer c.Close()
				// A TLS 1.3 server reports a rejected client certificate
				// after the client's handshake has finished: read to see it.
				require.NoError(t, c.SetReadDeadline(time.Now().Add(testTimeout())))
				if c.ConnectionState().NegotiatedProtocol == "h2" {
					io.WriteString(c, http2.ClientPreface)
				} else {
					io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
				}
				if _, err := c.Read(make([]byte, 1)); err == nil {
					got = c.ConnectionState().NegotiatedProtocol
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
}
