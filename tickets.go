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

// ticketKeys are the keys of a SessionTicketKeyFile as loaded. Immutable.
type ticketKeys struct {
	keys [][ticketKeySize]byte // the first encrypts; never empty
}

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
// whose stamp is st, if it is a valid key file (see parseTicketKeys). It
// requires r.mu.
func (r *certReloader) applyTicketKeysLocked(data []byte, sum [sha256.Size]byte, st fileStamp) error {
	keys, err := parseTicketKeys(data)
	if err != nil {
		return &contentError{fmt.Errorf("httpsrv: SessionTicketKeyFile %s %w", r.certFile, err)}
	}
	first := r.keys.Load() == nil
	r.keys.Store(&ticketKeys{keys: keys})
	r.tickets.SetSessionTicketKeys(keys)
	r.sum = sum
	if st.info != nil && runtime.GOOS != "windows" && st.info.Mode().Perm()&0o077 != 0 {
		r.log(slog.LevelWarn, "httpsrv: SessionTicketKeyFile %s can be read by users other than its owner (mode %v); whoever reads the keys can decrypt the session tickets they encrypt: make it mode 0600 or 0400",
			r.certFile, st.info.Mode().Perm())
	}
	if !first {
		r.log(slog.LevelInfo, "httpsrv: reloaded session ticket keys from %s: %d keys, new tickets under key %s",
			r.certFile, len(keys), ticketKeyID(keys[0]))
	}
	return nil
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
	c.SetSessionTicketKeys(r.keys.Load().keys)
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
	c.SetSessionTicketKeys(keys.keys)
	r.keyed.Store(&keyedConfig{src: src, keys: keys, config: c})
	return c
}
