// Command hello is the httpsrv quick start: an HTTPS server that answers
// HTTP/1.1 and HTTP/2 on https://localhost:8443.
//
//	go run ./examples/hello
//	go run ./examples/hello -addr localhost:9443 -cert cert.pem -key key.pem
//
// Without -cert and -key it makes a self-signed certificate for localhost,
// 127.0.0.1 and ::1 at start, so clients must skip verification (curl -k).
// SIGINT or SIGTERM shuts the server down gracefully.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/seed80f6b3e8/httpsrv"
)

func main() {
	addr := flag.String("addr", "localhost:8443", "address to listen on")
	certFile := flag.String("cert", "", "certificate file (PEM); default: a generated self-signed certificate")
	keyFile := flag.String("key", "", "private key file (PEM) for -cert")
	flag.Parse()
	if err := run(*addr, *certFile, *keyFile); err != nil {
		log.Fatal(err)
	}
}

func run(addr, certFile, keyFile string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from httpsrv over %s\n", r.Proto)
	})
	srv := &httpsrv.Server{Addr: addr, Handler: mux}
	if certFile == "" && keyFile == "" {
		cert, err := selfSignedCert()
		if err != nil {
			return err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	} else if certFile == "" || keyFile == "" {
		return errors.New("-cert and -key must be given together")
	}

	// Listen first, so the message below appears only once the port is bound.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	url := "https://" + displayAddr(addr, ln.Addr()) + "/"
	fmt.Printf("listening on %s\ntry:\n  curl -k %s\n  curl -k --http2 %s\n", ln.Addr(), url, url)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(ln, certFile, keyFile) }()

	select {
	case err := <-serveErr:
		return err // ServeTLS always returns a non-nil error.
	case <-ctx.Done():
	}
	stop() // A second signal now stops the program at once.
	fmt.Println("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// displayAddr is the host from the -addr flag with the port that was bound,
// so "localhost:8443" stays a name and ":0" becomes "localhost:41234".
func displayAddr(flagAddr string, bound net.Addr) string {
	host, _, _ := net.SplitHostPort(flagAddr)
	_, port, _ := net.SplitHostPort(bound.String())
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// selfSignedCert makes an ECDSA P-256 certificate for localhost, 127.0.0.1
// and ::1, valid for a year.
func selfSignedCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"httpsrv example"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
