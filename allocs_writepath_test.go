//go:build !race

package httpsrv

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestHTTP1LargeResponseAllocs guards the response write path: a keep-alive
// GET of 64 KiB, written under the response rate floor (the default) in one
// Write, costs fewer allocations than on net/http (17 against 24 when the
// write became one timed by windows; the 4 KiB pieces before cost 24).
func TestHTTP1LargeResponseAllocs(t *testing.T) {
	ours, oracle, _, _ := startCountingServers(t, &Server{})
	req := []byte("GET /64k HTTP/1.1\r\nHost: localhost\r\n\r\n")
	got := h1AllocsPerRequest(t, ours, req)
	want := h1AllocsPerRequest(t, oracle, req)
	t.Logf("allocs per 64 KiB response: httpsrv %s, net/http %s", formatAllocs(got), formatAllocs(want))
	assert.Less(t, got, want)
}
