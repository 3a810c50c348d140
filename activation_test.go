package httpsrv

import (
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
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
