package httpsrv

// Review of the lazy background read and the request context wrapper
// (reqContext, commits 53d4dc7 and be63afd).

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestReviewH1LoopErrAfterClientGone checks that a handler that looks at
// its request context only once (Err, a select on Done, or Cause) after the client has gone (it
// was busy meanwhile: queued behind a lock, say), sees the context
// cancelled. Under net/http the background read runs from the handler's
// start, so the close has cancelled the context by then. With the lazy
// background read (53d4dc7), that first Err only started the read, and
// returned nil for a client gone long before.
func TestReviewH1LoopErrAfterClientGone(t *testing.T) {
	t.Parallel()
	looks := []struct {
		name string
		look func(ctx context.Context) error
	}{
		{name: "Err", look: context.Context.Err},
		{name: "select on Done", look: func(ctx context.Context) error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			default:
				return nil
			}
		}},
		{name: "Cause", look: context.Cause},
	}
	for _, tt := range looks {
		for _, oracle := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/oracle=%v", tt.name, oracle), func(t *testing.T) {
				t.Parallel()
				type connKey struct{}
				started := make(chan struct{}, 1)
				closed := make(chan struct{})
				result := make(chan error, 1)
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					started <- struct{}{}
					select {
					case <-closed:
					case <-t.Context().Done():
					}
					// Wait until the client's close has reached the
					// server's socket: its close_notify or its FIN
					// waits there (or, under net/http, the FIN after
					// the background read took the close_notify).
					c := r.Context().Value(connKey{}).(net.Conn)
					for {
						if cc, ok := c.(*countConn); ok {
							c = cc.Conn
							continue
						}
						u, ok := c.(interface{ NetConn() net.Conn })
						if !ok {
							break
						}
						c = u.NetConn()
					}
					tick := time.NewTicker(time.Millisecond)
					defer tick.Stop()
					deadline := time.After(testTimeout())
					for !peerClosed(c) && !inputWaiting(c) {
						select {
						case <-tick.C:
						case <-deadline:
							result <- fmt.Errorf("the close did not reach the server")
							return
						}
					}
					if oracle {
						// net/http's read is already under way: its
						// cancellation follows the FIN at once. The
						// handler may look in a moment.
						for r.Context().Err() == nil {
							select {
							case <-tick.C:
							case <-deadline:
								result <- fmt.Errorf("net/http did not cancel")
								return
							}
						}
					}
					result <- tt.look(r.Context())
				})
				p := startPair(t, h, func(s *Server, hs *http.Server) {
					s.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
						return context.WithValue(ctx, connKey{}, c)
					}
					hs.ConnContext = s.ConnContext
				})
				closeMidRequest(t, p, oracle, started, closed, result)
			})
		}
	}
}
