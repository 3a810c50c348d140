package httpsrv_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/seed80f6b3e8/httpsrv"
)

// The usual net/http program, with the type swapped.
func ExampleServer_ServeTLS() {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello over %s", r.Proto)
	})
	srv := &httpsrv.Server{Handler: mux}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "testdata/localhost.crt", "testdata/localhost.key") }()

	client := exampleClient()
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
	if err := srv.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(errors.Is(<-done, http.ErrServerClosed))
	// Output:
	// hello over HTTP/2.0
	// true
}

// Graceful shutdown hooks run once, when Shutdown starts.
func ExampleServer_RegisterOnShutdown() {
	srv := &httpsrv.Server{}
	notified := make(chan string, 2)
	srv.RegisterOnShutdown(func() { notified <- "notify websockets" })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	_ = srv.Shutdown(ctx)      // does not run the hook again
	fmt.Println(<-notified)    // the hook runs in its own goroutine
	fmt.Println(len(notified)) // and only once
	// Output:
	// notify websockets
	// 0
}

// exampleClient trusts the test certificate.
func exampleClient() *http.Client {
	pem, err := os.ReadFile("testdata/localhost.crt")
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "localhost"},
		ForceAttemptHTTP2: true,
	}}
}
