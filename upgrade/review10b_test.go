//go:build unix

package upgrade

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/seed80f6b3e8/httpsrv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recipeChildEnv makes a new process started by an Upgrade in these tests
// follow the package documentation's recipe with a certificate it cannot
// load; see recipeChild.
const recipeChildEnv = "HTTPSRV_UPGRADE_RECIPE_CHILD"

func init() {
	if os.Getenv(recipeChildEnv) == "" || os.Getenv(envName) == "" {
		return
	}
	os.Exit(recipeChild())
}

// serveThenReady is the package documentation's recipe, from the start of
// ServeTLS to Ready: Ready only once ServeTLS has loaded the certificate
// and is about to accept (BaseContext), and ServeTLS's error otherwise.
func serveThenReady(u *Upgrader, srv *httpsrv.Server, ln net.Listener, certFile, keyFile string) (<-chan error, error) {
	serving := make(chan struct{})
	srv.BaseContext = func(net.Listener) context.Context {
		close(serving)
		return context.Background()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(ln, certFile, keyFile) }()
	select {
	case <-serving:
	case err := <-serveErr:
		return nil, err
	}
	return serveErr, u.Ready()
}

// recipeChild is a new binary whose certificate cannot be loaded: it
// follows serveThenReady, and exits 5 when that fails. If Ready was called
// anyway, it waits for ServeTLS's error, at most reviewWait, and exits 6.
func recipeChild() int {
	u, err := New(Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := u.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := &httpsrv.Server{Handler: http.NotFoundHandler()}
	serveErr, err := serveThenReady(u, srv, ln, "/nonexistent-httpsrv-upgrade-test/cert.pem", "/nonexistent-httpsrv-upgrade-test/key.pem")
	if err != nil {
		return 5
	}
	select {
	case <-serveErr:
	case <-time.After(reviewWait):
	}
	return 6
}

// TestReview10bRecipeBadCertificate: a new binary that follows the
// documented recipe and cannot load its certificate must not report
// ready: the old process's Upgrade fails and it keeps serving. With the
// recipe as first documented (go srv.ServeTLS(...); upg.Ready()), Ready
// came before ServeTLS failed: the Upgrade succeeded, and the old process
// would have drained and exited with nothing left to accept.
func TestReview10bRecipeBadCertificate(t *testing.T) {
	u, ln := newUpgrader(t, Options{UpgradeTimeout: reviewWait})
	t.Setenv(recipeChildEnv, "1")
	err := u.Upgrade()
	if err == nil {
		// Wait for the wrongly ready process, so that its waiter ends.
		<-u.next.done
	}
	require.Error(t, err, "the new binary, whose certificate cannot be loaded, reported ready")
	assert.ErrorContains(t, err, "exited before it was ready: exit status 5")
	select {
	case <-u.Exit():
		t.Fatal("Exit closed after a failed upgrade")
	default:
	}
	// The old process still has its listener.
	c, err := net.DialTimeout("tcp", ln.Addr().String(), reviewWait)
	require.NoError(t, err)
	c.Close()
}
