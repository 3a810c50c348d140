package httpsrv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// HandshakeErrorCounts holds the number of failed TLS handshakes a Server
// has seen since it was created, by cause. Each failure is counted in
// exactly one field. [Server.HandshakeErrors] returns it; the counts only
// grow, so they suit counter metrics.
type HandshakeErrorCounts struct {
	// EOF counts clients that closed or reset the connection during the
	// handshake, most often before sending a ClientHello: load-balancer
	// health checks and port scanners.
	EOF uint64

	// BadCertificate counts clients that aborted the handshake with a TLS
	// alert rejecting the server's certificate (bad_certificate,
	// unknown_ca, certificate_unknown, certificate_expired,
	// certificate_revoked, unsupported_certificate and the like): an
	// expired or misconfigured certificate, one whose name does not match,
	// or a client that does not trust its issuer. A client certificate the
	// server rejects is counted in Other.
	BadCertificate uint64

	// ProtocolVersion counts clients that offered only TLS versions the
	// server refuses (those below TLS 1.2 unless TLSConfig.MinVersion says
	// otherwise, or an SSLv2 hello), or that refused the version the
	// server chose.
	ProtocolVersion uint64

	// Timeout counts handshakes that did not finish within the handshake
	// timeout (see Server.TLSHandshakeTimeout), and, with
	// Server.ProxyProtocol set, clients that need not send a PROXY header
	// and sent nothing within ProxyPolicy.HeaderTimeout.
	Timeout uint64

	// PlainHTTP counts clients that sent a plaintext HTTP request to the
	// TLS port. They were answered with 400 Bad Request.
	PlainHTTP uint64

	// Other counts every other failure, for example a first record that is
	// not TLS at all, no cipher suite or ALPN protocol in common, a client
	// certificate that failed verification, or a connection closed by
	// Shutdown or Close.
	Other uint64
}

// Total returns the sum of all the counts.
func (c HandshakeErrorCounts) Total() uint64 {
	return c.EOF + c.BadCertificate + c.ProtocolVersion + c.Timeout + c.PlainHTTP + c.Other
}

// HandshakeErrors returns the number of TLS handshakes that have failed on
// s, by cause. It is safe for concurrent use, and cheap enough to call
// from a metrics collector on every scrape. [Server.Stats] includes the
// same counts, with the rest of the server's counters.
//
// net/http logs every failed handshake; s instead counts them and logs a
// summary at most once per minute (see the Logger field).
func (s *Server) HandshakeErrors() HandshakeErrorCounts {
	return s.handshakeLog().counts()
}

// handshakeErrorKind is the cause of a failed handshake.
type handshakeErrorKind uint8

const (
	hsEOF handshakeErrorKind = iota
	hsBadCertificate
	hsProtocolVersion
	hsTimeout
	hsPlainHTTP
	hsOther
	numHandshakeErrorKinds
)

// String returns the kind's name in log records.
func (k handshakeErrorKind) String() string {
	switch k {
	case hsEOF:
		return "eof"
	case hsBadCertificate:
		return "bad_certificate"
	case hsProtocolVersion:
		return "protocol_version"
	case hsTimeout:
		return "timeout"
	case hsPlainHTTP:
		return "plain_http"
	}
	return "other"
}

// TLS alert numbers (RFC 8446 §6, RFC 6066) that a client sends when it
// rejects the server's certificate, and the one for a version mismatch.
var (
	badCertificateAlerts = []tls.AlertError{
		42,  // bad_certificate
		43,  // unsupported_certificate
		44,  // certificate_revoked
		45,  // certificate_expired
		46,  // certificate_unknown
		48,  // unknown_ca
		113, // bad_certificate_status_response
		114, // bad_certificate_hash_value
	}
	protocolVersionAlert tls.AlertError = 70
)

// classifyHandshakeError returns the cause of a failed handshake.
func classifyHandshakeError(err error) handshakeErrorKind {
	if errors.Is(err, errPlaintextHTTP) {
		return hsPlainHTTP
	}
	if isTimeout(err) {
		return hsTimeout
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) {
		return hsEOF
	}
	if a, ok := remoteAlert(err); ok {
		switch {
		case a == protocolVersionAlert:
			return hsProtocolVersion
		case isBadCertificateAlert(a):
			return hsBadCertificate
		}
		return hsOther
	}
	// An alert we sent. crypto/tls wraps it into the error only for QUIC
	// today; a protocol_version alert means the same either way.
	var local tls.AlertError
	if errors.As(err, &local) && local == protocolVersionAlert {
		return hsProtocolVersion
	}
	var rhe tls.RecordHeaderError
	if errors.As(err, &rhe) && strings.Contains(rhe.Msg, "SSLv2") {
		return hsProtocolVersion
	}
	// crypto/tls returns a plain fmt.Errorf for a ClientHello without a
	// version we accept (handshake_server.go, the same text from Go 1.21 to
	// 1.27), so the message is all there is to go on.
	if strings.Contains(err.Error(), "client offered only unsupported versions") {
		return hsProtocolVersion
	}
	return hsOther
}

// isTimeout reports whether err is a deadline error.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// remoteAlert returns the TLS alert the client sent, if err reports one.
// crypto/tls reports it as a *net.OpError with Op "remote error" whose Err
// is an unexported alert type with the same text as tls.AlertError.
func remoteAlert(err error) (tls.AlertError, bool) {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err == nil {
		return 0, false
	}
	if a, ok := oe.Err.(tls.AlertError); ok {
		return a, true
	}
	msg := oe.Err.Error()
	if msg == protocolVersionAlert.Error() {
		return protocolVersionAlert, true
	}
	for _, a := range badCertificateAlerts {
		if a.Error() == msg {
			return a, true
		}
	}
	// Some other alert. Its number does not matter to the caller, which
	// only tells the alerts above apart; 255 is not a TLS alert.
	return 255, true
}

func isBadCertificateAlert(a tls.AlertError) bool {
	for _, b := range badCertificateAlerts {
		if a == b {
			return true
		}
	}
	return false
}

// handshakeErrorLogInterval is the least time between two handshake-error
// summaries. A minute bounds the log to 1440 summaries a day per server
// however many handshakes fail (a port scan or a broken certificate can
// fail thousands a minute), while a new problem still shows within a
// minute, as fast as a typical metrics scrape would show it, and the first
// failure after a quiet minute is logged at once.
const handshakeErrorLogInterval = time.Minute

// handshakeSample is one failed handshake shown in a summary.
type handshakeSample struct {
	remoteAddr string
	err        string
}

// handshakeErrorLog counts failed handshakes and logs them at a bounded
// rate. The zero value is ready to use.
//
// A failure is logged at once when no summary was logged in the last
// interval. Otherwise it waits in pending, and a timer armed by the first
// such failure logs the summary when the interval ends, so a burst is
// reported a minute later at most, not when the next failure happens to
// come. Once the server is closed (close), pending failures are logged and
// later ones are logged at once: there is no later summary to wait for.
type handshakeErrorLog struct {
	// totals are the counts since the Server was created, by kind.
	totals [numHandshakeErrorKinds]atomic.Uint64

	// now returns the current time; nil means time.Now. afterFunc arms
	// the timer of a deferred summary; nil means time.AfterFunc. Tests set
	// them before first use.
	now       func() time.Time
	afterFunc func(d time.Duration, f func()) (stop func() bool)

	// mu guards the fields below it.
	mu      sync.Mutex
	pending [numHandshakeErrorKinds]uint64 // failures since the last summary
	samples [numHandshakeErrorKinds]handshakeSample
	last    time.Time   // when the last summary was logged; zero if never
	stop    func() bool // stops the armed timer; nil when none is armed
	gen     uint64      // counts armed timers, so that a stale one does nothing
	closed  bool        // set by close

	// reporting counts the summaries a timer has taken and is logging, so
	// that Shutdown and Close can wait for them.
	reporting sync.WaitGroup
}

func (h *handshakeErrorLog) clock() time.Time {
	if h.now != nil {
		return h.now()
	}
	return time.Now()
}

func (h *handshakeErrorLog) counts() HandshakeErrorCounts {
	return HandshakeErrorCounts{
		EOF:             h.totals[hsEOF].Load(),
		BadCertificate:  h.totals[hsBadCertificate].Load(),
		ProtocolVersion: h.totals[hsProtocolVersion].Load(),
		Timeout:         h.totals[hsTimeout].Load(),
		PlainHTTP:       h.totals[hsPlainHTTP].Load(),
		Other:           h.totals[hsOther].Load(),
	}
}

// handshakeSummary is what one summary reports.
type handshakeSummary struct {
	counts  [numHandshakeErrorKinds]uint64
	samples [numHandshakeErrorKinds]handshakeSample
	period  time.Duration // since the previous summary; zero for the first
	at      time.Time
}

var noHandshakeErrors [numHandshakeErrorKinds]uint64

// record counts a failure and returns the summary to log, if one is due:
// when this is the first failure, when handshakeErrorLogInterval has
// passed since the last summary, or when the log is closed. If none is
// due, it makes sure a timer will call report when the interval ends.
func (h *handshakeErrorLog) record(kind handshakeErrorKind, remoteAddr string, err error, report func(handshakeSummary)) (handshakeSummary, bool) {
	h.totals[kind].Add(1)
	now := h.clock()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pending[kind]++
	if h.samples[kind] == (handshakeSample{}) {
		h.samples[kind] = handshakeSample{remoteAddr: remoteAddr, err: err.Error()}
	}
	if !h.closed && !h.last.IsZero() && now.Sub(h.last) < handshakeErrorLogInterval {
		if h.stop == nil {
			h.armLocked(h.last.Add(handshakeErrorLogInterval).Sub(now), report)
		}
		return handshakeSummary{}, false
	}
	return h.takeSummaryLocked(now), true
}

// armLocked arms the timer that reports the pending failures after d. It
// requires h.mu.
func (h *handshakeErrorLog) armLocked(d time.Duration, report func(handshakeSummary)) {
	h.gen++
	gen := h.gen
	fire := func() {
		if sum, ok := h.due(gen, report); ok {
			defer h.reporting.Done()
			report(sum)
		}
	}
	if h.afterFunc != nil {
		h.stop = h.afterFunc(d, fire)
	} else {
		h.stop = time.AfterFunc(d, fire).Stop
	}
}

// due is the armed timer's work: it returns the pending summary, unless
// the timer is stale (a summary was taken since it was armed) or fired
// early by the clock's reckoning, in which case it re-arms for the rest.
func (h *handshakeErrorLog) due(gen uint64, report func(handshakeSummary)) (handshakeSummary, bool) {
	now := h.clock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if gen != h.gen || h.stop == nil {
		return handshakeSummary{}, false
	}
	h.stop = nil
	if h.pending == noHandshakeErrors {
		return handshakeSummary{}, false
	}
	if rest := h.last.Add(handshakeErrorLogInterval).Sub(now); rest > 0 && !h.closed {
		h.armLocked(rest, report)
		return handshakeSummary{}, false
	}
	h.reporting.Add(1) // under h.mu, so that close cannot miss it
	return h.takeSummaryLocked(now), true
}

// close returns the summary of the failures not yet reported, if any, and
// makes later failures report at once.
func (h *handshakeErrorLog) close() (handshakeSummary, bool) {
	now := h.clock()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.pending == noHandshakeErrors {
		return handshakeSummary{}, false
	}
	return h.takeSummaryLocked(now), true
}

// takeSummaryLocked returns the pending counts and samples as a summary
// logged at now, starts a new period and disarms the timer. It requires
// that h.mu is held.
func (h *handshakeErrorLog) takeSummaryLocked(now time.Time) handshakeSummary {
	sum := handshakeSummary{counts: h.pending, samples: h.samples, at: now}
	if !h.last.IsZero() {
		sum.period = now.Sub(h.last)
	}
	h.pending = noHandshakeErrors
	h.samples = [numHandshakeErrorKinds]handshakeSample{}
	h.last = now
	if h.stop != nil {
		h.stop()
		h.stop = nil
	}
	return sum
}

// logHandshakeError reports a failed TLS handshake from remoteAddr: it is
// counted, and logged in a summary at most once per
// handshakeErrorLogInterval.
//
// After Shutdown or Close, a handshake that failed because the server
// closed its connection (net.ErrClosed) is counted but not logged: the
// server cut it, not the client.
func (s *Server) logHandshakeError(remoteAddr string, err error) {
	h := s.handshakeLog()
	kind := classifyHandshakeError(err)
	if s.shuttingDown() && errors.Is(err, net.ErrClosed) {
		h.totals[kind].Add(1)
		return
	}
	if sum, ok := h.record(kind, remoteAddr, err, s.logHandshakeSummary); ok {
		s.logHandshakeSummary(sum)
	}
}

// flushHandshakeErrors logs the failures not yet reported in a summary,
// makes later failures log at once, and waits for a summary a timer is
// logging. Shutdown and Close call it, so that none go unreported and no
// timer writes to the logger after they return.
func (s *Server) flushHandshakeErrors() {
	h := s.handshakeLog()
	if sum, ok := h.close(); ok {
		s.logHandshakeSummary(sum)
	}
	h.reporting.Wait()
}

// logHandshakeSummary logs a summary. With ErrorLog, each sample is a
// net/http line ("http: TLS handshake error from %s: %v"), followed by a
// count line when there were failures besides the samples. With slog, it
// is one LevelWarn record with the total and, for each kind seen, a group
// holding its count and sample.
func (s *Server) logHandshakeSummary(sum handshakeSummary) {
	var total, shown uint64
	for k, n := range sum.counts {
		total += n
		if n > 0 && sum.samples[k].err != "" {
			shown++
		}
	}
	if s.ErrorLog != nil {
		for k, n := range sum.counts {
			if smp := sum.samples[k]; n > 0 && smp.err != "" {
				s.ErrorLog.Printf("http: TLS handshake error from %s: %v", smp.remoteAddr, smp.err)
			}
		}
		if total > shown {
			var b strings.Builder
			fmt.Fprintf(&b, "http: %d TLS handshake errors", total)
			if sum.period > 0 {
				fmt.Fprintf(&b, " in the last %v", sum.period.Round(time.Second))
			}
			b.WriteString(":")
			for k, n := range sum.counts {
				if n > 0 {
					fmt.Fprintf(&b, " %v=%d", handshakeErrorKind(k), n)
				}
			}
			s.ErrorLog.Print(b.String())
		}
		return
	}
	l := s.logger()
	ctx := context.Background()
	if !l.Enabled(ctx, slog.LevelWarn) {
		return
	}
	attrs := make([]any, 0, 2+numHandshakeErrorKinds)
	attrs = append(attrs, slog.Uint64("total", total))
	if sum.period > 0 {
		attrs = append(attrs, slog.Duration("period", sum.period))
	}
	for k, n := range sum.counts {
		if n == 0 {
			continue
		}
		g := []any{slog.Uint64("count", n)}
		if smp := sum.samples[k]; smp.err != "" {
			g = append(g, slog.String("remote_addr", smp.remoteAddr), slog.String("error", smp.err))
		}
		attrs = append(attrs, slog.Group(handshakeErrorKind(k).String(), g...))
	}
	r := slog.NewRecord(sum.at, slog.LevelWarn, "http: TLS handshake errors", 0)
	r.Add(attrs...)
	_ = l.Handler().Handle(ctx, r)
}

// handshakeLog returns s's handshakeErrorLog.
func (s *Server) handshakeLog() *handshakeErrorLog {
	return &s.hsErrs
}
