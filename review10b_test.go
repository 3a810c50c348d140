package httpsrv

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReview10bTicketKeyFileEdges: the key file removed, or the caller's
// TLSConfig.SessionTicketKey set, leaves the file's keys in use.
func TestReview10bTicketKeyFileEdges(t *testing.T) {
	for _, version := range ticketVersions {
		t.Run("removed/"+tls.VersionName(version), func(t *testing.T) {
			f := newTicketFixture(t, ticketSetups[0], version)
			key := newTicketKey(t)
			dir := t.TempDir()
			fileA := writeTicketKeys(t, dir, "a.keys", key)
			a, addrA := f.start(t, fileA, nil)
			_, addrB := f.start(t, writeTicketKeys(t, dir, "b.keys", key), nil)
			f.client.resumed(t, addrA, nil) // A serves: its file is loaded
			require.NoError(t, os.Remove(filepath.Join(dir, "a.keys")))
			assert.Error(t, a.ReloadCertificate())
			c := newOnceCache()
			require.False(t, f.client.resumed(t, addrA, c))
			assert.True(t, f.client.resumed(t, addrB, c), "A's session after its file was removed not resumed on B")
		})
		t.Run("SessionTicketKey/"+tls.VersionName(version), func(t *testing.T) {
			f := newTicketFixture(t, ticketSetups[0], version)
			key := newTicketKey(t)
			dir := t.TempDir()
			_, addrA := f.start(t, writeTicketKeys(t, dir, "a.keys", key), func(s *Server) {
				//lint:ignore SA1019 the deprecated field is what the file's keys must take precedence over.
				s.TLSConfig = &tls.Config{SessionTicketKey: [32]byte{1, 2, 3}}
			})
			_, addrB := f.start(t, writeTicketKeys(t, dir, "b.keys", key), nil)
			c := newOnceCache()
			require.False(t, f.client.resumed(t, addrA, c))
			assert.True(t, f.client.resumed(t, addrB, c))
		})
	}
}
