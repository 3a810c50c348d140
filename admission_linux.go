package httpsrv

import (
	"encoding/binary"
	"os"
	"syscall"
)

// openYielder returns a yielder on a new non-blocking eventfd, or on a
// pipe if the eventfd cannot be made. An eventfd saves the yield a system
// call: each write is an event for the poller, and nothing is read back.
func openYielder() *netYielder {
	fd, _, errno := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		return newPipeYielder()
	}
	// A non-blocking descriptor: os.NewFile adds it to the poller.
	r := os.NewFile(fd, "httpsrv-yield")
	if r == nil {
		syscall.Close(int(fd))
		return nil
	}
	y := &netYielder{r: r, wfd: int(fd), counter: true, wbuf: make([]byte, 8)}
	binary.NativeEndian.PutUint64(y.wbuf, 1)
	return y
}
