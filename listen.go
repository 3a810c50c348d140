package httpsrv

import (
	"context"
	"net"
	"sync"
)

// listen opens the TCP listener for ListenAndServe and ListenAndServeTLS.
// A zero net.ListenConfig enables TCP keep-alive on every accepted
// connection (15 s idle, 15 s interval, 9 probes on Linux) and TCP_NODELAY,
// the same as net/http gets from net.Listen. With ReusePort, a copy of the
// ListenConfig (s.ListenConfig is not modified) also sets SO_REUSEPORT.
func (s *Server) listen(addr string) (net.Listener, error) {
	var lc net.ListenConfig
	if s.ListenConfig != nil {
		lc = *s.ListenConfig
	}
	if s.ReusePort {
		if err := setReusePort(&lc, addr); err != nil {
			return nil, err
		}
	}
	return lc.Listen(context.Background(), "tcp", addr)
}

// onceCloseListener wraps a net.Listener, protecting it from multiple Close
// calls: the first call's result is returned to every caller.
type onceCloseListener struct {
	net.Listener
	once     sync.Once
	closeErr error
}

func (oc *onceCloseListener) Close() error {
	oc.once.Do(oc.close)
	return oc.closeErr
}

func (oc *onceCloseListener) close() { oc.closeErr = oc.Listener.Close() }
