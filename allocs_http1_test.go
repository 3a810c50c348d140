//go:build !race

package httpsrv

import (
	"runtime/metrics"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

// TestHTTP1GoroutinesPerRequest guards the lazy background read: a
// keep-alive request whose handler never looks at its context starts no
// goroutine on httpsrv, where net/http starts one per request for its
// background read. Counted with the runtime's goroutines-created metric
// (Go 1.26), over many requests, so that a timer of another test's server
// firing meanwhile cannot decide the result.
func TestHTTP1GoroutinesPerRequest(t *testing.T) {
	sample := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		t.Skip("no goroutines-created metric before Go 1.26")
	}
	created := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	ours, oracle := benchServers(t)
	for _, tc := range []struct {
		name string
		req  []byte
	}{{"GET", benchGET}, {"POST1KiB", benchPOST}} {
		t.Run(tc.name, func(t *testing.T) {
			perRequest := func(addr string) float64 {
				c := newBenchClient(t, addr)
				require.NoError(t, c.roundTrip(tc.req))
				const n = 200
				before := created()
				for range n {
					require.NoError(t, c.roundTrip(tc.req))
				}
				return float64(created()-before) / n
			}
			got, want := perRequest(ours), perRequest(oracle)
			t.Logf("goroutines started per request: httpsrv %.2f, net/http %.2f", got, want)
			assert.Less(t, got, 0.1)
		})
	}
}
