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

// Certificate hot reload: the certReloader behind ServeTLS's certificate
// files, ReloadCertificate, and the CA pool loaded from ClientCAFile.

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
