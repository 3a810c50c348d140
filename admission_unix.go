//go:build unix

package httpsrv

import (
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// getRlimitNoFile returns the process's RLIMIT_NOFILE soft limit. The Go
// runtime raises it to the hard limit when a program starts (os package,
// since Go 1.19), so this is usually the hard limit.
func getRlimitNoFile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	return uint64(rl.Cur), nil
}

// netYielder parks a goroutine until the scheduler next polls the network;
// see yieldToNetwork.
type netYielder struct {
	r, w *os.File
	rc   syscall.RawConn // of r
	wfd  int             // w's descriptor, non-blocking

	// The state of one yield, and step, the function rc.Read runs, made
	// once so that a yield does not allocate.
	first, ok bool
	buf       [1]byte
	step      func(fd uintptr) bool
}

// yieldPool keeps the pipes of a handshake limiter's yields. Each pipe is
// used by one goroutine at a time; no more are made than handshakes yield
// at once (at most the slots, plus the callbacks' re-takes), and those
// kept are closed with the server (Server.closeHandshakeLimit).
type yieldPool struct {
	mu     sync.Mutex
	free   []*netYielder
	closed bool
}

// maxYieldWait bounds a yield, in case the poller's event is not seen.
const maxYieldWait = 100 * time.Millisecond

// yieldToNetwork lets the goroutines that are waiting for the network run
// before the caller goes on. The Go scheduler polls the network only when
// its run queues are empty, or every 10 ms from its monitor thread, and a
// goroutine woken by a channel runs ahead of the queues (runtime.Gosched
// puts it in a queue the scheduler also empties before polling). Under a
// flood of handshakes the run queues never empty, and a request that
// arrives on an established connection waits for the monitor's poll, then
// behind the handshakes queued by then. Parking on a pipe that the caller
// has just written to makes it runnable at the next network poll, with
// the connections that became readable meanwhile, so that its handshake
// is computed after the requests that were waiting. The cost is a write
// and a read on a pipe. Without a pipe (out of descriptors) it yields with
// runtime.Gosched.
func (p *yieldPool) yieldToNetwork() {
	y := p.get()
	if y == nil {
		runtime.Gosched()
		return
	}
	y.first, y.ok = true, false
	y.r.SetReadDeadline(time.Now().Add(maxYieldWait))
	if err := y.rc.Read(y.step); err != nil || !y.ok {
		y.close()
		return
	}
	p.put(y)
}

// readStep is rc.Read's function for a yield: the first call writes the
// byte, after Read has reset the descriptor's readiness, so that the
// poller's event cannot be missed, and parks until the poller reports it;
// the second reads it back.
func (y *netYielder) readStep(fd uintptr) bool {
	if y.first {
		y.first = false
		if _, err := syscall.Write(y.wfd, y.buf[:]); err != nil {
			return true
		}
		return false // park until the poller reports the byte
	}
	_, rerr := syscall.Read(int(fd), y.buf[:])
	y.ok = rerr == nil
	return true
}

// get returns a pipe from the pool, or a new one, or nil.
func (p *yieldPool) get() *netYielder {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		y := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return y
	}
	p.mu.Unlock()
	return newNetYielder()
}

// put keeps y for the next yield, or closes it once the pool is closed.
func (p *yieldPool) put(y *netYielder) {
	p.mu.Lock()
	if !p.closed {
		p.free = append(p.free, y)
		y = nil
	}
	p.mu.Unlock()
	if y != nil {
		y.close()
	}
}

// kept returns the number of pipes kept for the next yields.
func (p *yieldPool) kept() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}

// close closes the pipes kept; those in use are closed when put back.
func (p *yieldPool) close() {
	p.mu.Lock()
	free := p.free
	p.free, p.closed = nil, true
	p.mu.Unlock()
	for _, y := range free {
		y.close()
	}
}

// newNetYielder returns a new pipe for yieldToNetwork, or nil.
func newNetYielder() *netYielder {
	r, w, err := os.Pipe()
	if err != nil {
		return nil
	}
	y := &netYielder{r: r, w: w, wfd: -1}
	y.step = y.readStep
	rc, err := r.SyscallConn()
	if err == nil {
		y.rc = rc
		var wrc syscall.RawConn
		if wrc, err = w.SyscallConn(); err == nil {
			err = wrc.Control(func(fd uintptr) { y.wfd = int(fd) })
		}
	}
	if err != nil || y.wfd < 0 {
		y.close()
		return nil
	}
	return y
}

func (y *netYielder) close() {
	y.r.Close()
	y.w.Close()
}

// peerClosed reports whether the client has closed or reset c: a
// non-blocking peek finds the end of the stream or an error. Connections
// that are not sockets report false.
func peerClosed(c net.Conn) bool {
	n, err, ok := peekByte(c)
	return ok && (err == nil && n == 0 || err != nil && err != syscall.EAGAIN && err != syscall.EINTR)
}

// inputWaiting reports whether bytes from the peer wait unread in c's
// socket: a non-blocking peek finds one. Connections that are not sockets
// report false.
func inputWaiting(c net.Conn) bool {
	n, err, ok := peekByte(c)
	return ok && err == nil && n > 0
}

// peekByte peeks at c's socket without blocking (MSG_PEEK|MSG_DONTWAIT).
// It goes through Control, not Read, so that a read deadline in the past
// does not stop it before it looks. ok is false when c is not a socket.
func peekByte(c net.Conn) (n int, err error, ok bool) {
	sc, isSock := c.(syscall.Conn)
	if !isSock {
		return 0, nil, false
	}
	rc, rerr := sc.SyscallConn()
	if rerr != nil {
		return 0, nil, false
	}
	var b [1]byte
	cerr := rc.Control(func(fd uintptr) {
		n, _, err = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|msgDontWait)
	})
	if cerr != nil {
		// Closed: as good as gone.
		return 0, cerr, true
	}
	return n, err, true
}
