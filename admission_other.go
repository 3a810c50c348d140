//go:build !unix

package httpsrv

import (
	"errors"
	"net"
	"runtime"
)

// getRlimitNoFile reports that there is no RLIMIT_NOFILE outside Unix, so
// that MaxConns has no default limit there.
func getRlimitNoFile() (uint64, error) {
	return 0, errors.New("no RLIMIT_NOFILE on this platform")
}

// yieldPool is empty outside Unix; see admission_unix.go.
type yieldPool struct{}

// yieldToNetwork yields with runtime.Gosched and reports false: the
// poller did not wake it; see admission_unix.go.
func (*yieldPool) yieldToNetwork() bool {
	runtime.Gosched()
	return false
}

func (*yieldPool) close() {}

func (*yieldPool) setShort(bool) {}

func (*yieldPool) kept() int { return 0 }

// peerClosed reports false: the check needs a non-blocking peek.
func peerClosed(net.Conn) bool { return false }

// inputWaiting reports false: the check needs a non-blocking peek.
func inputWaiting(net.Conn) bool { return false }
