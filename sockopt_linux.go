//go:build linux

package httpsrv

import (
	"net"
	"syscall"
)

// tcpNotSentLowat is Linux's TCP_NOTSENT_LOWAT socket option (the same
// number on every architecture); package syscall does not name it on all
// of them.
const tcpNotSentLowat = 0x19

// limitUnsentBytes caps the bytes a TCP connection may hold unsent in the
// kernel at n: writes beyond it wait until the peer has taken enough. It
// makes a client that reads slowly visible to the response rate floor,
// instead of letting the kernel buffer megabytes on its behalf while the
// server believes the response is delivered. Bytes sent and not yet
// acknowledged do not count, so throughput is unaffected. Errors are
// ignored: the option only sharpens the floor.
func limitUnsentBytes(c net.Conn, n int) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat, n)
	})
}
