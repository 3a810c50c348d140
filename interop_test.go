package httpsrv

// The interoperability and attack suites (slowhttptest, testssl.sh, h2spec
// and the certificate reload load test) take minutes, so they run only with
// HTTPSRV_INTEROP=1, as a second command next to the README's test command.
//
// In those suites each server under test runs in a child process: the test
// binary runs itself again with -test.run=^TestHelperServerProcess$. The
// attacking tool is another process, and the probe client stays in the test
// process, so a probe measures the server under attack, not a test process
// that shares its CPU with the attack or with the race detector.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// interopEnv names the environment variable that turns the interop suites on.
const interopEnv = "HTTPSRV_INTEROP"

// requireInterop skips the test unless HTTPSRV_INTEROP=1.
func requireInterop(t testing.TB) {
	t.Helper()
	if os.Getenv(interopEnv) != "1" {
		t.Skipf("a minute-long interop suite; set %s=1 to run it (README: Development)", interopEnv)
	}
}

// The child process is told what to serve through these variables.
const (
	helperServerEnv  = "HTTPSRV_HELPER_SERVER"  // "httpsrv" or "net/http"
	helperHandlerEnv = "HTTPSRV_HELPER_HANDLER" // a key of helperHandlers
)

// helperHandlers are the handlers a child process can serve.
var helperHandlers = map[string]http.HandlerFunc{
	"slow":   slowHandler,
	"h2spec": h2specHandler,
	"hello":  helloHandler,
	"drain":  drainLoadHandler, // the server then stops with Shutdown; see TestDrainUnderLoad
}

// helloHandler answers every request with a short body.
func helloHandler(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, "hello\n")
}

// helperPrefix marks the lines of the child's protocol on its stdout;
// anything else there is the test framework's.
const helperPrefix = "httpsrv-helper: "

// connCounter counts, through the ConnState hook, the connections a server
// opened and closed, the probe listener's apart from the others.
type connCounter struct {
	probeAddr                string // the probe listener's address; immutable once serving
	opened, shut             atomic.Int64
	probesOpened, probesShut atomic.Int64
}

func (cc *connCounter) hook(c net.Conn, s http.ConnState) {
	opened, shut := &cc.opened, &cc.shut
	if c.LocalAddr().String() == cc.probeAddr {
		opened, shut = &cc.probesOpened, &cc.probesShut
	}
	switch s {
	case http.StateNew:
		opened.Add(1)
	case http.StateClosed, http.StateHijacked:
		shut.Add(1)
	}
}

// allClosed reports whether every connection counted has closed.
func (cc *connCounter) allClosed() bool {
	return cc.shut.Load() == cc.opened.Load() && cc.probesShut.Load() == cc.probesOpened.Load()
}

// waitAllClosed waits until every connection counted has closed, so that
// no connection goroutine is left for the leak check.
func (cc *connCounter) waitAllClosed(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(testTimeout())
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cc.allClosed() {
		if time.Now().After(deadline) {
			t.Errorf("%d of %d connections and %d of %d probe connections still open",
				cc.opened.Load()-cc.shut.Load(), cc.opened.Load(),
				cc.probesOpened.Load()-cc.probesShut.Load(), cc.probesOpened.Load())
			return
		}
		<-tick.C
	}
}

// TestHelperServerProcess is not a test: it is the server under test of the
// interop suites, run by startServerProcess in a child process. It serves
// the zero-config server named by HTTPSRV_HELPER_SERVER with the handler
// named by HTTPSRV_HELPER_HANDLER on two 127.0.0.1 listeners, one for the
// attack and one for the probe, and prints
//
//	httpsrv-helper: listening <attack address> <probe address>
//
// For every line "counts" on stdin it prints "httpsrv-helper: counts
// <opened> <shut>", the attack listener's connections as ConnState saw
// them. When stdin closes, or on SIGINT or SIGTERM, it closes the server,
// waits for every connection to close and prints the last counts as
// "httpsrv-helper: final <opened> <shut>".
func TestHelperServerProcess(t *testing.T) {
	kind := os.Getenv(helperServerEnv)
	if kind == "" {
		t.Skipf("runs only as the interop suites' child process (%s set)", helperServerEnv)
	}
	handler, ok := helperHandlers[os.Getenv(helperHandlerEnv)]
	require.True(t, ok, "unknown %s=%q", helperHandlerEnv, os.Getenv(helperHandlerEnv))

	attackLn, probeLn := localListener(t), localListener(t)
	cc := &connCounter{probeAddr: probeLn.Addr().String()}
	drainProbeAddr = cc.probeAddr
	var srv tlsServer
	switch kind {
	case "httpsrv":
		srv = &Server{Handler: handler, ErrorLog: discardLogger(), ConnState: cc.hook}
	case "net/http":
		srv = &http.Server{Handler: handler, ErrorLog: discardLogger(), ConnState: cc.hook}
	default:
		t.Fatalf("unknown %s=%q", helperServerEnv, kind)
	}
	fdCommand := helperFDMode(t, srv) // the descriptor-limit mode; see fdlimit_linux_test.go
	served := make(chan error, 2)
	for _, ln := range []net.Listener{attackLn, probeLn} {
		go func() { served <- srv.ServeTLS(ln, testCertFile, testKeyFile) }()
	}

	// stdin is made non-blocking, so that closing it ends the reader below
	// when a signal, not the end of stdin, stops the server.
	require.NoError(t, syscall.SetNonblock(syscall.Stdin, true))
	stdin := os.NewFile(uintptr(syscall.Stdin), "stdin")
	lines := make(chan string)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	fmt.Printf("%slistening %s %s\n", helperPrefix, attackLn.Addr(), probeLn.Addr())
serve:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				break serve
			}
			if line == "counts" {
				fmt.Printf("%scounts %d %d\n", helperPrefix, cc.opened.Load(), cc.shut.Load())
			} else if reply, ok := fdCommand(line); ok {
				fmt.Printf("%s%s %s\n", helperPrefix, line, reply)
			}
		case <-sigs:
			break serve
		}
	}
	stdin.Close()
	for range lines { // drain until the reader has stopped
	}
	<-readerDone

	if os.Getenv(helperHandlerEnv) == "drain" {
		drainShutdown(srv)
	}
	require.NoError(t, srv.Close())
	for range 2 {
		select {
		case err := <-served:
			require.ErrorIs(t, err, http.ErrServerClosed)
		case <-time.After(testTimeout()):
			t.Fatalf("ServeTLS did not return within %v of Close", testTimeout())
		}
	}
	cc.waitAllClosed(t)
	fmt.Printf("%sfinal %d %d\n", helperPrefix, cc.opened.Load(), cc.shut.Load())
}

// serverProcess is a server under test running in a child process; see
// TestHelperServerProcess.
type serverProcess struct {
	name      string // "httpsrv" or "net/http"
	addr      string // the attack listener's address
	probeAddr string // the probe listener's address

	mu      sync.Mutex // guards stdin and the use of replies
	stdin   io.WriteCloser
	replies chan string // protocol lines, without the prefix; closed when stdout ends

	out    *syncBuffer // the child's other output, for failure messages
	exited chan error  // receives the child's exit status once
	proc   *os.Process // the child, for signals
}

// startServerProcess starts a child process serving the zero-config server
// kind ("httpsrv" or "net/http") with the named handler, and waits for its
// addresses; env adds variables to its environment. Cleanup closes its
// stdin, waits for it to exit and fails the test unless it exited 0 (its
// own test, leak check included, passed).
func startServerProcess(t testing.TB, kind, handler string, env ...string) *serverProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperServerProcess$", "-test.count=1", "-test.timeout=1h")
	cmd.Env = append(append(os.Environ(), helperServerEnv+"="+kind, helperHandlerEnv+"="+handler), env...)
	p := &serverProcess{name: kind, replies: make(chan string, 16), out: new(syncBuffer), exited: make(chan error, 1)}
	cmd.Stderr = p.out
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	p.stdin = stdin
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p.proc = cmd.Process
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), helperPrefix); ok {
				p.replies <- line
			} else {
				fmt.Fprintln(p.out, sc.Text())
			}
		}
		close(p.replies)
		p.exited <- cmd.Wait() // only after the last read from the pipe
	}()
	t.Cleanup(func() { p.stop(t, cmd) })

	line, err := p.reply("listening", testTimeout())
	require.NoError(t, err)
	f := strings.Fields(line)
	require.Len(t, f, 2, "listening line %q", line)
	p.addr, p.probeAddr = f[0], f[1]
	return p
}

// reply waits up to within for the next protocol line, which must start
// with word, and returns the rest of it.
func (p *serverProcess) reply(word string, within time.Duration) (string, error) {
	select {
	case line, ok := <-p.replies:
		if !ok {
			return "", fmt.Errorf("%s server process: stdout closed waiting for %q; output:\n%s", p.name, word, p.out)
		}
		rest, ok := strings.CutPrefix(line, word+" ")
		if !ok {
			return "", fmt.Errorf("%s server process: got %q, want %q", p.name, line, word)
		}
		return rest, nil
	case <-time.After(within):
		return "", fmt.Errorf("%s server process: no %q line within %v; output:\n%s", p.name, word, within, p.out)
	}
}

// parseCounts parses "<opened> <shut>".
func parseCounts(s string) (opened, shut int, err error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("counts %q", s)
	}
	opened, err1 := strconv.Atoi(f[0])
	shut, err2 := strconv.Atoi(f[1])
	return opened, shut, errors.Join(err1, err2)
}

// counts returns how many connections the server has opened and closed on
// its attack listener, as its ConnState hook saw them. It is safe for
// concurrent use.
func (p *serverProcess) counts() (opened, shut int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.stdin, "counts\n"); err != nil {
		return 0, 0, fmt.Errorf("%s server process: %w", p.name, err)
	}
	line, err := p.reply("counts", testTimeout())
	if err != nil {
		return 0, 0, err
	}
	return parseCounts(line)
}

// stop closes the child's stdin and waits for it to exit.
func (p *serverProcess) stop(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stdin.Close()
	// The child waits up to testTimeout for its connections to close.
	if line, err := p.reply("final", 2*testTimeout()); err == nil {
		t.Logf("%s server process: connections opened and closed on the attack listener: %s", p.name, line)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("%s server process: %v; output:\n%s", p.name, err, p.out)
		}
	case <-time.After(2 * testTimeout()):
		_ = cmd.Process.Kill()
		<-p.exited
		t.Errorf("%s server process did not exit within %v of its stdin closing; output:\n%s", p.name, 2*testTimeout(), p.out)
	}
}

// TestServerProcess checks the child-process plumbing quickly: each server
// answers on both listeners, and only the attack listener's connections are
// counted.
func TestServerProcess(t *testing.T) {
	requireInterop(t)
	for _, kind := range []string{"httpsrv", "net/http"} {
		t.Run(kind, func(t *testing.T) {
			p := startServerProcess(t, kind, "hello")
			c := newClient(t, false)
			c.Transport.(*http.Transport).DisableKeepAlives = true
			for _, addr := range []string{p.addr, p.probeAddr} {
				resp, err := c.Get("https://" + addr + "/")
				require.NoError(t, err)
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.NoError(t, err)
				require.Equal(t, "hello\n", string(body))
			}
			// The server may see the close after the client: ask until it has.
			deadline := time.After(testTimeout())
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				opened, shut, err := p.counts()
				require.NoError(t, err)
				require.LessOrEqual(t, opened, 1, "a probe connection was counted")
				if opened == 1 && shut == 1 {
					break
				}
				select {
				case <-tick.C:
				case <-deadline:
					t.Fatalf("counts %d %d, want 1 1", opened, shut)
				}
			}
		})
	}
}
