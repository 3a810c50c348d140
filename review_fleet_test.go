//go:build linux

package httpsrv

// Review of issue 10 items 5 and 6 (TestHAProxyFleet, examples/fleet,
// README "Running several instances"). Each test states a claim of the
// README or the issue and fails where the claim does not hold.

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The issue: a rolling restart under continuous load "fails 0 requests for
// a client that follows the protocol ... and reports what h2load sees".
// TestHAProxyFleet's table shows 0 failed for h2load over HTTP/1.1 even
// when one of its runs stalls for HAProxy's 10 s timeout (the README's
// "Known problem": 4 of 5 runs there, 1 of 1 in this review), which it
// only logs. A 10 s stall during a restart, only with httpsrv, is a
// failure for any client with a timeout; this test fails on it.
func TestReviewFleetH2loadStallDuringRestart(t *testing.T) {
	requireInterop(t)
	haproxy := lookTool(t, "haproxy")
	h2load := lookTool(t, "h2load")
	bin := buildExample(t, "fleet")
	dir := t.TempDir()
	keyFile := writeTicketKeys(t, dir, "tickets.keys", newTicketKey(t))
	bodyFile := filepath.Join(dir, "body")
	require.NoError(t, os.WriteFile(bodyFile, []byte(strings.Repeat(fleetBody, 10)), 0o600))
	certFile, err := filepath.Abs(testCertFile)
	require.NoError(t, err)
	keyPEM, err := filepath.Abs(testKeyFile)
	require.NoError(t, err)
	ours := fleetKind{
		name:      "httpsrv",
		reusePort: true,
		start: func(t testing.TB, addr, name string) *fleetInstance {
			return startFleetInstance(t, name, bin, "-addr", addr, "-cert", certFile, "-key", keyPEM,
				"-proxy-trusted", "127.0.0.1", "-ticket-keys", keyFile, "-reuseport", "-name", name)
		},
	}
	f := startFleet(t, haproxy, ours, "127.0.0.1:1")
	rows := f.rollingRestart(t, h2load, bodyFile)
	longestRE := regexp.MustCompile(`the longest (\S+?):`)
	for _, r := range rows {
		m := longestRE.FindStringSubmatch(r.note)
		if m == nil {
			continue
		}
		d, err := time.ParseDuration(m[1])
		require.NoError(t, err)
		assert.LessOrEqual(t, d, fleetH2loadStall, "%s: a run stalled (%s); the table reports %d failed", r.client, r.note, r.failed)
	}
}

// examples/fleet ignores positional arguments: a mistyped flag value
// ("-reuseport true", "-name s1 s2") is dropped without a word.
func TestReviewFleetExampleRejectsPositionalArgs(t *testing.T) {
	bin := buildExample(t, "fleet")
	dir := t.TempDir()
	keyFile := writeTicketKeys(t, dir, "tickets.keys", newTicketKey(t))
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-cert", testCertFile, "-key", testKeyFile,
		"-ticket-keys", keyFile, "-reuseport", "false")
	out := new(syncBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		assert.Error(t, err, "output:\n%s", out)
	case <-time.After(2 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Errorf("examples/fleet -reuseport false (positional \"false\") kept running with SO_REUSEPORT on; output:\n%s", out)
	}
	fmt.Fprint(io.Discard, out.String())
}
