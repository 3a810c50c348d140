//go:build linux

package httpsrv

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
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

	var mu sync.Mutex
	var taken []int
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
			var st acceptStats
			if s != nil {
				st = s.acceptStats()
			}
			return fmt.Sprintf("%d %d %d %d", st.AcceptErrorsBackoff, st.AcceptErrorsRetried, st.AcceptBackoffWaits, st.AcceptShedConns), true
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
func (p *serverProcess) stats(t testing.TB) acceptStats {
	t.Helper()
	line, err := p.command("stats")
	require.NoError(t, err)
	var st acceptStats
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
	waitStats(t, p, "the loop backing off at EMFILE", func(st acceptStats) bool { return st.AcceptErrorsBackoff > 0 })
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
	cpu0, waits0, t0 := cpuTime(t, p.pid), st.AcceptBackoffWaits, time.Now()
	window := time.NewTimer(time.Second) // a measurement window, not a wait for an event
	for i := range 5 {
		c, o, err := floodConn(t, p.addr, prompt)
		if c != nil {
			held = append(held, c)
		}
		assert.Equal(t, floodEOF, o, "new client %d at EMFILE: %v", i, err)
	}
	<-window.C
	cpu, elapsed := cpuTime(t, p.pid)-cpu0, time.Since(t0)
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
	require.NoError(t, err, "a new client after the flood")
	k.c.Close()
	t.Logf("recovery: flood closed on the server %v after release, new client served %v after that (%v in all)",
		closedAt.Sub(releaseAt).Round(time.Millisecond), time.Since(closedAt).Round(time.Millisecond), time.Since(releaseAt).Round(time.Millisecond))
	for i, k := range established {
		require.NoError(t, k.get(), "established connection %d after the flood", i)
	}
	st = p.stats(t)
	t.Logf("accept stats: %+v", st)
}

// waitStats polls the child's accept counters until cond holds.
func waitStats(t testing.TB, p *serverProcess, what string, cond func(acceptStats) bool) {
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
