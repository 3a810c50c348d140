//go:build linux

package httpsrv

// Several instances behind real HAProxy (issue 10 item 5): PROXY protocol
// v2 from a trusted and from an untrusted balancer, session resumption
// across instances, and a rolling restart under load, for a fleet of
// examples/fleet processes beside a fleet of net/http servers with
// go-proxyproto, each behind its own HAProxy.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fleetSize is the number of instances behind HAProxy.
const fleetSize = 3

// The load of the rolling restart.
const (
	fleetGoWorkers   = 4                       // goroutines sending through Go's client, per protocol
	fleetH2loadConns = 2                       // h2load clients, per protocol
	fleetH2loadRPS   = 100                     // requests a second per h2load client, over HTTP/2
	fleetH2loadRun   = 100                     // requests per h2load run; runs follow each other
	fleetH2loadStall = 1500 * time.Millisecond // an h2load run longer than this stalled (one takes 0.5 s at most)
	fleetStepLoad    = 150                     // Go client successes to see between restart steps, at least
	fleetStepTime    = 1500 * time.Millisecond // load between restart steps, at least
	fleetLoadLimit   = 60 * time.Second        // the whole load, at most
	fleetBody        = "fleet-post-body-0123"  // the body of every POST, repeated
)

// TestHAProxyFleet runs fleetSize instances behind HAProxy in TCP mode,
// which sends each connection's addresses in a PROXY protocol v2 header
// (send-proxy-v2) and health-checks every 100 ms, and shows in one run:
//
//   - every answer names the client's own address and port, as the
//     client's socket has it, not HAProxy's;
//   - a session from one instance resumes on another (SessionTicketKeyFile);
//   - a rolling restart under load (each instance in turn disabled on
//     HAProxy's admin socket, sent SIGTERM, which drains it with Shutdown,
//     replaced by a new process on the same port, enabled, and waited for
//     until its health check passes) fails none of Go's client's requests,
//     GETs and POSTs over HTTP/1.1 and HTTP/2; h2load's counts are
//     reported, as are those of the same restart of a fleet of net/http
//     servers behind go-proxyproto's listener;
//   - an instance that does not trust HAProxy's address refuses the
//     connections HAProxy relays with a header, and counts them.
//
// The httpsrv instances are examples/fleet, built here.
func TestHAProxyFleet(t *testing.T) {
	requireInterop(t)
	haproxy := lookTool(t, "haproxy")
	h2load, err := exec.LookPath("h2load")
	if err != nil {
		if os.Getenv("HTTPSRV_REQUIRE_TOOLS") == "1" {
			t.Fatalf("h2load is required (HTTPSRV_REQUIRE_TOOLS=1): %v", err)
		}
		t.Logf("h2load not found (%v): its rows are skipped; install nghttp2-client, or set HTTPSRV_REQUIRE_TOOLS=1 to fail instead", err)
		h2load = ""
	}
	bin := buildExample(t, "fleet")
	dir := t.TempDir()
	keyFile := writeTicketKeys(t, dir, "tickets.keys", newTicketKey(t), newTicketKey(t))
	bodyFile := filepath.Join(dir, "body")
	require.NoError(t, os.WriteFile(bodyFile, []byte(strings.Repeat(fleetBody, 10)), 0o600))
	certFile, err := filepath.Abs(testCertFile)
	require.NoError(t, err)
	keyPEM, err := filepath.Abs(testKeyFile)
	require.NoError(t, err)

	// The httpsrv fleet: examples/fleet trusting 127.0.0.1, HAProxy's
	// address, with a shared key file and SO_REUSEPORT, so that each
	// replacement binds its port before the old process exits.
	ours := fleetKind{
		name:      "httpsrv",
		reusePort: true,
		start: func(t testing.TB, addr, name string) *fleetInstance {
			return startFleetInstance(t, name, bin, "-addr", addr, "-cert", certFile, "-key", keyPEM,
				"-proxy-trusted", "127.0.0.1", "-ticket-keys", keyFile, "-reuseport", "-name", name)
		},
	}
	// The same example, trusting only 10.0.0.0/8: HAProxy's header comes
	// from a peer it does not trust.
	untrusted := startFleetInstance(t, "u1", bin, "-addr", "127.0.0.1:0", "-cert", certFile, "-key", keyPEM,
		"-proxy-trusted", "10.0.0.0/8", "-ticket-keys", keyFile, "-name", "u1")
	// The net/http fleet, as a new user builds it: http.Server.ServeTLS
	// on go-proxyproto's Listener trusting 127.0.0.1, Shutdown on SIGTERM.
	theirs := fleetKind{
		name: "net/http",
		start: func(t testing.TB, addr, name string) *fleetInstance {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFleetNetHTTP$", "-test.count=1", "-test.timeout=10m")
			cmd.Env = append(os.Environ(), fleetHelperEnv+"="+addr+" "+name)
			return startFleetCmd(t, name, cmd)
		},
	}

	var rows []fleetRow
	for _, k := range []fleetKind{ours, theirs} {
		t.Run(strings.ReplaceAll(k.name, "/", ""), func(t *testing.T) {
			f := startFleet(t, haproxy, k, untrusted.addr)
			if k.name == "httpsrv" {
				fleetUntrusted(t, f, untrusted)
				f.checkResumption(t, true)
			} else {
				f.checkResumption(t, false)
			}
			rows = append(rows, f.rollingRestart(t, h2load, bodyFile)...)
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| fleet | client | success | failed (h2load: started, not answered 2xx) | |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s |\n", r.fleet, r.client, r.success, r.failed, r.note)
	}
	t.Log(b.String())
}

// fleetRow is one line of TestHAProxyFleet's table.
type fleetRow struct {
	fleet, client   string
	success, failed int
	note            string
}

// buildExample builds examples/name into a temporary directory, as the
// test binary was built (-race or not), and returns the program's path.
func buildExample(t testing.TB, name string) string {
	t.Helper()
	goTool := lookTool(t, "go")
	bin := filepath.Join(t.TempDir(), name)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.CommandContext(ctx, goTool, append(args, "./examples/"+name)...).CombinedOutput()
	require.NoError(t, err, "go build ./examples/%s:\n%s", name, out)
	return bin
}

// fleetInstance is one server process of a fleet.
type fleetInstance struct {
	name string
	addr string // where it listens, from its "listening on" line

	out     *syncBuffer // stdout and stderr, for failure messages
	stopped chan string // its "stopped: ..." line, if it prints one
	exited  chan error  // its exit status, once
	proc    *os.Process
	done    atomic.Bool // set once exited has been received
}

// startFleetInstance runs bin with args and waits for its "listening on"
// line.
func startFleetInstance(t testing.TB, name, bin string, args ...string) *fleetInstance {
	t.Helper()
	return startFleetCmd(t, name, exec.Command(bin, args...))
}

// listeningRE matches the line a fleet instance prints when ready.
var listeningRE = regexp.MustCompile(`^listening on (\S+)$`)

// startFleetCmd starts cmd, a fleet instance, and waits for its
// "listening on" line. Cleanup kills it if it is still running.
func startFleetCmd(t testing.TB, name string, cmd *exec.Cmd) *fleetInstance {
	t.Helper()
	in := &fleetInstance{name: name, out: new(syncBuffer), stopped: make(chan string, 1), exited: make(chan error, 1)}
	cmd.Stderr = in.out
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	in.proc = cmd.Process
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(in.out, line)
			if m := listeningRE.FindStringSubmatch(line); m != nil && len(addrc) == 0 {
				addrc <- m[1]
			}
			if strings.HasPrefix(line, "stopped: ") && len(in.stopped) == 0 {
				in.stopped <- line
			}
		}
		in.exited <- cmd.Wait() // only after the last read from the pipe
	}()
	t.Cleanup(func() {
		if !in.done.Load() {
			_ = in.proc.Kill()
			<-in.exited
		}
	})
	select {
	case in.addr = <-addrc:
		return in
	case err := <-in.exited:
		in.done.Store(true)
		t.Fatalf("%s exited before listening (%v); output:\n%s", name, err, in.out)
	case <-time.After(testTimeout()):
		t.Fatalf("%s printed no \"listening on\" line within %v; output:\n%s", name, testTimeout(), in.out)
	}
	return nil
}

// stop sends SIGTERM, waits for the process to exit 0 and returns its
// "stopped" line ("" if it printed none).
func (in *fleetInstance) stop(t testing.TB) string {
	t.Helper()
	require.NoError(t, in.proc.Signal(syscall.SIGTERM))
	select {
	case err := <-in.exited:
		in.done.Store(true)
		require.NoError(t, err, "%s after SIGTERM; output:\n%s", in.name, in.out)
	case <-time.After(3 * testTimeout()):
		t.Fatalf("%s did not exit within %v of SIGTERM; output:\n%s", in.name, 3*testTimeout(), in.out)
	}
	select {
	case line := <-in.stopped:
		return line
	default:
		return ""
	}
}

// fleetKind says how to start one kind of fleet instance on addr.
type fleetKind struct {
	name      string
	reusePort bool // a replacement can bind the port before the old instance exits
	start     func(t testing.TB, addr, name string) *fleetInstance
}

// fleet is fleetSize instances of one kind behind HAProxy.
type fleet struct {
	kind      fleetKind
	instances []*fleetInstance
	haproxy   *haproxyProc
}

// startFleet starts fleetSize instances of k and HAProxy in front of them
// (and of untrustedAddr on a second frontend), and waits until HAProxy
// sees every instance up.
func startFleet(t testing.TB, haproxy string, k fleetKind, untrustedAddr string) *fleet {
	t.Helper()
	f := &fleet{kind: k}
	var addrs []string
	for i := range fleetSize {
		in := k.start(t, "127.0.0.1:0", fmt.Sprintf("s%d", i+1))
		f.instances = append(f.instances, in)
		addrs = append(addrs, in.addr)
	}
	f.haproxy = startHAProxy(t, haproxy, addrs, untrustedAddr)
	for _, in := range f.instances {
		f.haproxy.waitStatus(t, "fleet", in.name, "UP")
	}
	return f
}

// haproxyProc is an HAProxy process in the foreground (-db).
type haproxyProc struct {
	addr          string // the fleet frontend
	untrustedAddr string // the frontend whose server does not trust HAProxy
	sock          string // the admin socket
	out           *syncBuffer
}

// haproxyConfig is HAProxy's configuration: TCP mode, PROXY protocol v2
// to every server, health checks every 100 ms (a TCP connect, which with
// send-proxy-v2 sends a LOCAL header and closes), and an admin socket. The
// frontends bind listening sockets the test passes as descriptors 3 and 4,
// so that their ports are known before HAProxy starts and connections
// made before it is ready wait in the backlog.
const haproxyConfig = `global
	stats socket {{sock}} mode 600 level admin
	nbthread 1
	log stderr format short local0 notice

defaults
	mode tcp
	log global
	timeout connect 2s
	timeout client 10s
	timeout server 10s
	retries 3
	option redispatch

frontend fleet
	bind fd@3
	default_backend fleet

backend fleet
	balance roundrobin
{{servers}}
frontend untrusted
	bind fd@4
	default_backend untrusted

backend untrusted
	server u1 {{untrusted}} send-proxy-v2
`

// startHAProxy writes the configuration for servers (named s1, s2, ...)
// and untrustedAddr, and starts HAProxy. Cleanup stops it.
func startHAProxy(t testing.TB, haproxy string, servers []string, untrustedAddr string) *haproxyProc {
	t.Helper()
	dir := t.TempDir()
	h := &haproxyProc{sock: filepath.Join(dir, "admin.sock"), out: new(syncBuffer)}
	var lines strings.Builder
	for i, a := range servers {
		fmt.Fprintf(&lines, "\tserver s%d %s send-proxy-v2 check inter 100ms fall 1 rise 1\n", i+1, a)
	}
	cfg := strings.NewReplacer("{{sock}}", h.sock, "{{servers}}", lines.String(), "{{untrusted}}", untrustedAddr).Replace(haproxyConfig)
	cfgFile := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(cfgFile, []byte(cfg), 0o600))

	var files []*os.File
	for _, addr := range []*string{&h.addr, &h.untrustedAddr} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		*addr = ln.Addr().String()
		f, err := ln.(*net.TCPListener).File()
		require.NoError(t, err)
		ln.Close()
		files = append(files, f)
	}
	cmd := exec.Command(haproxy, "-db", "-f", cfgFile)
	cmd.ExtraFiles = files
	cmd.Stdout, cmd.Stderr = h.out, h.out
	require.NoError(t, cmd.Start())
	for _, f := range files {
		f.Close()
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(testTimeout()):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("haproxy output:\n%s", h.out)
		}
	})
	// Wait for the admin socket.
	deadline := time.Now().Add(testTimeout())
	for {
		if _, err := h.command("show info"); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("haproxy exited (%v); config:\n%s\noutput:\n%s", err, cfg, h.out)
		case <-time.After(10 * time.Millisecond):
		}
		require.False(t, time.Now().After(deadline), "haproxy's admin socket did not answer within %v; output:\n%s", testTimeout(), h.out)
	}
	return h
}

// command sends one command on the admin socket and returns the answer.
func (h *haproxyProc) command(cmd string) (string, error) {
	c, err := net.DialTimeout("unix", h.sock, testTimeout())
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout()))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// mustCommand is command for a command that answers nothing but a
// blank line when it succeeds.
func (h *haproxyProc) mustCommand(t testing.TB, cmd string) {
	t.Helper()
	out, err := h.command(cmd)
	require.NoError(t, err, "haproxy %q", cmd)
	require.Empty(t, strings.TrimSpace(out), "haproxy %q", cmd)
}

// status returns the status column of `show stat` for backend be's server
// srv ("UP", "DOWN", "MAINT", ...).
func (h *haproxyProc) status(be, srv string) (string, error) {
	out, err := h.command("show stat")
	if err != nil {
		return "", err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil || len(recs) == 0 {
		return "", fmt.Errorf("show stat: %v; output:\n%s", err, out)
	}
	col := slices.Index(recs[0], "status")
	for _, rec := range recs[1:] {
		if len(rec) > col && rec[0] == be && rec[1] == srv {
			return rec[col], nil
		}
	}
	return "", fmt.Errorf("show stat: no %s/%s; output:\n%s", be, srv, out)
}

// waitStatus polls until be/srv's status starts with want.
func (h *haproxyProc) waitStatus(t testing.TB, be, srv, want string) {
	t.Helper()
	deadline := time.Now().Add(testTimeout())
	for {
		st, err := h.status(be, srv)
		require.NoError(t, err)
		if strings.HasPrefix(st, want) {
			return
		}
		require.False(t, time.Now().After(deadline), "%s/%s is %q after %v, want %q; haproxy output:\n%s", be, srv, st, testTimeout(), want, h.out)
		time.Sleep(10 * time.Millisecond) // polling HAProxy, which has no event to wait on
	}
}

// fleetAnswer is a fleet instance's answer, parsed.
type fleetAnswer struct {
	remote, proto, instance string
	resumed                 bool
}

// parseFleetAnswer parses the lines examples/fleet answers with.
func parseFleetAnswer(body string) (fleetAnswer, error) {
	var a fleetAnswer
	seen := map[string]bool{}
	for line := range strings.Lines(body) {
		k, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		if !ok {
			return a, fmt.Errorf("answer line %q", line)
		}
		seen[k] = true
		switch k {
		case "remote":
			a.remote = v
		case "proto":
			a.proto = v
		case "resumed":
			a.resumed = v == "true"
		case "instance":
			a.instance = v
		}
	}
	if !seen["remote"] || !seen["proto"] || !seen["resumed"] {
		return a, fmt.Errorf("answer %q lacks remote=, proto= or resumed=", body)
	}
	return a, nil
}

// fleetGet makes one request through c and returns the answer and the
// client's own address on the connection it used.
func fleetGet(c *http.Client, method, url string, body io.Reader) (fleetAnswer, string, error) {
	var local string
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { local = info.Conn.LocalAddr().String() },
	})
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return fleetAnswer{}, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fleetAnswer{}, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fleetAnswer{}, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return fleetAnswer{}, "", fmt.Errorf("%s %s: status %d, body %q", resp.Proto, method, resp.StatusCode, b)
	}
	a, err := parseFleetAnswer(string(b))
	if err == nil && a.proto != resp.Proto {
		err = fmt.Errorf("proto=%s on a %s response", a.proto, resp.Proto)
	}
	if err == nil && a.remote != local {
		err = fmt.Errorf("remote=%s, but the client's address is %s", a.remote, local)
	}
	return a, local, err
}

// checkResumption connects through HAProxy (round robin) several times,
// one connection per request with a client session cache, and checks
// where the sessions resumed: with shared keys, on every connection after
// the first, on whichever instance it lands; without (net/http), never on
// another instance than the one that issued the ticket.
func (f *fleet) checkResumption(t testing.TB, shared bool) {
	t.Helper()
	c := newClient(t, false)
	tr := c.Transport.(*http.Transport)
	tr.DisableKeepAlives = true
	tr.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	const conns = 2 * fleetSize
	var trail []string
	across, resumed := 0, 0
	prev := ""
	for i := range conns {
		a, _, err := fleetGet(c, "GET", "https://"+f.haproxy.addr+"/", nil)
		require.NoError(t, err)
		trail = append(trail, fmt.Sprintf("%s resumed=%t", a.instance, a.resumed))
		if i == 0 {
			assert.False(t, a.resumed, "the first connection resumed")
		}
		if a.resumed {
			resumed++
			if a.instance != prev {
				across++
			}
		}
		prev = a.instance
	}
	t.Logf("%s: session resumption through HAProxy, %d connections in turn: %s; resumed %d, on another instance than the ticket's %d",
		f.kind.name, conns, strings.Join(trail, ", "), resumed, across)
	if shared {
		assert.Equal(t, conns-1, resumed, "with shared ticket keys, every connection after the first resumes")
		assert.Positive(t, across, "no session resumed on another instance")
	} else {
		assert.Zero(t, across, "a session resumed on another instance without shared keys")
	}
}

// fleetUntrusted checks that an instance trusting only 10.0.0.0/8 refuses
// the connections HAProxy relays to it with a PROXY header from
// 127.0.0.1, and counts them, while a client connecting directly, without
// a header, is served with its own address.
func fleetUntrusted(t testing.TB, f *fleet, in *fleetInstance) {
	t.Helper()
	c := newClient(t, false)
	c.Transport.(*http.Transport).DisableKeepAlives = true
	const tries = 3
	for i := range tries {
		_, _, err := fleetGet(c, "GET", "https://"+f.haproxy.untrustedAddr+"/", nil)
		assert.Error(t, err, "request %d through HAProxy to an instance that does not trust it", i)
	}
	a, local, err := fleetGet(c, "GET", "https://"+in.addr+"/", nil)
	require.NoError(t, err, "a direct request, without a PROXY header")
	assert.Equal(t, local, a.remote)

	line := in.stop(t)
	m := regexp.MustCompile(`untrusted=(\d+) `).FindStringSubmatch(line)
	require.NotNil(t, m, "stopped line %q; output:\n%s", line, in.out)
	n, _ := strconv.Atoi(m[1])
	t.Logf("untrusted balancer: %d of %d requests refused as untrusted by the instance; its %s", n, tries, line)
	assert.Equal(t, tries, n, "PROXY headers refused as untrusted")
}

// fleetCount is the fate of Go's client's requests of one protocol and
// method.
type fleetCount struct{ success, failed int }

// fleetLoad is Go's client over HTTP/1.1 and HTTP/2, fleetGoWorkers
// goroutines each, GETs and POSTs in turn, through HAProxy.
type fleetLoad struct {
	stop atomic.Bool
	wg   sync.WaitGroup

	mu     sync.Mutex       // guards the fields below
	counts [2][2]fleetCount // by protocol (HTTP/1.1, HTTP/2) and method (GET, POST)
	served map[string]int   // successes by instance
	errs   []string         // the first errors
	total  int              // successes, all kinds
}

func startFleetLoad(t testing.TB, url string) *fleetLoad {
	t.Helper()
	l := &fleetLoad{served: map[string]int{}}
	body := strings.Repeat(fleetBody, 10)
	for _, h2 := range []bool{false, true} {
		c := newClient(t, h2)
		c.Transport.(*http.Transport).MaxIdleConnsPerHost = fleetGoWorkers
		for range fleetGoWorkers {
			l.wg.Go(func() {
				for i := 0; !l.stop.Load(); i++ {
					method, m := "GET", 0
					var rb io.Reader
					if i%2 == 1 {
						method, m, rb = "POST", 1, strings.NewReader(body)
					}
					a, _, err := fleetGet(c, method, url, rb)
					p := 0
					if h2 {
						p = 1
					}
					l.mu.Lock()
					if err == nil {
						l.counts[p][m].success++
						l.served[a.instance]++
						l.total++
					} else {
						l.counts[p][m].failed++
						if len(l.errs) < 10 {
							l.errs = append(l.errs, fmt.Sprintf("%s (h2=%t): %v", method, h2, err))
						}
					}
					l.mu.Unlock()
				}
			})
		}
	}
	t.Cleanup(l.stopAndWait)
	return l
}

// successes returns the number of successes so far.
func (l *fleetLoad) successes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// pace lets the load run for fleetStepTime and fleetStepLoad successes,
// whichever ends later, failing if the successes take longer than the
// test timeout.
func (l *fleetLoad) pace(t testing.TB) {
	t.Helper()
	start, from := time.Now(), l.successes()
	deadline := start.Add(fleetStepTime + testTimeout())
	for time.Since(start) < fleetStepTime || l.successes() < from+fleetStepLoad {
		require.False(t, time.Now().After(deadline), "%d successes within %v, want %d; errors: %q", l.successes()-from, time.Since(start), fleetStepLoad, l.errors())
		time.Sleep(10 * time.Millisecond) // pacing the load, and polling a counter the workers bump
	}
}

func (l *fleetLoad) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs)
}

func (l *fleetLoad) stopAndWait() {
	l.stop.Store(true)
	l.wg.Wait()
}

// fleetH2load runs h2load through HAProxy, POSTing bodyFile, over HTTP/2
// at a bounded rate or over HTTP/1.1 if h1, in runs of fleetH2loadRun
// requests on new connections, one after the other until stop is set, and
// returns the sum of their summaries and the number of runs. h2load does
// not open a connection again once the server has closed one (after a
// GOAWAY, or a close without Connection: close), so a single long run
// would see only the first restart; runs of a few hundred milliseconds
// each cover all of them. It also returns the shortest and the longest
// run's duration.
//
// Over HTTP/1.1, h2load runs without --rps, back to back as
// TestDrainUnderLoad runs it: h2load (1.52, Debian 12's, and its master
// branch as of 2026) reconnects after a response with Connection: close,
// which a draining httpsrv instance sends, but in --rps mode it does not
// give back that request's slot (Client::on_stream_close skips the
// rps_req_inflight decrement for a final response) while its new
// connection takes another; an HTTP/1.1 client has one slot (-d), so
// after its first response on the new connection it never sends again
// and waits until the connection closes (the next restart of that
// instance, or HAProxy's 10 s timeout), then counts the run's remaining
// requests as failed. TestH2loadRPSReconnectStall shows it without HAProxy.
func fleetH2load(ctx context.Context, h2load, url, bodyFile string, h1 bool, stop *atomic.Bool) (h2loadResult, int, [2]time.Duration, error) {
	args := []string{"-c", strconv.Itoa(fleetH2loadConns), "-n", strconv.Itoa(fleetH2loadRun), "-d", bodyFile}
	if h1 {
		args = append(args, "--h1")
	} else {
		args = append(args, "--rps", strconv.Itoa(fleetH2loadRPS), "-m", "4")
	}
	var sum h2loadResult
	runs := 0
	var took [2]time.Duration // the shortest and the longest run
	for !stop.Load() {
		start := time.Now()
		out, err := exec.CommandContext(ctx, h2load, append(args, url)...).CombinedOutput()
		d := time.Since(start)
		if runs == 0 || d < took[0] {
			took[0] = d
		}
		took[1] = max(took[1], d)
		m := h2loadSummary.FindStringSubmatch(string(out))
		if m == nil {
			return sum, runs, took, fmt.Errorf("h2load: %v; no summary in its output:\n%s", err, out)
		}
		n := make([]int, len(m))
		for i := 1; i < len(m); i++ {
			n[i], _ = strconv.Atoi(m[i])
		}
		runs++
		sum.started += n[2]
		sum.done += n[3]
		sum.succeeded += n[4]
		sum.failed += n[5]
		sum.errored += n[6]
		if n[2] != n[4] && sum.out == "" {
			sum.out = string(out) // the first run that lost a request
		}
	}
	return sum, runs, took, nil
}

// rollingRestart restarts each instance in turn under load and returns
// the counts. A step: disable the server on HAProxy's admin socket (no new
// connections reach it; those open stay), start its replacement on the
// same port first if the kind can share the port, send SIGTERM (the
// instance drains with Shutdown and exits), start the replacement now
// otherwise, enable the server and wait for its health check to pass,
// then for fleetStepLoad more successes.
func (f *fleet) rollingRestart(t testing.TB, h2load, bodyFile string) []fleetRow {
	t.Helper()
	url := "https://" + f.haproxy.addr + "/"
	load := startFleetLoad(t, url)
	type h2loadRun struct {
		res  h2loadResult
		runs int
		took [2]time.Duration // the shortest and the longest run
		err  error
	}
	h2loadOut := map[bool]chan h2loadRun{}
	var h2loadStop atomic.Bool
	if h2load != "" {
		ctx, cancel := context.WithTimeout(context.Background(), fleetLoadLimit)
		defer cancel()
		for _, h1 := range []bool{false, true} {
			ch := make(chan h2loadRun, 1)
			h2loadOut[h1] = ch
			go func() {
				res, runs, took, err := fleetH2load(ctx, h2load, url, bodyFile, h1, &h2loadStop)
				ch <- h2loadRun{res, runs, took, err}
			}()
		}
	}
	defer h2loadStop.Store(true) // if the test fails first
	load.pace(t)

	var notes []string
	for i, old := range f.instances {
		stepStart := time.Now()
		f.haproxy.mustCommand(t, "disable server fleet/"+old.name)
		f.haproxy.waitStatus(t, "fleet", old.name, "MAINT")
		var nu *fleetInstance
		if f.kind.reusePort {
			nu = f.kind.start(t, old.addr, old.name)
		}
		stopped := old.stop(t)
		if nu == nil {
			nu = f.kind.start(t, old.addr, old.name)
		}
		f.instances[i] = nu
		f.haproxy.mustCommand(t, "enable server fleet/"+old.name)
		f.haproxy.waitStatus(t, "fleet", old.name, "UP")
		notes = append(notes, fmt.Sprintf("%s replaced in %v (%s)", old.name, time.Since(stepStart).Round(time.Millisecond), stopped))
		load.pace(t)
	}
	h2loadStop.Store(true)
	load.stopAndWait()
	for _, n := range notes {
		t.Logf("%s: %s", f.kind.name, n)
	}

	var rows []fleetRow
	for _, h1 := range []bool{false, true} {
		ch, ok := h2loadOut[h1]
		if !ok {
			continue
		}
		r := <-ch
		require.NoError(t, r.err)
		proto := map[bool]string{false: "HTTP/2", true: "HTTP/1.1"}[h1]
		rows = append(rows, fleetRow{fleet: f.kind.name, client: "h2load " + proto + " POST",
			success: r.res.succeeded, failed: r.res.started - r.res.succeeded,
			note: fmt.Sprintf("%d runs of %d, %v to %v each: %d started, %d done, %d succeeded, %d failed, %d errored",
				r.runs, fleetH2loadRun, r.took[0].Round(time.Millisecond), r.took[1].Round(time.Millisecond), r.res.started, r.res.done, r.res.succeeded, r.res.failed, r.res.errored)})
		if r.took[1] > fleetH2loadStall {
			t.Logf("%s, h2load %s: a run took %v, over %v: a connection waited (HAProxy's timeouts are 10 s)",
				f.kind.name, proto, r.took[1].Round(time.Millisecond), fleetH2loadStall)
		}
		if r.res.out != "" {
			t.Logf("%s, h2load %s: the first run that did not succeed in full:\n%s", f.kind.name, proto, r.res.out)
		}
	}

	load.mu.Lock()
	defer load.mu.Unlock()
	for p, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		for m, method := range []string{"GET", "POST"} {
			c := load.counts[p][m]
			rows = append(rows, fleetRow{fleet: f.kind.name, client: "Go " + proto + " " + method,
				success: c.success, failed: c.failed})
			if f.kind.name == "httpsrv" {
				assert.Zero(t, c.failed, "httpsrv fleet: Go's client, %s %s: failed requests", proto, method)
			}
		}
	}
	t.Logf("%s: Go's client's answers by instance: %v", f.kind.name, load.served)
	if load.errs != nil {
		t.Logf("%s: errors (first %d): %q", f.kind.name, len(load.errs), load.errs)
	}
	return rows
}

// fleetHelperEnv tells TestHelperFleetNetHTTP where to listen and its
// instance name: "<addr> <name>".
const fleetHelperEnv = "HTTPSRV_FLEET_NETHTTP"

// TestHelperFleetNetHTTP is not a test: it is a net/http fleet instance
// of TestHAProxyFleet, run in a child process. It serves examples/fleet's
// answer with http.Server.ServeTLS on go-proxyproto's Listener trusting
// 127.0.0.1, prints "listening on ADDR", and on SIGTERM calls Shutdown,
// prints a "stopped" line and returns.
func TestHelperFleetNetHTTP(t *testing.T) {
	spec := os.Getenv(fleetHelperEnv)
	if spec == "" {
		t.Skipf("runs only as TestHAProxyFleet's child process (%s set)", fleetHelperEnv)
	}
	addr, name, ok := strings.Cut(spec, " ")
	require.True(t, ok, "%s=%q", fleetHelperEnv, spec)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	pl := &proxyproto.Listener{Listener: ln, ConnPolicy: proxyproto.TrustProxyHeaderFrom(net.IPv4(127, 0, 0, 1))}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "remote=%s\nproto=%s\nresumed=%t\ninstance=%s\n", r.RemoteAddr, r.Proto, r.TLS != nil && r.TLS.DidResume, name)
	}), ErrorLog: discardLogger()}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(pl, testCertFile, testKeyFile) }()
	fmt.Printf("listening on %s\n", ln.Addr())

	select {
	case <-sigs:
	case err := <-served:
		t.Fatalf("ServeTLS: %v", err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), drainShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(ctx)
	fmt.Printf("stopped: drained in %v; Shutdown returned %s\n", time.Since(start).Round(time.Millisecond), errString(err))
	require.NoError(t, err)
	require.ErrorIs(t, <-served, http.ErrServerClosed)
}
