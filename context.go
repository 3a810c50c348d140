package httpsrv

import (
	"context"
	"net"
	"net/http"
)

// contextKey is a value for use with context.WithValue. It's used as a
// pointer so it fits in an interface{} without allocation.
type contextKey struct {
	name string
}

func (k *contextKey) String() string { return "httpsrv context value " + k.name }

// ServerContextKey is a context key. It can be used in HTTP handlers with
// Context.Value to access the *httpsrv.Server that started the handler.
// The associated value will be of type *Server.
//
// Under http.ServerContextKey, request contexts carry a *http.Server that
// stands in for the Server: it has the Server's Handler, timeouts and
// ErrorLog, so net/http helpers that log through it keep working.
var ServerContextKey = &contextKey{"server"}

// baseContext returns the context every connection accepted from l derives
// from: BaseContext's result (or context.Background) with the server keys.
func (s *Server) baseContext(l net.Listener) context.Context {
	ctx := context.Background()
	if s.BaseContext != nil {
		ctx = s.BaseContext(l)
		if ctx == nil {
			panic("BaseContext returned a nil context")
		}
	}
	ctx = context.WithValue(ctx, ServerContextKey, s)
	return context.WithValue(ctx, http.ServerContextKey, s.httpServer())
}
