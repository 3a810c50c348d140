//go:build !go1.27

package httpsrv

import "net/http"

// setGo127Fields copies the settings that only Go 1.27's http.Server has a
// field for. Before Go 1.27 there are none: HTTP/2 always ignores client
// priority, and the header value count is enforced by httpsrv itself (see
// h2CountLimit).
func setGo127Fields(*http.Server, *Server) {}
