package upgrade_test

import (
	"context"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/seed80f6b3e8/httpsrv"
	"github.com/seed80f6b3e8/httpsrv/upgrade"
)

// An HTTPS server that replaces its binary on SIGHUP (install the new one
// at the same path first) and stops on SIGTERM, both without losing a
// request.
func Example() {
	upg, err := upgrade.New(upgrade.Options{PIDFile: "/run/app.pid"})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := upg.Listen("tcp", ":8443")
	if err != nil {
		log.Fatal(err)
	}
	// Signals first: once Ready has written the PID file, a SIGHUP may
	// come, and its default action would end the process.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM)

	// Ready only once the server serves: BaseContext runs after ServeTLS
	// has loaded the certificate, just before its first Accept. A new
	// binary whose ServeTLS fails exits before Ready, and the parent's
	// Upgrade fails with the parent still serving.
	serving := make(chan struct{})
	srv := &httpsrv.Server{
		Handler: http.NotFoundHandler(),
		BaseContext: func(net.Listener) context.Context {
			close(serving)
			return context.Background()
		},
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(ln, "cert.pem", "key.pem") }()
	select {
	case <-serving:
	case err := <-serveErr:
		log.Fatal(err)
	}
	if err := upg.Ready(); err != nil { // the parent, if any, now drains
		log.Fatal(err)
	}

wait:
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGTERM {
				break wait
			}
			if err := upg.Upgrade(); err != nil {
				log.Print(err) // the new binary did not start; keep serving
			}
		case <-upg.Exit(): // the new process serves
			break wait
		}
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		log.Print(err)
	}
}
