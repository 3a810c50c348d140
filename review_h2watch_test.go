package httpsrv

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReviewH2WatchNoTimerAfterStop checks that once the connection is done
// (stop), the write watch arms no timer again: not from a callback that
// fired just before stop and was waiting for the lock (the connection ended
// while its writes were busy, so the deadline had moved on), and not from a
// write the HTTP/2 server's writer goroutine is still finishing after
// ServeConn returned (writeWithByteTimeout's retry sets a new deadline). A
// timer armed then keeps the connection reachable for up to
// WriteByteTimeout and later sets a deadline on a closed connection.
func TestReviewH2WatchNoTimerAfterStop(t *testing.T) {
	const timeout = 30 * time.Second
	tests := []struct {
		name string
		// after runs after stop, with the deadline of a busy write in place.
		after func(w *h2WriteWatch)
	}{
		{name: "callback fired before stop", after: func(w *h2WriteWatch) { w.expire() }},
		{name: "write retried after stop", after: func(w *h2WriteWatch) {
			w.setWriteDeadline(time.Now().Add(timeout))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dc := &deadlineConn{}
				w := &h2WriteWatch{conn: dc}
				require.NoError(t, w.setWriteDeadline(time.Now().Add(timeout)))
				time.Sleep(timeout / 2)
				// A later write moved the deadline on; the watch's timer
				// still fires at the first deadline.
				require.NoError(t, w.setWriteDeadline(time.Now().Add(timeout)))
				w.stop()
				tt.after(w)
				w.mu.Lock()
				armed := w.timer != nil
				w.mu.Unlock()
				assert.False(t, armed, "timer armed after stop")
				time.Sleep(2 * timeout)
				assert.Empty(t, dc.calls(), "deadline set on the connection after stop")
			})
		})
	}
}

// TestReviewH2WatchSlotTimerNoStaleValue checks that a pooled slot-wait
// timer handed to a new wait carries no value from the wait it served
// before, whether that timer fired unreceived or was stopped in time.
func TestReviewH2WatchSlotTimerNoStaleValue(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		// fired waits until the timer has fired, without receiving.
		fired bool
	}{
		{name: "fired, not received", d: time.Microsecond, fired: true},
		{name: "stopped before firing", d: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm := getSlotTimer(tt.d)
			if tt.fired {
				// The timer's deadline passes; it is not received.
				<-time.After(10 * tt.d)
			}
			putSlotTimer(tm)
			next := getSlotTimer(time.Hour)
			t.Cleanup(func() { putSlotTimer(next) })
			select {
			case v := <-next.C:
				t.Fatalf("stale value %v from the previous wait", v)
			default:
			}
		})
	}
}
