package httpsrv_test

import (
	"context"
	"encoding/json"
	"expvar"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/seed80f6b3e8/httpsrv"
)

// Publish the server's counters with expvar, which serves them as JSON at
// /debug/vars, next to the Go runtime's memstats. expvar.Func calls Stats
// at each scrape. (expvar.Publish panics if the name is taken: publish
// once per program.)
func ExampleServer_Stats() {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	})
	mux.Handle("/debug/vars", expvar.Handler()) // or use http.DefaultServeMux
	srv := &httpsrv.Server{Handler: mux}
	expvar.Publish("httpsrv", expvar.Func(func() any { return srv.Stats() }))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "testdata/localhost.crt", "testdata/localhost.key") }()

	// A request, then a scrape of /debug/vars over the same HTTP/2
	// connection.
	client := exampleClient()
	base := "https://" + ln.Addr().String()
	resp, err := client.Get(base + "/")
	if err != nil {
		log.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp, err = client.Get(base + "/debug/vars")
	if err != nil {
		log.Fatal(err)
	}
	var vars struct{ Httpsrv httpsrv.Stats }
	if err := json.NewDecoder(resp.Body).Decode(&vars); err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	st := vars.Httpsrv
	fmt.Printf("connections accepted %d, open %d, active %d\n", st.ConnsAccepted, st.ConnsOpen, st.ConnsActive)
	fmt.Printf("handshakes %d, failed %d\n", st.Handshakes, st.HandshakeErrors.Total())
	fmt.Printf("requests HTTP/1 %d, HTTP/2 %d\n", st.RequestsHTTP1, st.RequestsHTTP2)

	client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	<-done
	// Output:
	// connections accepted 1, open 1, active 1
	// handshakes 1, failed 0
	// requests HTTP/1 0, HTTP/2 2
}
