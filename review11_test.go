package httpsrv

// Review 11: tests for defects found while reviewing issue 11 (items 1, 3,
// 4, 5, 6). Each test fails on the code under review and describes the
// scenario and the behaviour expected.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReview11ClientCAFileTruncatedBundleReload: ClientCAFile holds two
// CAs. The file is rewritten in place (os.WriteFile truncates and writes;
// a config-management tool or `cat a b > ca.pem` does the same) and the
// reload catches it half-written: the first CA's PEM block complete, the
// second cut in the middle. x509.CertPool.AppendCertsFromPEM stops at the
// broken block and reports success because one certificate parsed, so the
// reloader serves a pool without the second CA: every client whose
// certificate comes from it is refused, with nothing logged, until the
// next check. For the key pair the README promises that "an invalid,
// half-written ... one keeps the old pair"; a CA bundle with trailing
// bytes that are not a complete PEM certificate must be rejected as
// content too (keep the previous CAs, log once), not silently shrink the
// trust store.
func TestReview11ClientCAFileTruncatedBundleReload(t *testing.T) {
	ca1, ca2 := newTestCA(t, "CA 1"), newTestCA(t, "CA 2")
	dir := t.TempDir()
	full := append(append([]byte{}, ca1.certPEM...), ca2.certPEM...)
	file := writeTestFile(t, dir, "ca.pem", full)
	clock, logs := newFakeClock(), new(logRecorder)
	r, err := newCAReloader(file, -1, clock.Now, logs.logf)
	require.NoError(t, err)
	base := &tls.Config{}
	trusts := func(ca *testPKI) bool {
		return anyChainRootedIn([][]*x509.Certificate{{ca.cert}}, r.clientConfig(base).ClientCAs, clock.Now())
	}
	require.True(t, trusts(ca1))
	require.True(t, trusts(ca2))

	// Half-written: CA 1 complete, CA 2 cut in the middle of its base64.
	half := full[:len(ca1.certPEM)+len(ca2.certPEM)/2]
	writeTestFile(t, dir, "ca.pem", half)
	reloadErr := r.reload()

	assert.True(t, trusts(ca2), "a half-written ClientCAFile was served: clients of CA 2 are now refused (reload error %v; logs:\n%s)", reloadErr, logs)
	assert.Error(t, reloadErr, "a half-written ClientCAFile reloaded without an error")
}

// TestReview11FailedReloadNeverRetriedWithoutChecks: CertReloadInterval is
// negative (no automatic check) and renewals are applied by
// ReloadCertificate from a SIGHUP handler, the workflow the docs suggest
// ("ReloadCertificate still works"; certbot's deploy hook sends one
// SIGHUP per renewal). The one reload fails for a reason the docs say is
// retried: the key is not readable yet (EACCES, fixed by the hook's chown
// a moment later), or the renewal's NotBefore is a few seconds ahead of
// this host's clock ("refused until then, and served at the first check
// after it"). ReloadCertificate's doc promises "a file that cannot be read
// is then retried by the automatic check as a failed check is", but with
// the check off nothing ever retries: nextReloadRetryDelay returns the
// negative interval, no retry is scheduled, and the old certificate is
// served until it expires although the renewal on disk is valid. Expected:
// a failure that is to be retried is retried even when periodic checks
// are off (schedule the back-off retry, or the NotBefore, on its own), or
// the docs say that with checks off it is not.
func TestReview11FailedReloadNeverRetriedWithoutChecks(t *testing.T) {
	t.Run("EACCES fixed later", func(t *testing.T) {
		f := newReloaderFixture(t, -1)
		var failing atomic.Bool
		failing.Store(true)
		failFiles(f.r, "read", f.keyFile, syscall.EACCES, &failing)
		next := f.ca.serverCert(t)
		f.write(t, next.certPEM, next.keyPEM)
		require.Error(t, f.r.reload())
		failing.Store(false) // chown/chmod fixed

		for range 10 {
			f.clock.advance(maxReloadRetryDelay)
			f.served(t)
		}
		assert.Equal(t, next.cert.SerialNumber, f.served(t),
			"renewal never retried after an OS error with CertReloadInterval < 0; logs:\n%s", f.logs)
	})
	t.Run("NotBefore a little ahead", func(t *testing.T) {
		f := newReloaderFixture(t, -1)
		next := issueTestCert(t, f.ca, func(c *x509.Certificate) {
			c.NotBefore = f.clock.Now().Add(5 * time.Second)
			c.NotAfter = f.clock.Now().Add(90 * 24 * time.Hour)
			c.DNSNames = []string{"localhost"}
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		})
		f.write(t, next.certPEM, next.keyPEM)
		require.Error(t, f.r.reload())

		f.clock.advance(time.Hour)
		for range 3 {
			f.served(t)
		}
		assert.Equal(t, next.cert.SerialNumber, f.served(t),
			"a renewal refused for a NotBefore 5 s ahead is never served with CertReloadInterval < 0; logs:\n%s", f.logs)
	})
}

// TestReview11H2ProbeLogsNothing: h2ProbeEngine serves one in-memory
// HTTP/2 connection with a nil BaseConfig to see which x/net engine is in
// use. It must write nothing to any log. The review found that with
// x/net's verbose debug logs on (GODEBUG=http2debug=1, http2.VerboseLogs),
// the standalone engine logs the probe connection through the standard
// logger: a nil BaseConfig means a zero http.Server, with no ErrorLog, and
// no way to observe the engine without that has been found. That case is
// documented on h2ProbeEngine; without debug logs the probe is silent.
func TestReview11H2ProbeLogsNothing(t *testing.T) {
	var buf syncBuffer
	old, oldFlags := log.Writer(), log.Flags()
	log.SetOutput(&buf)
	defer func() { log.SetOutput(old); log.SetFlags(oldFlags) }()

	_, err := h2ProbeEngine(testTimeout())
	require.NoError(t, err)
	assert.Empty(t, buf.String(), "the HTTP/2 engine probe wrote to the standard logger")
}

// TestReview11FailedServeTLSLeavesCAReloader: with ClientCAFile set,
// serveTLSConfig registers the CA reloader (addCertReloader) before it
// loads the certificate files. When that load fails (files not there yet,
// a typo, a key that does not match), ServeTLS returns the error, but the
// CA reloader stays registered although nothing serves with it. A program
// that retries ServeTLS until its certificate appears (cert-manager has
// not issued it yet) registers one more orphan per attempt; meanwhile
// ReloadCertificate returns nil, as if a reload had taken place, instead
// of ErrNoCertificateFiles, and every later ReloadCertificate re-reads
// ClientCAFile once per orphan (and joins their errors). Expected: a
// failed ServeTLS registers nothing; ReloadCertificate on a server that
// serves nothing returns ErrNoCertificateFiles.
func TestReview11FailedServeTLSLeavesCAReloader(t *testing.T) {
	ca := newTestCA(t, "client CA")
	dir := t.TempDir()
	srv := &Server{
		ClientCAFile: writeTestFile(t, dir, "ca.pem", ca.certPEM),
		ErrorLog:     discardLogger(),
	}
	missing := filepath.Join(dir, "not-issued-yet.crt")
	for range 3 {
		err := srv.ServeTLS(localListener(t), missing, missing)
		require.Error(t, err)
		require.NotErrorIs(t, err, http.ErrServerClosed)
	}
	assert.Empty(t, srv.certReloaders(), "failed ServeTLS calls left reloaders registered")
	assert.ErrorIs(t, srv.ReloadCertificate(), ErrNoCertificateFiles,
		"ReloadCertificate reports success on a server that serves nothing")
}

// TestReview11TransientOSErrorLoggedAsError: a check lands in the middle
// of a routine renewal and hits one of the transient errors certreload.go
// itself lists as expected ("ENOENT in the middle of a swap"; EMFILE for a
// moment in a connection flood). The retry a second later loads the
// renewal. The reloader has logged "certificate reload failed" at
// slog.LevelError on the first failure, before any retry: a routine,
// self-healing renewal trips error alerting, which is what issue 11 item 1
// set out to stop ("today routine renewals trip error alerting").
// Expected: an OS error is logged at ERROR only once it has persisted
// (e.g. past the first retries, or for as long as a check interval), at
// most WARN/INFO before; a renewal served on the first retry logs no
// ERROR.
func TestReview11TransientOSErrorLoggedAsError(t *testing.T) {
	const interval = 10 * time.Second
	for _, errno := range []syscall.Errno{syscall.ENOENT, syscall.EMFILE} {
		t.Run(errnoNames[errno], func(t *testing.T) {
			f := newReloaderFixture(t, interval)
			var failing atomic.Bool
			failing.Store(true)
			failFiles(f.r, "stat", f.certFile, errno, &failing)
			next := f.ca.serverCert(t)
			f.write(t, next.certPEM, next.keyPEM)

			f.clock.advance(interval)
			assert.Equal(t, f.first.cert.SerialNumber, f.served(t)) // the check hits the error
			failing.Store(false)                                    // the swap completes
			f.clock.advance(minReloadRetryDelay)
			require.Equal(t, next.cert.SerialNumber, f.served(t), "not served on the first retry; logs:\n%s", f.logs)

			assert.Zero(t, f.logs.countAt(slog.LevelError, ""),
				"a renewal served on the first retry logged an ERROR; logs:\n%s", f.logs)
		})
	}
}

// TestReview11NotYetValidRenewalRefusedWhileServingExpired: the served
// certificate has already expired (the renewal is late: every client now
// rejects the server), and the renewal finally arrives with a NotBefore a
// little ahead of this host's clock (this host's clock is behind the
// CA's, or the issuer sets NotBefore to the issuance time). applyPairLocked
// refuses it whenever a certificate is being served ("the one served is
// better, even expired") and keeps serving the expired one until the
// first check after NotBefore. An expired certificate is rejected by
// every client, while the renewal is accepted by every client whose clock
// has passed NotBefore (all of them, if this host's clock is the one
// behind), so the refusal prolongs a full outage. Expected: when the
// certificate served has expired, a not-yet-valid renewal (which does not
// expire sooner) is served at once, with the not-valid-yet error logged,
// as at startup where there is nothing else to serve.
func TestReview11NotYetValidRenewalRefusedWhileServingExpired(t *testing.T) {
	ca := newTestCA(t, "late CA")
	now := time.Now()
	expired := issueTestCert(t, ca, func(c *x509.Certificate) {
		c.NotBefore = now.Add(-48 * time.Hour)
		c.NotAfter = now.Add(-time.Hour)
		c.DNSNames = []string{"localhost"}
	})
	renewal := issueTestCert(t, ca, func(c *x509.Certificate) {
		c.NotBefore = now.Add(30 * time.Second)
		c.NotAfter = now.Add(90 * 24 * time.Hour)
		c.DNSNames = []string{"localhost"}
	})
	dir := t.TempDir()
	certFile := writeTestFile(t, dir, "tls.crt", expired.certPEM)
	keyFile := writeTestFile(t, dir, "tls.key", expired.keyPEM)
	clock, logs := newFakeClock(), new(logRecorder)
	r, err := newCertReloader(certFile, keyFile, 10*time.Second, clock.Now, logs.logf)
	require.NoError(t, err)

	writeTestFile(t, dir, "tls.crt", renewal.certPEM)
	writeTestFile(t, dir, "tls.key", renewal.keyPEM)
	reloadErr := r.reload()
	cert, err := r.GetCertificate(&tls.ClientHelloInfo{ServerName: "localhost"})
	require.NoError(t, err)
	assert.Equal(t, renewal.cert.SerialNumber, cert.Leaf.SerialNumber,
		"an expired certificate is still served in preference to its renewal valid in 30 s (reload error: %v); logs:\n%s", reloadErr, logs)
}

// blockingHandler is a slog.Handler whose Handle, once armed, signals
// entered and waits for release.
type blockingHandler struct {
	armed    atomic.Bool
	entered  chan struct{}
	release  chan struct{}
	inFlight atomic.Bool
	records  atomic.Int64
}

func (h *blockingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *blockingHandler) Handle(context.Context, slog.Record) error {
	if h.armed.CompareAndSwap(true, false) {
		h.inFlight.Store(true)
		close(h.entered)
		<-h.release
		h.inFlight.Store(false)
	}
	h.records.Add(1)
	return nil
}
func (h *blockingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *blockingHandler) WithGroup(string) slog.Handler      { return h }

// TestReview11HandshakeSummaryTimerOutlivesClose: the handshake-error
// summary timer fires as Close runs. The timer's function takes the
// pending summary under the log's lock (due) and then writes it with the
// lock released; Close's flush (close) then finds nothing pending and
// Close returns while the timer is still writing the summary to the
// caller's Logger/ErrorLog. The README and flushHandshakeErrors promise
// that Shutdown/Close flush and stop the timer, "so that ... no timer
// outlives the server"; here a record is written after Close returned,
// to a sink the program may be closing (a log file closed after Close, a
// t.Log-backed logger in a test that has ended, which panics). Expected:
// Close (and Shutdown) wait for a summary a timer has already taken, so
// that no handshake record is written after they return.
func TestReview11HandshakeSummaryTimerOutlivesClose(t *testing.T) {
	h := &blockingHandler{entered: make(chan struct{}), release: make(chan struct{})}
	srv := &Server{Logger: slog.New(h)}
	clock, timers := useFakeTimers(t, srv)

	srv.logHandshakeError("192.0.2.1:1", errReset) // logged at once
	clock.advance(10 * time.Second)
	srv.logHandshakeError("192.0.2.2:2", errReset) // held; timer armed
	require.Len(t, timers.armed(), 1)
	clock.advance(50 * time.Second)

	h.armed.Store(true)
	fired := make(chan struct{})
	go func() {
		defer close(fired)
		timers.fire(0) // the timer fires as Close is called
	}()
	select {
	case <-h.entered:
	case <-time.After(testTimeout()):
		t.Fatal("the timer did not log its summary")
	}

	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	var closeReturnedFirst bool
	select {
	case err := <-closed:
		require.NoError(t, err)
		closeReturnedFirst = h.inFlight.Load()
	case <-time.After(200 * time.Millisecond):
		// Close waits for the summary in flight: the expected behaviour.
	}
	close(h.release)
	<-fired
	if !closeReturnedFirst {
		select {
		case err := <-closed:
			require.NoError(t, err)
		case <-time.After(testTimeout()):
			t.Fatal("Close did not return")
		}
	}
	assert.False(t, closeReturnedFirst,
		"Close returned while the summary timer was still writing to the Logger; records written: %d", h.records.Load())
}

// skipNoNetYield skips where yields have no descriptor (yieldToNetwork
// falls back to runtime.Gosched).
func skipNoNetYield(t *testing.T) {
	skipWithoutNetYields(t)
}

// TestReview11YieldsShortOutlivesAcceptLoop: one Server, two listeners
// (:443 served with ServeTLS, a second one with Serve). The second loop
// hits EMFILE, which marks the handshake yields short of descriptors, and
// then ends before it accepts again: its listener is closed by its owner
// (a rotated or handed-over socket) or fails for good. Only a loop that
// accepts again cleared the mark (acceptLoop.recovered, and only with a
// non-zero delay), so it stayed for the life of the Server: the TLS loop,
// which never saw an error, never clears it, and every handshake's yield
// fell back to runtime.Gosched for good, i.e. the flood protection the
// yields give was silently off. A loop that ends must take its mark back.
func TestReview11YieldsShortOutlivesAcceptLoop(t *testing.T) {
	skipNoNetYield(t)
	logger, _ := newTestLogger()
	srv := &Server{ErrorLog: logger, Handler: http.HandlerFunc(helloHandler)}
	startTLS(t, srv)
	h := srv.handshakeLimit()
	require.NotNil(t, h)
	require.True(t, h.yields.yieldToNetwork(), "before: the poller wakes the yield")

	ln := newFaultListener(
		acceptResult{err: acceptOpError(syscall.EMFILE)},
		acceptResult{err: &net.OpError{Op: "accept", Net: "tcp", Err: net.ErrClosed}},
	)
	require.ErrorIs(t, srv.Serve(ln), net.ErrClosed)

	assert.True(t, h.yields.yieldToNetwork(), "the loop that was short of descriptors has ended, yet the yields still fall back to runtime.Gosched")
}

// TestReview11YieldsShortClearedByOtherLoop: two accept loops of one
// Server are both at EMFILE; one accepts a connection (a descriptor was
// free for it) and cleared the server-wide mark while the other is still
// short and about to release its reserve again. Yields then made and kept
// eventfds again, in the slots the other loop frees to shed its pending
// clients (the failure 72fda1c fixes for one loop). The pool must stay
// short until every loop that marked it has recovered.
func TestReview11YieldsShortClearedByOtherLoop(t *testing.T) {
	skipNoNetYield(t)
	logger, _ := newTestLogger()
	srv := &Server{ErrorLog: logger}
	t.Cleanup(func() { srv.Close() })
	h := srv.handshakeLimit()
	require.NotNil(t, h)
	done := make(chan struct{})
	emfile := acceptOpError(syscall.EMFILE)
	a1 := srv.newAcceptLoop(newFaultListener(), done)
	a2 := srv.newAcceptLoop(newFaultListener(), done)
	t.Cleanup(a1.close)
	t.Cleanup(a2.close)

	require.NoError(t, a1.handle(emfile))
	require.NoError(t, a2.handle(emfile))
	a2.accepted() // a2 recovers; a1 has not
	assert.False(t, h.yields.yieldToNetwork(), "a1 is still at EMFILE, yet a yield made a descriptor")
	assert.Zero(t, h.yields.kept(), "a1 is still at EMFILE, yet the pool keeps a descriptor")

	a1.accepted()
	assert.True(t, h.yields.yieldToNetwork(), "every loop accepts again: the poller wakes the yield")
}
