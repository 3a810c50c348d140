package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"syscall"

	"github.com/seed80f6b3e8/httpsrv/bench/internal/benchcert"

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

// selfSigned returns a fresh self-signed certificate of the kind given
// (rsa or ecdsa); see benchcert.SelfSigned.
func selfSigned(kind string) tls.Certificate {
	cert, err := benchcert.SelfSigned(kind)
	if err != nil {
		log.Fatal(err)
	}
	return cert
}
