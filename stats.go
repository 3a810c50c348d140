package httpsrv

import (
	"net/http"
	"sync/atomic"
)

// Stats is a snapshot of a Server's counters, returned by [Server.Stats].
//
// Every field is a counter that only grows from the Server's creation,
// suited to counter metrics (rate of change), except the three gauges
// ConnsOpen, ConnsActive and ConnsIdle, which say how many connections are
// in a state now and go down as well as up.
//
// The fields are read one at a time, not in one atomic step, so a snapshot
// taken under load may count an event in one field and not yet in a related
// one (a request in RequestsHTTP1 whose connection is not yet in
// ConnsActive, say). The connection fields (ConnsAccepted, ConnsHijacked and
// the three gauges) are read together, consistent with each other.
//
// The listener that [Server.ListenAndServeHTTPRedirect] starts is served by
// a server of its own; its connections and requests are not counted here.
type Stats struct {
	// ConnsAccepted counts the connections an accept loop accepted and
	// started serving (ConnState's StateNew). Connections closed unserved
	// for lack of a file descriptor are counted in AcceptShedConns instead.
	// With ProxyProtocol set it also counts the connections closed at
	// their PROXY header (see ProxyHeaderErrors) or before sending a byte
	// in time, which ConnState and ConnContext never see.
	ConnsAccepted uint64

	// ConnsOpen is a gauge: the connections accepted and not yet closed or
	// hijacked now, whatever their state (TLS handshake, waiting for a
	// first request, active, idle, or being closed). It is ConnsAccepted
	// minus ConnsHijacked minus the connections closed.
	ConnsOpen uint64

	// ConnsActive is a gauge: the open connections in StateActive now. An
	// HTTP/1 connection is active from the first byte of a request to the
	// end of its response; an HTTP/2 connection while at least one stream
	// is open (as its ConnState reports; before its client preface has
	// been read it is neither active nor idle). A connection handed to a
	// TLSNextProto function counts as active until it closes. Connections
	// that Shutdown or Close is closing are not counted.
	ConnsActive uint64

	// ConnsIdle is a gauge: the open connections in StateIdle now, waiting
	// for a further request (HTTP/1 keep-alive) or with no open stream
	// (HTTP/2). Connections that Shutdown or Close is closing are not
	// counted.
	ConnsIdle uint64

	// ConnsHijacked counts the HTTP/1 connections a handler took over with
	// http.Hijacker (StateHijacked). They are no longer open for the
	// server, which neither tracks nor closes them.
	ConnsHijacked uint64

	// ConnLimitWaits counts the times an accept loop found the server at
	// its connection limit (MaxConns) and waited for a connection to close
	// before accepting more.
	ConnLimitWaits uint64

	// Handshakes counts the TLS handshakes that succeeded.
	Handshakes uint64

	// HandshakeErrors counts the TLS handshakes that failed, by cause; it
	// is what [Server.HandshakeErrors] returns. A handshake that timed out
	// is counted in HandshakeErrors.Timeout, not among the Timeouts fields
	// below.
	HandshakeErrors HandshakeErrorCounts

	// ProxyHeaderErrors counts the connections refused at their PROXY
	// protocol header, by cause; it is what [Server.ProxyHeaderErrors]
	// returns. Zero unless ProxyProtocol is set.
	ProxyHeaderErrors ProxyHeaderErrorCounts

	// HandshakeSlotWaits counts the TLS handshakes that found every slot
	// taken (MaxConcurrentHandshakes) and had to wait for one.
	HandshakeSlotWaits uint64

	// HandshakeSlotTimeouts counts the TLS handshakes that failed because
	// the handshake timeout passed while they waited for a slot. They are
	// counted in HandshakeErrors.Timeout as well.
	HandshakeSlotTimeouts uint64

	// RequestsHTTP1 counts the HTTP/1.x requests the server read and
	// passed to the Handler. Requests it answered itself, without calling
	// the Handler (a malformed request, 431 for an oversized head, 417 for
	// an unknown Expect), are not counted.
	RequestsHTTP1 uint64

	// RequestsHTTP2 counts the HTTP/2 requests passed to the Handler, over
	// TLS or unencrypted, by the built-in HTTP/2 server or a TLSNextProto
	// function's. Requests the HTTP/2 server refused or answered itself
	// are not counted.
	RequestsHTTP2 uint64

	// RequestsOther counts the requests a TLSNextProto function's server
	// passed to the Handler with another protocol than HTTP/2.
	RequestsOther uint64

	// AcceptErrorsBackoff counts the Accept errors after which an accept
	// loop backed off (EMFILE, ENFILE, ENOBUFS, ENOMEM and the like; see
	// the README's "Accept back-off").
	AcceptErrorsBackoff uint64

	// AcceptErrorsRetried counts the Accept errors retried at once
	// (ECONNABORTED, ECONNRESET, EPROTO, EINTR). After 64 of them in a
	// row, the next ones back off, and count in AcceptErrorsRetried and
	// AcceptBackoffWaits.
	AcceptErrorsRetried uint64

	// AcceptBackoffWaits counts the back-off waits an accept loop started.
	// A wait cut short by Shutdown or Close counts too.
	AcceptBackoffWaits uint64

	// AcceptShedConns counts the connections accepted and closed at once,
	// unserved, for lack of a file descriptor (Linux only; see the
	// README's "File-descriptor exhaustion").
	AcceptShedConns uint64

	// TimeoutsHeader counts the HTTP/1 connections closed because a
	// request head was not received within the header timeout
	// (ReadHeaderTimeout): for the first request, from the end of the TLS
	// handshake; for a later one, from its first byte.
	TimeoutsHeader uint64

	// TimeoutsIdle counts the HTTP/1 keep-alive connections closed because
	// no further request began within IdleTimeout. Idle connections that
	// Shutdown or SetKeepAlivesEnabled(false) closes are not counted, nor
	// are HTTP/2 connections closed by the HTTP/2 server's idle timeout.
	TimeoutsIdle uint64

	// TimeoutsRead counts the HTTP/1 requests whose body read failed
	// because ReadTimeout passed, at most once per request. A deadline the
	// handler set through http.ResponseController is not counted. HTTP/2
	// enforces ReadTimeout in the HTTP/2 server, which does not report it.
	TimeoutsRead uint64

	// TimeoutsWrite counts the HTTP/1 responses whose write failed because
	// WriteTimeout passed, at most once per request. A deadline the
	// handler set through http.ResponseController is not counted. HTTP/2
	// enforces WriteTimeout in the HTTP/2 server, which does not report
	// it.
	TimeoutsWrite uint64

	// RateFloorBodyCuts counts the request bodies (HTTP/1 requests and
	// HTTP/2 streams) whose read failed because the client sent the body
	// slower than MinRequestBodyRate, at most once per request.
	RateFloorBodyCuts uint64

	// RateFloorResponseCuts counts the responses (HTTP/1 requests and
	// HTTP/2 streams) whose write failed because the client took the
	// response slower than MinResponseRate, at most once per request. On
	// HTTP/2, a cut of the server's last flush after the handler returned
	// is made by the HTTP/2 server and not counted.
	RateFloorResponseCuts uint64

	// PanicsRecovered counts the panics the server recovered and logged: a
	// Handler's (HTTP/1 and the built-in HTTP/2 server), a TLSNextProto
	// function's, or any other on a connection's goroutine, except panics
	// with http.ErrAbortHandler. On HTTP/2 the HTTP/2 server recovers and
	// logs the handler's panic; it is counted on its way there. An HTTP/2
	// server of the caller's, set in TLSNextProto["h2"], recovers its
	// handlers' panics itself, unseen: they are not counted. A panic in a
	// TLS callback (GetCertificate, say) also counts as a failed handshake
	// in HandshakeErrors.Other.
	PanicsRecovered uint64

	// HandlerAborts counts the handlers that panicked with
	// http.ErrAbortHandler, net/http's way to abort a response (as
	// httputil.ReverseProxy does when the backend fails mid-body). They
	// are not logged, as in net/http, and not counted in PanicsRecovered:
	// they are deliberate, and often caused by a peer.
	HandlerAborts uint64
}

// Stats returns a snapshot of s's counters. It is safe for concurrent use
// and cheap enough to call from a metrics collector on every scrape: it
// reads the counters, and holds the server's lock (which connections take
// when they open and close) while it looks at each open connection's state
// for the gauges: some 5 to 20 ns per connection when the connections'
// memory is in cache (0.15 ms with 10,000 connections open;
// BenchmarkServerStats), up to about 0.1 µs per connection when it is not
// (9 to 12.5 ms with 100,000 connections spread over the heap, measured on
// a 2-core machine): connections opening and closing wait that long. It
// does not allocate.
//
// The counters are updated without a lock by the connections themselves;
// counting a request costs one atomic addition, and the connections' states
// cost nothing until Stats is called.
func (s *Server) Stats() Stats {
	st := &s.stats
	out := Stats{
		ConnLimitWaits:        st.connLimitWaits.Load(),
		Handshakes:            st.handshakes.Load(),
		HandshakeErrors:       s.HandshakeErrors(),
		ProxyHeaderErrors:     s.ProxyHeaderErrors(),
		HandshakeSlotWaits:    st.handshakeSlotWaits.Load(),
		HandshakeSlotTimeouts: st.handshakeSlotTimeouts.Load(),
		RequestsHTTP1:         st.requestsHTTP1.Load(),
		RequestsHTTP2:         st.requestsHTTP2.Load(),
		RequestsOther:         st.requestsOther.Load(),
		AcceptErrorsBackoff:   st.acceptBackoffErrors.Load(),
		AcceptErrorsRetried:   st.acceptRetriedErrors.Load(),
		AcceptBackoffWaits:    st.acceptBackoffWaits.Load(),
		AcceptShedConns:       st.acceptShedConns.Load(),
		TimeoutsHeader:        st.timeouts[timeoutHeader].Load(),
		TimeoutsIdle:          st.timeouts[timeoutIdle].Load(),
		TimeoutsRead:          st.timeouts[timeoutRead].Load(),
		TimeoutsWrite:         st.timeouts[timeoutWrite].Load(),
		RateFloorBodyCuts:     st.timeouts[floorBody].Load(),
		RateFloorResponseCuts: st.timeouts[floorResponse].Load(),
		PanicsRecovered:       st.panics.Load(),
		HandlerAborts:         st.aborts.Load(),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out.ConnsAccepted = st.connsAccepted.Load()
	out.ConnsHijacked = st.connsHijacked.Load()
	out.ConnsOpen = out.ConnsAccepted - out.ConnsHijacked - st.connsClosed.Load()
	for c := range s.activeConn {
		switch c.statsState() {
		case http.StateActive:
			out.ConnsActive++
		case http.StateIdle:
			out.ConnsIdle++
		}
	}
	return out
}

// serverStats holds a Server's counters; Stats reads them. The zero value
// is ready to use.
type serverStats struct {
	// Incremented by every request, from every connection's goroutine.
	requestsHTTP1 atomic.Uint64
	requestsHTTP2 atomic.Uint64
	requestsOther atomic.Uint64

	// The connection counts. They are incremented with the Server's mu
	// held (trackConn), so that Stats reads them consistent with the
	// tracked connections.
	connsAccepted atomic.Uint64
	connsClosed   atomic.Uint64
	connsHijacked atomic.Uint64

	handshakes atomic.Uint64

	// Admission control (MaxConns, MaxConcurrentHandshakes).
	connLimitWaits        atomic.Uint64
	handshakeSlotWaits    atomic.Uint64
	handshakeSlotTimeouts atomic.Uint64

	// The accept loops' errors; see backoff.go.
	acceptBackoffErrors atomic.Uint64
	acceptRetriedErrors atomic.Uint64
	acceptBackoffWaits  atomic.Uint64
	acceptShedConns     atomic.Uint64

	// timeouts counts the server's deadlines that fired, by kind.
	timeouts [numTimeoutKinds]atomic.Uint64

	panics atomic.Uint64 // recovered panics, http.ErrAbortHandler excepted
	aborts atomic.Uint64 // panics with http.ErrAbortHandler
}

// timeoutKind is a deadline of the server's that fired.
type timeoutKind uint8

const (
	timeoutHeader timeoutKind = iota // ReadHeaderTimeout
	timeoutIdle                      // IdleTimeout
	timeoutRead                      // ReadTimeout, on a request body
	timeoutWrite                     // WriteTimeout
	floorBody                        // MinRequestBodyRate
	floorResponse                    // MinResponseRate
	numTimeoutKinds
)

// timedOut counts a deadline of kind k that fired.
func (st *serverStats) timedOut(k timeoutKind) { st.timeouts[k].Add(1) }

// countPanic counts a panic the server recovered: v is its value.
func (st *serverStats) countPanic(v any) {
	if v == http.ErrAbortHandler {
		st.aborts.Add(1)
	} else {
		st.panics.Add(1)
	}
}

// statsState returns the connection's state for Stats: for HTTP/2, the
// last state the HTTP/2 server reported (StateNew before its first
// report); otherwise the state recorded by setState.
func (c *conn) statsState() http.ConnState {
	if v := c.h2State.Load(); v != 0 {
		return http.ConnState(v - 1)
	}
	st, _ := c.getState()
	return st
}
