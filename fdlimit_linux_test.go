//go:build linux

package httpsrv

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The descriptor-limit mode of TestHelperServerProcess, set through these
// variables.
const (
	helperNoFileEnv  = "HTTPSRV_HELPER_NOFILE"  // RLIMIT_NOFILE to set before serving
	helperExhaustEnv = "HTTPSRV_HELPER_EXHAUST" // "1": use up every descriptor as Serve starts
)

// helperFDMode sets up the descriptor-limit mode of the child server
// process, if HTTPSRV_HELPER_NOFILE is set: it lowers RLIMIT_NOFILE, and
// with HTTPSRV_HELPER_EXHAUST=1 opens /dev/null until EMFILE once both
// accept loops are about to start (after ServeTLS loaded the certificate,
// before the loops take their reserve). It returns the handler of the
// extra stdin commands, which reports false for a line it does not know:
//
//	release  closes the descriptors taken; replies with how many
//	stats    replies "<backoff errors> <retried> <waits> <shed>"
//	fds      replies with the number of open descriptors
//	reserves replies with the number of reserve descriptors held: those
//	         open on /dev/null, less those open before Serve and those taken
func helperFDMode(t *testing.T, srv tlsServer) func(line string) (string, bool) {
	none := func(string) (string, bool) { return "", false }
	v := os.Getenv(helperNoFileEnv)
	if v == "" {
		return none
	}
	n, err := strconv.ParseUint(v, 10, 64)
	require.NoError(t, err, helperNoFileEnv)
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	lim.Cur = n
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim))
	if s, ok := srv.(*Server); ok {
		// MaxConns off (issue 8 item 3): the default, derived from the
		// lowered limit, would keep the server clear of EMFILE.
		s.MaxConns = -1
	}

	var mu sync.Mutex
	var taken []int
	devNullBefore := 0 // set before the reserves are taken
	if os.Getenv(helperExhaustEnv) == "1" {
		var arrived sync.WaitGroup
		arrived.Add(2) // the attack and probe listeners
		var once sync.Once
		SetTestHookServerServe(t, func(*Server, net.Listener) {
			arrived.Done()
			arrived.Wait()
			once.Do(func() {
				mu.Lock()
				defer mu.Unlock()
				devNullBefore = devNullFDs(t)
				for {
					fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
					if err != nil {
						return
					}
					taken = append(taken, fd)
				}
			})
		})
	}
	s, _ := srv.(*Server)
	return func(line string) (string, bool) {
		switch line {
		case "release":
			mu.Lock()
			defer mu.Unlock()
			for _, fd := range taken {
				syscall.Close(fd)
			}
			n := len(taken)
			taken = nil
			return strconv.Itoa(n), true
		case "stats":
			var st Stats
			if s != nil {
				st = s.Stats()
			}
			return fmt.Sprintf("%d %d %d %d", st.AcceptErrorsBackoff, st.AcceptErrorsRetried, st.AcceptBackoffWaits, st.AcceptShedConns), true
		case "reserves":
			mu.Lock()
			defer mu.Unlock()
			return strconv.Itoa(devNullFDs(t) - devNullBefore - len(taken)), true
		case "fds":
			ents, err := os.ReadDir("/proc/self/fd")
			if err != nil {
				return "-1", true
			}
			return strconv.Itoa(len(ents) - 1), true // less ReadDir's own
		}
		return "", false
	}
}

// command sends a command line to the child and returns its reply.
func (p *serverProcess) command(word string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.stdin, word+"\n"); err != nil {
		return "", fmt.Errorf("%s server process: %w", p.name, err)
	}
	return p.reply(word, testTimeout())
}

// stats returns the child's accept counters.
func (p *serverProcess) stats(t testing.TB) Stats {
	t.Helper()
	line, err := p.command("stats")
	require.NoError(t, err)
	var st Stats
	_, err = fmt.Sscanf(line, "%d %d %d %d", &st.AcceptErrorsBackoff, &st.AcceptErrorsRetried, &st.AcceptBackoffWaits, &st.AcceptShedConns)
	require.NoError(t, err, "stats %q", line)
	return st
}

// cpuTime returns the CPU time process pid has used, from /proc/<pid>/stat.
func cpuTime(t testing.TB, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	// The fields after the command name, which is in parentheses: state is
	// field 3, utime and stime fields 14 and 15, in clock ticks (USER_HZ,
	// 100 on Linux).
	_, rest, ok := strings.Cut(string(b), ") ")
	require.True(t, ok, "stat %q", b)
	f := strings.Fields(rest)
	require.Greater(t, len(f), 12)
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	require.NoError(t, errors.Join(err1, err2))
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// keepAliveConn is an established HTTP/1.1 connection over TLS.
type keepAliveConn struct {
	c  *tls.Conn
	br *bufio.Reader
}

func tlsClientConfig(t testing.TB) *tls.Config {
	_, pool := testCertificate(t)
	return &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
}

// dialKeepAlive opens a TLS connection to addr and makes one request on it.
func dialKeepAlive(ctx context.Context, t testing.TB, addr string) (*keepAliveConn, error) {
	d := &tls.Dialer{Config: tlsClientConfig(t)}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	k := &keepAliveConn{c: c.(*tls.Conn), br: bufio.NewReader(c)}
	if err := k.get(); err != nil {
		c.Close()
		return nil, err
	}
	return k, nil
}

// get makes a request on k and checks the answer.
func (k *keepAliveConn) get() error {
	k.c.SetDeadline(time.Now().Add(testTimeout()))
	defer k.c.SetDeadline(time.Time{})
	if _, err := io.WriteString(k.c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || string(body) != "hello\n" {
		return fmt.Errorf("got %d %q", resp.StatusCode, body)
	}
	return nil
}

// floodOutcome is what became of one connection of the flood.
type floodOutcome int

const (
	floodServed floodOutcome = iota // the handshake completed: accepted
	floodEOF                        // closed by the server: an orderly close
	floodReset                      // closed by the server with a reset
	floodHung                       // no answer within the deadline
	floodOther
)

func (o floodOutcome) String() string {
	return [...]string{"served", "EOF", "reset", "hung", "other"}[o]
}

// floodConn dials addr and starts a TLS handshake, which must end within
// within. It returns the connection when the handshake completed.
func floodConn(t testing.TB, addr string, within time.Duration) (*tls.Conn, floodOutcome, error) {
	c, err := net.DialTimeout("tcp", addr, within)
	if err != nil {
		return nil, floodOther, err
	}
	tc := tls.Client(c, tlsClientConfig(t))
	tc.SetDeadline(time.Now().Add(within))
	err = tc.Handshake()
	switch {
	case err == nil:
		tc.SetDeadline(time.Time{})
		return tc, floodServed, nil
	case errors.Is(err, io.EOF):
		c.Close()
		return nil, floodEOF, err
	case errors.Is(err, syscall.ECONNRESET):
		c.Close()
		return nil, floodReset, err
	case isTimeout(err):
		c.Close()
		return nil, floodHung, err
	}
	c.Close()
	return nil, floodOther, err
}

// TestFDExhaustion runs a zero-config Server over TLS in a child process
// whose RLIMIT_NOFILE is 64 and which had no descriptor left when Serve
// started, then floods it past the limit. It checks that the server
// starts serving once descriptors are freed, that a flood past the limit
// leaves established connections served and gets its extra connections
// closed promptly and in order (EOF during the handshake, not a hang),
// that the process does not spin at EMFILE, and that it serves new
// clients again once the flood is gone.
func TestFDExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	p := startServerProcess(t, "httpsrv", "hello", helperNoFileEnv+"=64", helperExhaustEnv+"=1")
	within := testTimeout()
	// The back-off waits at most maxAcceptDelay, so every pending
	// connection is served or closed by then; twice that is slow.
	prompt := 3 * maxAcceptDelay
	if within > 10*time.Second {
		prompt *= within / (10 * time.Second)
	}

	// 1. No descriptor left at Serve start: the loop backs off, a client
	// waits in the listen queue (there is no reserve to close it with), and
	// is served once descriptors are released.
	waitStats(t, p, "the loop backing off at EMFILE", func(st Stats) bool { return st.AcceptErrorsBackoff > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	raw, err := net.DialTimeout("tcp", p.addr, within) // queued by the kernel
	require.NoError(t, err)
	first := &keepAliveConn{c: tls.Client(raw, tlsClientConfig(t))}
	first.br = bufio.NewReader(first.c)
	t.Cleanup(func() { first.c.Close() })
	firstc := make(chan error, 1)
	go func() { firstc <- first.get() }()
	released, err := p.command("release")
	require.NoError(t, err)
	releasedAt := time.Now()
	require.NoError(t, <-firstc, "the client queued while descriptors were exhausted")
	t.Logf("exhausted at start: %s descriptors released, the queued client served %v later", released, time.Since(releasedAt).Round(time.Millisecond))
	assert.Zero(t, p.stats(t).AcceptShedConns, "a connection was shed without a reserve")

	established := []*keepAliveConn{first}
	for range 2 {
		k, err := dialKeepAlive(ctx, t, p.addr)
		require.NoError(t, err)
		t.Cleanup(func() { k.c.Close() })
		established = append(established, k)
	}
	fds, err := p.command("fds")
	require.NoError(t, err)

	// 2. The flood: 200 connections held open. The server accepts as many
	// as it has descriptors for; the others must be closed promptly.
	const flood = 200
	type result struct {
		c       *tls.Conn
		outcome floodOutcome
		err     error
		took    time.Duration
	}
	results := make(chan result, flood)
	start := time.Now()
	for range flood {
		go func() {
			begin := time.Now()
			c, o, err := floodConn(t, p.addr, prompt)
			results <- result{c, o, err, time.Since(begin)}
		}()
	}
	var held []*tls.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	outcomes := map[floodOutcome]int{}
	var slowest time.Duration
	for range flood {
		r := <-results
		outcomes[r.outcome]++
		slowest = max(slowest, r.took)
		if r.c != nil {
			held = append(held, r.c)
		}
		if r.outcome == floodHung || r.outcome == floodOther {
			t.Errorf("flood connection: %v after %v: %v", r.outcome, r.took.Round(time.Millisecond), r.err)
		}
	}
	t.Logf("flood of %d (server had %s descriptors open before): %v in %v; slowest connection resolved in %v",
		flood, fds, outcomes, time.Since(start).Round(time.Millisecond), slowest.Round(time.Millisecond))
	require.Positive(t, outcomes[floodServed], "no flood connection was served")
	require.Positive(t, outcomes[floodEOF]+outcomes[floodReset], "no flood connection was shed")
	assert.Zero(t, outcomes[floodReset], "shed connections must get an orderly close")
	st := p.stats(t)
	assert.Positive(t, st.AcceptShedConns)

	// The established connections are still served.
	for i, k := range established {
		require.NoError(t, k.get(), "established connection %d at EMFILE", i)
	}

	// 3. At EMFILE, with new clients still coming: no spin, and each new
	// client is closed promptly.
	cpu0, waits0, t0 := cpuTime(t, p.proc.Pid), st.AcceptBackoffWaits, time.Now()
	window := time.NewTimer(time.Second) // a measurement window, not a wait for an event
	const late = 8
	for range late {
		go func() {
			begin := time.Now()
			c, o, err := floodConn(t, p.addr, prompt)
			results <- result{c, o, err, time.Since(begin)}
		}()
	}
	lateOutcomes := map[floodOutcome]int{}
	for range late {
		r := <-results
		if r.c != nil {
			held = append(held, r.c)
		}
		lateOutcomes[r.outcome]++
		// Served when a descriptor was free after all: the handshake
		// limiter's yields give theirs back when the loop is short of
		// them (yieldPool.setShort).
		assert.Contains(t, []floodOutcome{floodEOF, floodServed}, r.outcome, "new client at EMFILE, after %v: %v", r.took.Round(time.Millisecond), r.err)
	}
	assert.Positive(t, lateOutcomes[floodEOF], "no new client was shed at EMFILE: %v", lateOutcomes)
	<-window.C
	cpu, elapsed := cpuTime(t, p.proc.Pid)-cpu0, time.Since(t0)
	st = p.stats(t)
	waits := st.AcceptBackoffWaits - waits0
	t.Logf("at EMFILE for %v: child CPU %v (%.1f%%), %d back-off waits", elapsed.Round(time.Millisecond), cpu, 100*cpu.Seconds()/elapsed.Seconds(), waits)
	assert.Less(t, cpu.Seconds()/elapsed.Seconds(), 0.25, "the child spins at EMFILE")
	assert.LessOrEqual(t, waits, uint64(20), "the accept loop spins at EMFILE")

	// 4. The flood goes away: once its connections are closed on the
	// server side, a new client is served.
	releaseAt := time.Now()
	for _, c := range held {
		c.Close()
	}
	held = nil
	deadline := time.Now().Add(within)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		opened, shut, err := p.counts()
		require.NoError(t, err)
		if opened-shut == len(established) {
			break
		}
		require.True(t, time.Now().Before(deadline), "flood connections still open on the server: %d of %d", opened-shut, opened)
		<-tick.C
	}
	closedAt := time.Now()
	k, err := dialKeepAlive(ctx, t, p.addr)
	if errors.Is(err, io.EOF) {
		// A round that began at EMFILE just before the flood's descriptors
		// were freed may still shed a client arriving then; the next
		// round cannot.
		t.Logf("the first client after the flood was shed; again")
		k, err = dialKeepAlive(ctx, t, p.addr)
	}
	require.NoError(t, err, "a new client after the flood")
	k.c.Close()
	t.Logf("recovery: flood closed on the server %v after release, new client served %v after that (%v in all)",
		closedAt.Sub(releaseAt).Round(time.Millisecond), time.Since(closedAt).Round(time.Millisecond), time.Since(releaseAt).Round(time.Millisecond))
	for i, k := range established {
		require.NoError(t, k.get(), "established connection %d after the flood", i)
	}
	st = p.stats(t)
	t.Logf("accept stats: %+v", st)
	if t.Failed() {
		t.Logf("child output:\n%s", p.out)
	}

	// Both accept loops hold their reserve again, the probe listener's too,
	// which started without one and never accepted a connection.
	deadline = time.Now().Add(within)
	for {
		line, err := p.command("reserves")
		require.NoError(t, err)
		if line == "2" {
			break
		}
		require.True(t, time.Now().Before(deadline), "reserves held by the server: %s, want 2", line)
		<-tick.C
	}
}

// waitStats polls the child's accept counters until cond holds.
func waitStats(t testing.TB, p *serverProcess, what string, cond func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout())
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		st := p.stats(t)
		if cond(st) {
			return
		}
		require.True(t, time.Now().Before(deadline), "waiting for %s: stats %+v", what, st)
		<-tick.C
	}
}

// TestShedPending checks what a shed connection's client sees: an
// orderly close (EOF), promptly, even when it had sent bytes the server
// never read; and that shedding never waits for a connection.
func TestShedPending(t *testing.T) {
	ln := localListener(t)
	const tlsClients = 3
	handshakes := make(chan error, tlsClients)
	for range tlsClients {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), testTimeout()) // queued by the kernel
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		tc := tls.Client(c, tlsClientConfig(t))
		tc.SetDeadline(time.Now().Add(testTimeout()))
		go func() { handshakes <- tc.Handshake() }()
	}
	plain, err := net.DialTimeout("tcp", ln.Addr().String(), testTimeout())
	require.NoError(t, err)
	t.Cleanup(func() { plain.Close() })
	_, err = io.WriteString(plain, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
	require.NoError(t, err)

	assert.Equal(t, tlsClients+1, shedPending(ln, 100))
	for range tlsClients {
		err := <-handshakes
		assert.ErrorIs(t, err, io.EOF, "a TLS client sees EOF during the handshake")
	}
	plain.SetDeadline(time.Now().Add(testTimeout()))
	n, err := plain.Read(make([]byte, 1))
	assert.Zero(t, n)
	assert.Equal(t, io.EOF, err, "the plaintext client's unread request must not turn the close into a reset")

	assert.Zero(t, shedPending(ln, 100), "nothing pending: returns at once")
	assert.Zero(t, shedPending(newFaultListener(), 100), "a listener without a descriptor")
}

// TestShedPendingLateBytes checks that a shed connection's client reads an
// orderly close even when its bytes arrive after the server drained what
// was there and before it closed: closing a socket with unread bytes
// sends a reset, which the FIN sent first keeps the client from reading
// as the end of the connection. Not parallel: it sets a package hook.
func TestShedPendingLateBytes(t *testing.T) {
	ln := localListener(t)
	c, err := net.DialTimeout("tcp", ln.Addr().String(), testTimeout()) // queued by the kernel
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	testHookShedBeforeClose = func(fd int) {
		// The client's bytes arrive now, unread at the close. Loopback
		// delivers them before Write returns.
		_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
		assert.NoError(t, err)
	}
	t.Cleanup(func() { testHookShedBeforeClose = nil })
	require.Equal(t, 1, shedPending(ln, 100))
	c.SetDeadline(time.Now().Add(testTimeout()))
	n, err := c.Read(make([]byte, 1))
	assert.Zero(t, n)
	assert.Equal(t, io.EOF, err, "bytes that arrived after the drain must not turn the close into a reset")
}

// devNullFDs counts the process's descriptors open on /dev/null.
func devNullFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == "/dev/null" {
			n++
		}
	}
	return n
}

// TestAcceptReserve checks that each accept loop over a socket holds one
// reserve descriptor while it runs and closes it when Serve returns,
// whichever way it ends, and that a loop that cannot shed holds none.
func TestAcceptReserve(t *testing.T) {
	tests := []struct {
		name    string
		serve   func(*Server, net.Listener) error
		stop    func(*Server, net.Listener) error
		reserve int
	}{
		{"ServeTLS, Close", func(s *Server, ln net.Listener) error { return s.ServeTLS(ln, testCertFile, testKeyFile) },
			func(s *Server, _ net.Listener) error { return s.Close() }, 1},
		{"ServeTLS, Shutdown", func(s *Server, ln net.Listener) error { return s.ServeTLS(ln, testCertFile, testKeyFile) },
			func(s *Server, _ net.Listener) error { return s.Shutdown(context.Background()) }, 1},
		{"Serve, listener closed", (*Server).Serve, func(_ *Server, ln net.Listener) error { return ln.Close() }, 1},
		{"Serve over a TLS listener", func(s *Server, ln net.Listener) error {
			cert, _ := testCertificate(t)
			return s.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}))
		}, func(s *Server, _ net.Listener) error { return s.Close() }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := devNullFDs(t)
			accepted := make(chan struct{}, 1)
			srv := &Server{ErrorLog: discardLogger(), ConnState: func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					select {
					case accepted <- struct{}{}:
					default:
					}
				}
			}}
			ln := localListener(t)
			errc := make(chan error, 1)
			go func() { errc <- tt.serve(srv, ln) }()
			// The reserve is taken before the first Accept; a connection
			// accepted shows the loop is past that point.
			c, err := net.DialTimeout("tcp", ln.Addr().String(), testTimeout())
			require.NoError(t, err)
			select {
			case <-accepted:
			case <-time.After(testTimeout()):
				t.Fatal("the connection was not accepted")
			}
			c.Close()
			assert.Equal(t, base+tt.reserve, devNullFDs(t), "while serving")
			require.NoError(t, tt.stop(srv, ln))
			select {
			case err := <-errc:
				require.Error(t, err)
			case <-time.After(testTimeout()):
				t.Fatal("Serve did not return")
			}
			assert.Equal(t, base, devNullFDs(t), "after Serve returned")
			require.NoError(t, srv.Close())
		})
	}
}

// emfileListener is a real TCP listener whose first Accept calls fail
// with EMFILE, as at the descriptor limit.
type emfileListener struct {
	*net.TCPListener
	mu     sync.Mutex
	emfile int
}

func (l *emfileListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	fail := l.emfile > 0
	l.emfile--
	l.mu.Unlock()
	if fail {
		return nil, acceptOpError(syscall.EMFILE)
	}
	return l.TCPListener.Accept()
}

// TestAcceptShedInLoop runs the accept loop on a real listener whose
// Accept fails with EMFILE once: the loop gives up its reserve, closes the
// connections waiting in the queue (their clients read EOF), takes the
// reserve again, counts and logs it, and serves the next client.
func TestAcceptShedInLoop(t *testing.T) {
	ln := &emfileListener{TCPListener: localListener(t).(*net.TCPListener), emfile: 1}
	const queued = 3
	var clients []net.Conn
	for range queued {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), testTimeout())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		clients = append(clients, c)
	}
	base := devNullFDs(t)
	logs := &notifyWriter{wrote: make(chan struct{}, 1)}
	logged := logs.wrote
	srv := &Server{ErrorLog: log.New(logs, "", 0), Handler: http.HandlerFunc(helloHandler), Protocols: h1Only()}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	for i, c := range clients {
		c.SetDeadline(time.Now().Add(testTimeout()))
		n, err := c.Read(make([]byte, 1))
		assert.Zero(t, n)
		assert.Equal(t, io.EOF, err, "queued client %d", i)
	}
	// A client that came before the shedding round ended would be shed
	// too: wait for its end, which the error's line follows.
	select {
	case <-logged:
	case <-time.After(testTimeout()):
		t.Fatal("the accept error was not logged")
	}
	c, err := net.DialTimeout("tcp", ln.Addr().String(), testTimeout())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout()))
	_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "hello\n", string(body))
	assert.Equal(t, base+1, devNullFDs(t), "the reserve is held again")
	assert.Equal(t, Stats{AcceptErrorsBackoff: 1, AcceptBackoffWaits: 1, AcceptShedConns: queued}, acceptStats(srv.Stats()))

	require.NoError(t, srv.Close())
	require.Equal(t, http.ErrServerClosed, <-errc)
	assert.Equal(t, base, devNullFDs(t), "the reserve is closed")
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.Len(t, lines, 2, "%q", lines)
	assert.Equal(t, "http: Accept error: accept tcp 127.0.0.1:443: accept4: too many open files; retrying in 5ms", lines[0])
	assert.Regexp(t, `^http: Accept error: in the last \S+: 3 pending connections closed unserved$`, lines[1])
}
