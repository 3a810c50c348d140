//go:build !linux

package httpsrv

import (
	"os"
	"testing"
)

// helperFDMode is the descriptor-limit mode of TestHelperServerProcess,
// Linux only; see fdlimit_linux_test.go.
func helperFDMode(t *testing.T, _ tlsServer) func(string) (string, bool) {
	if os.Getenv("HTTPSRV_HELPER_NOFILE") != "" {
		t.Fatal("HTTPSRV_HELPER_NOFILE: Linux only")
	}
	return func(string) (string, bool) { return "", false }
}
