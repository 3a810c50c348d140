//go:build !(go1.27 && !http2legacy)

package httpsrv

import "net/http"

// h2WrapsNetHTTP reports whether golang.org/x/net/http2's server is built
// as a wrapper over net/http's own HTTP/2 (these are x/net's build tags for
// server.go, the standalone server). See h2.go.
const h2WrapsNetHTTP = false

// setDisableClientPriority does nothing: before Go 1.27 HTTP/2 always
// ignores client priority, and http.Server has no such field.
func setDisableClientPriority(*http.Server, bool) {}
