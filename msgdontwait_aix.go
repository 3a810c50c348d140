package httpsrv

import "syscall"

// msgDontWait makes one receive call non-blocking. AIX names the flag
// MSG_NONBLOCK; Go's sockets are non-blocking anyway.
const msgDontWait = syscall.MSG_NONBLOCK
