//go:build unix

package upgrade

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

// childModeEnv tells a copy of the test binary started by Upgrade what to
// do instead of running the tests; see childMain.
const childModeEnv = "HTTPSRV_UPGRADE_TEST_CHILD"

// TestMain runs childMain in a process started by an Upgrade, and
// otherwise the tests, failing the run if a goroutine is left behind.
func TestMain(m *testing.M) {
	if mode := os.Getenv(childModeEnv); mode != "" && os.Getenv(envName) != "" {
		os.Exit(childMain(mode))
	}
	goleak.VerifyTestMain(m)
}

// childMain is the new process of the tests' upgrades:
//
//   - "exit" exits with status 3 before Ready;
//   - "hang" never calls Ready;
//   - "serve" takes the listener "tcp 127.0.0.1:0", calls Ready, accepts
//     one connection on it, writes its process ID there, and exits 0;
//   - "ready-fails" takes the listener, calls Ready with a PID file that
//     cannot be written, and then, ignoring the error, waits like "hang".
func childMain(mode string) int {
	switch mode {
	case "exit":
		return 3
	case "hang":
		// Wait for a signal that never comes: the parent's UpgradeTimeout
		// kills the process. (A pending Notify keeps the runtime from
		// reporting a deadlock.)
		never := make(chan os.Signal, 1)
		signal.Notify(never, syscall.SIGUSR1)
		<-never
		return 4
	}
	var opts Options
	if mode == "ready-fails" {
		opts.PIDFile = "/nonexistent-httpsrv-upgrade-test/app.pid"
	}
	u, err := New(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := u.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer ln.Close()
	if !u.HasParent() {
		fmt.Fprintln(os.Stderr, "no parent")
		return 1
	}
	if mode == "ready-fails" {
		if u.Ready() == nil {
			return 1
		}
		never := make(chan os.Signal, 1)
		signal.Notify(never, syscall.SIGUSR1)
		<-never
		return 4
	}
	if err := u.Ready(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := ln.Accept()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	fmt.Fprintf(c, "%d\n", os.Getpid())
	return 0
}
