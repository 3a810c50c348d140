//go:build !linux

package httpsrv

import "net"

// limitUnsentBytes does nothing outside Linux; see sockopt_linux.go.
func limitUnsentBytes(net.Conn, int) {}
