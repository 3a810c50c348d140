//go:build unix

package httpsrv

import (
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
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
// see yieldToNetwork. It is a descriptor in the network poller that the
// yield makes readable: an eventfd on Linux, where every write is an event
// and nothing needs to be read back, or the read end of a pipe elsewhere.
type netYielder struct {
	r  *os.File        // the descriptor the yield waits on
	w  *os.File        // the pipe's write end; nil for an eventfd
	rc syscall.RawConn // of r
	// wfd is the descriptor the yield writes to, non-blocking: w's, or
	// r's own for an eventfd.
	wfd int
	// counter is set for an eventfd: a write adds wbuf to its counter and
	// wakes the poller each time, so the yield writes and reads nothing
	// back (the counter, 2^64-2 at most, cannot fill up).
	counter bool
	wbuf    []byte // what a yield writes: one byte, or an eventfd's 1

	// deadline is r's read deadline, which bounds a yield (maxYieldWait)
	// and is renewed only when less than half of it is left, so that a
	// yield does not reset the poller's timer each time.
	deadline time.Time

	// The state of one yield, and step, the function rc.Read runs, made
	// once so that a yield does not allocate.
	first, ok bool
	rbuf      [1]byte
	step      func(fd uintptr) bool
}

// yieldPool keeps the descriptors (netYielder) of a handshake limiter's
// yields. Each is used by one goroutine at a time; no more are made than
// handshakes yield at once (at most the slots, plus the callbacks'
// re-takes), and those kept are closed with the server
// (Server.closeHandshakeLimit).
//
// A yield's descriptor is an optimisation, never worth a client
// connection: while an accept loop of the server is out of descriptors
// (see acceptLoop.handle), the pool is short: it closes the yielders it
// keeps, makes no new ones and closes those put back, so that the
// descriptors go to the accept loops' reserves and to clients, and yields
// fall back to runtime.Gosched until every such loop accepts again or
// ends.
type yieldPool struct {
	mu     sync.Mutex
	free   []*netYielder
	closed bool
	short  atomic.Int32 // accept loops short of descriptors: keep none, make none while positive
}

// maxYieldWait bounds a yield, in case the poller's event is not seen. A
// yield's deadline is renewed once half of it is gone, so a yield waits
// between maxYieldWait/2 and maxYieldWait at most.
const maxYieldWait = 100 * time.Millisecond

// yieldToNetwork lets the goroutines that are waiting for the network run
// before the caller goes on. The Go scheduler polls the network only when
// its run queues are empty, or every 10 ms from its monitor thread, and a
// goroutine woken by a channel runs ahead of the queues (runtime.Gosched
// puts it in a queue the scheduler also empties before polling). Under a
// flood of handshakes the run queues never empty, and a request that
// arrives on an established connection waits for the monitor's poll, then
// behind the handshakes queued by then. Parking on a descriptor that the
// caller has just written to makes it runnable at the next network poll, with
// the connections that became readable meanwhile, so that its handshake
// is computed after the requests that were waiting. The cost is one write
// to an eventfd on Linux (a write and a read on a pipe elsewhere), and the
// poll. Without a descriptor (out of them) it yields with runtime.Gosched.
// It reports whether the poller woke it, which it does unless the yield
// failed or took maxYieldWait.
func (p *yieldPool) yieldToNetwork() bool {
	y := p.get()
	if y == nil {
		runtime.Gosched()
		return false
	}
	y.first, y.ok = true, false
	if now := time.Now(); y.deadline.Sub(now) < maxYieldWait/2 {
		y.deadline = now.Add(maxYieldWait)
		y.r.SetReadDeadline(y.deadline)
	}
	if err := y.rc.Read(y.step); err != nil || !y.ok {
		y.close()
		return false
	}
	p.put(y)
	// The poll that woke the yield hands its goroutines to the run queue
	// in the reverse of the order their descriptors became ready (the
	// runtime's netpoll pushes each on a list, and findRunnable runs the
	// list's head at once): the yield, whose event came last, would run
	// ahead of the requests that were already waiting. Going to the back
	// of the global run queue puts it behind them.
	runtime.Gosched()
	return true
}

// readStep is rc.Read's function for a yield: the first call writes,
// after Read has reset the descriptor's readiness, so that the poller's
// event cannot be missed, and parks until the poller reports it; the
// second reads the pipe's byte back (an eventfd's counter is left as it
// is).
func (y *netYielder) readStep(fd uintptr) bool {
	if y.first {
		y.first = false
		if _, err := syscall.Write(y.wfd, y.wbuf); err != nil {
			return true
		}
		return false // park until the poller reports the write
	}
	if y.counter {
		y.ok = true
		return true
	}
	_, rerr := syscall.Read(int(fd), y.rbuf[:])
	y.ok = rerr == nil
	return true
}

// get returns a yielder from the pool, or a new one, or nil.
func (p *yieldPool) get() *netYielder {
	if p.short.Load() > 0 {
		return nil
	}
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
	if !p.closed && p.short.Load() == 0 {
		p.free = append(p.free, y)
		y = nil
	}
	p.mu.Unlock()
	if y != nil {
		y.close()
	}
}

// kept returns the number of yielders kept for the next yields.
func (p *yieldPool) kept() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}

// setShort counts one more accept loop short of descriptors (short), or
// one fewer; each loop calls it in pairs (see acceptLoop.short). The pool
// is short while any loop is: when the first becomes short, it closes the
// yielders it keeps, at once, and no others are kept or made until the
// last is no longer short.
func (p *yieldPool) setShort(short bool) {
	if !short {
		p.short.Add(-1)
		return
	}
	if p.short.Add(1) != 1 {
		return // short already: nothing is kept
	}
	p.mu.Lock()
	free := p.free
	p.free = nil
	p.mu.Unlock()
	for _, y := range free {
		y.close()
	}
}

// close closes the yielders kept; those in use are closed when put back.
func (p *yieldPool) close() {
	p.mu.Lock()
	free := p.free
	p.free, p.closed = nil, true
	p.mu.Unlock()
	for _, y := range free {
		y.close()
	}
}

// newNetYielder returns a new descriptor for yieldToNetwork, or nil.
func newNetYielder() *netYielder {
	y := openYielder()
	if y == nil {
		return nil
	}
	y.step = y.readStep
	rc, err := y.r.SyscallConn()
	if err != nil {
		y.close()
		return nil
	}
	y.rc = rc
	return y
}

// newPipeYielder returns a yielder on a new pipe, or nil.
func newPipeYielder() *netYielder {
	r, w, err := os.Pipe()
	if err != nil {
		return nil
	}
	y := &netYielder{r: r, w: w, wfd: -1, wbuf: []byte{0}}
	wrc, err := w.SyscallConn()
	if err == nil {
		err = wrc.Control(func(fd uintptr) { y.wfd = int(fd) })
	}
	if err != nil || y.wfd < 0 {
		y.close()
		return nil
	}
	return y
}

func (y *netYielder) close() {
	y.r.Close()
	if y.w != nil {
		y.w.Close()
	}
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
	p := peekers.Get().(*peeker)
	defer peekers.Put(p)
	if cerr := rc.Control(p.fn); cerr != nil {
		// Closed: as good as gone.
		return 0, cerr, true
	}
	return p.n, p.err, true
}

// peeker holds a peek's buffer and results, and fn, the function Control
// runs, made once: a closure over local variables would cost peekByte
// four allocations each time.
type peeker struct {
	b   [1]byte
	n   int
	err error
	fn  func(fd uintptr)
}

var peekers = sync.Pool{New: func() any {
	p := new(peeker)
	p.fn = p.peek
	return p
}}

func (p *peeker) peek(fd uintptr) {
	p.n, _, p.err = syscall.Recvfrom(int(fd), p.b[:], syscall.MSG_PEEK|msgDontWait)
}
