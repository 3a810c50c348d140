//go:build linux

package httpsrv

// Zero-downtime restart (issue 10 item 4), each way with real child
// processes: systemd socket activation (ActivationListeners) and the
// in-place upgrade of package upgrade. The child is the test binary run
// again as TestHelperRestartProcess.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/seed80f6b3e8/httpsrv/upgrade"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// restartHelperEnv tells TestHelperRestartProcess how it gets its
// listener: "activation" (ActivationListenersByName; it serves "https")
// or "upgrade" (upgrade.Upgrader.Listen("tcp", "127.0.0.1:0")).
const restartHelperEnv = "HTTPSRV_RESTART_HELPER"

// restartHandler reads the request body and answers "ok:" and its length,
// with the serving process's ID in X-Served-By.
func restartHandler(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	w.Header().Set("X-Served-By", strconv.Itoa(os.Getpid()))
	_, _ = io.WriteString(w, "ok:"+strconv.Itoa(len(b)))
}

// errString is err's text, or "nil".
func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// inheritable returns those of the descriptors from and up, n of them,
// that are open without close-on-exec, which a child would inherit. (Only
// those handed over are checked: the test process may itself have
// inherited others from whatever started it.)
func inheritable(from, n int) []int {
	var open []int
	for fd := from; fd < from+n; fd++ {
		flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
		if errno == 0 && flags&syscall.FD_CLOEXEC == 0 {
			open = append(open, fd)
		}
	}
	return open
}

// TestHelperRestartProcess is not a test: it is the server of the restart
// tests, run in a child process by startRestartProcess (or by an upgrade
// of one). It serves the zero Server with restartHandler on its listener
// and prints, on stdout,
//
//	httpsrv-helper: names <name>=<address>...   (activation only)
//	httpsrv-helper: cloexec <handed-over descriptors a child would inherit, or "none">
//	httpsrv-helper: serving <pid> <address>
//
// then, in upgrade mode, calls Ready. SIGHUP starts an upgrade ("upgrade
// <error or nil>"); SIGTERM, or a successful upgrade, calls Shutdown:
// "drained <ms> <requests answered> <Shutdown's error or nil>".
func TestHelperRestartProcess(t *testing.T) {
	mode := os.Getenv(restartHelperEnv)
	if mode == "" {
		t.Skipf("runs only as the restart tests' child process (%s set)", restartHelperEnv)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	var ln net.Listener
	var upg *upgrade.Upgrader
	handed := 2 // the readiness pipe and the listener, in upgrade mode
	switch mode {
	case "activation":
		handed, _ = strconv.Atoi(os.Getenv(listenFDsEnv))
		byName, err := ActivationListenersByName()
		require.NoError(t, err)
		for _, v := range []string{listenPIDEnv, listenFDsEnv, listenNamesEnv} {
			_, set := os.LookupEnv(v)
			require.False(t, set, "%s still set", v)
		}
		var names []string
		for name, lns := range byName {
			for _, l := range lns {
				names = append(names, name+"="+l.Addr().String())
				if name == "https" && ln == nil {
					ln = l
				} else {
					l.Close()
				}
			}
		}
		slices.Sort(names)
		fmt.Printf("%snames %s\n", helperPrefix, strings.Join(names, " "))
		require.NotNil(t, ln, "no listener named https")
	case "upgrade":
		var err error
		upg, err = upgrade.New(upgrade.Options{UpgradeTimeout: testTimeout()})
		require.NoError(t, err)
		ln, err = upg.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
	default:
		t.Fatalf("unknown %s=%q", restartHelperEnv, mode)
	}
	inherit := "none"
	if fds := inheritable(listenFDsStart, handed); fds != nil {
		inherit = fmt.Sprint(fds)
	}
	fmt.Printf("%scloexec %s\n", helperPrefix, inherit)

	var served atomic.Int64
	srv := &Server{ErrorLog: discardLogger(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		restartHandler(w, r)
		served.Add(1)
	})}
	var err error
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, testCertFile, testKeyFile) }()
	fmt.Printf("%sserving %d %s\n", helperPrefix, os.Getpid(), ln.Addr())
	var exit <-chan struct{}
	if upg != nil {
		require.NoError(t, upg.Ready())
		exit = upg.Exit()
	}
wait:
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGTERM {
				break wait
			}
			if upg != nil {
				fmt.Printf("%supgrade %s\n", helperPrefix, errString(upg.Upgrade()))
			}
		case <-exit:
			break wait
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout())
	defer cancel()
	start := time.Now()
	err = srv.Shutdown(ctx)
	fmt.Printf("%sdrained %d %d %s\n", helperPrefix, time.Since(start).Milliseconds(), served.Load(), errString(err))
	require.NoError(t, err)
	select {
	case err := <-errc:
		require.ErrorIs(t, err, http.ErrServerClosed)
	case <-time.After(testTimeout()):
		t.Fatalf("ServeTLS did not return within %v of Shutdown", testTimeout())
	}
}

// restartStream is the protocol output of restart helper processes: the
// first child's stdout, which a process it upgrades to inherits.
type restartStream struct {
	lines  chan string // protocol lines without the prefix; closed at EOF
	stderr *os.File    // the children's stderr, for failure messages
}

// expect waits for the next protocol line, which must start with word,
// and returns its other fields.
func (s *restartStream) expect(t testing.TB, word string) []string {
	t.Helper()
	select {
	case line, ok := <-s.lines:
		require.True(t, ok, "stdout closed waiting for %q; stderr:\n%s", word, s.stderrText())
		f := strings.Fields(line)
		require.True(t, len(f) > 0 && f[0] == word, "got %q, want %q; stderr:\n%s", line, word, s.stderrText())
		return f[1:]
	case <-time.After(testTimeout()):
		t.Fatalf("no %q line within %v; stderr:\n%s", word, testTimeout(), s.stderrText())
		return nil
	}
}

func (s *restartStream) stderrText() string {
	b, _ := os.ReadFile(s.stderr.Name())
	return string(b)
}

// restartProc is a restart helper process started by the test.
type restartProc struct {
	*restartStream
	pid   int
	addr  string
	names []string   // an activation child's listeners, "<name>=<address>"
	done  chan error // the exit status, once
}

// startRestartProcess starts TestHelperRestartProcess in mode with files
// as descriptors 3 and up and env added to its environment, and waits for
// its "serving" line; an activation child is started through sh, which
// sets LISTEN_PID to its own process ID and execs the test binary, as
// systemd sets it between fork and exec. At cleanup the process is killed if it is still running.
func startRestartProcess(t testing.TB, mode string, files []*os.File, env ...string) *restartProc {
	t.Helper()
	args := []string{"-test.run=^TestHelperRestartProcess$", "-test.count=1", "-test.timeout=10m"}
	var cmd *exec.Cmd
	if mode == "activation" {
		cmd = exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`, os.Args[0]}, args...)...)
	} else {
		cmd = exec.Command(os.Args[0], args...)
	}
	cmd.Env = append(append(os.Environ(), restartHelperEnv+"="+mode), env...)
	cmd.ExtraFiles = files
	stderr, err := os.CreateTemp(t.TempDir(), "stderr")
	require.NoError(t, err)
	t.Cleanup(func() { stderr.Close() })
	// Files, not exec's copying goroutines, so that Wait does not wait for
	// a process the child started and that shares them.
	r, w, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = w, stderr
	err = cmd.Start()
	w.Close()
	require.NoError(t, err)
	p := &restartProc{
		restartStream: &restartStream{lines: make(chan string, 64), stderr: stderr},
		pid:           cmd.Process.Pid,
		done:          make(chan error, 1),
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(p.lines)
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), helperPrefix); ok {
				p.lines <- line
			}
		}
	}()
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case err := <-p.done:
			p.done <- err
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		// The stream ends when every process sharing it has exited.
		select {
		case <-readDone:
		case <-time.After(testTimeout()):
			t.Errorf("%s helper's stdout still open %v after it exited", mode, testTimeout())
		}
	})

	if mode == "activation" {
		p.names = p.expect(t, "names")
	}
	require.Equal(t, []string{"none"}, p.expect(t, "cloexec"), "descriptors a child of the server would inherit")
	f := p.expect(t, "serving")
	require.Len(t, f, 2)
	require.Equal(t, strconv.Itoa(p.pid), f[0], "the server's process ID")
	p.addr = f[1]
	return p
}

// waitExit waits for the process to exit and requires status 0.
func (p *restartProc) waitExit(t testing.TB) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		require.NoError(t, err, "stderr:\n%s", p.stderrText())
	case <-time.After(testTimeout()):
		t.Fatalf("process %d did not exit within %v; stderr:\n%s", p.pid, testTimeout(), p.stderrText())
	}
}

// drained waits for the "drained" line and requires a nil Shutdown error;
// it returns the requests the process answered.
func (s *restartStream) drained(t testing.TB, who string) int {
	t.Helper()
	f := s.expect(t, "drained")
	require.Len(t, f, 3, "drained line %q", f)
	n, err := strconv.Atoi(f[1])
	require.NoError(t, err)
	t.Logf("%s: Shutdown took %s ms, returned %s, after answering %d requests", who, f[0], f[2], n)
	require.Equal(t, "nil", f[2], "%s: Shutdown", who)
	return n
}

// The phases of a restart under load.
const (
	phaseBefore = iota // before the signal
	phaseDuring        // from the signal until the old server is gone and the new one serves
	phaseAfter         // the new server alone
	numPhases
)

var phaseNames = [numPhases]string{"before", "during", "after"}

// restartCount is the fate of a load client's requests in one phase.
type restartCount struct {
	success, refused, failed int
	byPID                    map[string]int // successes by the serving process
}

// restartLoad is Go's client over HTTP/1.1 and HTTP/2, restartWorkers
// goroutines each, sending GETs and POSTs in turn without pause.
type restartLoad struct {
	phase   atomic.Int32
	stop    atomic.Bool
	wg      sync.WaitGroup
	clients []*http.Client

	mu     sync.Mutex                 // guards the fields below
	counts [numPhases][2]restartCount // by phase and protocol (HTTP/1.1, HTTP/2)
	errs   []string                   // the first errors
}

const (
	restartWorkers     = 4   // per protocol
	restartMinRequests = 300 // successes to see in the before and after phases, per protocol
)

// restartBody is the body of every POST.
var restartBody = strings.Repeat("p", 200)

// startRestartLoad starts the load against url; stopAndWait ends it.
func startRestartLoad(t testing.TB, url string) *restartLoad {
	t.Helper()
	l := &restartLoad{}
	for i := range l.counts {
		for j := range l.counts[i] {
			l.counts[i][j].byPID = map[string]int{}
		}
	}
	for _, h2 := range []bool{false, true} {
		c := newClient(t, h2)
		c.Transport.(*http.Transport).MaxIdleConnsPerHost = restartWorkers
		l.clients = append(l.clients, c)
		for range restartWorkers {
			l.wg.Go(func() { l.worker(c, h2, url) })
		}
	}
	t.Cleanup(l.stopAndWait)
	return l
}

// worker sends requests through c until stop is set. A request counts as
// refused when the connection it needed could not be made, and as failed
// for any other error or a wrong answer; Go's client retries on its own
// what it may (a GET on a reused connection the server closed, a request a
// GOAWAY says was not processed).
func (l *restartLoad) worker(c *http.Client, h2 bool, url string) {
	want := map[string]string{"GET": "ok:0", "POST": "ok:" + strconv.Itoa(len(restartBody))}
	proto := 1
	if h2 {
		proto = 2
	}
	for i := 0; !l.stop.Load(); i++ {
		phase := l.phase.Load()
		method := "GET"
		var body io.Reader
		if i%2 == 1 {
			method, body = "POST", strings.NewReader(restartBody)
		}
		var dialFailed atomic.Bool
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			ConnectDone: func(_, _ string, err error) {
				if err != nil {
					dialFailed.Store(true)
				}
			},
		})
		req, err := http.NewRequestWithContext(ctx, method, url, body)
		if err != nil {
			panic(err)
		}
		pid := ""
		resp, err := c.Do(req)
		if err == nil {
			var b []byte
			b, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			pid = resp.Header.Get("X-Served-By")
			if err == nil && (resp.ProtoMajor != proto || string(b) != want[method]) {
				err = fmt.Errorf("%s %s: status %d, body %q", resp.Proto, method, resp.StatusCode, b)
			}
		}
		l.mu.Lock()
		cnt := &l.counts[phase][proto-1]
		switch {
		case err == nil:
			cnt.success++
			cnt.byPID[pid]++
		case dialFailed.Load() || errors.Is(err, syscall.ECONNREFUSED):
			cnt.refused++
		default:
			cnt.failed++
		}
		if err != nil && len(l.errs) < 10 {
			l.errs = append(l.errs, fmt.Sprintf("%s %s (%s): %v", phaseNames[phase], method, map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], err))
		}
		l.mu.Unlock()
	}
}

// waitSuccesses waits until phase has restartMinRequests successes on
// each protocol.
func (l *restartLoad) waitSuccesses(t testing.TB, phase int) {
	t.Helper()
	deadline := time.Now().Add(testTimeout())
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		l.mu.Lock()
		h1, h2 := l.counts[phase][0].success, l.counts[phase][1].success
		l.mu.Unlock()
		if h1 >= restartMinRequests && h2 >= restartMinRequests {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("phase %s: %d HTTP/1.1 and %d HTTP/2 successes within %v, want %d each; errors: %q",
				phaseNames[phase], h1, h2, testTimeout(), restartMinRequests, l.errors())
		}
		<-tick.C
	}
}

func (l *restartLoad) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs)
}

// stopAndWait stops the load, waits for its goroutines and closes its
// idle connections, so that the last server's Shutdown need not wait for
// them.
func (l *restartLoad) stopAndWait() {
	l.stop.Store(true)
	l.wg.Wait()
	for _, c := range l.clients {
		c.CloseIdleConnections()
	}
}

// report logs the counts and checks that nothing failed or was refused,
// and that the old process answered nothing that started after it exited.
// (A request counts in the phase it started in: one that started before
// the signal may be answered by the new process, after Go's client retried
// it or its connection waited in the backlog.)
func (l *restartLoad) report(t testing.TB, oldPID, newPID int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	old, nu := strconv.Itoa(oldPID), strconv.Itoa(newPID)
	var b strings.Builder
	fmt.Fprintf(&b, "\n| phase | client | success | refused | failed | answered by old / new process |\n|---|---|---|---|---|---|\n")
	for phase := range numPhases {
		for proto, name := range []string{"Go HTTP/1.1 GET+POST", "Go HTTP/2 GET+POST"} {
			c := l.counts[phase][proto]
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d / %d |\n", phaseNames[phase], name, c.success, c.refused, c.failed, c.byPID[old], c.byPID[nu])
			assert.Zero(t, c.failed, "%s, %s: failed requests", phaseNames[phase], name)
			assert.Zero(t, c.refused, "%s, %s: refused connections", phaseNames[phase], name)
			assert.Equal(t, c.success, c.byPID[old]+c.byPID[nu], "%s, %s: answered by another process: %v", phaseNames[phase], name, c.byPID)
			if phase == phaseAfter {
				assert.Zero(t, c.byPID[old], "%s, %s: answered by the old process", phaseNames[phase], name)
			}
		}
	}
	t.Log(b.String())
	if l.errs != nil {
		t.Logf("errors (first %d): %q", len(l.errs), l.errs)
	}
}

// activationFiles returns a listener on 127.0.0.1, open in the test
// process for the test's life (the service manager's socket), and its
// descriptor for the children's ExtraFiles.
func activationFiles(t testing.TB) (string, *os.File) {
	t.Helper()
	ln := localListener(t)
	f, err := ln.(*net.TCPListener).File()
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return ln.Addr().String(), f
}

// TestActivationChildProcess checks socket activation in a child
// process: two named sockets, LISTEN_PID set by sh before exec; the child
// finds both by name, leaves no descriptor to its own children, unsets the
// variables and serves the one named "https". Fast enough for the quick
// command.
func TestActivationChildProcess(t *testing.T) {
	addr, f := activationFiles(t)
	redirect, f2 := activationFiles(t)
	p := startRestartProcess(t, "activation", []*os.File{f, f2}, "LISTEN_FDS=2", "LISTEN_FDNAMES=https:redirect")
	assert.Equal(t, []string{"https=" + addr, "redirect=" + redirect}, p.names)
	assert.Equal(t, addr, p.addr)

	c := newClient(t, true)
	resp, err := c.Get("https://" + addr + "/")
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, "ok:0", string(b))
	assert.Equal(t, strconv.Itoa(p.pid), resp.Header.Get("X-Served-By"))
	c.CloseIdleConnections()

	require.NoError(t, syscall.Kill(p.pid, syscall.SIGTERM))
	assert.Equal(t, 1, p.drained(t, "activated server"))
	p.waitExit(t)
}

// TestActivationRestartUnderLoad restarts a socket-activated server under
// load, as systemd restarts a service whose socket unit it keeps: the test
// holds the listening socket (the service manager's), child 1 serves it,
// gets SIGTERM and drains with Shutdown, and child 2 is started on the
// same socket once child 1 has exited. Meanwhile connections wait in the
// socket's backlog: no request may fail and no connection be refused.
func TestActivationRestartUnderLoad(t *testing.T) {
	requireInterop(t)
	addr, f := activationFiles(t)
	env := []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=https"}
	p1 := startRestartProcess(t, "activation", []*os.File{f}, env...)
	load := startRestartLoad(t, "https://"+addr+"/")
	load.waitSuccesses(t, phaseBefore)

	load.phase.Store(phaseDuring)
	start := time.Now()
	require.NoError(t, syscall.Kill(p1.pid, syscall.SIGTERM))
	p1.drained(t, "child 1")
	p1.waitExit(t)
	stopped := time.Since(start)
	p2 := startRestartProcess(t, "activation", []*os.File{f}, env...)
	t.Logf("child 1 drained and exited %v after SIGTERM; child 2 served %v after it", stopped.Round(time.Millisecond), (time.Since(start) - stopped).Round(time.Millisecond))
	load.phase.Store(phaseAfter)
	load.waitSuccesses(t, phaseAfter)
	load.stopAndWait()

	require.NoError(t, syscall.Kill(p2.pid, syscall.SIGTERM))
	p2.drained(t, "child 2")
	p2.waitExit(t)
	load.report(t, p1.pid, p2.pid)
}

// setSubreaper makes the test process the child subreaper of its
// descendants for the test's life, so that a server process started by an
// upgrade is reparented to the test when the old one exits, and its exit
// status can be collected.
func setSubreaper(t testing.TB) {
	t.Helper()
	const prSetChildSubreaper = 36
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	require.Zero(t, errno, "prctl(PR_SET_CHILD_SUBREAPER)")
	t.Cleanup(func() { syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 0, 0) })
}

// waitPID waits for pid, a process reparented to the test, to exit, and
// requires status 0; at cleanup the process is killed if it has not.
func waitPID(t testing.TB, pid int, stderr func() string) {
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
		require.True(t, ws.Exited() && ws.ExitStatus() == 0, "process %d: %v; stderr:\n%s", pid, ws, stderr())
	case <-time.After(testTimeout()):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-done
		t.Fatalf("process %d did not exit within %v; stderr:\n%s", pid, testTimeout(), stderr())
	}
}

// TestUpgradeUnderLoad upgrades a server in place under load: process A
// serves from upgrade.Upgrader.Listen; on SIGHUP it starts process B (the
// test binary again) with the listening socket; B serves and calls Ready;
// A drains with Shutdown and exits. Go's client over HTTP/1.1 and HTTP/2,
// GETs and POSTs without pause, must see no failed request and no refused
// connection, before, during or after the upgrade.
func TestUpgradeUnderLoad(t *testing.T) {
	requireInterop(t)
	setSubreaper(t)
	a := startRestartProcess(t, "upgrade", nil)
	load := startRestartLoad(t, "https://"+a.addr+"/")
	load.waitSuccesses(t, phaseBefore)

	load.phase.Store(phaseDuring)
	start := time.Now()
	require.NoError(t, syscall.Kill(a.pid, syscall.SIGHUP))
	// B prints on A's stdout, which it inherits.
	require.Equal(t, []string{"none"}, a.expect(t, "cloexec"), "descriptors B's children would inherit")
	f := a.expect(t, "serving")
	require.Len(t, f, 2)
	bPID, err := strconv.Atoi(f[0])
	require.NoError(t, err)
	t.Cleanup(func() { syscall.Kill(bPID, syscall.SIGKILL) }) // if the test stops early
	require.NotEqual(t, a.pid, bPID)
	require.Equal(t, a.addr, f[1], "B's listener")
	require.Equal(t, []string{"nil"}, a.expect(t, "upgrade"), "A's Upgrade")
	ready := time.Since(start)
	a.drained(t, "A")
	a.waitExit(t)
	t.Logf("B ready %v after SIGHUP; A drained and exited %v after it", ready.Round(time.Millisecond), (time.Since(start) - ready).Round(time.Millisecond))
	load.phase.Store(phaseAfter)
	load.waitSuccesses(t, phaseAfter)
	load.stopAndWait()

	require.NoError(t, syscall.Kill(bPID, syscall.SIGTERM))
	a.drained(t, "B")
	waitPID(t, bPID, a.stderrText)
	load.report(t, a.pid, bPID)
}
