package httpsrv

import (
	"encoding/binary"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReviewH2WatchEventfdSaturated checks what a yield does when its
// eventfd's counter, never read back, cannot take another 1 (2^64-2 at
// most; the write fails with EAGAIN, the descriptor being non-blocking):
// the yield neither blocks nor reports a poll, the descriptor is closed
// rather than kept, and the next yield works on a new one. After the
// pool is closed, a yield keeps no descriptor either.
func TestReviewH2WatchEventfdSaturated(t *testing.T) {
	var p yieldPool
	t.Cleanup(p.close)
	require.True(t, p.yieldToNetwork(), "first yield")
	require.Equal(t, 1, p.kept())
	y := p.free[0]
	if !y.counter {
		t.Skip("no eventfd: the yield uses a pipe")
	}
	// Bring the counter to its maximum, 2^64-2.
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], 1<<64-2-1) // it holds 1 already
	_, err := syscall.Write(y.wfd, b[:])
	require.NoError(t, err)
	_, err = syscall.Write(y.wfd, y.wbuf)
	require.ErrorIs(t, err, syscall.EAGAIN, "the counter is full")

	assert.False(t, p.yieldToNetwork(), "yield on a full counter")
	assert.Equal(t, 0, p.kept(), "the full eventfd is not kept")
	assert.Equal(t, ^uintptr(0), y.r.Fd(), "the full eventfd is closed")
	assert.True(t, p.yieldToNetwork(), "the next yield, on a new eventfd")
	assert.Equal(t, 1, p.kept())
	y2 := p.free[0]

	p.close()
	assert.Equal(t, ^uintptr(0), y2.r.Fd(), "the kept eventfd is closed with the pool")
	p.yieldToNetwork()
	assert.Equal(t, 0, p.kept(), "nothing kept by a yield after close")
}
