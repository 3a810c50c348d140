package httpsrv

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"go/version"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Certificate hot reload: the certReloader behind ServeTLS's certificate
// files, ReloadCertificate, and the CA pool loaded from ClientCAFile.

// ReloadCertificate loads the certificate and key files given to ServeTLS
// or ListenAndServeTLS again, and serves the new pair to the handshakes
// that follow if it is valid; connections already established keep theirs.
// It loads ClientCAFile and SessionTicketKeyFile again too, if they are
// set. It is meant for a signal
// handler (SIGHUP) or an admin endpoint, and works whatever
// CertReloadInterval is.
//
// If the pair cannot be read, does not parse, has a key that does not
// match the certificate, or is not valid yet (NotBefore in the future) or
// has expired while the one served is valid, the server keeps the pair it
// serves and ReloadCertificate returns the error. A file that cannot be
// read is then retried with back-off, and a pair not valid yet is served
// from its NotBefore, as after a failed automatic check (see
// CertReloadInterval), even when automatic checks are off. A ClientCAFile
// that holds no certificate, or anything but complete PEM blocks (a file
// caught half-written), keeps the previous CAs, and a malformed
// SessionTicketKeyFile keeps the previous keys. When the server serves
// several listeners with certificate files, each is reloaded and the
// errors are joined.
//
// ReloadCertificate returns ErrNoCertificateFiles if the server serves
// no certificate from files, no ClientCAFile and no SessionTicketKeyFile,
// and
// http.ErrServerClosed after Shutdown or Close. It is safe for concurrent
// use, with itself and with handshakes.
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

// addCertReloader registers r as serving a key pair, the ClientCAFile
// pool or the SessionTicketKeyFile keys of s, for ReloadCertificate; serveTLSConfig calls it once the
// configuration is complete, so a ServeTLS that fails registers nothing.
// The list only grows: a ServeTLS that serves returns only when the server
// stops, and a stopped server cannot be reused.
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

// Retries of a check that failed for a reason other than the content of
// the files (see certReloader): the first comes minReloadRetryDelay after
// the failure, or after the check interval if it is shorter, and each
// further one waits twice as long, up to the check interval or
// maxReloadRetryDelay, whichever is shorter (maxReloadRetryDelay when
// automatic checks are off: a failed ReloadCertificate is retried all the
// same, since its caller will not send another for the same renewal). A
// retry costs what a check that finds a change costs (two stat calls and
// two small reads), its error is logged once however often it repeats
// (see reloadErrorAfter for its level), and while it fails a
// renewal waits and the served certificate ages, so retries never wait
// longer than a normal check, nor longer than a minute when checks are
// rare; the doubling from one second keeps a process short of descriptors
// (EMFILE during a connection flood) from spending them on the files at
// every handshake.
const (
	minReloadRetryDelay = time.Second
	maxReloadRetryDelay = time.Minute
)

// nextReloadRetryDelay returns the wait before the next retry, given the
// previous wait (zero after a check that did not fail so) and the check
// interval (<= 0 if there are no automatic checks).
func nextReloadRetryDelay(prev, interval time.Duration) time.Duration {
	ceiling := maxReloadRetryDelay
	if interval > 0 {
		ceiling = min(interval, maxReloadRetryDelay)
	}
	if prev <= 0 {
		return min(minReloadRetryDelay, ceiling)
	}
	return min(2*prev, ceiling)
}

// reloadErrorAfter is how long a reload must have kept failing for an
// error from the operating system before it is logged at slog.LevelError.
// Before, it is logged at slog.LevelWarn: the errors a routine renewal can
// meet (ENOENT in the middle of a swap, EMFILE for a moment in a
// connection flood) heal at the first retries, a second or two later, and
// must not trip error alerting; one that lasts a minute, five or more
// retries, needs an operator. A minute is also the longest wait between
// two retries (maxReloadRetryDelay), so a failure that persists is logged
// at ERROR within two minutes of its start whatever the check interval.
const reloadErrorAfter = time.Minute

// The expiry warning: when the served certificate has less than
// expiryWarningWindow left and a check finds nothing newer that can be
// served (the files are unchanged, or hold a pair that is rejected, or
// cannot be read), the check logs a warning, at most once per
// expiryWarningEvery.
const (
	// maxExpiryWarningWindow caps expiryWarningWindow, for long-lived
	// certificates.
	maxExpiryWarningWindow = 7 * 24 * time.Hour

	// expiryWarningEvery is the least time between two warnings. Checks
	// run every CertReloadInterval (ten seconds by default); a warning at
	// each would flood the logs for days.
	expiryWarningEvery = time.Hour
)

// expiryWarningWindow returns how long before its NotAfter a served
// certificate leaf makes checks warn: a quarter of its lifetime, at most
// maxExpiryWarningWindow. ACME clients and cert-manager renew when a third
// of the lifetime is left, so a certificate inside the window is one whose
// renewal is late, while days (for a 90-day certificate, seven) remain to
// fix it.
func expiryWarningWindow(leaf *x509.Certificate) time.Duration {
	return min(leaf.NotAfter.Sub(leaf.NotBefore)/4, maxExpiryWarningWindow)
}

// logFunc logs a line at a level; see Server.logAtf.
type logFunc func(level slog.Level, format string, args ...any)

// certReloader serves a key pair loaded from a certificate file and a key
// file, or, for ClientCAFile, a pool of CA certificates loaded from one
// file (keyFile is then empty), or, for SessionTicketKeyFile, session
// ticket keys loaded from one file (see tickets.go), and loads it again
// when the files change.
//
// Changes are found lazily: the first handshake after the interval has
// passed stats the files (after resolving symbolic links, so that the
// Kubernetes secret layout, where ..data is a link swapped to a new
// directory, counts as a change) and, if the target, inode, size, mode,
// modification time or change time (ctime, where the system has one) of
// either differs from the last load, or the last load saw a file modified
// within racyStatWindow, reads them again. Content that hashes as the
// served content's is not parsed again. Handshakes that arrive during a
// check get the current pair without waiting. There is no goroutine to
// stop.
//
// The stamp of the files is recorded only once a load has reached a
// verdict on their content: served, or rejected because it does not
// parse, the key does not match, the certificate has expired or is not
// valid yet. A rejected pair is then logged once, and tried again only
// when the files change (or, for a certificate not valid yet, once it
// is). A load that fails for another reason, an error from the operating
// system (EACCES fixed later with chmod, EMFILE or ENFILE in a connection
// flood, EIO or ESTALE on network storage, ENOENT in the middle of a
// swap), records nothing: the checks that follow retry it with the
// back-off of nextReloadRetryDelay, even when automatic checks are off,
// and its error is logged once at slog.LevelWarn, then once at
// slog.LevelError if it has persisted for reloadErrorAfter.
type certReloader struct {
	// Immutable.
	certFile, keyFile string        // keyFile is empty for a CA or ticket key file
	tickets           *tls.Config   // for a ticket key file, the config its keys are set on; else nil
	interval          time.Duration // between checks; <= 0 means none but retries
	now               func() time.Time
	log               logFunc
	epoch             time.Time // now() at creation; due counts from it

	// The file system, replaced by tests before the first check.
	stat     func(name string) (fileStamp, error)
	readFile func(name string) ([]byte, error)

	// cert is the pair served (nil for a CA file). Never nil after
	// newCertReloader.
	cert atomic.Pointer[tls.Certificate]

	// pool is the CA pool (nil for a pair). Never nil after
	// newCAReloader.
	pool atomic.Pointer[x509.CertPool]

	// config caches the configuration clientConfig returns for pool.
	config atomic.Pointer[poolConfig]

	// keys are the session ticket keys (nil but for a ticket key file).
	// Never nil after newTicketKeyReloader.
	keys atomic.Pointer[ticketKeys]

	// keyed caches the configuration withTicketKeys returns.
	keyed atomic.Pointer[keyedConfig]

	// due is when the next check is due, as a duration since epoch;
	// neverDue if none is.
	due atomic.Int64

	// mu serializes checks and loads, and guards the fields below it.
	mu      sync.Mutex
	stamp   pairStamp // the files as of the last content verdict
	sum     [sha256.Size]byte
	lastErr string        // the last error logged, so that it is logged once
	lastLvl slog.Level    // the level lastErr was logged at
	retry   time.Duration // the back-off after an OS error; 0 if none

	// failingSince is when the OS errors being retried began; zero if
	// the last load or check did not fail so.
	failingSince time.Time

	// notBefore is the NotBefore of a rejected certificate not valid yet:
	// from then on, checks load the files even if they are unchanged.
	notBefore time.Time

	warned time.Time // when the last expiry warning was logged

	// For a ticket key file: the keys that left it and still decrypt,
	// the last of r.keys.Load().all (see expireTicketKeysLocked), and
	// the file's permissions as of the last load (see
	// warnTicketModeLocked).
	retiring []retiringKey
	perm     os.FileMode
}

// newCertReloader loads the pair from certFile and keyFile. As net/http
// would, it serves a certificate that has expired, or is not valid yet,
// with an error logged: at startup there is no other to serve.
func newCertReloader(certFile, keyFile string, interval time.Duration, now func() time.Time, log logFunc) (*certReloader, error) {
	return newReloader(certFile, keyFile, interval, now, log)
}

// newCAReloader loads the CA pool from file.
func newCAReloader(file string, interval time.Duration, now func() time.Time, log logFunc) (*certReloader, error) {
	return newReloader(file, "", interval, now, log)
}

func newReloader(certFile, keyFile string, interval time.Duration, now func() time.Time, log logFunc) (*certReloader, error) {
	return startReloader(&certReloader{
		certFile: certFile,
		keyFile:  keyFile,
		interval: interval,
		now:      now,
		log:      log,
	})
}

// startReloader completes r, whose files, interval, clock, log and (for a
// ticket key file) tickets are set, and makes the first load.
func startReloader(r *certReloader) (*certReloader, error) {
	r.epoch = r.now()
	r.stat = statFile
	r.readFile = os.ReadFile
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.statLocked()
	if err == nil {
		err = r.loadLocked(st)
	}
	if err != nil {
		return nil, err
	}
	r.warnExpiryLocked(true)
	r.scheduleLocked()
	return r, nil
}

// neverDue is the due time of a reloader with nothing to check: automatic
// checks are off, and no retry or certificate not valid yet is pending.
const neverDue = math.MaxInt64

// isCA reports whether r loads a CA file rather than a key pair or
// ticket keys.
func (r *certReloader) isCA() bool { return r.keyFile == "" && r.tickets == nil }

// isTicketKeys reports whether r loads a ticket key file.
func (r *certReloader) isTicketKeys() bool { return r.tickets != nil }

// GetCertificate returns the pair to serve, first checking the files if a
// check is due. It never returns an error and is safe for use as a
// tls.Config.GetCertificate callback.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.checkIfDue()
	return r.cert.Load(), nil
}

// checkIfDue checks the files if a check is due and no other is running:
// a periodic check, a retry, or the load of a certificate refused until
// its NotBefore (see scheduleLocked).
func (r *certReloader) checkIfDue() {
	if r.due.Load() != neverDue && r.now().Sub(r.epoch) >= time.Duration(r.due.Load()) && r.mu.TryLock() {
		// Another handshake may have checked between the Load and the
		// TryLock; then the due time has moved on.
		if r.now().Sub(r.epoch) >= time.Duration(r.due.Load()) {
			r.checkLocked()
			r.scheduleLocked()
		}
		r.mu.Unlock()
	}
}

// reload loads the files whether or not they changed, and returns the
// error if the load fails.
func (r *certReloader) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.scheduleLocked()
	before := r.cert.Load()
	st, err := r.statLocked()
	if err == nil {
		err = r.loadLocked(st)
	}
	if err == nil && r.isTicketKeys() {
		r.expireTicketKeysLocked(st.cert)
	}
	r.reportLocked(err, before)
	return err
}

// scheduleLocked sets the time of the next check: the retry delay after
// an OS error, else the interval from now. Without automatic checks
// (interval <= 0), a certificate refused until its NotBefore is loaded at
// the first handshake from then on, and with nothing pending no check is
// due. Ticket keys that left the file are expired by a check, even
// without automatic checks, when ticketKeysDue says, if that is sooner.
// It requires r.mu.
func (r *certReloader) scheduleLocked() {
	now := r.now().Sub(r.epoch)
	var due time.Duration
	switch {
	case r.retry > 0:
		due = now + r.retry
	case r.interval > 0:
		due = now + r.interval
	case !r.notBefore.IsZero():
		due = max(r.notBefore.Sub(r.epoch), now)
	default:
		due = neverDue
	}
	if r.isTicketKeys() {
		due = min(due, r.ticketKeysDue(now))
	}
	r.due.Store(int64(due))
}

// checkLocked loads the files if they changed since the last content
// verdict, or if a rejected certificate has become valid since. It
// requires r.mu.
func (r *certReloader) checkLocked() {
	before := r.cert.Load()
	st, err := r.statLocked()
	if err == nil {
		pending := !r.notBefore.IsZero() && !r.now().Before(r.notBefore)
		if st.equal(r.stamp) && !pending {
			// The files are as they were at the last verdict on their
			// content: a retry has nothing left to retry, and an OS
			// error that comes back is logged again.
			if r.retry > 0 {
				r.retry = 0
				r.failingSince = time.Time{}
				r.lastErr = ""
			}
			r.warnExpiryLocked(false)
			if r.isTicketKeys() {
				r.expireTicketKeysLocked(st.cert)
			}
			return
		}
		err = r.loadLocked(st)
		if err == nil && r.isTicketKeys() {
			r.expireTicketKeysLocked(st.cert)
		}
	}
	r.reportLocked(err, before)
}

// reportLocked accounts for the result of a load that served before, a
// pair or pool (nil for a CA file): a rejected pair is logged once at
// slog.LevelError; an OS error sets the retry back-off and is logged once
// at slog.LevelWarn, then once more at slog.LevelError when it has
// persisted for reloadErrorAfter. It requires r.mu.
func (r *certReloader) reportLocked(err error, before *tls.Certificate) {
	var content *contentError
	switch {
	case err == nil:
		r.retry = 0
		r.failingSince = time.Time{}
		r.lastErr = ""
	case errors.As(err, &content):
		r.retry = 0
		r.failingSince = time.Time{}
		r.logErrorLocked(err, slog.LevelError, "")
	default:
		now := r.now()
		if r.failingSince.IsZero() {
			r.failingSince = now
		}
		r.retry = nextReloadRetryDelay(r.retry, r.interval)
		level, suffix := slog.LevelWarn, "; retrying"
		if d := now.Sub(r.failingSince); d >= reloadErrorAfter {
			level, suffix = slog.LevelError, fmt.Sprintf("; failing for %v, retrying", d.Round(time.Second))
		}
		r.logErrorLocked(err, level, suffix)
	}
	r.warnExpiryLocked(r.cert.Load() != before)
}

// logErrorLocked logs err at level unless it is the error logged last, at
// that level or a higher one. It requires r.mu.
func (r *certReloader) logErrorLocked(err error, level slog.Level, suffix string) {
	msg := err.Error()
	if msg == r.lastErr && level <= r.lastLvl {
		return
	}
	r.lastErr, r.lastLvl = msg, level
	if r.isTicketKeys() {
		r.log(level, "httpsrv: session ticket key reload failed, still using the previous keys%s: %v", suffix, err)
		return
	}
	if r.isCA() {
		r.log(level, "httpsrv: ClientCAFile reload failed, still using the previous CAs%s: %v", suffix, err)
		return
	}
	r.log(level, "httpsrv: certificate reload failed, still serving the previous certificate%s: %v", suffix, err)
}

// warnExpiryLocked logs a warning if the served certificate is within
// expiryWarningWindow of its expiry, at most once per expiryWarningEvery.
// It is called when a check or load has found nothing newer to serve, or
// served something that is itself close to expiry: loaded is then true,
// and the warning says so, whenever the last one was logged (loads of new
// content are rare, and each is logged). It requires r.mu.
func (r *certReloader) warnExpiryLocked(loaded bool) {
	cur := r.cert.Load()
	if cur == nil {
		return
	}
	now := r.now()
	leaf := cur.Leaf
	left := leaf.NotAfter.Sub(now)
	if left > expiryWarningWindow(leaf) || (!loaded && !r.warned.IsZero() && now.Sub(r.warned) < expiryWarningEvery) {
		return
	}
	r.warned = now
	if loaded && left >= 0 {
		r.log(slog.LevelWarn, "httpsrv: certificate just loaded from %s (serial %x) expires at %v, in %v; renew it",
			r.certFile, leaf.SerialNumber, leaf.NotAfter, left.Round(time.Second))
		return
	}
	if left < 0 {
		r.log(slog.LevelWarn, "httpsrv: certificate served from %s (serial %x) expired at %v and no valid renewal could be loaded",
			r.certFile, leaf.SerialNumber, leaf.NotAfter)
		return
	}
	r.log(slog.LevelWarn, "httpsrv: certificate served from %s (serial %x) expires at %v, in %v, and no newer one could be loaded",
		r.certFile, leaf.SerialNumber, leaf.NotAfter, left.Round(time.Second))
}

// contentError is a load's verdict on the content of the files, as
// opposed to an error reading them.
type contentError struct{ err error }

func (e *contentError) Error() string { return e.err.Error() }
func (e *contentError) Unwrap() error { return e.err }

func contentErrorf(format string, args ...any) error {
	return &contentError{fmt.Errorf(format, args...)}
}

// loadLocked reads the files, whose stat is st, and serves their content
// if it differs from the content served and is valid. Once the content is
// read, whatever the verdict, st is recorded. The error is a
// *contentError if the content is rejected, and an error from the file
// system otherwise. It requires r.mu.
func (r *certReloader) loadLocked(st pairStamp) error {
	certPEM, err := r.readFile(r.certFile)
	if err != nil {
		if r.isTicketKeys() {
			return fmt.Errorf("httpsrv: reading SessionTicketKeyFile: %w", err)
		}
		if r.isCA() {
			return fmt.Errorf("httpsrv: reading ClientCAFile: %w", err)
		}
		return fmt.Errorf("httpsrv: reading certificate: %w", err)
	}
	var keyPEM []byte
	if r.keyFile != "" {
		if keyPEM, err = r.readFile(r.keyFile); err != nil {
			return fmt.Errorf("httpsrv: reading key: %w", err)
		}
	}
	// The files are read: what follows is a verdict on their content.
	r.stamp = st
	h := sha256.New()
	fmt.Fprintf(h, "%d\n", len(certPEM))
	h.Write(certPEM)
	h.Write(keyPEM)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if sum == r.sum {
		// Same content as served, e.g. touched or copied again. A
		// certificate not valid yet is no longer pending. A ticket key
		// file's mode may have changed.
		r.notBefore = time.Time{}
		if r.isTicketKeys() {
			r.warnTicketModeLocked(st.cert)
		}
		return nil
	}
	if r.isTicketKeys() {
		return r.applyTicketKeysLocked(certPEM, sum, st.cert)
	}
	if r.isCA() {
		return r.applyPoolLocked(certPEM, sum)
	}
	return r.applyPairLocked(certPEM, keyPEM, sum)
}

// applyPoolLocked serves the CA pool in pemCerts if it is a valid bundle
// (see parseCABundle). It requires r.mu.
func (r *certReloader) applyPoolLocked(pemCerts []byte, sum [sha256.Size]byte) error {
	pool, err := parseCABundle(pemCerts)
	if err != nil {
		return &contentError{fmt.Errorf("httpsrv: ClientCAFile %s %w", r.certFile, err)}
	}
	first := r.pool.Load() == nil
	r.pool.Store(pool)
	r.sum = sum
	if !first {
		r.log(slog.LevelInfo, "httpsrv: reloaded client CAs from %s", r.certFile)
	}
	return nil
}

// parseCABundle returns the pool of the CERTIFICATE blocks in data, a
// ClientCAFile; its errors read after the file's name. Unlike
// x509.CertPool.AppendCertsFromPEM, which skips what it cannot parse and
// succeeds if one certificate parsed, it refuses a bundle with a block
// that does not decode or a certificate that does not parse, or with
// anything but white space after the last block: a file caught
// half-written (one CA complete, the next cut in the middle) would
// otherwise shrink the pool silently, and every client of the missing CAs
// be refused. Text before a block (the comments of some bundles) and
// blocks of other types, or with headers, are skipped, as
// AppendCertsFromPEM skips them.
func parseCABundle(data []byte) (*x509.CertPool, error) {
	begin := []byte("-----BEGIN ")
	pool := x509.NewCertPool()
	blocks, n := 0, 0
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			if blocks == 0 && !bytes.Contains(data, begin) {
				break // "holds no PEM certificate"
			}
			if len(bytes.TrimSpace(data)) != 0 {
				return nil, errors.New("ends in data that is not a complete PEM block (truncated, or being written?)")
			}
			break
		}
		blocks++
		// pem.Decode skips a block it cannot decode and returns the next
		// one: more than one BEGIN line in what it consumed means it did.
		if bytes.Count(data[:len(data)-len(rest)], begin) > 1 {
			return nil, errors.New("has a PEM block that does not decode (truncated, or being written?)")
		}
		data = rest
		if block.Type != "CERTIFICATE" || len(block.Headers) != 0 {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("has a certificate that does not parse (number %d in the file): %w", n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New("holds no PEM certificate")
	}
	return pool, nil
}

// applyPairLocked serves the key pair in certPEM and keyPEM if it is
// valid. It requires r.mu.
func (r *certReloader) applyPairLocked(certPEM, keyPEM []byte, sum [sha256.Size]byte) error {
	r.notBefore = time.Time{}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return contentErrorf("httpsrv: loading key pair from %s and %s: %w", r.certFile, r.keyFile, err)
	}
	if cert.Leaf == nil { // GODEBUG=x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return contentErrorf("httpsrv: parsing certificate in %s: %w", r.certFile, err)
		}
	}
	now := r.now()
	cur := r.cert.Load()
	// A certificate not valid yet would be rejected by every client (whose
	// clock is right); the one served is better while it is valid, since
	// this one will be valid at NotBefore and is loaded then. There is no
	// allowance for clock skew: CAs set NotBefore in the past to allow for
	// clients' clocks (Let's Encrypt by an hour), and an allowance here
	// would serve a certificate issued with NotBefore now to clients whose
	// clocks are a little behind, who would reject it. An expired one is
	// not better: every client rejects it, while the renewal is accepted
	// by those whose clocks have passed its NotBefore (all of them, if
	// this host's clock is the one behind), so it is served at once, as at
	// startup when there is nothing else to serve.
	if now.Before(cert.Leaf.NotBefore) {
		switch {
		case cur == nil:
			r.log(slog.LevelError, "httpsrv: serving certificate from %s that is not valid until %v", r.certFile, cert.Leaf.NotBefore)
		case now.After(cur.Leaf.NotAfter):
			r.log(slog.LevelError, "httpsrv: serving certificate from %s that is not valid until %v: the one it replaces expired at %v",
				r.certFile, cert.Leaf.NotBefore, cur.Leaf.NotAfter)
		default:
			r.notBefore = cert.Leaf.NotBefore
			return contentErrorf("httpsrv: certificate in %s is not valid until %v; keeping the current one until then",
				r.certFile, cert.Leaf.NotBefore)
		}
	}
	if expired := now.After(cert.Leaf.NotAfter); expired {
		if cur != nil && !now.After(cur.Leaf.NotAfter) {
			return contentErrorf("httpsrv: certificate in %s expired at %v; keeping the current one, valid until %v",
				r.certFile, cert.Leaf.NotAfter, cur.Leaf.NotAfter)
		}
		r.log(slog.LevelError, "httpsrv: serving certificate from %s that expired at %v", r.certFile, cert.Leaf.NotAfter)
	}
	r.cert.Store(&cert)
	r.sum = sum
	if cur != nil {
		r.log(slog.LevelInfo, "httpsrv: reloaded certificate from %s: serial %x, valid until %v",
			r.certFile, cert.Leaf.SerialNumber, cert.Leaf.NotAfter)
	}
	return nil
}

// poolConfig is a configuration clientConfig made for a pool.
type poolConfig struct {
	pool   *x509.CertPool
	config *tls.Config
}

// clientConfig returns the configuration for a handshake, a CA reloader's
// tls.Config.GetConfigForClient: base with ClientCAs set to the current
// pool, after checking the file if a check is due. crypto/tls uses
// ClientCAs of the configuration GetConfigForClient returns both for the
// list of CAs in the CertificateRequest and to verify the client's
// certificate, and on resumption checks that the session's verified chain
// still ends in one of them (Go 1.25.6 and later); verifyConnection makes
// that check too, for earlier releases. Session tickets keep working: the
// returned configuration sets no ticket keys, so crypto/tls uses base's.
// The configuration is built once per pool.
func (r *certReloader) clientConfig(base *tls.Config) *tls.Config {
	r.checkIfDue()
	pool := r.pool.Load()
	if pc := r.config.Load(); pc != nil && pc.pool == pool {
		return pc.config
	}
	c := base.Clone()
	c.GetConfigForClient = nil // not called on a returned configuration
	r.setClientCAs(c, pool)
	r.config.Store(&poolConfig{pool: pool, config: c})
	return c
}

// setClientCAs sets c, a configuration for one handshake, to require and
// verify client certificates against pool, the current one if nil.
func (r *certReloader) setClientCAs(c *tls.Config, pool *x509.CertPool) {
	if pool == nil {
		r.checkIfDue()
		pool = r.pool.Load()
	}
	c.ClientAuth = tls.RequireAndVerifyClientCert
	c.ClientCAs = pool
	if !tlsChecksResumedClientCAs {
		c.VerifyConnection = verifyResumedChain(pool, r.now, c.VerifyConnection)
	}
}

// tlsChecksResumedClientCAs reports whether crypto/tls, as of the Go
// release running, declines to resume a session whose client certificate
// chain no longer verifies against the ClientCAs of the handshake's
// configuration (it makes a full handshake instead): Go 1.25.6 and later
// 1.25 releases, and 1.26.0 and later. Pre-releases of 1.26 and
// development builds are not assumed to, and get verifyResumedChain, an
// x509 verification per resumed handshake.
var tlsChecksResumedClientCAs = checksResumedClientCAs(runtime.Version())

func checksResumedClientCAs(v string) bool {
	if version.Lang(v) == "go1.25" {
		return version.Compare(v, "go1.25.6") >= 0
	}
	return version.Compare(v, "go1.26.0") >= 0
}

// verifyResumedChain returns a tls.Config.VerifyConnection that refuses a
// resumed session whose client certificate chain does not end in a CA of
// pool (one removed from ClientCAFile since the session was established),
// and then calls next if it is not nil. Full handshakes were verified
// against pool by crypto/tls.
func verifyResumedChain(pool *x509.CertPool, now func() time.Time, next func(tls.ConnectionState) error) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if cs.DidResume && !anyChainRootedIn(cs.VerifiedChains, pool, now()) {
			return errors.New("httpsrv: resumed session's client certificate is not from a CA of ClientCAFile")
		}
		if next != nil {
			return next(cs)
		}
		return nil
	}
}

// anyChainRootedIn reports whether the last certificate of one of chains
// is in pool (verifying a certificate of the pool against it finds it
// there).
func anyChainRootedIn(chains [][]*x509.Certificate, pool *x509.CertPool, now time.Time) bool {
	opts := x509.VerifyOptions{
		Roots:       pool,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, chain := range chains {
		if len(chain) == 0 {
			continue
		}
		if _, err := chain[len(chain)-1].Verify(opts); err == nil {
			return true
		}
	}
	return false
}

// pairStamp is what a check compares: the state of both files (for a CA
// file, of the one file twice).
type pairStamp struct {
	cert, key fileStamp
}

func (a pairStamp) equal(b pairStamp) bool {
	return a.cert.equal(b.cert) && a.key.equal(b.key)
}

// statLocked stats the files. It requires r.mu.
func (r *certReloader) statLocked() (pairStamp, error) {
	what := "certificate file"
	if r.isCA() {
		what = "ClientCAFile"
	} else if r.isTicketKeys() {
		what = "SessionTicketKeyFile"
	}
	c, err := r.stat(r.certFile)
	if err != nil {
		return pairStamp{}, fmt.Errorf("httpsrv: checking %s: %w", what, err)
	}
	if r.keyFile == "" {
		return pairStamp{cert: c, key: c}, nil
	}
	k, err := r.stat(r.keyFile)
	if err != nil {
		return pairStamp{}, fmt.Errorf("httpsrv: checking %s: %w", what, err)
	}
	return pairStamp{cert: c, key: k}, nil
}

// fileStamp identifies the content of a file cheaply: the path it resolves
// to after symbolic links, and the stat of that target.
type fileStamp struct {
	path  string
	info  os.FileInfo // nil in the zero stamp
	ctime time.Time   // the inode change time; zero where fileCtime has none

	// racy is set when the file was modified so shortly before the stat
	// that a later write could leave size and modification time unchanged
	// (file systems store times at a coarse granularity, up to two
	// seconds). A racy stamp never compares equal, so the next check reads
	// the file; the idea is Git's "racy clean" index entries.
	racy bool
}

// racyStatWindow is how recent a modification time makes a stamp racy.
const racyStatWindow = 3 * time.Second

// statFile is the stat of certReloader.
func statFile(name string) (fileStamp, error) {
	path, err := filepath.EvalSymlinks(name)
	if err != nil {
		return fileStamp{}, err
	}
	info, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	// The file system's clock is the real one, whatever clock the
	// reloader was given.
	racy := time.Since(info.ModTime()) < racyStatWindow
	return fileStamp{path: path, info: info, ctime: fileCtime(info), racy: racy}, nil
}

// equal reports whether a, the earlier stamp, and b describe the same file
// content, as far as stat can tell: same target path, same file (device
// and inode on Unix), same size, mode, modification and change times, and
// a not racy. The change time catches what the others miss: a chmod or
// chown (after which a file that could not be read can be), and a write
// followed by setting the modification time back.
func (a fileStamp) equal(b fileStamp) bool {
	if a.info == nil || b.info == nil || a.racy {
		return false
	}
	return a.path == b.path && os.SameFile(a.info, b.info) &&
		a.info.Size() == b.info.Size() && a.info.Mode() == b.info.Mode() &&
		a.info.ModTime().Equal(b.info.ModTime()) && a.ctime.Equal(b.ctime)
}
