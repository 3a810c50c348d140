package httpsrv

import (
	"errors"
	"log"
)

// errPlaintextHTTP is the handshake error for a client that sent a
// plaintext HTTP request to the TLS port.
var errPlaintextHTTP = errors.New("client sent an HTTP request to an HTTPS server")

// logf logs through ErrorLog, or the log package's standard logger.
func (s *Server) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

// logHandshakeError reports a failed TLS handshake from remoteAddr.
func (s *Server) logHandshakeError(remoteAddr string, err error) {
	s.logf("http: TLS handshake error from %s: %v", remoteAddr, err)
}
