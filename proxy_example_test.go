package httpsrv_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/seed80f6b3e8/httpsrv"
)

// Behind a layer 4 load balancer that sends the PROXY protocol (HAProxy's
// send-proxy, an AWS NLB with proxy protocol v2 on), handlers see the
// client's address. Here the client writes the header itself, as the load
// balancer would.
func ExampleProxyPolicy() {
	srv := &httpsrv.Server{
		ProxyProtocol: &httpsrv.ProxyPolicy{
			// The load balancers' addresses: only they may send a header.
			TrustedProxies: []string{"127.0.0.1", "10.0.0.0/8"},
			// From them, a connection without a header is refused.
			Required: true,
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info, _ := httpsrv.ProxyInfoFromContext(r.Context())
			fmt.Fprintf(w, "client %s, proxy v%d, connected to %s", r.RemoteAddr, info.Version, info.Destination)
		}),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "testdata/localhost.crt", "testdata/localhost.key") }()

	client := exampleClient()
	client.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := new(net.Dialer).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		_, err = io.WriteString(c, "PROXY TCP4 203.0.113.7 198.51.100.1 51000 443\r\n")
		return c, err
	}
	resp, err := client.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))
	client.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	<-done
	// Output:
	// client 203.0.113.7:51000, proxy v1, connected to 198.51.100.1:443
}
