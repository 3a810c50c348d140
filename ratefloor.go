package httpsrv

import (
	"math"
	"sync/atomic"
	"time"
)

// rateFloor enforces a minimum data rate on one direction of an HTTP/1
// transfer (a request body, or a response), as Kestrel's
// MinRequestBodyDataRate and MinResponseDataRate do: only the time spent
// blocked in reads or writes counts, so a handler that pauses between
// writes, or a stream with long quiet gaps, is never penalised, while a
// client that trickles or stops reading is cut.
//
// Before each read or write, deadline gives the time by which it must
// finish: the transfer may be blocked at most grace plus bytes/rate in
// total, and a single operation at most grace plus its size/rate, so that
// the credit a fast start earns cannot keep a stalled client for ever. An
// outer deadline (ReadTimeout, WriteTimeout) still applies.
//
// A rateFloor is used by one goroutine at a time, except for off, which
// any goroutine may call.
type rateFloor struct {
	on      atomic.Bool
	rate    float64       // bytes per second, > 0 when on
	grace   time.Duration // blocked time allowed before the floor applies
	limit   time.Time     // outer deadline; zero for none
	bytes   int64         // transferred so far
	blocked time.Duration // time spent in reads or writes so far
}

// start arms the floor for a new transfer at rate bytes per second (none
// when rate is zero), under the outer deadline limit.
func (f *rateFloor) start(rate int64, grace time.Duration, limit time.Time) {
	f.rate, f.grace, f.limit = float64(rate), grace, limit
	f.bytes, f.blocked = 0, 0
	f.on.Store(rate > 0)
}

// off disarms the floor: the handler took over the deadline, or the
// transfer is over.
func (f *rateFloor) off() { f.on.Store(false) }

// deadline returns the deadline for an operation of up to n bytes that
// starts at now.
func (f *rateFloor) deadline(now time.Time, n int) time.Time {
	credit := f.grace + bytesAt(f.bytes, f.rate) - f.blocked
	perOp := f.grace + bytesAt(int64(n), f.rate)
	d := now.Add(min(credit, perOp))
	if !f.limit.IsZero() && f.limit.Before(d) {
		d = f.limit
	}
	return d
}

// done records an operation that moved n bytes in elapsed.
func (f *rateFloor) done(n int, elapsed time.Duration) {
	f.bytes += int64(n)
	f.blocked += elapsed
}

// bytesAt is the time n bytes take at rate bytes per second.
func bytesAt(n int64, rate float64) time.Duration {
	return time.Duration(float64(n) / rate * float64(time.Second))
}

// window returns the end of a window of blocked time that starts at now,
// within a long write timed by windows (see floorPiece), and the bytes the
// client must take in it for the write to go on. A full window is half the
// time one operation of piece bytes may block (the grace period plus piece
// at the rate), and needs half of piece, so that a client that stops
// taking bytes is cut within two windows, the time one such operation is
// allowed. The credit left, or the outer deadline, ends a window sooner,
// and the bytes it needs shrink in proportion; end is not after now when
// there is no time left.
func (f *rateFloor) window(now time.Time, piece int) (end time.Time, need int64) {
	full := (f.grace + bytesAt(int64(piece), f.rate)) / 2
	credit := f.grace + bytesAt(f.bytes, f.rate) - f.blocked
	end = now.Add(min(full, credit))
	if !f.limit.IsZero() && f.limit.Before(end) {
		end = f.limit
	}
	length := end.Sub(now)
	if length <= 0 || full <= 0 {
		return end, 0
	}
	// Rounded up, so that a window always needs at least one byte.
	need = int64(math.Ceil(float64(piece/2) * float64(length) / float64(full)))
	return end, need
}
