//go:build linux

package httpsrv

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestH2loadRPSReconnectStall shows, with net/http and no balancer, why
// TestHAProxyFleet runs h2load over HTTP/1.1 without --rps. One h2load
// client POSTs 100 requests over HTTP/1.1; the server answers the 10th
// with Connection: close (as a draining httpsrv answers a request that
// arrives during Shutdown) and closes. h2load opens a new connection and
// goes on: without --rps it finishes the 100 requests. With --rps, h2load
// (1.52; its master branch has the same code) keeps the closed
// connection's request slot as taken, sends one request on the new
// connection and then none: it waits for the server to close the
// connection, which net/http, with no IdleTimeout, never does. That is
// the stall TestHAProxyFleet saw, ended there by HAProxy's 10 s timeout
// or by the next restart of the instance.
func TestH2loadRPSReconnectStall(t *testing.T) {
	requireInterop(t)
	h2load := lookTool(t, "h2load")
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if n.Add(1) == 10 {
			w.Header().Set("Connection", "close")
		}
		_, _ = io.WriteString(w, "ok\n")
	}))
	srv.Config.ErrorLog = discardLogger()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	body := filepath.Join(t.TempDir(), "body")
	require.NoError(t, os.WriteFile(body, []byte(strings.Repeat(fleetBody, 10)), 0o600))

	// run runs h2load for at most 3 s (100 requests take 1 s at --rps
	// 100) and returns its summary, or ok false if it had to be killed.
	run := func(extra ...string) (m []string, took time.Duration, ok bool) {
		n.Store(0)
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		args := append([]string{"--h1", "-c", "1", "-n", "100", "-d", body}, extra...)
		start := time.Now()
		out, err := exec.CommandContext(ctx, h2load, append(args, srv.URL+"/")...).CombinedOutput()
		took = time.Since(start)
		if ctx.Err() != nil {
			return nil, took, false
		}
		m = h2loadSummary.FindStringSubmatch(string(out))
		require.NotNil(t, m, "h2load: %v; no summary in its output:\n%s", err, out)
		return m, took, true
	}

	m, took, ok := run()
	require.True(t, ok, "h2load without --rps did not finish within 3 s")
	t.Logf("without --rps: %s started, %s succeeded, in %v", m[2], m[4], took.Round(time.Millisecond))
	assert.Equal(t, "100", m[4], "without --rps, h2load goes on after Connection: close")
	sent := n.Load()

	m, took, ok = run("--rps", "100")
	if ok {
		t.Logf("with --rps 100: %s started, %s succeeded, in %v: this h2load does not stall", m[2], m[4], took.Round(time.Millisecond))
		return
	}
	t.Logf("with --rps 100: killed after %v, with %d of 100 requests received by the server (%d without --rps): h2load stalled after reconnecting", took.Round(time.Millisecond), n.Load(), sent)
}
