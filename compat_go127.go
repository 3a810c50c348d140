//go:build go1.27

package httpsrv

import "net/http"

// setGo127Fields copies the settings that Go 1.27 added to http.Server,
// which its HTTP/2 server reads from the stand-in: DisableClientPriority,
// and MaxHeaderValueCount (net/http's HTTP/2 server applies
// maxHeaderValueCount when it decodes a header block). They are set
// whichever HTTP/2 engine x/net was built with, as x/net's standalone
// server on Go 1.27 reads DisableClientPriority from it too.
func setGo127Fields(hs *http.Server, s *Server) {
	hs.DisableClientPriority = s.DisableClientPriority
	hs.MaxHeaderValueCount = s.MaxHeaderValueCount
}
