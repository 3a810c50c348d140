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

// windowParts is how many windows of a long write timed by windows (see
// floorPiece) make up the time one operation of floorPiece bytes may
// block. The write goes on at the end of a window while the client took,
// over the last windowParts-1 windows, that many parts of floorPiece (in
// proportion to their length, when the credit shortened some): so a client
// that stops taking bytes is cut within one piece's time, as under pieces,
// and an honest client that reads in bursts may pause for up to
// (windowParts-1)/windowParts of it (20.7 s at the defaults) between them.
const windowParts = 16

// pieceTime is the time one operation of piece bytes may block: the grace
// period plus piece at the rate.
func (f *rateFloor) pieceTime(piece int) time.Duration {
	return f.grace + bytesAt(int64(piece), f.rate)
}

// window returns the end of a window of blocked time that starts at now,
// within a long write timed by windows (see floorPiece and windowParts):
// 1/windowParts of the time one operation of piece bytes may block, or
// less when the credit left, or the outer deadline, ends it sooner; end is
// not after now when there is no time left.
func (f *rateFloor) window(now time.Time, piece int) (end time.Time) {
	credit := f.grace + bytesAt(f.bytes, f.rate) - f.blocked
	end = now.Add(min(f.pieceTime(piece)/windowParts, credit))
	if !f.limit.IsZero() && f.limit.Before(end) {
		end = f.limit
	}
	return end
}

// windowNeed returns the bytes a client must have taken over the last
// windows of a write timed by windows, which lasted span: piece bytes in
// the time one operation of piece bytes may block, in proportion, rounded
// up so that it is at least one byte.
func (f *rateFloor) windowNeed(span time.Duration, piece int) int64 {
	return int64(math.Ceil(float64(piece) * float64(span) / float64(f.pieceTime(piece))))
}
