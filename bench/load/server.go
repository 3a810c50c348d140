package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/seed80f6b3e8/httpsrv"
)

// Response bodies of the handlers.
var (
	smallBody = []byte("hello, world\n")
	body1K    = fill(1 << 10)
	body64K   = fill(64 << 10)
)

func fill(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}

// handler is the one handler both servers run.
func handler() http.Handler {
	mux := http.NewServeMux()
	static := func(body []byte) http.HandlerFunc {
		n := strconv.Itoa(len(body))
		return func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Length", n)
			w.Write(body)
		}
	}
	mux.Handle("GET /small", static(smallBody))
	mux.Handle("GET /1k", static(body1K))
	mux.Handle("GET /64k", static(body64K))
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		if r.ContentLength >= 0 {
			h.Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
		}
		io.Copy(w, r.Body)
	})
	return mux
}

// serverMain runs one server until it is killed. It prints its address on
// stdout, then "gc" each time it has collected garbage and returned memory to
// the operating system on SIGUSR1 (for the RSS measurements). On SIGTERM it
// writes its profiles, if asked for, and exits.
func serverMain(args []string) {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	impl := fs.String("impl", "httpsrv", "httpsrv or nethttp")
	certType := fs.String("cert", "ecdsa", "ecdsa or rsa")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file until SIGTERM")
	memprofile := fs.String("memprofile", "", "write a heap profile (after a GC) to this file on SIGTERM")
	fs.Parse(args)

	cert := selfSigned(*certType)
	var cpuFile *os.File
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		cpuFile = f
	}
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGUSR1)
	go func() {
		for s := range sig {
			if s == syscall.SIGUSR1 {
				runtime.GC()
				debug.FreeOSMemory()
				fmt.Println("gc")
				continue
			}
			if cpuFile != nil {
				pprof.StopCPUProfile()
				cpuFile.Close()
			}
			if *memprofile != "" {
				f, err := os.Create(*memprofile)
				if err == nil {
					runtime.GC()
					pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
			}
			os.Exit(0)
		}
	}()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	quiet := log.New(io.Discard, "", 0) // clients that close mid-handshake
	fmt.Println(ln.Addr())
	switch *impl {
	case "httpsrv":
		srv := &httpsrv.Server{Handler: handler(), TLSConfig: cfg, ErrorLog: quiet}
		err = srv.ServeTLS(ln, "", "")
	case "nethttp":
		srv := &http.Server{Handler: handler(), TLSConfig: cfg, ErrorLog: quiet}
		err = srv.ServeTLS(ln, "", "")
	default:
		err = fmt.Errorf("unknown server %q", *impl)
	}
	log.Fatal(err)
}

// selfSigned returns a fresh self-signed certificate for localhost with an
// RSA-2048 or ECDSA P-256 key.
func selfSigned(kind string) tls.Certificate {
	var key, pub any
	switch kind {
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			log.Fatal(err)
		}
		key, pub = k, &k.PublicKey
	case "ecdsa":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			log.Fatal(err)
		}
		key, pub = k, &k.PublicKey
	default:
		log.Fatalf("unknown certificate type %q", kind)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		log.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
