//go:build unix

// Package fdpass moves listening sockets between processes: it turns a
// descriptor inherited at exec into a net.Listener, and a net.Listener into
// a descriptor a child process can inherit. It is shared by httpsrv's
// socket activation and the upgrade package.
package fdpass

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// Listener returns a net.Listener for fd, a listening socket this process
// inherited at exec. fd is marked close-on-exec first, so that no later
// child inherits it, and is closed before Listener returns: the listener
// holds a close-on-exec duplicate of its own. name labels errors.
func Listener(fd int, name string) (net.Listener, error) {
	if fd < 0 {
		return nil, fmt.Errorf("descriptor %d (%s): invalid", fd, name)
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
