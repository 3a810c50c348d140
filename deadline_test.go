package httpsrv

import (
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRateFloorWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	// At 1000 B/s with 1 s of grace, a 4096-byte operation may block
	// 5.096 s: a full window is a sixteenth of that.
	const full = 318500 * time.Microsecond
	tests := []struct {
		name    string
		bytes   int64
		blocked time.Duration
		limit   time.Time
		wantEnd time.Time
	}{
		{"credit of 10 s: a full window", 9000, 0, time.Time{}, t0.Add(full)},
		{"only the grace period: a full window", 0, 0, time.Time{}, t0.Add(full)},
		{"credit shorter than a window", 0, 800 * time.Millisecond, time.Time{}, t0.Add(200 * time.Millisecond)},
		{"credit used up", 1000, 2 * time.Second, time.Time{}, t0},
		{"overdrawn", 1000, 5 * time.Second, time.Time{}, t0.Add(-3 * time.Second)},
		{"the outer deadline first", 9000, 0, t0.Add(full / 4), t0.Add(full / 4)},
		{"the outer deadline passed", 9000, 0, t0.Add(-time.Second), t0.Add(-time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f rateFloor
			f.start(1000, time.Second, tt.limit)
			f.done(int(tt.bytes), tt.blocked)
			assert.Equal(t, tt.wantEnd, f.window(t0, 4096))
		})
	}
	var f rateFloor
	f.start(1000, time.Second, time.Time{})
	// A piece in a piece's time, in proportion, at least one byte.
	assert.Equal(t, int64(4096), f.windowNeed(5096*time.Millisecond, 4096))
	assert.Equal(t, int64(3840), f.windowNeed(15*full, 4096))
	assert.Equal(t, int64(1), f.windowNeed(time.Millisecond, 4096))
}

// TestResponseFloorWindowsAndPieces runs one 64 KiB response write under
// the default response floor (240 B/s after 5 s) against clients that read
// at various paces, over an in-memory connection with no buffer and a
// fake clock: timed by windows (as on TCP and under ServeTLS's TLS
// layer) and in pieces (elsewhere), the write keeps the floor's promises.
// An honest client above the floor gets everything, however bursty; one
// that stops after a fast start is cut within the time one piece is
// allowed, whatever it took before; one below the floor is cut once its
// credit runs out.
func TestResponseFloorWindowsAndPieces(t *testing.T) {
	const size = 64 << 10
	srv := &Server{}
	grace := srv.minRateGracePeriod()
	rate := srv.minResponseRate()
	// The most a piece may block, and two windows.
	perPiece := grace + bytesAt(floorPiece, float64(rate))
	clients := []struct {
		name  string
		burst int           // bytes read at once first, as a kernel's buffers would take them
		chunk int           // then chunk bytes every period; none if 0
		every time.Duration //
		// The write must fail no sooner than notBefore and no later than
		// within after it started; or succeed when within is 0.
		notBefore, within time.Duration
		// Only windows pass it: the first piece may block only the grace
		// period, and without a fast start (a kernel's buffers) no
		// credit extends it.
		windowsOnly bool
	}{
		{name: "honest 300 B/s", burst: 8 << 10, chunk: 100, every: time.Second / 3},
		{name: "honest in bursts of 2400 B every 8 s", burst: 8 << 10, chunk: 2400, every: 8 * time.Second},
		{name: "honest 300 B/s from the start, in bursts of 1200 B", chunk: 1200, every: 4 * time.Second, windowsOnly: true},
		{name: "stalled from the start", within: grace},
		{name: "stalled after a fast start", burst: 32 << 10, within: perPiece},
		{name: "trickle 24 B/s", burst: 8 << 10, chunk: 8, every: time.Second / 3, within: perPiece},
		{name: "150 B/s", burst: 8 << 10, chunk: 50, every: time.Second / 3, within: perPiece},
		// Fast enough for every window, too slow for the credit: 5 s + 8
		// KiB at the floor (39 s) is used up at a sixth of a second per
		// second (pieces, whose deadline is the least of the credit and
		// one piece's time, cut it sooner).
		{name: "200 B/s", burst: 8 << 10, chunk: 200, every: time.Second, notBefore: 2 * time.Minute, within: 250 * time.Second},
	}
	for _, windows := range []bool{true, false} {
		mode := "pieces"
		if windows {
			mode = "windows"
		}
		for _, cl := range clients {
			t.Run(mode+"/"+cl.name, func(t *testing.T) {
				if cl.windowsOnly && !windows {
					t.Skip("a known limit of pieces")
				}
				synctest.Test(t, func(t *testing.T) {
					server, client := net.Pipe()
					defer server.Close()
					defer client.Close()
					d := &connDeadlines{rwc: server, stats: &srv.stats}
					d.winKnown, d.winPlain = true, windows
					now := time.Now()
					d.startRequest(srv, now, now)

					got := make(chan int)
					go func() {
						buf := make([]byte, size)
						n, _ := io.ReadFull(client, buf[:cl.burst])
						for cl.chunk > 0 && n < size {
							time.Sleep(cl.every)
							m, err := io.ReadFull(client, buf[:min(cl.chunk, size-n)])
							n += m
							if err != nil {
								break
							}
						}
						got <- n
					}()
					start := time.Now()
					n, err := d.write(make([]byte, size))
					elapsed := time.Since(start)
					t.Logf("wrote %d bytes in %v, err %v", n, elapsed, err)
					server.Close()
					read := <-got
					if cl.within == 0 {
						require.NoError(t, err, "an honest client was cut")
						assert.Equal(t, size, n)
						assert.Equal(t, size, read)
						return
					}
					require.Error(t, err, "the client was not cut")
					assert.True(t, isTimeout(err), "not a deadline: %v", err)
					assert.Less(t, n, size)
					assert.GreaterOrEqual(t, elapsed, cl.notBefore, "cut too soon")
					assert.LessOrEqual(t, elapsed, cl.within, "cut too late")
				})
			})
		}
	}
}

// TestResponseFloorWindowHandlerDeadline checks that a deadline the
// handler sets through http.ResponseController during a write timed by
// windows replaces the floor at once: the write fails at the handler's
// deadline although the client reads above the floor.
func TestResponseFloorWindowHandlerDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &Server{}
		server, client := net.Pipe()
		defer server.Close()
		defer client.Close()
		d := &connDeadlines{rwc: server, stats: &srv.stats}
		d.winKnown, d.winPlain = true, true
		now := time.Now()
		_, gen := d.startRequest(srv, now, now)
		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			buf := make([]byte, 1000)
			for {
				if _, err := io.ReadFull(client, buf); err != nil {
					return
				}
				time.Sleep(time.Second)
			}
		}()
		go func() {
			time.Sleep(30 * time.Second)
			d.handlerSetWrite(gen, time.Now().Add(time.Second))
		}()
		start := time.Now()
		n, err := d.write(make([]byte, 64<<10))
		require.Error(t, err)
		assert.True(t, isTimeout(err), "not a deadline: %v", err)
		assert.Equal(t, 31*time.Second, time.Since(start))
		assert.Less(t, n, 64<<10)
		assert.False(t, d.writeFloor.on.Load())
		server.Close()
		<-readerDone
	})
}
