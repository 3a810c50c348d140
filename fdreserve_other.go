//go:build !linux

package httpsrv

import "net"

// fdReserve holds no descriptor outside Linux: the accept loop only backs
// off at EMFILE and ENFILE. See fdreserve_linux.go.
type fdReserve struct{}

func (*fdReserve) init()         {}
func (*fdReserve) missing() bool { return false }
func (*fdReserve) retake()       {}
func (*fdReserve) release() bool { return false }
func (*fdReserve) close()        {}

func canShed(net.Listener) bool { return false }

func shedPending(net.Listener, int) int { return 0 }
