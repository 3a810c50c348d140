package httpsrv

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	logTicketsReloaded = "reloaded session ticket keys"
	logTicketsFailed   = "session ticket key reload failed, still using the previous keys"
)

// newTicketKey returns a line of a SessionTicketKeyFile: the base64 of 32
// random bytes, as `openssl rand -base64 32` prints.
func newTicketKey(t testing.TB) string {
	t.Helper()
	var key [ticketKeySize]byte
	_, err := rand.Read(key[:])
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(key[:])
}

// decodeTicketKey returns the key a line of newTicketKey holds.
func decodeTicketKey(t testing.TB, line string) [ticketKeySize]byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(line)
	require.NoError(t, err)
	require.Len(t, b, ticketKeySize)
	return [ticketKeySize]byte(b)
}

// writeTicketKeys writes keys, one per line, to dir/name with mode 0600
// and returns the path.
func writeTicketKeys(t testing.TB, dir, name string, keys ...string) string {
	t.Helper()
	return writeTestFile(t, dir, name, []byte(strings.Join(keys, "\n")+"\n"))
}

// onceCache is a client session cache that keeps the first session it is
// given for each key and ignores later ones, so that a test resumes the
// same session, issued by the server it first connected to, however many
// servers it then connects to (each would give the client a new ticket).
type onceCache struct {
	mu       sync.Mutex
	sessions map[string]*tls.ClientSessionState
}

func newOnceCache() *onceCache {
	return &onceCache{sessions: make(map[string]*tls.ClientSessionState)}
}

func (c *onceCache) Get(key string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sessions[key]
	return s, ok
}

func (c *onceCache) Put(key string, s *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.sessions[key]; !ok && s != nil {
		c.sessions[key] = s
	}
}

// ticketClient is a client of the servers of a session ticket test.
type ticketClient struct {
	version uint16
	cert    *tls.Certificate // for ClientCAFile; nil for none
}

// resumed connects to addr with the session of cache, if it has one,
// makes a request and reports whether the handshake resumed the session.
func (c ticketClient) resumed(t testing.TB, addr string, cache tls.ClientSessionCache) bool {
	t.Helper()
	_, pool := testCertificate(t)
	cfg := &tls.Config{
		RootCAs:            pool,
		ServerName:         "localhost", // the cache key, the same for every server
		MinVersion:         c.version,
		MaxVersion:         c.version,
		NextProtos:         []string{"http/1.1"},
		ClientSessionCache: cache,
	}
	if c.cert != nil {
		cfg.Certificates = []tls.Certificate{*c.cert}
	}
	body, resumed, err := mtlsGet(addr, cfg)
	require.NoError(t, err)
	require.Equal(t, "ok", body)
	return resumed
}

// ticketVersions are the TLS versions whose resumption the tests check.
var ticketVersions = []uint16{tls.VersionTLS12, tls.VersionTLS13}

// ticketSetup is a way of serving that a handshake can take: each gives
// crypto/tls a different configuration to pick the ticket keys from.
type ticketSetup struct {
	name string
	mtls bool // ClientCAFile
	// getConfig returns the TLSConfig.GetConfigForClient of one server,
	// or nil for none. files says whether ServeTLS gets the certificate
	// files.
	getConfig func(t testing.TB) func(*tls.ClientHelloInfo) (*tls.Config, error)
	files     bool
}

// ownKeysConfig returns a GetConfigForClient that returns a configuration
// with the test certificate and ticket keys of its own, random, which
// crypto/tls would use in place of the base's.
func ownKeysConfig(t testing.TB) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	cert, _ := testCertificate(t)
	own := &tls.Config{Certificates: []tls.Certificate{cert}}
	own.SetSessionTicketKeys([][ticketKeySize]byte{decodeTicketKey(t, newTicketKey(t))})
	return func(*tls.ClientHelloInfo) (*tls.Config, error) { return own, nil }
}

func nilConfig(testing.TB) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	return func(*tls.ClientHelloInfo) (*tls.Config, error) { return nil, nil }
}

var ticketSetups = []ticketSetup{
	{name: "base config", files: true},
	{name: "GetConfigForClient returns a config with keys of its own", getConfig: ownKeysConfig},
	{name: "GetConfigForClient returns nil", getConfig: nilConfig, files: true},
	{name: "ClientCAFile", mtls: true, files: true},
	{name: "ClientCAFile, GetConfigForClient returns a config with keys of its own", mtls: true, getConfig: ownKeysConfig},
	{name: "ClientCAFile, GetConfigForClient returns nil", mtls: true, getConfig: nilConfig, files: true},
}

// ticketFixture serves instances of one setup.
type ticketFixture struct {
	setup  ticketSetup
	caFile string
	client ticketClient
}

func newTicketFixture(t testing.TB, setup ticketSetup, version uint16) *ticketFixture {
	t.Helper()
	f := &ticketFixture{setup: setup, client: ticketClient{version: version}}
	if setup.mtls {
		ca := newTestCA(t, "ticket client CA")
		f.caFile = writeTestFile(t, t.TempDir(), "ca.pem", ca.certPEM)
		cert := ca.clientCert(t, "alice").tlsCertificate(t)
		f.client.cert = &cert
	}
	return f
}

// start serves a new instance with keyFile ("" for none), after edit, if
// not nil, has changed its settings, and returns it and its address.
// Reloads are the test's ReloadCertificate calls unless edit sets
// CertReloadInterval.
func (f *ticketFixture) start(t testing.TB, keyFile string, edit func(*Server)) (*Server, string) {
	t.Helper()
	srv := &Server{
		SessionTicketKeyFile: keyFile,
		ClientCAFile:         f.caFile,
		CertReloadInterval:   -1,
		ErrorLog:             discardLogger(),
		Handler:              okHandler,
	}
	if edit != nil {
		edit(srv)
	}
	if f.setup.getConfig != nil {
		srv.TLSConfig = &tls.Config{GetConfigForClient: f.setup.getConfig(t)}
	}
	if f.setup.files {
		return srv, startTLS(t, srv)
	}
	return srv, serveTestFiles(t, srv, "", "")
}

// TestSessionTicketKeyFile checks with real handshakes, TLS 1.2 and 1.3,
// on every configuration path a handshake can take, that servers sharing
// a SessionTicketKeyFile resume each other's sessions, and that a
// rotation (a new first key, the old one kept) keeps the sessions issued
// before it resumable while new ones are issued under the new key: a
// third server with only the new key resumes a new session and not an
// old one.
func TestSessionTicketKeyFile(t *testing.T) {
	for _, setup := range ticketSetups {
		for _, version := range ticketVersions {
			t.Run(fmt.Sprintf("%s/%s", setup.name, tls.VersionName(version)), func(t *testing.T) {
				f := newTicketFixture(t, setup, version)
				oldKey, newKey := newTicketKey(t), newTicketKey(t)
				dir := t.TempDir()
				shared := writeTicketKeys(t, dir, "shared.keys", oldKey)
				a, addrA := f.start(t, shared, nil)
				b, addrB := f.start(t, shared, nil)
				_, addrC := f.start(t, writeTicketKeys(t, dir, "new.keys", newKey), nil)

				old := newOnceCache()
				require.False(t, f.client.resumed(t, addrA, old), "first connection resumed")
				assert.True(t, f.client.resumed(t, addrB, old), "session from A not resumed on B")

				// Rotation: the new key first, the old one kept.
				writeTicketKeys(t, dir, "shared.keys", newKey, oldKey)
				require.NoError(t, a.ReloadCertificate())
				require.NoError(t, b.ReloadCertificate())

				assert.True(t, f.client.resumed(t, addrB, old), "session from before the rotation not resumed on B")
				assert.True(t, f.client.resumed(t, addrA, old), "session from before the rotation not resumed on A")
				fresh := newOnceCache()
				require.False(t, f.client.resumed(t, addrA, fresh), "first connection resumed")
				assert.True(t, f.client.resumed(t, addrB, fresh), "session from A not resumed on B after the rotation")
				assert.True(t, f.client.resumed(t, addrC, fresh), "session from after the rotation not resumed with the new key alone: not issued under it")
				assert.False(t, f.client.resumed(t, addrC, old), "session from before the rotation resumed with the new key alone")
			})
		}
	}
}

// TestSessionTicketKeyFileUnset checks Go's default without the field:
// each server has keys of its own, so a session resumes on the server
// that issued it and not on another.
func TestSessionTicketKeyFileUnset(t *testing.T) {
	for _, version := range ticketVersions {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			f := newTicketFixture(t, ticketSetups[0], version)
			_, addrA := f.start(t, "", nil)
			_, addrB := f.start(t, "", nil)
			cache := newOnceCache()
			require.False(t, f.client.resumed(t, addrA, cache), "first connection resumed")
			assert.True(t, f.client.resumed(t, addrA, cache), "session not resumed on the server that issued it")
			assert.False(t, f.client.resumed(t, addrB, cache), "session resumed on another server without shared keys")
		})
	}
}

// TestSessionTicketKeyFileAutomaticCheck checks that a handshake checks
// the key file when a check is due, on the base's GetConfigForClient,
// before crypto/tls picks the keys: after the file is rotated, with no
// ReloadCertificate, the next session A issues is under the new key.
func TestSessionTicketKeyFileAutomaticCheck(t *testing.T) {
	for _, setup := range ticketSetups {
		t.Run(setup.name, func(t *testing.T) {
			f := newTicketFixture(t, setup, tls.VersionTLS13)
			oldKey, newKey := newTicketKey(t), newTicketKey(t)
			dir := t.TempDir()
			shared := writeTicketKeys(t, dir, "shared.keys", oldKey)
			// Every handshake of A checks: the first after the write loads
			// the new keys.
			_, addrA := f.start(t, shared, func(s *Server) { s.CertReloadInterval = time.Nanosecond })
			_, addrC := f.start(t, writeTicketKeys(t, dir, "new.keys", newKey), nil)
			f.client.resumed(t, addrA, nil) // A has loaded the file

			writeTicketKeys(t, dir, "shared.keys", newKey, oldKey)
			cache := newOnceCache()
			require.False(t, f.client.resumed(t, addrA, cache), "first connection resumed")
			assert.True(t, f.client.resumed(t, addrC, cache), "session A issued after the file changed is not under the new key")
		})
	}
}

// TestSessionTicketKeyFileMalformed checks that a malformed key file keeps
// the keys in use: ReloadCertificate returns the error, it is logged, and
// A goes on issuing and accepting tickets that B, which kept the file as
// it was, accepts.
func TestSessionTicketKeyFileMalformed(t *testing.T) {
	key, newKey := newTicketKey(t), newTicketKey(t)
	tests := []struct {
		name    string
		content string
		wantErr string
	}{
		{name: "empty", content: "", wantErr: "holds no key"},
		{name: "comments only", content: "# keys, newest first\n\n", wantErr: "holds no key"},
		{name: "bad base64", content: strings.Repeat("!", 44) + "\n", wantErr: "line 1 is not the base64 of 32 bytes"},
		{name: "wrong length", content: base64.StdEncoding.EncodeToString(make([]byte, 16)) + "\n", wantErr: "line 1: 24 characters, want 44"},
		{name: "all zeros", content: base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n", wantErr: "line 1: the key is all zeros"},
		{name: "half-written", content: newKey + "\n" + key[:20], wantErr: "line 2: 20 characters, want 44"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTicketFixture(t, ticketSetups[0], tls.VersionTLS13)
			dir := t.TempDir()
			fileA := writeTicketKeys(t, dir, "a.keys", key)
			var lines *syncBuffer
			a, addrA := f.start(t, fileA, func(s *Server) { s.ErrorLog, lines = newTestLogger() })
			_, addrB := f.start(t, writeTicketKeys(t, dir, "b.keys", key), nil)
			before := newOnceCache()
			require.False(t, f.client.resumed(t, addrA, before), "first connection resumed")

			writeTestFile(t, dir, "a.keys", []byte(tt.content))
			err := a.ReloadCertificate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Contains(t, err.Error(), fileA)
			assert.NotContains(t, err.Error(), key[:20], "the error quotes a key")
			assert.Equal(t, 1, strings.Count(lines.String(), logTicketsFailed), "log: %s", lines)
			assert.Contains(t, lines.String(), tt.wantErr)

			assert.True(t, f.client.resumed(t, addrA, before), "session from before the bad file not resumed on A")
			after := newOnceCache()
			require.False(t, f.client.resumed(t, addrA, after), "first connection resumed")
			assert.True(t, f.client.resumed(t, addrB, after), "session A issued after the bad file not under the old key")

			require.Error(t, a.ReloadCertificate())
			assert.Equal(t, 1, strings.Count(lines.String(), logTicketsFailed), "the same error logged twice: %s", lines)
		})
	}
}

// TestSessionTicketKeyFileErrors checks the errors ServeTLS returns for a
// SessionTicketKeyFile it cannot serve, and that ReloadCertificate works
// with only a key file to reload.
func TestSessionTicketKeyFileErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeTicketKeys(t, dir, "good.keys", newTicketKey(t))
	bad := writeTestFile(t, dir, "bad.keys", []byte("not a key\n"))
	cert, _ := testCertificate(t)
	tests := []struct {
		name    string
		file    string
		config  *tls.Config
		wantErr string
		wantIs  error
	}{
		{name: "missing file", file: dir + "/missing.keys", wantErr: "httpsrv: checking SessionTicketKeyFile", wantIs: fs.ErrNotExist},
		{name: "malformed file", file: bad, wantErr: "httpsrv: SessionTicketKeyFile " + bad + " line 1: 9 characters, want 44"},
		{name: "tickets disabled", file: good, config: &tls.Config{SessionTicketsDisabled: true}, wantErr: "both SessionTicketKeyFile and TLSConfig.SessionTicketsDisabled"},
		{name: "WrapSession", file: good, config: &tls.Config{WrapSession: func(tls.ConnectionState, *tls.SessionState) ([]byte, error) { return nil, nil }},
			wantErr: "both SessionTicketKeyFile and TLSConfig.WrapSession or UnwrapSession"},
		{name: "UnwrapSession", file: good, config: &tls.Config{UnwrapSession: func([]byte, tls.ConnectionState) (*tls.SessionState, error) { return nil, nil }},
			wantErr: "both SessionTicketKeyFile and TLSConfig.WrapSession or UnwrapSession"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &Server{SessionTicketKeyFile: tt.file, TLSConfig: tt.config, ErrorLog: discardLogger()}
			err := srv.ServeTLS(localListener(t), testCertFile, testKeyFile)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
			assert.ErrorIs(t, srv.ReloadCertificate(), ErrNoCertificateFiles, "a failed ServeTLS left a reloader")
		})
	}

	t.Run("ReloadCertificate with only a key file", func(t *testing.T) {
		srv := &Server{
			SessionTicketKeyFile: good,
			TLSConfig:            &tls.Config{Certificates: []tls.Certificate{cert}},
			ErrorLog:             discardLogger(),
			Handler:              okHandler,
		}
		addr := serveTestFiles(t, srv, "", "")
		ticketClient{version: tls.VersionTLS13}.resumed(t, addr, nil) // serving has started
		assert.NoError(t, srv.ReloadCertificate())
		writeTestFile(t, dir, "good.keys", nil)
		assert.ErrorContains(t, srv.ReloadCertificate(), "holds no key")
	})
}

// TestParseTicketKeys checks the key file format.
func TestParseTicketKeys(t *testing.T) {
	k1, k2 := newTicketKey(t), newTicketKey(t)
	key1, key2 := decodeTicketKey(t, k1), decodeTicketKey(t, k2)
	tests := []struct {
		name    string
		data    string
		want    [][ticketKeySize]byte
		wantErr string
	}{
		{name: "one key", data: k1 + "\n", want: [][ticketKeySize]byte{key1}},
		{name: "no final newline", data: k1, want: [][ticketKeySize]byte{key1}},
		{name: "two keys, order kept", data: k2 + "\n" + k1 + "\n", want: [][ticketKeySize]byte{key2, key1}},
		{name: "CRLF, spaces, blank lines and comments", data: "# rotated daily\r\n\r\n  " + k1 + "  \r\n\t# old:\r\n" + k2 + "\r\n\n", want: [][ticketKeySize]byte{key1, key2}},
		{name: "same key twice", data: k1 + "\n" + k1 + "\n", want: [][ticketKeySize]byte{key1, key1}},
		{name: "empty", data: "", wantErr: "holds no key"},
		{name: "blank", data: "\n \n", wantErr: "holds no key"},
		{name: "comments only", data: "# " + k1 + "\n", wantErr: "holds no key"},
		{name: "unpadded", data: strings.TrimRight(k1, "=") + "\n", wantErr: "line 1: 43 characters, want 44"},
		{name: "URL alphabet", data: "-_" + k1[2:] + "\n", wantErr: "line 1 is not the base64 of 32 bytes"},
		{name: "31 bytes", data: base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n", wantErr: "line 1 is not the base64 of 32 bytes"},
		{name: "comment after the key", data: k1 + " # new\n", wantErr: "line 1: 50 characters, want 44"},
		{name: "hex", data: strings.Repeat("ab", 32) + "\n", wantErr: "line 1: 64 characters, want 44"},
		{name: "truncated second key", data: k2 + "\n" + k1[:30], wantErr: "line 2: 30 characters, want 44"},
		{name: "all zeros", data: k1 + "\n" + base64.StdEncoding.EncodeToString(make([]byte, 32)), wantErr: "line 2: the key is all zeros"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTicketKeys([]byte(tt.data))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.NotContains(t, err.Error(), k1[:20], "the error quotes a key")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestTicketKeyReloader checks the automatic check of a key file with a
// fake clock, through the certReloader machinery: a changed file is
// loaded at the first check after the interval and logged; a malformed one
// keeps the keys and is logged once; the next good one is loaded; a read
// error is retried; a file others can read is served with a warning.
func TestTicketKeyReloader(t *testing.T) {
	const interval = 10 * time.Second
	k1, k2, k3 := newTicketKey(t), newTicketKey(t), newTicketKey(t)
	dir := t.TempDir()
	file := writeTicketKeys(t, dir, "ticket.keys", k1)
	clock, logs := newFakeClock(), new(logRecorder)
	base := new(tls.Config)
	r, err := newTicketKeyReloader(file, base, interval, clock.Now, logs.logf)
	require.NoError(t, err)
	keys := func() []string {
		var s []string
		for _, k := range r.keys.Load().keys {
			s = append(s, base64.StdEncoding.EncodeToString(k[:]))
		}
		return s
	}
	require.Equal(t, []string{k1}, keys())
	assert.Empty(t, logs.String(), "the first load is logged")

	writeTicketKeys(t, dir, "ticket.keys", k2, k1)
	r.checkIfDue()
	assert.Equal(t, []string{k1}, keys(), "loaded before the interval")
	clock.advance(interval)
	r.checkIfDue()
	assert.Equal(t, []string{k2, k1}, keys())
	assert.Equal(t, 1, logs.countAt(slog.LevelInfo, logTicketsReloaded+" from "+file+": 2 keys, new tickets under key "+ticketKeyID(decodeTicketKey(t, k2))), "log: %s", logs)

	writeTestFile(t, dir, "ticket.keys", []byte(k3[:10]))
	for range 3 {
		clock.advance(interval)
		r.checkIfDue()
	}
	assert.Equal(t, []string{k2, k1}, keys(), "a malformed file replaced the keys")
	assert.Equal(t, 1, logs.countAt(slog.LevelError, logTicketsFailed), "log: %s", logs)

	writeTicketKeys(t, dir, "ticket.keys", k3, k2)
	clock.advance(interval)
	r.checkIfDue()
	assert.Equal(t, []string{k3, k2}, keys())

	// A read error is retried after a second, without waiting for the
	// interval, and logged once as a warning.
	var failing = true
	r.readFile = func(name string) ([]byte, error) {
		if failing {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		}
		return os.ReadFile(name)
	}
	writeTicketKeys(t, dir, "ticket.keys", k1)
	clock.advance(interval)
	r.checkIfDue()
	assert.Equal(t, []string{k3, k2}, keys())
	assert.Equal(t, 1, logs.countAt(slog.LevelWarn, logTicketsFailed), "log: %s", logs)
	failing = false
	clock.advance(minReloadRetryDelay)
	r.checkIfDue()
	assert.Equal(t, []string{k1}, keys(), "not retried after a second")

	// Permissions: a file the group or others can read is served, with a
	// warning.
	require.NoError(t, os.Chmod(file, 0o644))
	writeTicketKeys(t, dir, "ticket.keys", k2)
	require.NoError(t, os.Chmod(file, 0o644))
	require.NoError(t, r.reload())
	assert.Equal(t, []string{k2}, keys())
	if assert.Equal(t, 1, logs.countAt(slog.LevelWarn, "can be read by users other than its owner"), "log: %s", logs) {
		assert.Contains(t, logs.String(), "mode -rw-r--r--")
	}
	for _, k := range []string{k1, k2, k3} {
		assert.NotContains(t, logs.String(), k, "a key logged")
	}
}

// TestTicketKeyReloaderConcurrent runs checks, reloads and handshakes'
// configuration lookups at once, for the race detector.
func TestTicketKeyReloaderConcurrent(t *testing.T) {
	dir := t.TempDir()
	keys := []string{newTicketKey(t), newTicketKey(t)}
	file := writeTicketKeys(t, dir, "ticket.keys", keys[0])
	base := new(tls.Config)
	r, err := newTicketKeyReloader(file, base, time.Nanosecond, time.Now, new(logRecorder).logf)
	require.NoError(t, err)
	src := base.Clone()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 50 {
				switch i {
				case 0:
					// Replaced atomically, as the field's doc asks.
					tmp := file + ".tmp"
					assert.NoError(t, os.WriteFile(tmp, []byte(keys[j%2]+"\n"), 0o600))
					assert.NoError(t, os.Rename(tmp, file))
					assert.NoError(t, r.reload())
				case 1:
					r.checkIfDue()
				case 2:
					c := src.Clone()
					r.setTicketKeys(c)
				case 3:
					assert.NotNil(t, withTicketKeys(r, src))
				}
			}
		})
	}
	wg.Wait()
}

// TestSessionTicketKeyFileGetConfigForClientWrapSession checks that a
// configuration GetConfigForClient returns with WrapSession or
// UnwrapSession, which would seal and open tickets without the file's
// keys, fails its handshake with an error saying so, while the other
// handshakes of the server are served.
func TestSessionTicketKeyFileGetConfigForClientWrapSession(t *testing.T) {
	cert, pool := testCertificate(t)
	file := writeTicketKeys(t, t.TempDir(), "ticket.keys", newTicketKey(t))
	wrapped := wrapSessionConfig()
	wrapped.Certificates = []tls.Certificate{cert}
	plain := &tls.Config{Certificates: []tls.Certificate{cert}}
	srv := &Server{
		SessionTicketKeyFile: file,
		TLSConfig: &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if hello.ServerName == "wrapped.localhost" {
				return wrapped, nil
			}
			return plain, nil
		}},
		ErrorLog: discardLogger(),
		Handler:  okHandler,
	}
	addr := serveTestFiles(t, srv, "", "")
	assert.False(t, ticketClient{version: tls.VersionTLS13}.resumed(t, addr, nil), "the other tenant is not served")

	_, _, err := mtlsGet(addr, &tls.Config{RootCAs: pool, ServerName: "wrapped.localhost", InsecureSkipVerify: true})
	assert.Error(t, err, "a config with WrapSession was served with SessionTicketKeyFile")

	r, err := newTicketKeyReloader(file, new(tls.Config), -1, time.Now, new(logRecorder).logf)
	require.NoError(t, err)
	add := configAdditions{tickets: r}
	for _, c := range []*tls.Config{
		{WrapSession: wrapped.WrapSession},
		{UnwrapSession: wrapped.UnwrapSession},
	} {
		_, err := add.forClient(c)
		assert.ErrorContains(t, err, "GetConfigForClient returned a config with WrapSession or UnwrapSession set while SessionTicketKeyFile is set")
	}
}

// TestTicketKeyReloaderRemovedKeys checks, with a fake clock and the
// stat's "racy" flag under the test's control, that a key that leaves the
// file stops encrypting at once and keeps decrypting until a check at
// least ticketKeyGrace later finds the file unmodified for racyStatWindow:
// a rewrite in place caught between two lines, finished later, keeps
// every key decrypting; a key really removed stops decrypting, with a log
// line naming its id, also with automatic checks off (the handshakes'
// checks are then scheduled for it alone).
func TestTicketKeyReloaderRemovedKeys(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
	}{
		{name: "automatic checks", interval: 10 * time.Second},
		{name: "automatic checks off", interval: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k1, k2, k3 := newTicketKey(t), newTicketKey(t), newTicketKey(t)
			dir := t.TempDir()
			file := writeTicketKeys(t, dir, "ticket.keys", k2, k1)
			clock, logs := newFakeClock(), new(logRecorder)
			r, err := newTicketKeyReloader(file, new(tls.Config), tt.interval, clock.Now, logs.logf)
			require.NoError(t, err)
			var racy bool // whether the file was modified within racyStatWindow
			r.mu.Lock()
			r.stat = func(name string) (fileStamp, error) {
				st, err := statFile(name)
				st.racy = racy
				return st, err
			}
			r.mu.Unlock()
			keys := func() (file, all []string) {
				k := r.keys.Load()
				for _, key := range k.keys {
					file = append(file, base64.StdEncoding.EncodeToString(key[:]))
				}
				for _, key := range k.all {
					all = append(all, base64.StdEncoding.EncodeToString(key[:]))
				}
				return file, all
			}
			assertKeys := func(wantFile, wantAll []string, msg string) {
				t.Helper()
				gotFile, gotAll := keys()
				assert.Equal(t, wantFile, gotFile, "file keys: %s", msg)
				assert.Equal(t, wantAll, gotAll, "keys that decrypt: %s", msg)
			}
			load := func() {
				t.Helper()
				if tt.interval > 0 {
					clock.advance(tt.interval)
					r.checkIfDue()
					return
				}
				require.NoError(t, r.reload())
			}

			// `{ echo "$k3"; cat old; } > ticket.keys`, caught after
			// its first line.
			racy = true
			writeTicketKeys(t, dir, "ticket.keys", k3)
			load()
			assertKeys([]string{k3}, []string{k3, k2, k1}, "caught between two lines")
			assert.Equal(t, 1, logs.countAt(slog.LevelInfo, "2 keys no longer in the file still decrypt"), "log: %s", logs)

			// Checks before the grace has passed, or while the file is
			// still being modified, keep the keys.
			clock.advance(ticketKeyGrace - time.Millisecond)
			r.checkIfDue()
			assertKeys([]string{k3}, []string{k3, k2, k1}, "before the grace passed")
			clock.advance(time.Millisecond)
			r.checkIfDue()
			assertKeys([]string{k3}, []string{k3, k2, k1}, "the file modified within racyStatWindow")

			// The writer finishes: every key is in the file again.
			writeTicketKeys(t, dir, "ticket.keys", k3, k2, k1)
			clock.advance(minReloadRetryDelay)
			r.checkIfDue()
			assertKeys([]string{k3, k2, k1}, []string{k3, k2, k1}, "the finished file")
			racy = false
			clock.advance(ticketKeyGrace)
			r.checkIfDue()
			assertKeys([]string{k3, k2, k1}, []string{k3, k2, k1}, "the finished file, later")
			assert.Zero(t, logs.count("no longer decrypt:"), "log: %s", logs)

			// k1 really removed: it decrypts until a check ticketKeyGrace
			// later, made by a handshake whatever the interval.
			racy = true
			writeTicketKeys(t, dir, "ticket.keys", k3, k2)
			load()
			assertKeys([]string{k3, k2}, []string{k3, k2, k1}, "k1 just removed")
			racy = false
			clock.advance(ticketKeyGrace - time.Millisecond)
			r.checkIfDue()
			require.NoError(t, r.reload())
			assertKeys([]string{k3, k2}, []string{k3, k2, k1}, "before the grace passed")
			clock.advance(time.Millisecond)
			r.checkIfDue()
			assertKeys([]string{k3, k2}, []string{k3, k2}, "after the grace, the file unmodified")
			assert.Equal(t, 1, logs.countAt(slog.LevelInfo, "session ticket keys removed from "+file+" no longer decrypt: key "+ticketKeyID(decodeTicketKey(t, k1))),
				"log: %s", logs)
			if tt.interval <= 0 {
				assert.EqualValues(t, int64(neverDue), r.due.Load(), "checks scheduled with nothing left to expire and automatic checks off")
			}
			for _, k := range []string{k1, k2, k3} {
				assert.NotContains(t, logs.String(), k, "a key logged")
			}
		})
	}
}

// TestTicketKeyReloaderModeWarning checks that a key file that others can
// read is warned about once per change of its mode, whether the content
// changed or not, by automatic checks and ReloadCertificate alike.
func TestTicketKeyReloaderModeWarning(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes do not say who can read a file on Windows")
	}
	const interval = 10 * time.Second
	const warning = "can be read by users other than its owner"
	dir := t.TempDir()
	file := writeTicketKeys(t, dir, "ticket.keys", newTicketKey(t))
	clock, logs := newFakeClock(), new(logRecorder)
	r, err := newTicketKeyReloader(file, new(tls.Config), interval, clock.Now, logs.logf)
	require.NoError(t, err)
	check := func() {
		clock.advance(interval)
		r.checkIfDue()
	}
	steps := []struct {
		mode os.FileMode
		want int // warnings so far
	}{
		{0o644, 1},
		{0o644, 1},
		{0o640, 2},
		{0o600, 2},
		{0o400, 2},
		{0o604, 3},
	}
	for _, st := range steps {
		require.NoError(t, os.Chmod(file, st.mode))
		check()
		check()
		require.NoError(t, r.reload())
		assert.Equal(t, st.want, logs.countAt(slog.LevelWarn, warning), "after chmod %v; log: %s", st.mode, logs)
	}
	assert.Contains(t, logs.String(), "mode -rw----r--")
}
