//go:build aix || darwin || dragonfly || freebsd || netbsd || openbsd || (linux && !(386 || amd64 || arm))

package httpsrv

import "syscall"

// soReusePort is the SO_REUSEPORT socket option.
const soReusePort = syscall.SO_REUSEPORT
