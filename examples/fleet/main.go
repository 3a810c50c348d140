// Command fleet is one instance of a fleet of httpsrv servers behind a
// layer 4 load balancer (HAProxy, an AWS NLB) that sends the PROXY
// protocol; see the README's "Running several instances".
//
//	go run ./examples/fleet -addr 127.0.0.1:9001 -cert cert.pem -key key.pem \
//		-proxy-trusted 127.0.0.1,10.0.0.0/8 -ticket-keys tickets.keys -reuseport -name s1
//
// Every request is answered with 200 and one line each for the client's
// address as the handler sees it (from the PROXY header when a trusted
// balancer sent one), the protocol, and whether the TLS session was
// resumed, then the instance's name when -name is given:
//
//	remote=203.0.113.7:51234
//	proto=HTTP/2.0
//	resumed=true
//	instance=s1
//
// A request body is read and discarded. The program prints "listening on
// ADDR" once its socket is bound, and on SIGTERM or SIGINT drains with
// Shutdown (at most 30 s), then prints a "stopped" line with its counters
// and exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/seed80f6b3e8/httpsrv"
)

// drainTimeout bounds Shutdown on SIGTERM. Keep the service manager's
// stop timeout (systemd's TimeoutStopSec, Kubernetes'
// terminationGracePeriodSeconds) above it.
const drainTimeout = 30 * time.Second

func main() {
	addr := flag.String("addr", ":8443", "address to listen on")
	certFile := flag.String("cert", "", "certificate file (PEM), the same on every instance")
	keyFile := flag.String("key", "", "private key file (PEM) for -cert")
	trusted := flag.String("proxy-trusted", "", "comma-separated addresses or CIDR prefixes of the balancers allowed to send a PROXY header (required from them); empty: no PROXY protocol")
	ticketKeys := flag.String("ticket-keys", "", "file of TLS session ticket keys shared by the fleet (one base64 32-byte key a line, the first encrypts); empty: keys of this instance's own")
	reusePort := flag.Bool("reuseport", false, "set SO_REUSEPORT, so that the next instance can bind the same address before this one exits")
	name := flag.String("name", "", "instance name, answered on an instance= line when set")
	flag.Parse()
	if flag.NArg() > 0 {
		// A boolean flag takes its value with "=" (-reuseport=false): a
		// separate word would be dropped here, and the flag left on.
		log.Fatalf("unexpected arguments %q (a boolean flag's value goes after \"=\": -reuseport=false)", flag.Args())
	}
	if *certFile == "" || *keyFile == "" {
		log.Fatal("-cert and -key are required: every instance of a fleet serves the same certificate")
	}

	srv := &httpsrv.Server{
		Addr:                 *addr,
		Handler:              handler(*name),
		SessionTicketKeyFile: *ticketKeys,
		ReusePort:            *reusePort,
	}
	if *trusted != "" {
		srv.ProxyProtocol = &httpsrv.ProxyPolicy{
			TrustedProxies: strings.Split(*trusted, ","),
			Required:       true, // from a balancer, a connection without a header is refused
		}
	}
	if err := run(srv, *certFile, *keyFile); err != nil {
		log.Fatal(err)
	}
}

// handler answers with what the server knows of the client, one
// key=value a line.
func handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
			return
		}
		resumed := r.TLS != nil && r.TLS.DidResume
		fmt.Fprintf(w, "remote=%s\nproto=%s\nresumed=%t\n", r.RemoteAddr, r.Proto, resumed)
		if name != "" {
			fmt.Fprintf(w, "instance=%s\n", name)
		}
	})
}

func run(srv *httpsrv.Server, certFile, keyFile string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// BaseContext runs once the socket is bound and the certificate
	// loaded, just before the first Accept: the moment to say so.
	srv.BaseContext = func(ln net.Listener) context.Context {
		fmt.Printf("listening on %s\n", ln.Addr())
		return context.Background()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ListenAndServeTLS(certFile, keyFile) }()

	select {
	case err := <-serveErr:
		return err // ListenAndServeTLS always returns a non-nil error.
	case <-ctx.Done():
	}
	stop() // A second signal now stops the program at once.
	fmt.Println("shutting down")
	start := time.Now()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	st := srv.Stats()
	pe := srv.ProxyHeaderErrors()
	fmt.Printf("stopped: drained in %v; %d requests; PROXY header errors: untrusted=%d missing=%d timeout=%d malformed=%d truncated=%d oversized=%d\n",
		time.Since(start).Round(time.Millisecond), st.RequestsHTTP1+st.RequestsHTTP2,
		pe.Untrusted, pe.Missing, pe.Timeout, pe.Malformed, pe.Truncated, pe.Oversized)
	if err != nil {
		return err
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
