package httpsrv

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Shared session ticket keys: the certReloader of SessionTicketKeyFile
// (certreload.go does the checks, retries and logging) and the ways its
// keys reach every configuration a handshake can use.
//
// crypto/tls encrypts tickets with the first key of the configuration a
// handshake started with (the base one, ServeTLS's), unless the
// configuration its GetConfigForClient returned sets keys of its own:
//
//   - The base configuration gets the keys with SetSessionTicketKeys, at
//     startup and on each reload; crypto/tls allows that while serving.
//   - A configuration the caller's GetConfigForClient returns is cloned by
//     configAdditions.forClient, which sets the keys on the clone, so that
//     keys of its own (its SessionTicketKey, or SetSessionTicketKeys on
//     the caller's config it was cloned from) never take over.
//   - The configuration of ClientCAFile's GetConfigForClient is a clone of
//     the base made once per CA pool (certReloader.clientConfig), which
//     holds the base's keys as of that moment; withTicketKeys replaces
//     them with the current ones.
//
// The base's GetConfigForClient, which every handshake calls first, checks
// the file when a check is due (see serveTLSConfig), so that rotated keys
// are in use by the time crypto/tls picks the keys for the handshake.

// ticketKeySize is the size of a key of SessionTicketKeyFile, and of the
// keys tls.Config.SetSessionTicketKeys takes.
const ticketKeySize = 32

// ticketKeys are the keys of a SessionTicketKeyFile as loaded, and those
// that left it and still decrypt. Immutable.
type ticketKeys struct {
	keys [][ticketKeySize]byte // the file's; the first encrypts; never empty
	all  [][ticketKeySize]byte // keys, then the retiring ones: what configurations get
}

// retiringKey is a key that has left the SessionTicketKeyFile and still
// decrypts; see expireTicketKeysLocked.
type retiringKey struct {
	key  [ticketKeySize]byte
	left time.Time // when a load first found it gone, on the reloader's clock
}

// ticketKeyGrace is the shortest time a key that leaves the file keeps
// decrypting. A rotation written in place (os.WriteFile, a shell's >) can
// be read between two of its lines, a valid file that lacks the keys
// below: the keys it lacks must not stop decrypting at once, or every
// session issued under the previous first key would need a full handshake
// until the next check. racyStatWindow is also how long the file must have
// been left unmodified before a check trusts that it lacks them.
const ticketKeyGrace = racyStatWindow

// newTicketKeyReloader loads the keys of file and sets them on base,
// which it sets again on each reload.
func newTicketKeyReloader(file string, base *tls.Config, interval time.Duration, now func() time.Time, log logFunc) (*certReloader, error) {
	return startReloader(&certReloader{
		certFile: file,
		tickets:  base,
		interval: interval,
		now:      now,
		log:      log,
	})
}

// applyTicketKeysLocked serves the keys in data, the content of the file
// whose stamp is st, if it is a valid key file (see parseTicketKeys). The
// keys served until now that data lacks keep decrypting for now: see
// expireTicketKeysLocked. It requires r.mu.
func (r *certReloader) applyTicketKeysLocked(data []byte, sum [sha256.Size]byte, st fileStamp) error {
	keys, err := parseTicketKeys(data)
	if err != nil {
		return &contentError{fmt.Errorf("httpsrv: SessionTicketKeyFile %s %w", r.certFile, err)}
	}
	cur := r.keys.Load()
	now := r.now()
	var retiring []retiringKey
	if cur != nil {
		// The keys of cur.all that data lacks, in their order, each
		// with the time it first left the file.
		for i, k := range cur.all {
			if slices.Contains(keys, k) || slices.ContainsFunc(retiring, func(rk retiringKey) bool { return rk.key == k }) {
				continue
			}
			left := now
			if j := i - len(cur.keys); j >= 0 {
				left = r.retiring[j].left
			}
			retiring = append(retiring, retiringKey{key: k, left: left})
		}
	}
	r.setTicketKeysLocked(keys, retiring)
	r.sum = sum
	r.warnTicketModeLocked(st)
	if cur != nil {
		msg := ""
		if n := len(retiring); n > 0 {
			msg = fmt.Sprintf("; %d keys no longer in the file still decrypt for at least %v, until a check finds the file unmodified for %v (%s)",
				n, ticketKeyGrace, racyStatWindow, retiringKeyIDs(retiring))
		}
		r.log(slog.LevelInfo, "httpsrv: reloaded session ticket keys from %s: %d keys, new tickets under key %s%s",
			r.certFile, len(keys), ticketKeyID(keys[0]), msg)
	}
	return nil
}

// setTicketKeysLocked serves keys, the file's, and retiring, and sets them
// on the base configuration. It requires r.mu.
func (r *certReloader) setTicketKeysLocked(keys [][ticketKeySize]byte, retiring []retiringKey) {
	all := slices.Clip(keys)
	for _, rk := range retiring {
		all = append(all, rk.key)
	}
	r.retiring = retiring
	r.keys.Store(&ticketKeys{keys: keys, all: all})
	r.tickets.SetSessionTicketKeys(all)
}

// expireTicketKeysLocked stops the keys that left the file from
// decrypting, once they have been gone for ticketKeyGrace and st, the
// stat of the check or load that just found the file (valid) without
// them, shows it unmodified for racyStatWindow: a rewrite in progress
// would have modified it since. It requires r.mu.
func (r *certReloader) expireTicketKeysLocked(st fileStamp) {
	if len(r.retiring) == 0 || st.racy {
		return
	}
	now := r.now()
	var keep, gone []retiringKey
	for _, rk := range r.retiring {
		if now.Sub(rk.left) >= ticketKeyGrace {
			gone = append(gone, rk)
		} else {
			keep = append(keep, rk)
		}
	}
	if len(gone) == 0 {
		return
	}
	r.setTicketKeysLocked(r.keys.Load().keys, keep)
	r.log(slog.LevelInfo, "httpsrv: session ticket keys removed from %s no longer decrypt: %s", r.certFile, retiringKeyIDs(gone))
}

// ticketKeysDue returns when, as a duration since r.epoch, a check must
// run to expire the retiring keys (see expireTicketKeysLocked), or
// neverDue if there are none: ticketKeyGrace after the first left, or,
// once that has passed (the file was still being modified),
// minReloadRetryDelay after now, the current time as a duration since
// r.epoch, so that such a file is not stat'ed by every handshake. It
// requires r.mu.
func (r *certReloader) ticketKeysDue(now time.Duration) time.Duration {
	if len(r.retiring) == 0 {
		return neverDue
	}
	first := r.retiring[0].left
	for _, rk := range r.retiring[1:] {
		if rk.left.Before(first) {
			first = rk.left
		}
	}
	if at := first.Sub(r.epoch) + ticketKeyGrace; at > now {
		return at
	}
	return now + minReloadRetryDelay
}

// warnTicketModeLocked logs a warning if the key file, whose stamp is
// st, can be read by users other than its owner, once per change of its
// mode: at the first load, and when a check finds the mode changed. It
// requires r.mu.
func (r *certReloader) warnTicketModeLocked(st fileStamp) {
	if st.info == nil || runtime.GOOS == "windows" {
		return
	}
	perm := st.info.Mode().Perm()
	if perm == r.perm {
		return
	}
	r.perm = perm
	if perm&0o077 != 0 {
		r.log(slog.LevelWarn, "httpsrv: SessionTicketKeyFile %s can be read by users other than its owner (mode %v); whoever reads the keys can decrypt the session tickets they encrypt: make it mode 0600 or 0400",
			r.certFile, perm)
	}
}

// retiringKeyIDs returns the ticketKeyID of each key of rks, for logs.
func retiringKeyIDs(rks []retiringKey) string {
	ids := make([]string, len(rks))
	for i, rk := range rks {
		ids[i] = ticketKeyID(rk.key)
	}
	return "key " + strings.Join(ids, ", ")
}

// parseTicketKeys returns the keys of a SessionTicketKeyFile: one key per
// line, the standard base64 encoding (with padding) of 32 bytes; blank
// lines and lines whose first non-blank character is '#' are skipped, and
// space around a key is ignored. A line that does not decode, or decodes
// to another size or to 32 zero bytes (a placeholder, not a key), fails
// the whole file, as does a file without a key: a file caught
// half-written must not replace the keys in use. The errors read after the
// file's name, give line numbers, and never quote a line, which may be a
// key.
func parseTicketKeys(data []byte) ([][ticketKeySize]byte, error) {
	var keys [][ticketKeySize]byte
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		enc := base64.StdEncoding.Strict()
		if want := enc.EncodedLen(ticketKeySize); len(line) != want {
			return nil, fmt.Errorf("line %d: %d characters, want %d, the base64 of %d bytes as openssl rand -base64 %d prints (truncated, or being written?)",
				i+1, len(line), want, ticketKeySize, ticketKeySize)
		}
		var buf [ticketKeySize + 2]byte
		n, err := enc.Decode(buf[:], line)
		if err != nil || n != ticketKeySize {
			return nil, fmt.Errorf("line %d is not the base64 of %d bytes", i+1, ticketKeySize)
		}
		var key [ticketKeySize]byte
		copy(key[:], buf[:n])
		if key == [ticketKeySize]byte{} {
			return nil, fmt.Errorf("line %d: the key is all zeros", i+1)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("holds no key (empty, or being written?)")
	}
	return keys, nil
}

// ticketKeyID returns a short name for key, for logs: the start of a
// SHA-256 hash of it, so that operators can compare the keys of several
// servers without the log revealing them.
func ticketKeyID(key [ticketKeySize]byte) string {
	h := sha256.New()
	h.Write([]byte("httpsrv session ticket key id\n"))
	h.Write(key[:])
	return fmt.Sprintf("%x", h.Sum(nil)[:4])
}

// setTicketKeys sets the current keys on c, a configuration for one
// handshake that nothing else uses.
func (r *certReloader) setTicketKeys(c *tls.Config) {
	c.SetSessionTicketKeys(r.keys.Load().all)
}

// keyedConfig is a configuration withTicketKeys made.
type keyedConfig struct {
	src    *tls.Config
	keys   *ticketKeys
	config *tls.Config
}

// withTicketKeys returns src, a configuration shared by handshakes, if r
// is nil, and else a clone of src with the current keys of r. The clone
// is made once per src and keys.
func withTicketKeys(r *certReloader, src *tls.Config) *tls.Config {
	if r == nil {
		return src
	}
	keys := r.keys.Load()
	if kc := r.keyed.Load(); kc != nil && kc.src == src && kc.keys == keys {
		return kc.config
	}
	c := src.Clone()
	c.SetSessionTicketKeys(keys.all)
	r.keyed.Store(&keyedConfig{src: src, keys: keys, config: c})
	return c
}
