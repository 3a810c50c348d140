package httpsrv

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"runtime"
	"strings"
	"time"
)

// errPlaintextHTTP is the handshake error for a client that sent a
// plaintext HTTP request to the TLS port.
var errPlaintextHTTP = errors.New("client sent an HTTP request to an HTTPS server")

// Logging.
//
// Every log call in the package goes through logf, which keeps net/http's
// format strings, or through logHandshakeError. Where the records go:
//
//   - ErrorLog, when set, gets net/http's lines unchanged, as in net/http.
//   - Otherwise Logger, or slog.Default() when Logger is nil, gets one
//     record per call: logf at slog.LevelError with the formatted line as
//     the message, logAtf at the level it is given, and the
//     handshake-failure summary at slog.LevelWarn with its counts as
//     attributes.
//
// ErrorLog has no levels: it gets every line, whatever its level, as
// net/http's ErrorLog gets everything net/http logs.

// logf logs a net/http-style line: through ErrorLog if set, else as an
// error record through the slog logger (see logger).
func (s *Server) logf(format string, args ...any) {
	s.logLevel(slog.LevelError, format, args...)
}

// logAtf is logf at another level than slog.LevelError, for lines that do
// not report an error (a certificate reloaded, a certificate close to
// expiry). With ErrorLog set the line goes there, as with logf.
func (s *Server) logAtf(level slog.Level, format string, args ...any) {
	s.logLevel(level, format, args...)
}

// logLevel is logf and logAtf. It must be called directly by them: the
// source of a record is the caller of its caller.
func (s *Server) logLevel(level slog.Level, format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
		return
	}
	l := s.logger()
	ctx := context.Background()
	if !l.Enabled(ctx, level) {
		return
	}
	msg := fmt.Sprintf(format, args...)
	var attrs []slog.Attr
	// A panic line carries the stack after the first newline; keep the
	// message on one line and put the stack in its own attribute.
	if first, stack, ok := strings.Cut(msg, "\n"); ok && strings.Contains(format, "panic serving") {
		msg = first
		attrs = append(attrs, slog.String("stack", stack))
	}
	var pcs [1]uintptr
	runtime.Callers(3, pcs[:]) // skip Callers, logLevel and logf: the source is logf's caller
	logRecord(ctx, l, level, strings.TrimSuffix(msg, "\n"), pcs[0], attrs...)
}

// logger returns the slog logger records go to when ErrorLog is nil.
func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// errorLog returns the *log.Logger to give net/http and x/net code that
// logs through http.Server.ErrorLog, so that its lines follow the same
// rules as ours: ErrorLog if set, else error records through the slog
// logger, which is looked up at each line, as logf does.
func (s *Server) errorLog() *log.Logger {
	if s.ErrorLog != nil {
		return s.ErrorLog
	}
	return slog.NewLogLogger(serverHandler{s}, slog.LevelError)
}

// serverHandler is a slog.Handler that passes each call on to the handler
// of s.logger() at the time of the call, so that a later slog.SetDefault
// is followed.
type serverHandler struct{ s *Server }

func (h serverHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.s.logger().Enabled(ctx, l)
}

func (h serverHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.s.logger().Handler().Handle(ctx, r)
}

func (h serverHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.s.logger().Handler().WithAttrs(attrs)
}

func (h serverHandler) WithGroup(name string) slog.Handler {
	return h.s.logger().Handler().WithGroup(name)
}

// logRecord sends one record to l. pc is the source position to report,
// or zero for none.
func logRecord(ctx context.Context, l *slog.Logger, level slog.Level, msg string, pc uintptr, attrs ...slog.Attr) {
	r := slog.NewRecord(time.Now(), level, msg, pc)
	r.AddAttrs(attrs...)
	_ = l.Handler().Handle(ctx, r)
}
