//go:build go1.27 && !http2legacy

package httpsrv

import "net/http"

// h2WrapsNetHTTP reports whether golang.org/x/net/http2's server is built
// as a wrapper over net/http's own HTTP/2 (these are x/net's build tags for
// server_wrap.go). See h2.go.
const h2WrapsNetHTTP = true

// setDisableClientPriority sets the Go 1.27 field of the same name.
func setDisableClientPriority(hs *http.Server, v bool) { hs.DisableClientPriority = v }
