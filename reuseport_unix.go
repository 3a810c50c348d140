//go:build aix || darwin || dragonfly || freebsd || linux || netbsd || openbsd

package httpsrv

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// setReusePort makes lc set SO_REUSEPORT on the sockets it creates, before
// lc's own Control function, if any, runs.
func setReusePort(lc *net.ListenConfig) error {
	next := lc.Control
	lc.Control = func(network, address string, c syscall.RawConn) error {
		var opErr error
		err := c.Control(func(fd uintptr) {
			opErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err == nil {
			err = opErr
		}
		if err != nil {
			return fmt.Errorf("httpsrv: ReusePort: setsockopt SO_REUSEPORT: %w", err)
		}
		if next != nil {
			return next(network, address, c)
		}
		return nil
	}
	return nil
}
