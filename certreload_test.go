package httpsrv

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// logRecorder collects the lines a certReloader logs.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
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

func (r *logRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
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
// files unchanged, and old enough not to be racy, does not read them: a
// same-size rewrite that keeps the modification time goes unnoticed until
// a forced reload, which reads the files and reports the broken pair.
func TestCertReloaderStatOnly(t *testing.T) {
	const interval = time.Second
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

	// Same inode, size and modification time; different content.
	garbage := []byte(strings.Repeat("x", len(p.certPEM)))
	writeTestFile(t, dir, "tls.crt", garbage)
	require.NoError(t, os.Chtimes(certFile, old, old))
	clock.advance(interval)
	cert, err := r.GetCertificate(&tls.ClientHelloInfo{})
	require.NoError(t, err)
	assert.Equal(t, p.cert.SerialNumber, cert.Leaf.SerialNumber)
	assert.Empty(t, logs.String(), "the check read the files")

	assert.ErrorContains(t, r.reload(), "failed to find any PEM data")
	cert, err = r.GetCertificate(&tls.ClientHelloInfo{})
	require.NoError(t, err)
	assert.Equal(t, p.cert.SerialNumber, cert.Leaf.SerialNumber)
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
