package httpsrv

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestActivationListenersEnv checks the sd_listen_fds(3) variables that
// give no listener: each case unsets all three. TestActivationChildProcess
// (restart_test.go) passes real sockets to a child process.
func TestActivationListenersEnv(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name, pid, fds string
		wantErr        string
	}{
		{name: "unset"},
		{name: "another process", pid: "1", fds: "1"},
		{name: "no descriptors", pid: self, fds: "0"},
		{name: "bad count", pid: self, fds: "x", wantErr: `httpsrv: socket activation: LISTEN_FDS="x" is not a count of descriptors`},
		{name: "negative count", pid: self, fds: "-1", wantErr: `LISTEN_FDS="-1" is not a count`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(listenPIDEnv, tt.pid)
			t.Setenv(listenFDsEnv, tt.fds)
			t.Setenv(listenNamesEnv, "https")
			lns, err := ActivationListeners()
			assert.Nil(t, lns)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
			} else {
				assert.NoError(t, err)
			}
			for _, v := range []string{listenPIDEnv, listenFDsEnv, listenNamesEnv} {
				_, set := os.LookupEnv(v)
				assert.False(t, set, "%s still set", v)
			}
		})
	}
}

// TestActivationLeavesDescriptorsOnError: with a LISTEN_FDS that reaches a
// descriptor that is not a listening socket (here a file of the test's
// own), ActivationListeners fails, naming it, and closes nothing.
func TestActivationLeavesDescriptorsOnError(t *testing.T) {
	f, err := os.Open(os.Args[0])
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	fd := int(f.Fd())
	require.GreaterOrEqual(t, fd, listenFDsStart)
	t.Setenv(listenPIDEnv, strconv.Itoa(os.Getpid()))
	t.Setenv(listenFDsEnv, strconv.Itoa(fd-listenFDsStart+1))
	lns, err := ActivationListeners()
	assert.Nil(t, lns)
	assert.ErrorContains(t, err, fmt.Sprintf("descriptor %d (unknown): not a socket", fd))
	_, err = f.Stat()
	assert.NoError(t, err, "the file was closed")
}
