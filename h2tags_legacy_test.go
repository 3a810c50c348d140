//go:build !(go1.27 && !http2legacy)

package httpsrv

// xnetWrapsByTags is what x/net's build tags say of its HTTP/2 server, for
// the x/net this module requires: standalone here.
const xnetWrapsByTags = false
