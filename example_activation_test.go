package httpsrv_test

import (
	"context"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/seed80f6b3e8/httpsrv"
)

// Serve the socket systemd passes (see the README's socket unit), and
// drain on SIGTERM, so that "systemctl restart" loses no request: the
// socket stays open in systemd meanwhile, and connections wait in its
// backlog for the new process.
func ExampleActivationListeners() {
	lns, err := httpsrv.ActivationListeners()
	if err != nil {
		log.Fatal(err)
	}
	if len(lns) != 1 {
		log.Fatalf("want 1 socket from systemd, got %d", len(lns))
	}
	srv := &httpsrv.Server{Handler: http.NotFoundHandler()}
	go func() {
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		<-term
		srv.Shutdown(context.Background())
	}()
	if err := srv.ServeTLS(lns[0], "cert.pem", "key.pem"); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
