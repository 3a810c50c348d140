//go:build linux

package httpsrv

// Review of issue 10 items 5 and 6 (TestHAProxyFleet, examples/fleet,
// README "Running several instances"). Each test states a claim of the
// README or the issue and fails where the claim does not hold.

import (
	"fmt"
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
