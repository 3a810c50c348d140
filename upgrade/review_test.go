//go:build unix

package upgrade

// Review of the zero-downtime restart change (issue 10 item 4): tests that
// fail on the branch as written. The new processes of these upgrades are
// copies of the test binary dispatched by init below (before TestMain), and
// report to the test over a TCP control connection, so that the test waits
// on what they say, with deadlines, instead of sleeping.

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	// reviewChildEnv selects what a new process started by an Upgrade in
	// these tests does; see reviewChild.
	reviewChildEnv = "HTTPSRV_UPGRADE_REVIEW_CHILD"
	// reviewCtlEnv is the address of the test's control listener.
	reviewCtlEnv = "HTTPSRV_UPGRADE_REVIEW_CTL"
	// reviewWait bounds every wait of these tests.
	reviewWait = 30 * time.Second
)

func init() {
	mode := os.Getenv(reviewChildEnv)
	if mode == "" || os.Getenv(envName) == "" {
		return
	}
	os.Exit(reviewChild(mode))
}

// reviewChild is the new process of the review tests' upgrades. Except in
// mode "hang", it dials the control address, says "pid <pid>", and then:
//
//   - "spawn-exit": starts a copy of itself in mode "hang" before New (as a
//     program that runs a helper at start-up would), says "grandchild
//     <pid>", and exits 3 without calling Ready;
//   - otherwise: New (with ListenConfig{KeepAlive: -1} in mode
//     "keepalive"), says "inherited <network>/<addr>..." (or "inherited -"),
//     Listens on every inherited pair, in mode "wait" reads a line from the
//     control connection first, calls Ready and says "ready"; then in mode
//     "keepalive" accepts one connection and says "keepalive <SO_KEEPALIVE>",
//     and in mode "unix" closes its listeners (a final Shutdown) and says
//     "closed". It exits 0.
//
// "hang" waits for a signal that never comes.
func reviewChild(mode string) int {
	if mode == "hang" {
		never := make(chan os.Signal, 1)
		signal.Notify(never, syscall.SIGUSR1)
		<-never
		return 4
	}
	ctl, err := net.DialTimeout("tcp", os.Getenv(reviewCtlEnv), reviewWait)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer ctl.Close()
	rd := bufio.NewReader(ctl)
	say := func(format string, a ...any) { fmt.Fprintf(ctl, format+"\n", a...) }
	fail := func(err error) int {
		say("error %v", strings.ReplaceAll(err.Error(), "\n", "; "))
		return 1
	}
	say("pid %d", os.Getpid())

	if mode == "spawn-exit" {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), reviewChildEnv+"=hang")
		if err := cmd.Start(); err != nil {
			return fail(err)
		}
		say("grandchild %d", cmd.Process.Pid)
		return 3
	}

	var opts Options
	if mode == "keepalive" {
		opts.ListenConfig = &net.ListenConfig{KeepAlive: -1}
	}
	u, err := New(opts)
	if err != nil {
		return fail(err)
	}
	u.mu.Lock()
	var keys []key
	for k := range u.inherited {
		keys = append(keys, k)
	}
	u.mu.Unlock()
	slices.SortFunc(keys, func(a, b key) int { return strings.Compare(a.network+"/"+a.addr, b.network+"/"+b.addr) })
	names := []string{}
	for _, k := range keys {
		names = append(names, k.network+"/"+k.addr)
	}
	if len(names) == 0 {
		names = []string{"-"}
	}
	say("inherited %s", strings.Join(names, " "))
	var lns []net.Listener
	for _, k := range keys {
		ln, err := u.Listen(k.network, k.addr)
		if err != nil {
			return fail(err)
		}
		lns = append(lns, ln)
	}
	if mode == "wait" {
		if _, err := rd.ReadString('\n'); err != nil {
			return fail(err)
		}
	}
	if err := u.Ready(); err != nil {
		return fail(err)
	}
	say("ready")
	switch mode {
	case "keepalive":
		if len(lns) == 0 {
			return fail(errors.New("no listener"))
		}
		c, err := lns[0].Accept()
		if err != nil {
			return fail(err)
		}
		defer c.Close()
		v, err := soKeepAlive(c)
		if err != nil {
			return fail(err)
		}
		say("keepalive %d", v)
	case "unix":
		for _, ln := range lns {
			ln.Close()
		}
		say("closed")
	}
	return 0
}

// soKeepAlive returns the SO_KEEPALIVE option of a TCP connection.
func soKeepAlive(c net.Conn) (int, error) {
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
	}); err != nil {
		return 0, err
	}
	return v, gerr
}

// reviewCtl is the test's end of the control connections.
type reviewCtl struct{ ln *net.TCPListener }

// newReviewCtl listens for the new processes' control connections and
// sets reviewCtlEnv for them.
func newReviewCtl(t *testing.T) *reviewCtl {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	t.Setenv(reviewCtlEnv, ln.Addr().String())
	return &reviewCtl{ln.(*net.TCPListener)}
}

// reviewConn is one new process's control connection.
type reviewConn struct {
	c  net.Conn
	rd *bufio.Reader
}

// accept waits for the next new process to connect.
func (ctl *reviewCtl) accept(t *testing.T) *reviewConn {
	t.Helper()
	require.NoError(t, ctl.ln.SetDeadline(time.Now().Add(reviewWait)))
	c, err := ctl.ln.Accept()
	require.NoError(t, err, "no new process connected within %v", reviewWait)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(reviewWait)))
	return &reviewConn{c, bufio.NewReader(c)}
}

// expect reads the next line, which must start with word, and returns its
// other fields.
func (rc *reviewConn) expect(t *testing.T, word string) []string {
	t.Helper()
	line, err := rc.rd.ReadString('\n')
	require.NoError(t, err, "waiting for %q", word)
	f := strings.Fields(line)
	require.NotEmpty(t, f)
	require.Equal(t, word, f[0], "new process said %q", line)
	return f[1:]
}

// pid reads the "pid" line.
func (rc *reviewConn) pid(t *testing.T) int {
	t.Helper()
	f := rc.expect(t, "pid")
	require.Len(t, f, 1)
	pid, err := strconv.Atoi(f[0])
	require.NoError(t, err)
	return pid
}

// reap waits for pid, a child of the test process that an Upgrade
// released, to exit with status 0; it is killed if it does not within
// reviewWait.
func reap(t *testing.T, pid int) {
	t.Helper()
	done := make(chan syscall.WaitStatus, 1)
	go func() {
		var ws syscall.WaitStatus
		for {
			_, err := syscall.Wait4(pid, &ws, 0, nil)
			if !errors.Is(err, syscall.EINTR) {
				break
			}
		}
		done <- ws
	}()
	select {
	case ws := <-done:
		assert.True(t, ws.Exited() && ws.ExitStatus() == 0, "new process %d: %v", pid, ws)
	case <-time.After(reviewWait):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-done
		t.Errorf("new process %d did not exit within %v", pid, reviewWait)
	}
}

// TestReviewRestartKeepAliveLostAfterUpgrade: Options.ListenConfig is
// documented as what opens the listeners, and its KeepAlive (or
// KeepAliveConfig) is applied by the net package per accepted connection
// from the listener's own ListenConfig, not from the socket. A listener
// Listen takes from the parent is made with net.FileListener, whose
// ListenConfig is zero, so after the first upgrade every accepted
// connection gets Go's default keep-alive (on, 15 s) whatever the program
// configured: here KeepAlive: -1 (off) in both processes, and the new
// process's connection has SO_KEEPALIVE on. Expected: an inherited TCP
// listener accepts with Options.ListenConfig's keep-alive settings, like
// the listener it replaces.
func TestReviewRestartKeepAliveLostAfterUpgrade(t *testing.T) {
	ctl := newReviewCtl(t)
	opts := Options{ListenConfig: &net.ListenConfig{KeepAlive: -1}, UpgradeTimeout: reviewWait}
	u, ln := newUpgrader(t, opts)

	// The first process honours the setting.
	c, err := net.DialTimeout("tcp", ln.Addr().String(), reviewWait)
	require.NoError(t, err)
	sc, err := ln.Accept()
	require.NoError(t, err)
	v, err := soKeepAlive(sc)
	require.NoError(t, err)
	require.Zero(t, v, "SO_KEEPALIVE in the first process")
	sc.Close()
	c.Close()

	t.Setenv(reviewChildEnv, "keepalive")
	require.NoError(t, u.Upgrade())
	rc := ctl.accept(t)
	pid := rc.pid(t)
	rc.expect(t, "inherited")
	rc.expect(t, "ready")
	require.NoError(t, ln.Close())
	c, err = net.DialTimeout("tcp", ln.Addr().String(), reviewWait)
	require.NoError(t, err)
	defer c.Close()
	f := rc.expect(t, "keepalive")
	assert.Equal(t, []string{"0"}, f, "SO_KEEPALIVE of a connection the new process accepted, with ListenConfig{KeepAlive: -1}")
	reap(t, pid)
}

// TestReviewRestartReadyErrorAfterTellingParent: Ready writes the PID file
// and then tells the parent, whatever the PID file's outcome, and returns
// the PID file's error. With the documented recipe (`if err :=
// upg.Ready(); err != nil { log.Fatal(err) }`), a PID file that cannot be
// written (directory missing or not writable for the new binary, disk
// full) makes the new process exit right after the old one was told to
// drain and exit: nobody serves. The handoff is simulated in-process (the
// readiness pipe's write end in HTTPSRV_UPGRADE). Expected: when Ready
// returns an error, the parent is not told that the upgrade succeeded (the
// parent's Upgrade then fails and it keeps serving).
func TestReviewRestartReadyErrorAfterTellingParent(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	wfd, err := syscall.Dup(int(w.Fd()))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	t.Setenv(envName, fmt.Sprintf(`{"ready":%d,"listeners":[]}`, wfd))

	u, err := New(Options{PIDFile: filepath.Join(t.TempDir(), "missing", "app.pid")})
	require.NoError(t, err)
	require.True(t, u.HasParent())
	readyErr := u.Ready()
	require.Error(t, readyErr, "the PID file's directory does not exist")

	require.NoError(t, r.SetReadDeadline(time.Now().Add(reviewWait)))
	var b [1]byte
	n, _ := r.Read(b[:]) // Ready closed the write end: a byte or EOF at once
	assert.Zero(t, n, "Ready returned %q but told the parent it was ready", readyErr)
}

// TestReviewRestartNewFailsOnUnresolvableArgs0: New resolves os.Args[0]
// through PATH at once and fails if it cannot, although most processes
// never upgrade. os.Args[0] is whatever the starter chose: systemd's
// ExecStart=@/usr/bin/app app-name, `exec -a`, busybox-style multi-call
// names, a process manager. The program then cannot even start (the
// documented recipe log.Fatals on New's error), not just not upgrade.
// Expected: New succeeds (falling back to os.Executable, or reporting the
// problem from Upgrade).
func TestReviewRestartNewFailsOnUnresolvableArgs0(t *testing.T) {
	orig := os.Args[0]
	t.Cleanup(func() { os.Args[0] = orig })
	t.Setenv("PATH", t.TempDir())
	os.Args[0] = "httpsrv-review-renamed-process"
	u, err := New(Options{})
	assert.NoError(t, err)
	assert.NotNil(t, u)
}

// TestReviewRestartUpgradeAfterListenerClosed: every listener Listen
// returned stays in the Upgrader for ever, open or not. A program that
// stops serving one of its addresses (a reload that drops a port, a
// listener closed after an error) can never upgrade again: Upgrade fails
// on the closed listener ("use of closed network connection") before it
// starts the new binary. Expected: a closed listener is not handed over,
// and the upgrade of the others succeeds.
func TestReviewRestartUpgradeAfterListenerClosed(t *testing.T) {
	ctl := newReviewCtl(t)
	u, err := New(Options{UpgradeTimeout: reviewWait})
	require.NoError(t, err)
	ln, err := u.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	dropped, err := u.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, dropped.Close())
	require.NoError(t, u.Ready())

	t.Setenv(reviewChildEnv, "ready")
	err = u.Upgrade()
	require.NoError(t, err, "Upgrade with one of two listeners closed")
	rc := ctl.accept(t)
	pid := rc.pid(t)
	assert.Equal(t, []string{"tcp/127.0.0.1:0"}, rc.expect(t, "inherited"))
	rc.expect(t, "ready")
	reap(t, pid)
}

// TestReviewRestartListenAgainAfterClose: for the same reason, once a
// listener is closed its network and address can never be listened on
// again through the Upgrader ("already listening"), although nothing
// listens. Expected: Listen succeeds after the previous listener for the
// pair was closed.
func TestReviewRestartListenAgainAfterClose(t *testing.T) {
	u, ln := newUpgrader(t, Options{})
	require.NoError(t, ln.Close())
	ln2, err := u.Listen("tcp", "127.0.0.1:0")
	if assert.NoError(t, err, "Listen after the listener for the pair was closed") {
		ln2.Close()
	}
}

// TestReviewRestartListenDuringUpgrade: Upgrade snapshots the listeners
// and releases the lock while the new process starts, so a Listen that
// runs meanwhile succeeds, but its listener is not handed over; the
// upgrade then succeeds and the process is told to exit: the address is
// served by nobody once the old process drains. Expected: a Listen during
// an Upgrade either fails (ErrInProgress, say) or its listener reaches the
// new process.
func TestReviewRestartListenDuringUpgrade(t *testing.T) {
	ctl := newReviewCtl(t)
	u, _ := newUpgrader(t, Options{UpgradeTimeout: reviewWait})
	t.Setenv(reviewChildEnv, "wait")
	upgErr := make(chan error, 1)
	go func() { upgErr <- u.Upgrade() }()
	rc := ctl.accept(t)
	pid := rc.pid(t)
	inherited := rc.expect(t, "inherited")

	// The new process has started and waits; the Upgrade is in progress.
	late, lateErr := u.Listen("tcp4", "127.0.0.1:0")
	if lateErr == nil {
		t.Cleanup(func() { late.Close() })
	}
	_, err := rc.c.Write([]byte("go\n"))
	require.NoError(t, err)
	rc.expect(t, "ready")
	select {
	case err := <-upgErr:
		require.NoError(t, err)
	case <-time.After(reviewWait):
		t.Fatalf("Upgrade did not return within %v", reviewWait)
	}
	reap(t, pid)
	if lateErr == nil {
		assert.Contains(t, inherited, "tcp4/127.0.0.1:0",
			"Listen during the Upgrade returned a listener (%v) the new process did not get; the upgrade succeeded", late.Addr())
	}
}

// TestReviewRestartUnixSocketLeftAfterUpgrade: the first process's Unix
// listener (net.Listen) removes its socket file on Close; Upgrade turns
// that off once the new process has it, rightly. But the new process's
// listener comes from net.FileListener, which never removes the file, and
// Listen does not turn removal back on. So after one upgrade, the last
// process's Shutdown leaves the socket file behind, and the next cold
// start (systemctl restart, a reboot without tmpfs, a crash loop) fails
// in Listen with "bind: address already in use". Expected: the listener
// Listen returns for an inherited Unix socket removes the file on Close,
// as the one it replaces did, so Listen on the path works again.
func TestReviewRestartUnixSocketLeftAfterUpgrade(t *testing.T) {
	ctl := newReviewCtl(t)
	path := filepath.Join(t.TempDir(), "s")
	u, err := New(Options{UpgradeTimeout: reviewWait})
	require.NoError(t, err)
	ln, err := u.Listen("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	require.NoError(t, u.Ready())

	t.Setenv(reviewChildEnv, "unix")
	require.NoError(t, u.Upgrade())
	require.NoError(t, ln.Close()) // the old process drains
	rc := ctl.accept(t)
	pid := rc.pid(t)
	assert.Equal(t, []string{"unix/" + path}, rc.expect(t, "inherited"))
	rc.expect(t, "ready")
	rc.expect(t, "closed") // the new process's final Shutdown
	reap(t, pid)

	// A cold start of the program on the same path.
	u2, err := New(Options{})
	require.NoError(t, err)
	ln2, err := u2.Listen("unix", path)
	if assert.NoError(t, err, "cold start after the upgraded process closed its listener") {
		ln2.Close()
	}
}

// TestReviewRestartExitNotSeenWhileGrandchildHoldsPipe: the parent learns
// that the new process exited only from the end of the readiness pipe, and
// the pipe's write end (and every listening socket) is inheritable in the
// new process until its New runs. A new binary that starts any helper
// process before New (a library's init, a pre-flight command) and then
// fails leaves the pipe open in the helper: Upgrade does not see the exit
// and blocks for the whole UpgradeTimeout (a minute by default) with a
// misleading "not ready within" error, and the helper keeps the listening
// sockets open after the old process exits, so connections then wait in a
// backlog nobody accepts from. Expected: Upgrade reports the exit
// promptly ("exited before it was ready"), e.g. by waiting for the process
// alongside the pipe.
func TestReviewRestartExitNotSeenWhileGrandchildHoldsPipe(t *testing.T) {
	ctl := newReviewCtl(t)
	const timeout = 5 * time.Second
	u, _ := newUpgrader(t, Options{UpgradeTimeout: timeout})
	t.Setenv(reviewChildEnv, "spawn-exit")
	upgErr := make(chan error, 1)
	start := time.Now()
	go func() { upgErr <- u.Upgrade() }()
	rc := ctl.accept(t)
	rc.pid(t)
	f := rc.expect(t, "grandchild")
	require.Len(t, f, 1)
	gpid, err := strconv.Atoi(f[0])
	require.NoError(t, err)
	t.Cleanup(func() { syscall.Kill(gpid, syscall.SIGKILL) })

	var uerr error
	select {
	case uerr = <-upgErr:
	case <-time.After(reviewWait):
		t.Fatalf("Upgrade did not return within %v", reviewWait)
	}
	elapsed := time.Since(start)
	assert.ErrorContains(t, uerr, "exited before it was ready")
	assert.Less(t, elapsed, timeout, "Upgrade waited for the timeout although the new process had exited")
}
