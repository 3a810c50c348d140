//go:build unix && !aix

package httpsrv

import "syscall"

// msgDontWait makes one receive call non-blocking (see peekByte).
const msgDontWait = syscall.MSG_DONTWAIT
