//go:build !(aix || darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package httpsrv

import (
	"errors"
	"fmt"
	"net"
	"runtime"
)

// setReusePort fails: this system has no SO_REUSEPORT. The error names
// addr, as a failed listen's *net.OpError would.
func setReusePort(_ *net.ListenConfig, addr string) error {
	return fmt.Errorf("httpsrv: ReusePort: listen tcp %s: SO_REUSEPORT is not available on %s: %w", addr, runtime.GOOS, errors.ErrUnsupported)
}
