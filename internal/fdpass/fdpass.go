//go:build unix

// Package fdpass moves listening sockets between processes: it turns a
// descriptor inherited at exec into a net.Listener, and a net.Listener into
// a descriptor a child process can inherit. It is shared by httpsrv's
// socket activation and the upgrade package.
package fdpass

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// Check reports, without changing fd, whether it is a listening socket of
// one of the types given (syscall.SOCK_STREAM, say); nil types means the
// two that net can make listeners of, SOCK_STREAM and SOCK_SEQPACKET. It
// asks the socket (SO_TYPE, SO_ACCEPTCONN): net.FileListener checks only
// the address family, and takes a connected or datagram socket too.
func Check(fd int, types ...int) error {
	if fd < 0 {
		return errors.New("invalid descriptor")
	}
	typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE)
	switch {
	case errors.Is(err, syscall.ENOTSOCK):
		return errors.New("not a socket")
	case errors.Is(err, syscall.EBADF):
		return errors.New("not an open descriptor")
	case err != nil:
		return os.NewSyscallError("getsockopt", err)
	}
	if types == nil {
		types = []int{syscall.SOCK_STREAM, syscall.SOCK_SEQPACKET}
	}
	ok := false
	for _, t := range types {
		ok = ok || t == typ
	}
	if !ok {
		return fmt.Errorf("socket of type %s, not %s", typeName(typ), typeName(types[0]))
	}
	acc, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
	if err != nil {
		return os.NewSyscallError("getsockopt", err)
	}
	if acc == 0 {
		return errors.New("socket is not listening (a connected or only bound socket)")
	}
	return nil
}

// typeName names a socket type for errors.
func typeName(typ int) string {
	switch typ {
	case syscall.SOCK_STREAM:
		return "SOCK_STREAM"
	case syscall.SOCK_DGRAM:
		return "SOCK_DGRAM"
	case syscall.SOCK_SEQPACKET:
		return "SOCK_SEQPACKET"
	case syscall.SOCK_RAW:
		return "SOCK_RAW"
	}
	return fmt.Sprint(typ)
}

// Listener returns a net.Listener for fd, a listening socket this process
// inherited at exec. If fd is not one (see [Check]), Listener returns an
// error and leaves fd as it was. Otherwise fd is marked close-on-exec, so
// that no later child inherits it, and closed before Listener returns: the
// listener holds a close-on-exec duplicate of its own. name labels errors.
func Listener(fd int, name string) (net.Listener, error) {
	if err := Check(fd); err != nil {
		return nil, fmt.Errorf("descriptor %d (%s): %w", fd, name, err)
	}
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("descriptor %d (%s): %w", fd, name, err)
	}
	return ln, nil
}

// File returns a duplicate of ln's descriptor as an *os.File, for
// exec.Cmd.ExtraFiles; the caller closes it once the child has started.
//
// The duplicate is made with dup and marked close-on-exec, and wrapped with
// os.NewFile, not with (*net.TCPListener).File: the descriptor that File
// returns is put into blocking mode when os/exec reads it (os.File.Fd), and
// blocking mode belongs to the socket, not to one descriptor, so ln's own
// Accept would then block a thread that Close cannot wake.
func File(ln net.Listener) (*os.File, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("listener %T on %v has no file descriptor", ln, ln.Addr())
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("listener on %v: %w", ln.Addr(), err)
	}
	dup := -1
	var dupErr error
	err = rc.Control(func(fd uintptr) {
		// ForkLock keeps a concurrent fork from inheriting the duplicate
		// before it is close-on-exec.
		syscall.ForkLock.RLock()
		defer syscall.ForkLock.RUnlock()
		dup, dupErr = syscall.Dup(int(fd))
		if dupErr == nil {
			syscall.CloseOnExec(dup)
		}
	})
	if err == nil && dupErr != nil {
		err = os.NewSyscallError("dup", dupErr)
	}
	if err != nil {
		return nil, fmt.Errorf("listener on %v: %w", ln.Addr(), err)
	}
	return os.NewFile(uintptr(dup), ln.Addr().Network()+":"+ln.Addr().String()), nil
}
