//go:build linux

package httpsrv

// Review of the zero-downtime restart change (issue 10 item 4), socket
// activation: tests that fail on the branch as written. A child that gets
// descriptors is the test binary run again through sh (which sets
// LISTEN_PID to its own process ID and execs, as systemd does between fork
// and exec), dispatched by init below before TestMain.

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reviewActivationEnv makes the test binary call ActivationListeners and
// print "review-rs: <listeners> <error or nil>" instead of running tests.
const reviewActivationEnv = "HTTPSRV_REVIEW_RS_ACTIVATION"

func init() {
	if os.Getenv(reviewActivationEnv) == "" || os.Getenv(listenPIDEnv) != strconv.Itoa(os.Getpid()) {
		return
	}
	lns, err := ActivationListeners()
	msg := "nil"
	if err != nil {
		msg = strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	var addrs []string
	for _, ln := range lns {
		addrs = append(addrs, ln.Addr().Network()+":"+ln.Addr().String())
		ln.Close()
	}
	fmt.Printf("review-rs: %d %s %s\n", len(lns), strings.Join(addrs, ","), msg)
	os.Exit(0)
}

// runActivationChild runs the test binary with f as descriptor 3 and
// LISTEN_FDS=1, and returns its ActivationListeners result line.
func runActivationChild(t *testing.T, f *os.File) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), reviewActivationEnv+"=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=https")
	cmd.ExtraFiles = []*os.File{f}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "output:\n%s", out)
	for line := range strings.Lines(string(out)) {
		if rest, ok := strings.CutPrefix(line, "review-rs: "); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatalf("no result line in:\n%s", out)
	return ""
}

// TestReviewRestartActivationNonListeningSocket: ActivationListeners is
// documented to fail, naming the descriptor, when one is not a listening
// socket, but net.FileListener checks only the address family (TCP or
// Unix), not SO_ACCEPTCONN or the socket type. So a connected TCP socket
// (what systemd passes with Accept=yes, a common unit mistake), a bound
// socket that is not listening, and a Unix datagram socket
// (ListenDatagram=/run/app.sock) all come back as listeners; Serve then
// fails on the first Accept (EINVAL, EOPNOTSUPP) instead of the program
// failing at start-up with a clear error. Expected: an error naming
// descriptor 3, and no listener.
func TestReviewRestartActivationNonListeningSocket(t *testing.T) {
	tests := []struct {
		name string
		file func(t *testing.T) *os.File
	}{
		{"connected TCP (Accept=yes)", func(t *testing.T) *os.File {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			t.Cleanup(func() { ln.Close() })
			c, err := net.Dial("tcp", ln.Addr().String())
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			sc, err := ln.Accept()
			require.NoError(t, err)
			t.Cleanup(func() { sc.Close() })
			f, err := sc.(*net.TCPConn).File()
			require.NoError(t, err)
			return f
		}},
		{"bound TCP, not listening", func(t *testing.T) *os.File {
			fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
			require.NoError(t, err)
			f := os.NewFile(uintptr(fd), "bound")
			require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
			return f
		}},
		{"Unix datagram (ListenDatagram=)", func(t *testing.T) *os.File {
			c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "dgram"), Net: "unixgram"})
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			f, err := c.File()
			require.NoError(t, err)
			return f
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.file(t)
			t.Cleanup(func() { f.Close() })
			res := runActivationChild(t, f)
			assert.True(t, strings.HasPrefix(res, "0 "), "ActivationListeners returned a listener for a socket that is not listening: %q", res)
			assert.Contains(t, res, "descriptor 3", "the error names the descriptor: %q", res)
		})
	}
}

// TestReviewRestartActivationListenFDsUnset: sd_listen_fds(3) returns 0
// (no sockets, no error) when LISTEN_PID names this process but LISTEN_FDS
// is unset, as after a wrapper or a supervisor that sets only LISTEN_PID;
// ActivationListeners returns an error (LISTEN_FDS="" is not a count), so
// a program that falls back to listening itself when no socket was passed
// fails to start. Expected: nil listeners and a nil error, and the
// variables unset.
func TestReviewRestartActivationListenFDsUnset(t *testing.T) {
	t.Setenv(listenPIDEnv, strconv.Itoa(os.Getpid()))
	t.Setenv(listenFDsEnv, "")
	require.NoError(t, os.Unsetenv(listenFDsEnv))
	lns, err := ActivationListeners()
	assert.Nil(t, lns)
	assert.NoError(t, err)
	_, set := os.LookupEnv(listenPIDEnv)
	assert.False(t, set)
}

// TestReviewRestartActivationHugeCount: LISTEN_FDS is used as a slice
// length before any bound check, so a corrupt or hostile value (sd_listen_fds
// rejects n > INT_MAX-3 with EINVAL) panics in make, or with a value just
// small enough to allocate, exhausts memory, instead of returning the
// documented "is not a count of descriptors" error. Expected: an error,
// no panic.
func TestReviewRestartActivationHugeCount(t *testing.T) {
	t.Setenv(listenPIDEnv, strconv.Itoa(os.Getpid()))
	t.Setenv(listenFDsEnv, strconv.Itoa(math.MaxInt))
	var err error
	assert.NotPanics(t, func() { _, err = ActivationListeners() })
	assert.Error(t, err)
}
