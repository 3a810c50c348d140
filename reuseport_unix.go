//go:build aix || darwin || dragonfly || freebsd || linux || netbsd || openbsd

package httpsrv

import (
	"fmt"
	"net"
	"syscall"
)

// setReusePort makes lc set SO_REUSEPORT on the sockets it creates, before
// lc's own Control function, if any, runs. The error of a failed
// setsockopt reaches the caller inside the *net.OpError of the listen,
// which names the address.
func setReusePort(lc *net.ListenConfig, _ string) error {
	next := lc.Control
	lc.Control = func(network, address string, c syscall.RawConn) error {
		var opErr error
		err := c.Control(func(fd uintptr) {
			opErr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
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
