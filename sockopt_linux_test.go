//go:build linux

package httpsrv

import "syscall"

// smallWindowControl is a net.Dialer Control function that gives the
// socket a real network's segment size and a 64 KiB receive buffer.
// Loopback segments are up to 64 KiB, and with a small receive buffer the
// sender then waits on silly-window avoidance rather than on the reader;
// the rate-floor tests need the flow to follow the reader.
func smallWindowControl(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 1400)
		if serr == nil {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
