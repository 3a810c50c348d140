package httpsrv

import "context"

// serveHTTP1 serves HTTP/1.x requests on the connection. Placeholder until
// the HTTP/1.1 engine lands: it answers 505.
func (c *conn) serveHTTP1(ctx context.Context) {
	c.rwc.Write([]byte("HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n505 HTTP Version Not Supported: HTTP/1.1 is not served yet\n"))
}
