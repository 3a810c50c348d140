//go:build linux

package httpsrv

import (
	"net"
	"syscall"
)

// fdReserve is one file descriptor an accept loop holds so that, when the
// process runs out of descriptors (EMFILE, ENFILE), it can still accept
// the connections waiting in the listen queue, only to close them at once
// (see shedPending): their clients see the connection closed instead of
// hanging in the queue until they time out. libuv does the same
// (uv__emfile_trick).
//
// The descriptor is a read-only /dev/null (or "/" where there is none),
// opened with O_CLOEXEC, held as a bare descriptor outside package os and
// the poller. The zero value holds none; init takes it.
type fdReserve struct {
	fd     int  // the descriptor, when held
	held   bool // fd is open
	wanted bool // the reserve is used: init was called and close was not
}

// reservePaths are the files tried, in order, for the reserve.
var reservePaths = []string{"/dev/null", "/"}

// init takes the reserve. When descriptors are short already, the reserve
// stays missing, and retake takes it later.
func (r *fdReserve) init() {
	r.wanted = true
	r.retake()
}

// missing reports whether the reserve is wanted and not held.
func (r *fdReserve) missing() bool { return r.wanted && !r.held }

// retake takes the reserve again if it is wanted and not held. If it
// cannot for any other reason than a shortage of descriptors, the reserve
// is given up for good, so that no later call tries again.
func (r *fdReserve) retake() {
	if !r.missing() {
		return
	}
	var err error
	for _, path := range reservePaths {
		var fd int
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == nil {
			r.fd, r.held = fd, true
			return
		}
		if err == syscall.EMFILE || err == syscall.ENFILE {
			return // try again later
		}
	}
	r.wanted = false // no path can be opened here (a sandbox): go without
}

// release closes the reserve, for shedPending to use its slot, and reports
// whether it was held.
func (r *fdReserve) release() bool {
	if !r.held {
		return false
	}
	syscall.Close(r.fd)
	r.fd, r.held = 0, false
	return true
}

// close releases the reserve for good.
func (r *fdReserve) close() {
	r.release()
	r.wanted = false
}

// canShed reports whether shedPending can work on ln.
func canShed(ln net.Listener) bool {
	_, ok := ln.(syscall.Conn)
	return ok
}

// shedPending accepts the connections pending on ln, at most max of them,
// and closes each at once, without waiting for one to arrive; it returns
// how many it closed. The accept loop calls it at EMFILE or ENFILE, after
// releasing its reserve descriptor: each connection takes the slot the
// reserve left and gives it back.
//
// What the client sees is an orderly close (FIN): before closing, the
// bytes it already sent (a TLS ClientHello, typically) are read and
// dropped, because closing a socket with unread data makes Linux send a
// reset instead. A TLS client then reads EOF during its handshake; a
// plaintext HTTP client gets an empty reply. A reset would do as well
// for the client, but an orderly close cannot be mistaken for a crash or a
// middlebox, and the states it leaves (FIN_WAIT, TIME_WAIT) hold kernel
// memory, not descriptors. A client that keeps sending after the drain may
// still get a reset; it is not waiting for an answer.
func shedPending(ln net.Listener, max int) int {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	var buf []byte
	// Control holds the listener open while f runs. Go's listening sockets
	// are non-blocking, so accept4 returns EAGAIN when none is pending.
	rc.Control(func(lfd uintptr) {
		for n < max {
			fd, _, err := syscall.Accept4(int(lfd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
			switch err {
			case nil:
			case syscall.EINTR, syscall.ECONNABORTED:
				continue
			default: // EAGAIN: none left; EMFILE: the slot was taken
				return
			}
			if buf == nil {
				buf = make([]byte, 4096)
			}
			// The FIN goes first, so that the client reads an orderly
			// end even if bytes it sends while the connection is shed
			// (a ClientHello that arrives after discardUnread) make the
			// close a reset.
			syscall.Shutdown(fd, syscall.SHUT_WR)
			discardUnread(fd, buf)
			if testHookShedBeforeClose != nil {
				testHookShedBeforeClose(fd)
			}
			syscall.Close(fd)
			n++
		}
	})
	return n
}

// testHookShedBeforeClose, when set, is called with each shed connection's
// descriptor just before it is closed.
var testHookShedBeforeClose func(fd int)

// discardUnread reads and drops what a non-blocking socket has received,
// up to 16 KiB, so that closing it sends a FIN rather than a reset.
func discardUnread(fd int, buf []byte) {
	for range 4 {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if n < len(buf) {
			return // EAGAIN, EOF, an error, or all there was
		}
	}
}
