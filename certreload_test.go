package httpsrv

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is the time source of a certReloader under test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Now()}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// logRecorder collects the lines a certReloader logs, with their levels.
type logRecorder struct {
	mu     sync.Mutex
	lines  []string
	levels []slog.Level
}

func (r *logRecorder) logf(level slog.Level, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
	r.levels = append(r.levels, level)
}

// count returns the number of lines containing substr.
func (r *logRecorder) count(substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// countAt returns the number of lines at level containing substr.
func (r *logRecorder) countAt(level slog.Level, substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for i, l := range r.lines {
		if r.levels[i] == level && strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func (r *logRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for i, l := range r.lines {
		fmt.Fprintf(&b, "%v %s\n", r.levels[i], l)
	}
	return b.String()
}

const (
	logReloaded = "reloaded certificate"
	logFailed   = "certificate reload failed"
)

// reloaderFixture is a certReloader over files in a temporary directory,
// with a fake clock and a log recorder.
type reloaderFixture struct {
	ca                *testPKI
	first             *testPKI
	certFile, keyFile string
	clock             *fakeClock
	logs              *logRecorder
	r                 *certReloader
}

func newReloaderFixture(t testing.TB, interval time.Duration) *reloaderFixture {
	t.Helper()
	ca := newTestCA(t, "reloader CA")
	first := ca.serverCert(t)
	dir := t.TempDir()
	f := &reloaderFixture{
		ca:       ca,
		first:    first,
		certFile: writeTestFile(t, dir, "tls.crt", first.certPEM),
		keyFile:  writeTestFile(t, dir, "tls.key", first.keyPEM),
		clock:    newFakeClock(),
		logs:     new(logRecorder),
	}
	r, err := newCertReloader(f.certFile, f.keyFile, interval, f.clock.Now, f.logs.logf)
	require.NoError(t, err)
	f.r = r
	return f
}

// served returns the serial number of the certificate a handshake now
// gets.
func (f *reloaderFixture) served(t testing.TB) *big.Int {
	t.Helper()
	cert, err := f.r.GetCertificate(&tls.ClientHelloInfo{ServerName: "localhost"})
	require.NoError(t, err)
	require.NotNil(t, cert)
	require.NotNil(t, cert.Leaf, "Leaf not set")
	return cert.Leaf.SerialNumber
}

// write replaces the pair's files in place.
func (f *reloaderFixture) write(t testing.TB, certPEM, keyPEM []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(f.certFile, certPEM, 0o600))
	require.NoError(t, os.WriteFile(f.keyFile, keyPEM, 0o600))
}

// TestCertReloaderChanges checks what a check does with each kind of
// change to the files: a renewed pair is served from the first handshake
// once the interval has passed and not before; a broken pair keeps the
// current one and is logged once; the next good pair is served again.
func TestCertReloaderChanges(t *testing.T) {
	const interval = 10 * time.Second
	tests := []struct {
		name    string
		change  func(t testing.TB, f *reloaderFixture) *testPKI // returns the pair to serve; nil: keep the first
		wantLog string
	}{
		{
			name: "renewed pair",
			change: func(t testing.TB, f *reloaderFixture) *testPKI {
				p := f.ca.serverCert(t)
				f.write(t, p.certPEM, p.keyPEM)
				return p
			},
			wantLog: logReloaded,
		},
		{
			name: "same content written again",
			change: func(t testing.TB, f *reloaderFixture) *testPKI {
				f.write(t, f.first.certPEM, f.first.keyPEM)
				later := time.Now().Add(time.Minute)
				require.NoError(t, os.Chtimes(f.certFile, later, later))
				return nil
			},
		},
		{
			name: "mismatched key",
			change: func(t testing.TB, f *reloaderFixture) *testPKI {
				p := f.ca.serverCert(t)
				f.write(t, p.certPEM, f.first.keyPEM)
				return nil
			},
			wantLog: "private key does not match public key",
		},
		{
			name: "garbage",
			change: func(t testing.TB, f *reloaderFixture) *testPKI {
				f.write(t, []byte("garbage\n"), []byte("more garbage\n"))
				return nil
			},
			wantLog: "failed to find any PEM data",
		},
		{
			name: "half-written certificate",
			change: func(t testing.TB, f *reloaderFixture) *testPKI {
				p := f.ca.serverCert(t)
				f.write(t, p.certPEM[:len(p.certPEM)/2], p.keyPEM)
				return nil
			},
			wantLog: logFailed,
		},
		{
			name: "expired renewal",
			change: func(t testing.TB, f *reloaderFixture) *testPKI {
				p := issueTestCert(t, f.ca, func(c *x509.Certificate) {
					c.NotBefore = time.Now().Add(-48 * time.Hour)
					c.NotAfter = time.Now().Add(-24 * time.Hour)
				})
				f.write(t, p.certPEM, p.keyPEM)
				return nil
			},
			wantLog: "expired at",
		},
		{
			name: "certificate file removed",
			change: func(t testing.TB, f *reloaderFixture) *testPKI {
				require.NoError(t, os.Remove(f.certFile))
				return nil
			},
			wantLog: "no such file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newReloaderFixture(t, interval)
			first := f.first.cert.SerialNumber
			require.Equal(t, first, f.served(t))

			want := tt.change(t, f)
			f.clock.advance(interval - time.Nanosecond)
			assert.Equal(t, first, f.served(t), "changed before the interval passed")

			f.clock.advance(time.Nanosecond)
			if want != nil {
				assert.Equal(t, want.cert.SerialNumber, f.served(t), "change not served once the interval passed")
			} else {
				assert.Equal(t, first, f.served(t), "current pair replaced")
			}
			if tt.wantLog == "" {
				assert.Empty(t, f.logs.String())
				return
			}
			assert.Equal(t, 1, f.logs.count(tt.wantLog), "logs:\n%s", f.logs)
			if want != nil {
				return
			}

			// A broken pair is logged once, not at every check.
			f.clock.advance(interval)
			f.served(t)
			assert.Equal(t, 1, f.logs.count(logFailed), "logs:\n%s", f.logs)

			// The write that fixes it is picked up.
			good := f.ca.serverCert(t)
			f.write(t, good.certPEM, good.keyPEM)
			f.clock.advance(interval)
			assert.Equal(t, good.cert.SerialNumber, f.served(t), "fixed pair not served; logs:\n%s", f.logs)
		})
	}
}

// kubeSecretDir lays out files as Kubernetes mounts a Secret: tls.crt and
// tls.key are links into ..data, itself a link to a timestamped directory
// that each update replaces atomically with a rename.
type kubeSecretDir struct {
	dir string
	n   int
}

func newKubeSecretDir(t testing.TB) *kubeSecretDir {
	t.Helper()
	k := &kubeSecretDir{dir: t.TempDir()}
	for _, name := range []string{"tls.crt", "tls.key"} {
		require.NoError(t, os.Symlink(filepath.Join("..data", name), filepath.Join(k.dir, name)))
	}
	return k
}

func (k *kubeSecretDir) certFile() string { return filepath.Join(k.dir, "tls.crt") }
func (k *kubeSecretDir) keyFile() string  { return filepath.Join(k.dir, "tls.key") }

// swap writes the pair to a new timestamped directory, points ..data at
// it with an atomic rename, and removes the previous directory, as the
// kubelet does.
func (k *kubeSecretDir) swap(t testing.TB, certPEM, keyPEM []byte) {
	t.Helper()
	k.n++
	ts := fmt.Sprintf("..2026_11_24_06_%02d_%02d.%09d", k.n/60, k.n%60, k.n)
	require.NoError(t, os.Mkdir(filepath.Join(k.dir, ts), 0o700))
	writeTestFile(t, filepath.Join(k.dir, ts), "tls.crt", certPEM)
	writeTestFile(t, filepath.Join(k.dir, ts), "tls.key", keyPEM)
	data := filepath.Join(k.dir, "..data")
	old, _ := os.Readlink(data)
	tmp := filepath.Join(k.dir, "..data_tmp")
	require.NoError(t, os.Symlink(ts, tmp))
	require.NoError(t, os.Rename(tmp, data))
	if old != "" {
		require.NoError(t, os.RemoveAll(filepath.Join(k.dir, old)))
	}
}

// replaceInPlace renames new files over the pair in the directory ..data
// points at, the certificate first, as a tool that writes the files
// itself would.
func (k *kubeSecretDir) replaceInPlace(t testing.TB, certPEM, keyPEM []byte) {
	t.Helper()
	target, err := filepath.EvalSymlinks(filepath.Join(k.dir, "..data"))
	require.NoError(t, err)
	for name, data := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		tmp := writeTestFile(t, target, name+".tmp", data)
		require.NoError(t, os.Rename(tmp, filepath.Join(target, name)))
	}
}

// TestCertReloaderKubernetesSwap checks that swapping the ..data link of
// a Kubernetes secret volume is detected, including when the new files
// have the same size and modification time as the old ones.
func TestCertReloaderKubernetesSwap(t *testing.T) {
	const interval = time.Second
	ca := newTestCA(t, "kube CA")
	first, second := ca.serverCert(t), ca.serverCert(t)
	k := newKubeSecretDir(t)
	k.swap(t, first.certPEM, first.keyPEM)
	clock, logs := newFakeClock(), new(logRecorder)
	r, err := newCertReloader(k.certFile(), k.keyFile(), interval, clock.Now, logs.logf)
	require.NoError(t, err)
	served := func() *big.Int {
		cert, err := r.GetCertificate(&tls.ClientHelloInfo{})
		require.NoError(t, err)
		return cert.Leaf.SerialNumber
	}

	k.swap(t, second.certPEM, second.keyPEM)
	// Give the new files the old ones' times: only the link target tells
	// them apart (their sizes may match too).
	stamp := time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)
	for _, name := range []string{k.certFile(), k.keyFile()} {
		require.NoError(t, os.Chtimes(name, stamp, stamp))
	}
	assert.Equal(t, first.cert.SerialNumber, served(), "before the interval")
	clock.advance(interval)
	assert.Equal(t, second.cert.SerialNumber, served(), "swap not detected; logs:\n%s", logs)
	assert.Equal(t, 1, logs.count(logReloaded))

	third := ca.serverCert(t)
	k.replaceInPlace(t, third.certPEM, third.keyPEM)
	clock.advance(interval)
	assert.Equal(t, third.cert.SerialNumber, served(), "in-place rename not detected; logs:\n%s", logs)
}

// TestCertReloaderStatOnly checks that a check whose stat finds both
// files unchanged, and old enough not to be racy, does not read them, and
// that the change time in the stamp catches what size and modification
// time miss: a same-size rewrite that sets the modification time back,
// and a chmod.
func TestCertReloaderStatOnly(t *testing.T) {
	const interval = time.Second
	tests := []struct {
		name   string
		change func(t testing.TB, certFile string, p *testPKI, old time.Time)
		reads  bool // whether the check after the change reads the files
	}{
		{
			name:   "unchanged",
			change: func(testing.TB, string, *testPKI, time.Time) {},
		},
		{
			name: "same-size rewrite, modification time set back",
			change: func(t testing.TB, certFile string, p *testPKI, old time.Time) {
				require.NoError(t, os.WriteFile(certFile, []byte(strings.Repeat("x", len(p.certPEM))), 0o600))
				require.NoError(t, os.Chtimes(certFile, old, old))
			},
			reads: true,
		},
		{
			name: "chmod",
			change: func(t testing.TB, certFile string, _ *testPKI, _ time.Time) {
				require.NoError(t, os.Chmod(certFile, 0o640))
			},
			reads: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := newTestCA(t, "stat CA")
			p := ca.serverCert(t)
			dir := t.TempDir()
			certFile := writeTestFile(t, dir, "tls.crt", p.certPEM)
			keyFile := writeTestFile(t, dir, "tls.key", p.keyPEM)
			old := time.Now().Add(-time.Hour)
			for _, name := range []string{certFile, keyFile} {
				require.NoError(t, os.Chtimes(name, old, old))
			}
			clock, logs := newFakeClock(), new(logRecorder)
			r, err := newCertReloader(certFile, keyFile, interval, clock.Now, logs.logf)
			require.NoError(t, err)
			var reads atomic.Int64
			r.readFile = func(name string) ([]byte, error) {
				reads.Add(1)
				return os.ReadFile(name)
			}
			if tt.reads {
				st, err := statFile(certFile)
				require.NoError(t, err)
				if st.ctime.IsZero() {
					t.Skip("no change time on this system")
				}
			}

			tt.change(t, certFile, p, old)
			clock.advance(interval)
			cert, err := r.GetCertificate(&tls.ClientHelloInfo{})
			require.NoError(t, err)
			assert.Equal(t, p.cert.SerialNumber, cert.Leaf.SerialNumber)
			if !tt.reads {
				assert.Zero(t, reads.Load(), "the check read unchanged files")
				assert.Empty(t, logs.String())
				return
			}
			assert.Positive(t, reads.Load(), "the check missed the change")
		})
	}
}

// TestCertReloaderNoAutomaticCheck checks that a negative interval turns
// the automatic check off, and that reload still works.
func TestCertReloaderNoAutomaticCheck(t *testing.T) {
	f := newReloaderFixture(t, -1)
	next := f.ca.serverCert(t)
	f.write(t, next.certPEM, next.keyPEM)
	f.clock.advance(24 * time.Hour)
	assert.Equal(t, f.first.cert.SerialNumber, f.served(t))
	require.NoError(t, f.r.reload())
	assert.Equal(t, next.cert.SerialNumber, f.served(t))

	// With nothing to retry, handshakes never touch the files.
	var stats atomic.Int64
	f.r.mu.Lock()
	f.r.stat = func(name string) (fileStamp, error) {
		stats.Add(1)
		return statFile(name)
	}
	f.r.mu.Unlock()
	for range 3 {
		f.clock.advance(time.Hour)
		f.served(t)
	}
	assert.Zero(t, stats.Load(), "files checked with CertReloadInterval < 0")
}

// TestCertReloaderNoAutomaticCheckRetry checks that with a negative
// interval a reload that failed for an OS error is retried with back-off
// by handshakes until it succeeds, and that the checks stop then.
func TestCertReloaderNoAutomaticCheckRetry(t *testing.T) {
	f := newReloaderFixture(t, -1)
	var failing atomic.Bool
	failing.Store(true)
	failed := failFiles(f.r, "read", f.keyFile, syscall.EACCES, &failing)
	next := f.ca.serverCert(t)
	f.write(t, next.certPEM, next.keyPEM)
	require.Error(t, f.r.reload())
	require.EqualValues(t, 1, failed.Load())
	for i, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		f.clock.advance(d - time.Nanosecond)
		f.served(t)
		require.EqualValues(t, i+1, failed.Load(), "retry %d earlier than %v", i+1, d)
		f.clock.advance(time.Nanosecond)
		assert.Equal(t, f.first.cert.SerialNumber, f.served(t))
		require.EqualValues(t, i+2, failed.Load(), "retry %d not made after %v; logs:\n%s", i+1, d, f.logs)
	}
	failing.Store(false)
	f.clock.advance(8 * time.Second)
	assert.Equal(t, next.cert.SerialNumber, f.served(t), "not retried; logs:\n%s", f.logs)
	f.r.mu.Lock()
	due := f.r.due.Load()
	f.r.mu.Unlock()
	assert.EqualValues(t, int64(neverDue), due, "checks go on after the retry succeeded")
}

// TestCertReloaderOSErrorEscalated checks that an OS error is logged once
// at WARN when it occurs and once at ERROR when it has persisted for
// reloadErrorAfter, and not again while it lasts.
func TestCertReloaderOSErrorEscalated(t *testing.T) {
	const interval = 10 * time.Second
	f := newReloaderFixture(t, interval)
	var failing atomic.Bool
	failing.Store(true)
	failFiles(f.r, "read", f.keyFile, syscall.EACCES, &failing)
	next := f.ca.serverCert(t)
	f.write(t, next.certPEM, next.keyPEM)

	f.clock.advance(interval)
	f.served(t)
	elapsed := time.Duration(0)
	for elapsed < reloadErrorAfter-interval {
		f.clock.advance(interval)
		elapsed += interval
		f.served(t)
	}
	assert.Equal(t, 1, f.logs.countAt(slog.LevelWarn, logFailed), "logs:\n%s", f.logs)
	assert.Zero(t, f.logs.countAt(slog.LevelError, logFailed), "ERROR before %v; logs:\n%s", reloadErrorAfter, f.logs)
	for range 10 {
		f.clock.advance(interval)
		f.served(t)
	}
	assert.Equal(t, 1, f.logs.countAt(slog.LevelWarn, logFailed), "logs:\n%s", f.logs)
	assert.Equal(t, 1, f.logs.countAt(slog.LevelError, "failing for"), "logs:\n%s", f.logs)

	// A content error after it is logged at ERROR at once.
	failing.Store(false)
	f.write(t, []byte("garbage\n"), next.keyPEM)
	f.clock.advance(interval)
	f.served(t)
	assert.Equal(t, 2, f.logs.countAt(slog.LevelError, logFailed), "logs:\n%s", f.logs)
}

// TestParseCABundle checks which ClientCAFile contents are refused: any
// that a half-written file can show, and bundles without a certificate.
func TestParseCABundle(t *testing.T) {
	ca1, ca2 := newTestCA(t, "CA 1"), newTestCA(t, "CA 2")
	both := append(append([]byte{}, ca1.certPEM...), ca2.certPEM...)
	keyPEM := []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")
	badDER := []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	cut := func(b []byte, n int) []byte { return append([]byte{}, b[:n]...) }
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name    string
		data    []byte
		want    []*testPKI // trusted; nil with wantErr
		wantErr string
	}{
		{name: "two CAs", data: both, want: []*testPKI{ca1, ca2}},
		{name: "comments and blank lines", data: cat([]byte("# CA 1\n"), ca1.certPEM, []byte("\n# CA 2\n"), ca2.certPEM, []byte("\n\n")), want: []*testPKI{ca1, ca2}},
		{name: "other block types skipped", data: cat(keyPEM, ca1.certPEM), want: []*testPKI{ca1}},
		{name: "second cut in its base64", data: cut(both, len(ca1.certPEM)+len(ca2.certPEM)/2), wantErr: "not a complete PEM block"},
		{name: "second cut in its BEGIN line", data: cut(both, len(ca1.certPEM)+5), wantErr: "not a complete PEM block"},
		{name: "second without its END line", data: cut(both, len(both)-len("-----END CERTIFICATE-----\n")), wantErr: "not a complete PEM block"},
		{name: "broken block before a good one", data: cat(cut(ca2.certPEM, len(ca2.certPEM)/2), ca1.certPEM), wantErr: "PEM block"}, // how depends on encoding/pem's release
		{name: "certificate that does not parse", data: cat(ca1.certPEM, badDER), wantErr: "does not parse"},
		{name: "only a cut block", data: cut(ca1.certPEM, len(ca1.certPEM)/2), wantErr: "not a complete PEM block"},
		{name: "trailing text", data: cat(both, []byte("end of bundle\n")), wantErr: "not a complete PEM block"},
		{name: "empty", data: nil, wantErr: "holds no PEM certificate"},
		{name: "no PEM", data: []byte("no PEM here\n"), wantErr: "holds no PEM certificate"},
		{name: "only a key", data: keyPEM, wantErr: "holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := parseCABundle(tt.data)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				assert.Nil(t, pool)
				return
			}
			require.NoError(t, err)
			for _, ca := range tt.want {
				assert.True(t, anyChainRootedIn([][]*x509.Certificate{{ca.cert}}, pool, time.Now()), "%s not trusted", ca.cert.Subject)
			}
		})
	}
}

// TestClientCAFileTruncatedAtStartup checks that ServeTLS refuses a
// ClientCAFile caught half-written, with an error that says so, and
// registers nothing to reload.
func TestClientCAFileTruncatedAtStartup(t *testing.T) {
	ca1, ca2 := newTestCA(t, "CA 1"), newTestCA(t, "CA 2")
	half := append(append([]byte{}, ca1.certPEM...), ca2.certPEM[:len(ca2.certPEM)/2]...)
	srv := &Server{ClientCAFile: writeTestFile(t, t.TempDir(), "ca.pem", half), ErrorLog: discardLogger()}
	err := srv.ServeTLS(localListener(t), testCertFile, testKeyFile)
	assert.ErrorContains(t, err, "ca.pem ends in data that is not a complete PEM block")
	assert.Empty(t, srv.certReloaders())
}

// TestChecksResumedClientCAs checks which Go releases are taken to check
// a resumed session's client chain against ClientCAs themselves.
func TestChecksResumedClientCAs(t *testing.T) {
	for v, want := range map[string]bool{
		"go1.25.0": false, "go1.25.5": false, "go1.25.6": true, "go1.25.10": true,
		"go1.26rc1": false, "go1.26rc2": false, "go1.26.0": true, "go1.26.8": true,
		"go1.27rc1": true, "go1.27.3": true, "go1.30": true,
		"devel go1.27-abcdef": false, "": false,
	} {
		assert.Equal(t, want, checksResumedClientCAs(v), v)
	}
}

// TestCertReloaderConcurrent runs handshakes and forced reloads together,
// for the race detector: every handshake gets a complete pair.
func TestCertReloaderConcurrent(t *testing.T) {
	f := newReloaderFixture(t, time.Nanosecond)
	pairs := []*testPKI{f.first, f.ca.serverCert(t), f.ca.serverCert(t)}
	valid := map[string]bool{}
	for _, p := range pairs {
		valid[p.cert.SerialNumber.String()] = true
	}
	const workers, rounds = 4, 200
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				f.clock.advance(time.Nanosecond)
				cert, err := f.r.GetCertificate(&tls.ClientHelloInfo{})
				if err == nil && (cert == nil || cert.Leaf == nil || !valid[cert.Leaf.SerialNumber.String()]) {
					err = fmt.Errorf("unexpected certificate %v", cert)
				}
				if err != nil {
					errc <- err
					return
				}
			}
		})
	}
	for i := range rounds / 10 {
		p := pairs[i%len(pairs)]
		f.write(t, p.certPEM, p.keyPEM)
		_ = f.r.reload() // may catch a half-written pair; handshakes must not care
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

func TestCertReloadInterval(t *testing.T) {
	tests := []struct {
		field, want time.Duration
	}{
		{0, DefaultCertReloadInterval},
		{time.Second, time.Second},
		{-1, -1},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, (&Server{CertReloadInterval: tt.field}).certReloadInterval(), "CertReloadInterval %v", tt.field)
	}
}

// TestReloadCertificate checks the on-demand reload through a server:
// with the automatic check off, a renewed pair is served after
// ReloadCertificate and not before, and a broken pair makes it return an
// error and keep the current one.
func TestReloadCertificate(t *testing.T) {
	ca := newTestCA(t, "reload CA")
	first, second := ca.serverCert(t), ca.serverCert(t)
	dir := t.TempDir()
	certFile := writeTestFile(t, dir, "tls.crt", first.certPEM)
	keyFile := writeTestFile(t, dir, "tls.key", first.keyPEM)
	logger, logs := newTestLogger()
	srv := &Server{CertReloadInterval: -1, ErrorLog: logger}
	addr := serveTestFiles(t, srv, certFile, keyFile)
	require.Equal(t, first.cert.SerialNumber, servedSerial(t, addr, "localhost"))

	writeTestFile(t, dir, "tls.crt", second.certPEM)
	writeTestFile(t, dir, "tls.key", second.keyPEM)
	assert.Equal(t, first.cert.SerialNumber, servedSerial(t, addr, "localhost"), "reloaded without being asked")
	require.NoError(t, srv.ReloadCertificate())
	assert.Equal(t, second.cert.SerialNumber, servedSerial(t, addr, "localhost"))
	assert.Contains(t, logs.String(), logReloaded)

	writeTestFile(t, dir, "tls.key", first.keyPEM)
	err := srv.ReloadCertificate()
	assert.ErrorContains(t, err, "private key does not match public key")
	assert.ErrorContains(t, err, "tls.key")
	assert.Equal(t, second.cert.SerialNumber, servedSerial(t, addr, "localhost"), "broken pair served")
	assert.Contains(t, logs.String(), logFailed)
}

// TestReloadCertificateErrors checks ReloadCertificate on servers that do
// not serve certificate files.
func TestReloadCertificateErrors(t *testing.T) {
	t.Run("never served", func(t *testing.T) {
		assert.ErrorIs(t, (&Server{}).ReloadCertificate(), ErrNoCertificateFiles)
	})
	t.Run("TLSConfig.Certificates", func(t *testing.T) {
		cert, _ := testCertificate(t)
		srv := &Server{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ErrorLog: discardLogger()}
		addr := serveTestFiles(t, srv, "", "")
		dialTLS(t, addr) // serving has started
		assert.ErrorIs(t, srv.ReloadCertificate(), ErrNoCertificateFiles)
	})
	t.Run("after Close", func(t *testing.T) {
		srv := &Server{ErrorLog: discardLogger()}
		addr := startTLS(t, srv)
		dialTLS(t, addr)
		require.NoError(t, srv.ReloadCertificate())
		require.NoError(t, srv.Close())
		assert.ErrorIs(t, srv.ReloadCertificate(), http.ErrServerClosed)
	})
}

// signalLog is a log destination that counts failed reloads and wakes
// waiters on each line.
type signalLog struct {
	mu     sync.Mutex
	failed int
	change chan struct{} // closed and replaced on every write
}

func newSignalLog() *signalLog { return &signalLog{change: make(chan struct{})} }

func (l *signalLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if strings.Contains(string(p), logFailed) {
		l.failed++
	}
	close(l.change)
	l.change = make(chan struct{})
	return len(p), nil
}

func (l *signalLog) failures() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// newReloadClient returns a client trusting ca, speaking HTTP/2 if h2 is
// set and HTTP/1.1 otherwise.
func newReloadClient(t testing.TB, ca *testPKI, h2 bool) *http.Client {
	t.Helper()
	c := newClient(t, h2)
	tr := c.Transport.(*http.Transport)
	tr.TLSClientConfig.RootCAs = ca.pool()
	return c
}

// TestCertReloadUnderLoad renews the certificate of a server 100 times,
// with Kubernetes-style link swaps, in-place renames and some broken
// pairs, while clients send a steady stream of requests over new and
// reused connections. No request may fail, and a fresh handshake must see
// each valid pair within the check interval plus some slack.
func TestCertReloadUnderLoad(t *testing.T) {
	requireInterop(t) // a load test: it needs the machine to itself

	const (
		renewals     = 100
		invalidEvery = 10 // every tenth renewal writes a broken pair
		interval     = 20 * time.Millisecond
		workers      = 4
		reconnect    = 10 // a client drops its connections after this many requests
	)
	// A check runs in the first handshake after the interval. Most new
	// pairs must be seen within the interval plus slack; a few may take
	// longer when a loaded CI machine stalls the process, but each must be
	// seen within testTimeout.
	slack := testTimeout() / 20 // 500ms, scaled with HTTPSRV_TEST_SCALE

	ca := newTestCA(t, "load CA")
	k := newKubeSecretDir(t)
	current := ca.serverCert(t)
	k.swap(t, current.certPEM, current.keyPEM)
	logs := newSignalLog()
	srv := &Server{
		CertReloadInterval: interval,
		ErrorLog:           log.New(logs, "", 0),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}),
	}
	addr := serveTestFiles(t, srv, k.certFile(), k.keyFile())
	url := "https://" + addr + "/"

	// HTTP/1.1 joins the load once the engine serves it.
	clients := []*http.Client{}
	for range workers {
		clients = append(clients, newReloadClient(t, ca, true))
	}
	h1 := newReloadClient(t, ca, false)
	h1.Transport.(*http.Transport).DisableKeepAlives = true
	if resp, err := h1.Get(url); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			for range workers {
				clients = append(clients, newReloadClient(t, ca, false))
			}
		}
	}
	t.Logf("load: %d HTTP/2 clients, %d HTTP/1.1 clients", workers, len(clients)-workers)

	var (
		requests, failures atomic.Int64
		firstErr           = make(chan error, 1)
		stop               = make(chan struct{})
		wg                 sync.WaitGroup
	)
	for _, c := range clients {
		wg.Go(func() {
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				err := getOK(c, url)
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					select {
					case firstErr <- err:
					default:
					}
				}
				if n%reconnect == 0 {
					c.CloseIdleConnections()
				}
			}
		})
	}
	stopLoad := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopLoad()

	// waitFor makes fresh handshakes, which drive the server's checks,
	// until cond holds, and returns the time from its call to the start of
	// the handshake that satisfied it.
	waitFor := func(what string, cond func(serial *big.Int) bool) time.Duration {
		t.Helper()
		start := time.Now()
		deadline := start.Add(testTimeout())
		for {
			dialStart := time.Now()
			serial, err := dialSerial(addr, "localhost")
			require.NoError(t, err)
			if cond(serial) {
				return dialStart.Sub(start)
			}
			require.False(t, time.Now().After(deadline), "%s: not seen after %v", what, time.Since(start))
		}
	}

	var lags []time.Duration
	valid, invalid := 0, 0
	for i := 1; i <= renewals; i++ {
		if i%invalidEvery == 0 {
			invalid++
			next := ca.serverCert(t)
			var certPEM, keyPEM []byte
			switch invalid % 3 {
			case 0:
				certPEM, keyPEM = next.certPEM, current.keyPEM // mismatched key
			case 1:
				certPEM, keyPEM = []byte("garbage\n"), next.keyPEM
			case 2:
				certPEM, keyPEM = next.certPEM[:len(next.certPEM)/2], next.keyPEM // half-written
			}
			before := logs.failures()
			k.swap(t, certPEM, keyPEM)
			waitFor(fmt.Sprintf("renewal %d: broken pair rejected", i), func(serial *big.Int) bool {
				require.Equal(t, current.cert.SerialNumber, serial, "renewal %d: broken pair, serving another certificate", i)
				return logs.failures() > before
			})
			continue
		}
		valid++
		next := ca.serverCert(t)
		if i%2 == 0 {
			k.swap(t, next.certPEM, next.keyPEM)
		} else {
			k.replaceInPlace(t, next.certPEM, next.keyPEM)
		}
		lag := waitFor(fmt.Sprintf("renewal %d", i), func(serial *big.Int) bool {
			return serial.Cmp(next.cert.SerialNumber) == 0
		})
		lags = append(lags, lag)
		current = next
	}
	stopLoad()

	slices.Sort(lags)
	p90 := lags[len(lags)*9/10]
	t.Logf("renewals: %d (%d valid, %d broken); requests: %d; failed: %d; time to new certificate: median %v, p90 %v, max %v (interval %v)",
		renewals, valid, invalid, requests.Load(), failures.Load(), lags[len(lags)/2], p90, lags[len(lags)-1], interval)
	assert.Positive(t, requests.Load())
	assert.Zero(t, failures.Load(), "failed requests")
	select {
	case err := <-firstErr:
		t.Errorf("first failed request: %v", err)
	default:
	}
	assert.LessOrEqual(t, p90, interval+slack, "90th percentile of the time to new certificate")
}

// getOK makes a GET request and returns an error unless it gets 200 "ok".
func getOK(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		return errors.New("unexpected response: " + resp.Status + " " + string(body))
	}
	return nil
}

// errnoNames names the OS errors the retry tests inject.
var errnoNames = map[syscall.Errno]string{
	syscall.EACCES: "EACCES",
	syscall.EMFILE: "EMFILE",
	syscall.ENFILE: "ENFILE",
	syscall.EIO:    "EIO",
	syscall.ESTALE: "ESTALE",
	syscall.ENOENT: "ENOENT",
}

// failFiles makes the file-system functions of r fail with errno for the
// file named target while failing is set, at the step named by where:
// "read" or "stat". It returns a counter of the failed calls.
func failFiles(r *certReloader, where, target string, errno syscall.Errno, failing *atomic.Bool) *atomic.Int64 {
	var failed atomic.Int64
	fail := func(op, name string) error {
		if failing.Load() && name == target {
			failed.Add(1)
			return &fs.PathError{Op: op, Path: name, Err: errno}
		}
		return nil
	}
	switch where {
	case "read":
		r.readFile = func(name string) ([]byte, error) {
			if err := fail("open", name); err != nil {
				return nil, err
			}
			return os.ReadFile(name)
		}
	case "stat":
		r.stat = func(name string) (fileStamp, error) {
			if err := fail("stat", name); err != nil {
				return fileStamp{}, err
			}
			return statFile(name)
		}
	default:
		panic("unknown step " + where)
	}
	return &failed
}

// TestCertReloaderOSErrorRetried checks that a renewal whose files cannot
// be read or stat'ed for a reason outside their content (issue 11: EACCES
// fixed with chmod, EMFILE or ENFILE in a connection flood, EIO or ESTALE
// on network storage, ENOENT in a swap) is retried with back-off, 1 s
// doubling up to the interval, logged once, and served as soon as the
// error clears, though the files have not changed since.
func TestCertReloaderOSErrorRetried(t *testing.T) {
	const interval = 10 * time.Second
	wantDelays := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, interval, interval}
	for _, step := range []struct{ where, file string }{
		{"read", "certificate"}, {"read", "key"}, {"stat", "certificate"}, {"stat", "key"},
	} {
		for errno, name := range errnoNames {
			t.Run(step.where+" "+step.file+" "+name, func(t *testing.T) {
				f := newReloaderFixture(t, interval)
				target := f.certFile
				if step.file == "key" {
					target = f.keyFile
				}
				var failing atomic.Bool
				failing.Store(true)
				failed := failFiles(f.r, step.where, target, errno, &failing)
				next := f.ca.serverCert(t)
				f.write(t, next.certPEM, next.keyPEM)

				f.clock.advance(interval)
				assert.Equal(t, f.first.cert.SerialNumber, f.served(t))
				require.EqualValues(t, 1, failed.Load(), "the check did not try the files")
				for i, d := range wantDelays {
					f.clock.advance(d - time.Nanosecond)
					f.served(t)
					require.EqualValues(t, i+1, failed.Load(), "retry %d earlier than %v", i+1, d)
					f.clock.advance(time.Nanosecond)
					assert.Equal(t, f.first.cert.SerialNumber, f.served(t))
					require.EqualValues(t, i+2, failed.Load(), "retry %d not made after %v; logs:\n%s", i+1, d, f.logs)
				}
				// 35 s of failures: a warning, not yet an error (see
				// TestCertReloaderOSErrorEscalated).
				assert.Equal(t, 1, f.logs.countAt(slog.LevelWarn, logFailed), "logs:\n%s", f.logs)
				assert.Zero(t, f.logs.countAt(slog.LevelError, logFailed), "logs:\n%s", f.logs)
				assert.Equal(t, 1, f.logs.count(name), "logs:\n%s", f.logs)

				failing.Store(false)
				f.clock.advance(interval)
				assert.Equal(t, next.cert.SerialNumber, f.served(t), "not retried once the error cleared; logs:\n%s", f.logs)
				assert.Equal(t, 1, f.logs.countAt(slog.LevelInfo, logReloaded), "logs:\n%s", f.logs)

				// Back to the normal interval.
				f.clock.advance(time.Second)
				f.served(t)
				f.clock.advance(interval)
				f.served(t)
				assert.Equal(t, 1, f.logs.count(logFailed), "logs:\n%s", f.logs)
			})
		}
	}
}

// TestReloadCertificateOSErrorRetried checks that an on-demand reload that
// fails to read the files returns the error, and leaves the automatic
// check to retry the load, instead of recording the files as loaded.
func TestReloadCertificateOSErrorRetried(t *testing.T) {
	const interval = 10 * time.Second
	f := newReloaderFixture(t, interval)
	var failing atomic.Bool
	failing.Store(true)
	failFiles(f.r, "read", f.keyFile, syscall.EACCES, &failing)
	next := f.ca.serverCert(t)
	f.write(t, next.certPEM, next.keyPEM)

	err := f.r.reload()
	assert.ErrorIs(t, err, syscall.EACCES)
	assert.ErrorIs(t, err, fs.ErrPermission)
	assert.Equal(t, f.first.cert.SerialNumber, f.served(t))

	failing.Store(false)
	f.clock.advance(time.Second)
	assert.Equal(t, next.cert.SerialNumber, f.served(t), "not retried; logs:\n%s", f.logs)
}

// TestCertReloaderChmod is the report of issue 11 with a real file: a
// renewed key at mode 0000, then chmod 0600 (which changes neither size
// nor modification time), is served. Root reads files whatever their mode,
// so the test skips as root; TestCertReloaderOSErrorRetried covers EACCES
// there.
func TestCertReloaderChmod(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores file modes")
	}
	const interval = 10 * time.Second
	f := newReloaderFixture(t, interval)
	next := f.ca.serverCert(t)
	f.write(t, next.certPEM, next.keyPEM)
	require.NoError(t, os.Chmod(f.keyFile, 0))
	t.Cleanup(func() { os.Chmod(f.keyFile, 0o600) })

	f.clock.advance(interval)
	assert.Equal(t, f.first.cert.SerialNumber, f.served(t))
	assert.Equal(t, 1, f.logs.count("permission denied"), "logs:\n%s", f.logs)

	require.NoError(t, os.Chmod(f.keyFile, 0o600))
	f.clock.advance(time.Second)
	assert.Equal(t, next.cert.SerialNumber, f.served(t), "not retried after chmod; logs:\n%s", f.logs)
}

func TestNextReloadRetryDelay(t *testing.T) {
	tests := []struct {
		prev, interval, want time.Duration
	}{
		{0, 10 * time.Second, time.Second},
		{time.Second, 10 * time.Second, 2 * time.Second},
		{8 * time.Second, 10 * time.Second, 10 * time.Second},
		{10 * time.Second, 10 * time.Second, 10 * time.Second},
		{32 * time.Second, time.Hour, time.Minute},
		{time.Minute, time.Hour, time.Minute},
		{0, 20 * time.Millisecond, 20 * time.Millisecond},
		{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond},
		// No automatic checks: retries still back off, up to a minute.
		{0, -1, time.Second},
		{time.Second, -1, 2 * time.Second},
		{32 * time.Second, -1, time.Minute},
		{time.Minute, -1, time.Minute},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, nextReloadRetryDelay(tt.prev, tt.interval), "prev %v, interval %v", tt.prev, tt.interval)
	}
}

// TestCertReloaderNotYetValid checks that a renewal whose NotBefore is in
// the future is refused, with one error logged, and served at the first
// check once it is valid, though the files have not changed since; and
// that at startup such a certificate is served, with an error logged, as
// net/http would serve it.
func TestCertReloaderNotYetValid(t *testing.T) {
	const interval = 10 * time.Second
	notYetValid := func(t testing.TB, ca *testPKI, from time.Time) *testPKI {
		return issueTestCert(t, ca, func(c *x509.Certificate) {
			c.NotBefore = from
			c.NotAfter = from.Add(48 * time.Hour)
		})
	}
	t.Run("renewal", func(t *testing.T) {
		f := newReloaderFixture(t, interval)
		from := f.clock.Now().Add(time.Hour)
		next := notYetValid(t, f.ca, from)
		f.write(t, next.certPEM, next.keyPEM)
		for range 3 {
			f.clock.advance(interval)
			assert.Equal(t, f.first.cert.SerialNumber, f.served(t), "served before NotBefore")
		}
		assert.Equal(t, 1, f.logs.countAt(slog.LevelError, "not valid until"), "logs:\n%s", f.logs)

		f.clock.advance(from.Sub(f.clock.Now()) - interval/2)
		assert.Equal(t, f.first.cert.SerialNumber, f.served(t), "served before NotBefore")
		f.clock.advance(interval)
		assert.Equal(t, next.cert.SerialNumber, f.served(t), "not served once valid; logs:\n%s", f.logs)
		assert.Equal(t, 1, f.logs.countAt(slog.LevelInfo, logReloaded), "logs:\n%s", f.logs)
	})
	t.Run("startup", func(t *testing.T) {
		ca := newTestCA(t, "startup CA")
		p := notYetValid(t, ca, time.Now().Add(time.Hour))
		dir := t.TempDir()
		clock, logs := newFakeClock(), new(logRecorder)
		r, err := newCertReloader(writeTestFile(t, dir, "tls.crt", p.certPEM), writeTestFile(t, dir, "tls.key", p.keyPEM), interval, clock.Now, logs.logf)
		require.NoError(t, err)
		cert, err := r.GetCertificate(&tls.ClientHelloInfo{})
		require.NoError(t, err)
		assert.Equal(t, p.cert.SerialNumber, cert.Leaf.SerialNumber)
		assert.Equal(t, 1, logs.countAt(slog.LevelError, "not valid until"), "logs:\n%s", logs)
	})
}

// TestCertReloaderExpiryWarning checks that checks warn when the served
// certificate is within a quarter of its lifetime of expiry and nothing
// newer can be loaded, at most once an hour, and stop once a renewal is
// served.
func TestCertReloaderExpiryWarning(t *testing.T) {
	const interval = 10 * time.Second
	const warning = "and no newer one could be loaded"
	tests := []struct {
		name  string
		files func(t testing.TB, f *reloaderFixture) // what the files hold near expiry
	}{
		{name: "files unchanged", files: func(testing.TB, *reloaderFixture) {}},
		{name: "broken renewal", files: func(t testing.TB, f *reloaderFixture) {
			f.write(t, []byte("garbage\n"), f.first.keyPEM)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newReloaderFixture(t, interval)
			leaf := f.first.cert
			window := leaf.NotAfter.Sub(leaf.NotBefore) / 4
			tt.files(t, f)

			f.clock.advance(leaf.NotAfter.Sub(f.clock.Now()) - window - interval)
			f.served(t)
			assert.Zero(t, f.logs.count(warning), "warned outside the window; logs:\n%s", f.logs)

			f.clock.advance(interval)
			f.served(t)
			assert.Equal(t, 1, f.logs.countAt(slog.LevelWarn, warning), "logs:\n%s", f.logs)
			for range 5 {
				f.clock.advance(interval)
				f.served(t)
			}
			assert.Equal(t, 1, f.logs.countAt(slog.LevelWarn, warning), "warned more than once an hour; logs:\n%s", f.logs)
			f.clock.advance(time.Hour)
			f.served(t)
			assert.Equal(t, 2, f.logs.countAt(slog.LevelWarn, warning), "logs:\n%s", f.logs)

			next := issueTestCert(t, f.ca, func(c *x509.Certificate) {
				c.NotBefore = f.clock.Now().Add(-time.Hour)
				c.NotAfter = f.clock.Now().Add(90 * 24 * time.Hour)
			})
			f.write(t, next.certPEM, next.keyPEM)
			f.clock.advance(time.Hour)
			assert.Equal(t, next.cert.SerialNumber, f.served(t))
			f.clock.advance(time.Hour)
			f.served(t)
			assert.Equal(t, 2, f.logs.countAt(slog.LevelWarn, warning), "warned after the renewal; logs:\n%s", f.logs)
		})
	}
	t.Run("renewal loaded near expiry", func(t *testing.T) {
		f := newReloaderFixture(t, interval)
		next := issueTestCert(t, f.ca, func(c *x509.Certificate) {
			c.NotBefore = f.clock.Now().Add(-80 * 24 * time.Hour)
			c.NotAfter = f.clock.Now().Add(2 * 24 * time.Hour)
		})
		f.write(t, next.certPEM, next.keyPEM)
		f.clock.advance(interval)
		assert.Equal(t, next.cert.SerialNumber, f.served(t))
		assert.Zero(t, f.logs.count(warning), "logs:\n%s", f.logs)
		assert.Equal(t, 1, f.logs.countAt(slog.LevelWarn, "certificate just loaded from"), "logs:\n%s", f.logs)
	})
}

// TestCertReloadLogLevels checks the levels of the reloader's records
// through a server: a certificate close to expiry at startup is a warning,
// a reload an info record (issue 11: routine renewals tripped error
// alerting), a rejected pair an error. With ErrorLog set, the lines go to
// ErrorLog.
func TestCertReloadLogLevels(t *testing.T) {
	ca := newTestCA(t, "levels CA")
	expiring := issueTestCert(t, ca, func(c *x509.Certificate) {
		c.NotBefore = time.Now().Add(-23 * time.Hour)
		c.NotAfter = time.Now().Add(time.Hour)
	})
	renewed := ca.serverCert(t)
	want := []struct {
		level slog.Level
		msg   string
	}{
		{slog.LevelWarn, "expires at"},
		{slog.LevelInfo, logReloaded},
		{slog.LevelError, logFailed},
	}
	for _, errorLog := range []bool{false, true} {
		t.Run(fmt.Sprintf("ErrorLog %v", errorLog), func(t *testing.T) {
			dir := t.TempDir()
			certFile := writeTestFile(t, dir, "tls.crt", expiring.certPEM)
			keyFile := writeTestFile(t, dir, "tls.key", expiring.keyPEM)
			logger, h := newRecordLogger(t)
			srv := &Server{CertReloadInterval: -1, Logger: logger}
			var lines *syncBuffer
			if errorLog {
				srv.ErrorLog, lines = newTestLogger()
			}
			addr := serveTestFiles(t, srv, certFile, keyFile)
			require.Equal(t, expiring.cert.SerialNumber, servedSerial(t, addr, "localhost")) // serving has started

			writeTestFile(t, dir, "tls.crt", renewed.certPEM)
			writeTestFile(t, dir, "tls.key", renewed.keyPEM)
			require.NoError(t, srv.ReloadCertificate())
			writeTestFile(t, dir, "tls.key", expiring.keyPEM)
			require.Error(t, srv.ReloadCertificate())

			if errorLog {
				assert.Empty(t, h.all(), "records sent to Logger with ErrorLog set")
				for _, w := range want {
					assert.Contains(t, lines.String(), w.msg)
				}
				return
			}
			recs := h.all()
			require.Len(t, recs, len(want), "records: %v", recs)
			for i, w := range want {
				assert.Equal(t, w.level, recs[i].Level, "record %q", recs[i].Message)
				assert.Contains(t, recs[i].Message, w.msg)
			}
		})
	}
}

// mtlsGet makes a TLS connection to addr with cfg, sends a GET request
// over HTTP/1.1 and returns the response body, and whether the TLS
// session was resumed. A TLS 1.3 server reports a rejected client
// certificate after the client's handshake has finished, so the error may
// come from the request.
func mtlsGet(addr string, cfg *tls.Config) (body string, resumed bool, err error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: testTimeout()}, "tcp", addr, cfg)
	if err != nil {
		return "", false, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(testTimeout())); err != nil {
		return "", false, err
	}
	resumed = c.ConnectionState().DidResume
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"); err != nil {
		return "", resumed, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", resumed, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resumed, err
}

// TestClientCAFileRotation checks with real handshakes that ClientCAFile
// is reloaded: after the file changes to another CA, a client certificate
// from the new CA is accepted and one from the removed CA refused, on a
// new connection and on resuming a session established before the change;
// a change that keeps the old CA keeps its sessions resumable.
func TestClientCAFileRotation(t *testing.T) {
	// On Go releases whose crypto/tls declines to resume a session whose
	// chain no longer verifies (tlsChecksResumedClientCAs), run it too as
	// on older ones, where verifyResumedChain refuses the session.
	t.Run("crypto/tls", func(t *testing.T) {
		if !tlsChecksResumedClientCAs {
			t.Skip("crypto/tls does not check resumed sessions on " + runtime.Version())
		}
		testClientCAFileRotation(t)
	})
	t.Run("verifyResumedChain", func(t *testing.T) {
		old := tlsChecksResumedClientCAs
		tlsChecksResumedClientCAs = false
		defer func() { tlsChecksResumedClientCAs = old }()
		testClientCAFileRotation(t)
	})
}

func testClientCAFileRotation(t *testing.T) {
	oldCA, newCA := newTestCA(t, "old client CA"), newTestCA(t, "new client CA")
	_, serverPool := testCertificate(t)
	tests := []struct {
		name       string
		newFile    []byte
		oldAllowed bool // whether a certificate from the old CA is still accepted
	}{
		{name: "CA replaced", newFile: newCA.certPEM},
		{name: "CA added", newFile: slices.Concat(oldCA.certPEM, newCA.certPEM), oldAllowed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			caFile := writeTestFile(t, dir, "ca.pem", oldCA.certPEM)
			srv := &Server{
				ClientCAFile:       caFile,
				CertReloadInterval: -1,
				ErrorLog:           discardLogger(),
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					io.WriteString(w, r.TLS.VerifiedChains[0][0].Subject.CommonName)
				}),
			}
			addr := startTLS(t, srv)
			client := func(p *testPKI, cache tls.ClientSessionCache) *tls.Config {
				return &tls.Config{
					RootCAs:            serverPool,
					ServerName:         "localhost",
					NextProtos:         []string{"http/1.1"},
					Certificates:       []tls.Certificate{p.tlsCertificate(t)},
					ClientSessionCache: cache,
				}
			}
			alice, bob := oldCA.clientCert(t, "alice"), newCA.clientCert(t, "bob")
			aliceCache := tls.NewLRUClientSessionCache(4)

			body, resumed, err := mtlsGet(addr, client(alice, aliceCache))
			require.NoError(t, err)
			assert.Equal(t, "alice", body)
			assert.False(t, resumed)
			body, resumed, err = mtlsGet(addr, client(alice, aliceCache))
			require.NoError(t, err)
			assert.Equal(t, "alice", body)
			require.True(t, resumed, "session not resumed before the change")
			_, _, err = mtlsGet(addr, client(bob, nil))
			require.Error(t, err, "certificate from the new CA accepted before the change")

			writeTestFile(t, dir, "ca.pem", tt.newFile)
			require.NoError(t, srv.ReloadCertificate())

			body, _, err = mtlsGet(addr, client(bob, nil))
			require.NoError(t, err, "certificate from the new CA refused after the change")
			assert.Equal(t, "bob", body)

			body, resumed, err = mtlsGet(addr, client(alice, aliceCache))
			if tt.oldAllowed {
				require.NoError(t, err)
				assert.Equal(t, "alice", body)
				assert.True(t, resumed, "session not resumed after a change that kept its CA")
			} else {
				assert.Error(t, err, "resumed session from the removed CA accepted (resumed %v)", resumed)
			}
			_, _, err = mtlsGet(addr, client(alice, nil))
			if tt.oldAllowed {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err, "certificate from the removed CA accepted")
			}
		})
	}
}

// TestClientCAFileRotationGetConfigForClient checks that the
// configurations the caller's GetConfigForClient returns, and the base
// configuration when it returns nil, get the CAs as reloaded.
func TestClientCAFileRotationGetConfigForClient(t *testing.T) {
	oldCA, newCA := newTestCA(t, "old client CA"), newTestCA(t, "new client CA")
	serverCert, serverPool := testCertificate(t)
	for _, returnNil := range []bool{false, true} {
		t.Run(fmt.Sprintf("nil config %v", returnNil), func(t *testing.T) {
			dir := t.TempDir()
			caFile := writeTestFile(t, dir, "ca.pem", oldCA.certPEM)
			srv := &Server{
				ClientCAFile:       caFile,
				CertReloadInterval: -1,
				ErrorLog:           discardLogger(),
				Handler:            http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
				TLSConfig: &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
					if returnNil {
						return nil, nil
					}
					return &tls.Config{Certificates: []tls.Certificate{serverCert}}, nil
				}},
			}
			addr := startTLS(t, srv)
			get := func(p *testPKI) error {
				_, _, err := mtlsGet(addr, &tls.Config{
					RootCAs:      serverPool,
					ServerName:   "localhost",
					NextProtos:   []string{"http/1.1"},
					Certificates: []tls.Certificate{p.tlsCertificate(t)},
				})
				return err
			}
			alice, bob := oldCA.clientCert(t, "alice"), newCA.clientCert(t, "bob")
			require.NoError(t, get(alice))
			require.Error(t, get(bob))
			writeTestFile(t, dir, "ca.pem", newCA.certPEM)
			require.NoError(t, srv.ReloadCertificate())
			assert.NoError(t, get(bob), "certificate from the new CA refused after the change")
			assert.Error(t, get(alice), "certificate from the removed CA accepted")
		})
	}
}

// TestCAReloaderCheck checks the automatic check of ClientCAFile with a
// fake clock: a changed file is loaded at the first handshake after the
// interval, a file without certificates is rejected and logged once, a
// read error is retried, and the configuration handed to crypto/tls is
// built once per pool.
func TestCAReloaderCheck(t *testing.T) {
	const interval = 10 * time.Second
	ca1, ca2, ca3 := newTestCA(t, "CA 1"), newTestCA(t, "CA 2"), newTestCA(t, "CA 3")
	dir := t.TempDir()
	file := writeTestFile(t, dir, "ca.pem", ca1.certPEM)
	clock, logs := newFakeClock(), new(logRecorder)
	r, err := newCAReloader(file, interval, clock.Now, logs.logf)
	require.NoError(t, err)
	base := &tls.Config{MinVersion: tls.VersionTLS13}
	trusts := func(c *tls.Config, ca *testPKI) bool {
		return anyChainRootedIn([][]*x509.Certificate{{ca.cert}}, c.ClientCAs, clock.Now())
	}

	c1 := r.clientConfig(base)
	assert.Same(t, c1, r.clientConfig(base), "configuration built again for the same pool")
	assert.True(t, trusts(c1, ca1))
	assert.Equal(t, tls.RequireAndVerifyClientCert, c1.ClientAuth)
	assert.Equal(t, uint16(tls.VersionTLS13), c1.MinVersion)
	assert.Nil(t, c1.GetConfigForClient)
	// crypto/tls checks a resumed session's chain itself from Go 1.25.6.
	assert.Equal(t, !tlsChecksResumedClientCAs, c1.VerifyConnection != nil)
	assert.Nil(t, base.ClientCAs, "base modified")

	writeTestFile(t, dir, "ca.pem", ca2.certPEM)
	clock.advance(interval - time.Nanosecond)
	assert.Same(t, c1, r.clientConfig(base), "changed before the interval")
	clock.advance(time.Nanosecond)
	c2 := r.clientConfig(base)
	assert.True(t, trusts(c2, ca2), "new CA not loaded; logs:\n%s", logs)
	assert.False(t, trusts(c2, ca1))
	assert.Equal(t, 1, logs.countAt(slog.LevelInfo, "reloaded client CAs"), "logs:\n%s", logs)

	writeTestFile(t, dir, "ca.pem", []byte("no PEM here\n"))
	for range 3 {
		clock.advance(interval)
		assert.Same(t, c2, r.clientConfig(base))
	}
	assert.Equal(t, 1, logs.countAt(slog.LevelError, "holds no PEM certificate"), "logs:\n%s", logs)

	var failing atomic.Bool
	failing.Store(true)
	failFiles(r, "read", file, syscall.EIO, &failing)
	writeTestFile(t, dir, "ca.pem", ca3.certPEM)
	clock.advance(interval)
	assert.Same(t, c2, r.clientConfig(base))
	assert.Equal(t, 1, logs.countAt(slog.LevelWarn, "input/output error"), "logs:\n%s", logs)
	failing.Store(false)
	clock.advance(time.Second)
	assert.True(t, trusts(r.clientConfig(base), ca3), "read error not retried; logs:\n%s", logs)
}

// TestVerifyResumedChain checks the VerifyConnection that refuses a
// resumed session from a CA no longer in ClientCAFile, the defence for Go
// releases whose crypto/tls does not check it itself, and that it calls
// the caller's VerifyConnection.
func TestVerifyResumedChain(t *testing.T) {
	kept, removed := newTestCA(t, "kept CA"), newTestCA(t, "removed CA")
	alice, mallory := kept.clientCert(t, "alice"), removed.clientCert(t, "mallory")
	errNext := errors.New("caller's VerifyConnection")
	tests := []struct {
		name    string
		resumed bool
		chain   *testPKI // the client's leaf; its CA ends the chain
		ca      *testPKI
		next    func(tls.ConnectionState) error
		want    string // error substring; empty for none
	}{
		{name: "resumed, CA kept", resumed: true, chain: alice, ca: kept},
		{name: "resumed, CA removed", resumed: true, chain: mallory, ca: removed, want: "not from a CA of ClientCAFile"},
		{name: "full handshake", chain: mallory, ca: removed}, // verified by crypto/tls
		{name: "caller's VerifyConnection", resumed: true, chain: alice, ca: kept, next: func(tls.ConnectionState) error { return errNext }, want: errNext.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verify := verifyResumedChain(kept.pool(), time.Now, tt.next)
			err := verify(tls.ConnectionState{
				DidResume:      tt.resumed,
				VerifiedChains: [][]*x509.Certificate{{tt.chain.cert, tt.ca.cert}},
			})
			if tt.want == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tt.want)
			}
		})
	}
}
