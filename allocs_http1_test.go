//go:build !race

package httpsrv

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestHTTP1AllocsBelowNetHTTP is the allocation guard: a keep-alive
// request costs fewer allocations on httpsrv than on net/http. It takes
// well under a second, so -short runs it too. Like the other guards it is
// built only without -race; .ci/run has a step that runs them.
func TestHTTP1AllocsBelowNetHTTP(t *testing.T) {
	ours, oracle := benchServers(t)
	for _, tc := range []struct {
		name string
		req  []byte
	}{{"GET", benchGET}, {"POST1KiB", benchPOST}} {
		t.Run(tc.name, func(t *testing.T) {
			got := h1AllocsPerRequest(t, ours, tc.req)
			want := h1AllocsPerRequest(t, oracle, tc.req)
			t.Logf("allocs per request: httpsrv %s, net/http %s", formatAllocs(got), formatAllocs(want))
			assert.Less(t, got, want)
		})
	}
}
