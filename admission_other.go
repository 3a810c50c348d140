//go:build !unix

package httpsrv

import (
	"errors"
	"runtime"
)

// getRlimitNoFile reports that there is no RLIMIT_NOFILE outside Unix, so
// that MaxConns has no default limit there.
func getRlimitNoFile() (uint64, error) {
	return 0, errors.New("no RLIMIT_NOFILE on this platform")
}

// yieldToNetwork yields with runtime.Gosched; see admission_unix.go.
func yieldToNetwork() {
	runtime.Gosched()
}
