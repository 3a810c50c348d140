package httpsrv

import (
	"crypto/tls"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Review of issue 10 items 2 and 3 (SessionTicketKeyFile, ReusePort). Each
// test below fails on the branch under review and describes the behaviour
// expected once the defect is fixed.

// wrapSessionConfig returns a TLSConfig whose WrapSession and
// UnwrapSession add application data to the session and then delegate to
// the config's own EncryptTicket and DecryptTicket, the use crypto/tls
// documents for them ("It can be used as a Config.WrapSession
// implementation"). Each call returns a new config, as each process of a
// fleet has its own.
func wrapSessionConfig() *tls.Config {
	cfg := new(tls.Config)
	cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		ss.Extra = append(ss.Extra, []byte("app data"))
		return cfg.EncryptTicket(cs, ss)
	}
	cfg.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		return cfg.DecryptTicket(identity, cs)
	}
	return cfg
}

// TestReviewTicketsWrapSessionIgnoresKeyFile: a caller's TLSConfig sets
// WrapSession/UnwrapSession delegating to its own EncryptTicket and
// DecryptTicket (to put application data in the ticket). crypto/tls then
// never uses the ticket keys of the handshake (c.ticketKeys), only the
// callbacks, and those encrypt with the caller's config, which httpsrv
// cloned and never gave the file's keys: the config's own automatic keys,
// different in every process. So SessionTicketKeyFile is silently inert:
// ServeTLS succeeds, the doc promises "the keys apply to every
// handshake", and yet no session resumes on another instance, in TLS 1.2
// and 1.3. The same ServeTLS refuses SessionTicketsDisabled, the other
// setting that makes the file useless.
//
// Expected: either ServeTLS refuses SessionTicketKeyFile together with
// TLSConfig.WrapSession or UnwrapSession (an error naming them), or the
// keys apply (a session from A resumes on B). Fails on every run, both
// versions: ServeTLS serves and B does not resume A's session.
func TestReviewTicketsWrapSessionIgnoresKeyFile(t *testing.T) {
	for _, version := range ticketVersions {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			dir := t.TempDir()
			file := writeTicketKeys(t, dir, "shared.keys", newTicketKey(t))

			probe := &Server{SessionTicketKeyFile: file, TLSConfig: wrapSessionConfig(), ErrorLog: discardLogger()}
			if _, err := probe.serveTLSConfig(testCertFile, testKeyFile); err != nil {
				assert.Contains(t, err.Error(), "WrapSession", "refused, but the error does not say why")
				return
			}

			f := newTicketFixture(t, ticketSetups[0], version)
			wrap := func(s *Server) { s.TLSConfig = wrapSessionConfig() }
			_, addrA := f.start(t, file, wrap)
			_, addrB := f.start(t, file, wrap)
			cache := newOnceCache()
			require.False(t, f.client.resumed(t, addrA, cache), "first connection resumed")
			require.True(t, f.client.resumed(t, addrA, cache), "session not resumed on the server that issued it: the test's WrapSession is broken")
			assert.True(t, f.client.resumed(t, addrB, cache),
				"ServeTLS accepted SessionTicketKeyFile with TLSConfig.WrapSession/UnwrapSession, but the file's keys are not used: a session from A does not resume on B")
		})
	}
}

// TestReviewTicketsRewriteCutBetweenLines: the rotation the doc
// prescribes (put the new key first, keep the old one) done the way most
// tools do it, a truncating rewrite in place (os.WriteFile, shell `>`,
// `{ echo $new; cat old; } > file`, ExampleServer_sessionTicketKeyFile
// itself), is caught by a check after its first line: the file then holds
// "new\n", a valid one-key file. A line-oriented writer can only be caught
// at line boundaries, so the partial-line checks of parseTicketKeys catch
// nothing there ("that catches most files caught half-written" does not
// hold for them). The reloader serves [new] alone: the previous
// encrypting key, under which every ticket of the fleet was issued, is
// dropped, and every client resuming on this instance gets a full
// handshake until the next check sees the finished file (CertReloadInterval,
// 10 s by default; with checks off, until the next ReloadCertificate; if
// the writer died after the first line, for good). The reloader already
// knows the file is "racy" (modified within racyStatWindow of the stat) and
// re-reads it at the next check, but serves what it read in the meantime.
//
// Expected: an automatic check does not serve a key file that may still be
// being written (modified within racyStatWindow), or keys that leave the
// file keep decrypting for a while, so the session issued under the old
// key resumes. Fails on every run (deterministic: the resuming handshake's
// own check loads the cut file first).
func TestReviewTicketsRewriteCutBetweenLines(t *testing.T) {
	for _, version := range ticketVersions {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			f := newTicketFixture(t, ticketSetups[0], version)
			oldKey, newKey := newTicketKey(t), newTicketKey(t)
			dir := t.TempDir()
			file := writeTicketKeys(t, dir, "shared.keys", oldKey)
			// Every handshake checks, as the first one after a 10 s
			// interval would.
			_, addr := f.start(t, file, func(s *Server) { s.CertReloadInterval = time.Nanosecond })
			cache := newOnceCache()
			require.False(t, f.client.resumed(t, addr, cache), "first connection resumed")
			require.True(t, f.client.resumed(t, addr, cache), "session not resumed before the rotation")

			// `{ echo "$new"; cat old.keys; } > shared.keys`, caught
			// between its two writes.
			require.NoError(t, os.WriteFile(file, []byte(newKey+"\n"), 0o600))
			assert.True(t, f.client.resumed(t, addr, cache),
				"a rotation rewritten in place and caught after its first line dropped the previous encrypting key: the session issued under it no longer resumes")
			// The writer finishes.
			require.NoError(t, os.WriteFile(file, []byte(newKey+"\n"+oldKey+"\n"), 0o600))
		})
	}
}

// TestReviewTicketsPermissionWarningAfterChmod: the doc says a
// SessionTicketKeyFile others can read "is served, with a warning
// logged". The mode is only looked at when the content changes
// (applyTicketKeysLocked): a key file made readable by everyone after
// startup (chmod 644, a deploy tool resetting modes, a Kubernetes
// defaultMode change that keeps the content) is re-read (the ctime
// changed) and, since its content is the same, served on with no warning,
// whether by an automatic check or by ReloadCertificate.
//
// Expected: a load that finds the served keys in a file others can read
// warns, whether or not the content changed (once per mode change is
// enough). Fails on every run: no warning.
func TestReviewTicketsPermissionWarningAfterChmod(t *testing.T) {
	f := newTicketFixture(t, ticketSetups[0], tls.VersionTLS13)
	dir := t.TempDir()
	file := writeTicketKeys(t, dir, "shared.keys", newTicketKey(t))
	var lines *syncBuffer
	srv, addr := f.start(t, file, func(s *Server) { s.ErrorLog, lines = newTestLogger() })
	f.client.resumed(t, addr, nil) // serving
	require.NotContains(t, lines.String(), "can be read by users other than its owner", "warned about a 0600 file")

	require.NoError(t, os.Chmod(file, 0o644))
	require.NoError(t, srv.ReloadCertificate())
	assert.Contains(t, lines.String(), "can be read by users other than its owner",
		"the key file became world-readable and was reloaded, but no warning was logged: %s", lines)
}
