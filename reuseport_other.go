//go:build !(aix || darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package httpsrv

import (
	"errors"
	"fmt"
	"net"
	"runtime"
)

// setReusePort fails: this system has no SO_REUSEPORT.
func setReusePort(*net.ListenConfig) error {
	return fmt.Errorf("httpsrv: ReusePort: SO_REUSEPORT is not available on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
