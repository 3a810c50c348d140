package httpsrv_test

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/seed80f6b3e8/httpsrv"
)

// Servers that share a SessionTicketKeyFile resume each other's TLS
// sessions, so a client sent to another instance by a load balancer skips
// the full handshake. The file holds one key per line, the first encrypts;
// to rotate, put a new key first and keep the old ones for 7 days.
func ExampleServer_sessionTicketKeyFile() {
	// newKey returns a line of the file, as `openssl rand -base64 32`
	// prints it.
	newKey := func() string {
		key := make([]byte, 32)
		rand.Read(key)
		return base64.StdEncoding.EncodeToString(key)
	}
	dir, err := os.MkdirTemp("", "tickets")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	keyFile := filepath.Join(dir, "ticket.keys")
	oldKey := newKey()
	if err := os.WriteFile(keyFile, []byte(oldKey+"\n"), 0o600); err != nil {
		log.Fatal(err)
	}

	// Two instances, as two processes or machines would be.
	var servers []*httpsrv.Server
	var urls []string
	var done []chan error
	for range 2 {
		srv := &httpsrv.Server{
			SessionTicketKeyFile: keyFile,
			Handler:              http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
			Logger:               slog.New(slog.DiscardHandler), // no reload lines in the output
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { errc <- srv.ServeTLS(ln, "testdata/localhost.crt", "testdata/localhost.key") }()
		servers = append(servers, srv)
		urls = append(urls, "https://"+ln.Addr().String()+"/")
		done = append(done, errc)
	}

	client := exampleClient()
	tr := client.Transport.(*http.Transport)
	tr.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	tr.DisableKeepAlives = true // a new connection, and handshake, per request
	resumed := func(url string) bool {
		resp, err := client.Get(url)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		return resp.TLS.DidResume
	}
	fmt.Println("first instance, resumed:", resumed(urls[0]))
	fmt.Println("second instance, resumed:", resumed(urls[1]))

	// Rotation: the new key first, the old one kept. In production the
	// servers pick the change up within CertReloadInterval; here they are
	// told at once.
	if err := os.WriteFile(keyFile, []byte(newKey()+"\n"+oldKey+"\n"), 0o600); err != nil {
		log.Fatal(err)
	}
	for _, srv := range servers {
		if err := srv.ReloadCertificate(); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("after rotation, first instance, resumed:", resumed(urls[0]))

	for i, srv := range servers {
		srv.Close()
		<-done[i]
	}
	// Output:
	// first instance, resumed: false
	// second instance, resumed: true
	// after rotation, first instance, resumed: true
}
