package httpsrv

// TestDrainUnderLoad measures graceful shutdown under load (issue 8 item
// 4): requests lost by Shutdown, httpsrv beside net/http in the same run.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// In the child process of TestDrainUnderLoad (TestHelperServerProcess with
// the "drain" handler): the probe listener's address, and the responses the
// handler wrote whole, by listener (0 attack, 1 probe) and protocol (0
// HTTP/1, 1 HTTP/2).
var (
	drainProbeAddr string
	drainServed    [2][2]atomic.Int64
)

// drainLoadHandler reads the request body and answers "ok:" and its
// length, counting the answers in drainServed.
func drainLoadHandler(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	body := "ok:" + strconv.Itoa(len(b))
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if _, err := io.WriteString(w, body); err != nil {
		return
	}
	l, p := 0, 0
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && a.String() == drainProbeAddr {
		l = 1
	}
	if r.ProtoMajor == 2 {
		p = 1
	}
	drainServed[l][p].Add(1)
}

// drainShutdownTimeout is the context the child gives Shutdown on SIGTERM.
const drainShutdownTimeout = 10 * time.Second

// drainShutdown is the child's SIGTERM handling in TestDrainUnderLoad: it
// calls Shutdown, then prints
//
//	httpsrv-helper: drained <ms> <attack h1> <attack h2> <probe h1> <probe h2> <error>
//
// with the time Shutdown took, the answers counted in drainServed and what
// Shutdown returned ("nil" for nil).
func drainShutdown(srv tlsServer) {
	ctx, cancel := context.WithTimeout(context.Background(), drainShutdownTimeout)
	defer cancel()
	start := time.Now()
	err := srv.(interface{ Shutdown(context.Context) error }).Shutdown(ctx)
	es := "nil"
	if err != nil {
		es = err.Error()
	}
	fmt.Printf("%sdrained %d %d %d %d %d %s\n", helperPrefix, time.Since(start).Milliseconds(),
		drainServed[0][0].Load(), drainServed[0][1].Load(), drainServed[1][0].Load(), drainServed[1][1].Load(), es)
}

// drainCount is the fate of a client's requests: answered whole
// (success), never sent because the connection could not be made after
// the listener closed (refused), sent on an open connection and not
// answered (lost).
type drainCount struct {
	success, refused, lost int
	early                  int      // refusals that ended before the server was told to stop
	errs                   []string // the first few errors of lost requests
}

func (d *drainCount) add(o drainCount) {
	d.success += o.success
	d.refused += o.refused
	d.lost += o.lost
	d.early += o.early
	for _, e := range o.errs {
		if len(d.errs) < 5 {
			d.errs = append(d.errs, e)
		}
	}
}

func (d *drainCount) lose(err error) {
	d.lost++
	if len(d.errs) < 5 {
		d.errs = append(d.errs, err.Error())
	}
}

// The load of TestDrainUnderLoad.
const (
	drainRawConns    = 16               // raw HTTP/1.1 keep-alive connections, POSTs back to back
	drainGoWorkers   = 8                // goroutines making requests through Go's HTTP/2 client
	drainH2loadConn  = 4                // h2load clients, per protocol
	drainBeforeStop  = 2 * time.Second  // load before SIGTERM
	drainH2loadAfter = 4 * time.Second  // h2load's run after SIGTERM
	drainLoadLimit   = 30 * time.Second // the whole load, at most
)

// drainBody is the body of every POST.
var drainBody = strings.Repeat("x", 100)

// drainRawH1 sends POSTs back to back on a raw HTTP/1.1 keep-alive
// connection to addr, dialling again after a Connection: close answer or a
// failure, until a dial fails after stopping was set.
func drainRawH1(addr string, pool *x509.CertPool, stopping *atomic.Bool, until time.Time) drainCount {
	var res drainCount
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: testTimeout()},
		Config:    &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}},
	}
	req := fmt.Sprintf("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n%s", len(drainBody), drainBody)
	want := "ok:" + strconv.Itoa(len(drainBody))
	var conn net.Conn
	var br *bufio.Reader
	drop := func() {
		conn.Close()
		conn = nil
	}
	for time.Now().Before(until) {
		if conn == nil {
			c, err := d.Dial("tcp", addr)
			if err != nil {
				res.refused++
				if stopping.Load() {
					return res
				}
				res.early++
				continue
			}
			conn, br = c, bufio.NewReader(c)
		}
		conn.SetDeadline(time.Now().Add(testTimeout()))
		if _, err := io.WriteString(conn, req); err != nil {
			res.lose(err)
			drop()
			continue
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			res.lose(err)
			drop()
			continue
		}
		b, err := io.ReadAll(resp.Body)
		if err == nil && string(b) != want {
			err = fmt.Errorf("status %d, body %q", resp.StatusCode, b)
		}
		if err != nil {
			res.lose(err)
			drop()
			continue
		}
		res.success++
		if resp.Close {
			drop()
		}
	}
	if conn != nil {
		conn.Close()
	}
	return res
}

// drainGoClient makes requests through c, which speaks HTTP/proto, GETs
// and POSTs in turn, until one is refused after stopping was set. A request counts as refused when
// the connection it needed could not be made (Go's client retries the
// requests a GOAWAY says were not processed on a new connection).
func drainGoClient(c *http.Client, proto int, url string, stopping *atomic.Bool, until time.Time) drainCount {
	var res drainCount
	want := map[string]string{"GET": "ok:0", "POST": "ok:" + strconv.Itoa(len(drainBody))}
	for i := 0; time.Now().Before(until); i++ {
		method := "GET"
		var body io.Reader
		if i%2 == 1 {
			method, body = "POST", strings.NewReader(drainBody)
		}
		var dialFailed atomic.Bool
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			ConnectDone: func(_, _ string, err error) {
				if err != nil {
					dialFailed.Store(true)
				}
			},
			TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
				if err != nil {
					dialFailed.Store(true)
				}
			},
		})
		req, err := http.NewRequestWithContext(ctx, method, url, body)
		if err != nil {
			panic(err)
		}
		resp, err := c.Do(req)
		if err == nil {
			var b []byte
			b, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && (resp.ProtoMajor != proto || string(b) != want[method]) {
				err = fmt.Errorf("%s: status %d, body %q", resp.Proto, resp.StatusCode, b)
			}
		}
		var oe *net.OpError
		switch {
		case err == nil:
			res.success++
		case dialFailed.Load() || errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &oe) && oe.Op == "dial"):
			res.refused++
			if stopping.Load() {
				return res
			}
			res.early++
		default:
			res.lose(err)
		}
	}
	return res
}

// h2loadSummary matches h2load's request summary line.
var h2loadSummary = regexp.MustCompile(`requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)

// h2loadResult is h2load's summary.
type h2loadResult struct {
	started, done, succeeded, failed, errored int
	out                                       string
}

// runH2load runs h2load against url for d, over HTTP/1.1 if h1, POSTing
// the file body.
func runH2load(ctx context.Context, path, url, body string, h1 bool, d time.Duration) (h2loadResult, error) {
	args := []string{"-c", strconv.Itoa(drainH2loadConn), "-D", strconv.Itoa(int(d.Seconds())), "-d", body}
	if h1 {
		args = append(args, "--h1")
	} else {
		args = append(args, "-m", "8")
	}
	out, err := exec.CommandContext(ctx, path, append(args, url)...).CombinedOutput()
	res := h2loadResult{out: string(out)}
	m := h2loadSummary.FindStringSubmatch(res.out)
	if m == nil {
		return res, fmt.Errorf("h2load: %v; no summary in its output:\n%s", err, out)
	}
	n := make([]int, len(m))
	for i := 1; i < len(m); i++ {
		n[i], _ = strconv.Atoi(m[i])
	}
	res.started, res.done, res.succeeded, res.failed, res.errored = n[2], n[3], n[4], n[5], n[6]
	return res, nil
}

// drainRow is one line of TestDrainUnderLoad's table.
type drainRow struct {
	server, client string
	drainCount
	note string
}

// TestDrainUnderLoad measures what a graceful shutdown under load loses,
// for httpsrv and net/http in turn, each zero-config in a child process
// (TestHelperServerProcess) that calls Shutdown on SIGTERM. The load:
// drainRawConns raw HTTP/1.1 keep-alive connections sending POSTs back to
// back, and Go's client over HTTP/1.1 and over HTTP/2 (drainGoWorkers
// goroutines each, GETs and POSTs) on one listener; h2load over HTTP/2 and over HTTP/1.1 (POSTs) on the
// other, when it is installed. SIGTERM goes after drainBeforeStop. Each
// request is counted as answered (success), refused (the connection it
// needed could not be made: the listener had closed) or lost (sent on an
// open connection and not answered). For h2load, which does not report
// per request, lost is what the server answered and h2load did not
// receive, plus, over HTTP/1.1 (no GOAWAY), what h2load started and did
// not receive; refused is the rest of what it did not receive. httpsrv must
// lose nothing; net/http's counts are reported beside it.
func TestDrainUnderLoad(t *testing.T) {
	requireInterop(t)
	h2load, err := exec.LookPath("h2load")
	if err != nil {
		if os.Getenv("HTTPSRV_REQUIRE_TOOLS") == "1" {
			t.Fatalf("h2load is required (HTTPSRV_REQUIRE_TOOLS=1): %v", err)
		}
		t.Logf("h2load not found (%v): its rows are skipped; install nghttp2-client, or set HTTPSRV_REQUIRE_TOOLS=1 to fail instead", err)
		h2load = ""
	}
	bodyFile := t.TempDir() + "/body"
	require.NoError(t, os.WriteFile(bodyFile, []byte(drainBody), 0o600))

	var rows []drainRow
	for _, kind := range []string{"httpsrv", "net/http"} {
		rows = append(rows, drainLoadRun(t, kind, h2load, bodyFile)...)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| server | client | success | refused | lost | |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %s |\n", r.server, r.client, r.success, r.refused, r.lost, r.note)
	}
	t.Log(b.String())
	for _, r := range rows {
		if r.errs != nil {
			t.Logf("%s, %s: lost requests' errors (first %d): %q", r.server, r.client, len(r.errs), r.errs)
		}
		assert.Zero(t, r.early, "%s, %s: refused before the server was told to stop", r.server, r.client)
		if r.server == "httpsrv" {
			assert.Zero(t, r.lost, "httpsrv lost requests (%s)", r.client)
		}
	}
}

// drainLoadRun runs the load against a child process serving kind, sends
// it SIGTERM, and returns the counts.
func drainLoadRun(t *testing.T, kind, h2load, bodyFile string) []drainRow {
	p := startServerProcess(t, kind, "drain")
	start := time.Now()
	until := start.Add(drainLoadLimit)
	var stopping atomic.Bool

	var wg sync.WaitGroup
	var mu sync.Mutex
	var raw, goH1, goH2 drainCount
	_, pool := testCertificate(t)
	for range drainRawConns {
		wg.Go(func() {
			r := drainRawH1(p.addr, pool, &stopping, until)
			mu.Lock()
			raw.add(r)
			mu.Unlock()
		})
	}
	for _, h2 := range []bool{false, true} {
		c := newClient(t, h2)
		c.Transport.(*http.Transport).MaxIdleConnsPerHost = drainGoWorkers
		proto, counts := 1, &goH1
		if h2 {
			proto, counts = 2, &goH2
		}
		for range drainGoWorkers {
			wg.Go(func() {
				r := drainGoClient(c, proto, "https://"+p.addr+"/", &stopping, until)
				mu.Lock()
				counts.add(r)
				mu.Unlock()
			})
		}
	}
	type h2loadRun struct {
		res h2loadResult
		err error
	}
	h2loadOut := map[bool]chan h2loadRun{}
	if h2load != "" {
		ctx, cancel := context.WithTimeout(context.Background(), drainLoadLimit)
		defer cancel()
		for _, h1 := range []bool{false, true} {
			ch := make(chan h2loadRun, 1)
			h2loadOut[h1] = ch
			go func() {
				// h2load runs for its whole duration, reconnecting or
				// not; this one ends well after the server has exited,
				// so that no request is cut by h2load's own end.
				res, err := runH2load(ctx, h2load, "https://"+p.probeAddr+"/", bodyFile, h1, drainBeforeStop+drainH2loadAfter)
				ch <- h2loadRun{res, err}
			}()
		}
	}

	time.Sleep(drainBeforeStop) // the load runs: pacing, not a wait for an event
	stopping.Store(true)
	require.NoError(t, p.proc.Signal(syscall.SIGTERM))
	line, err := p.reply("drained", drainShutdownTimeout+testTimeout())
	require.NoError(t, err)
	f := strings.SplitN(line, " ", 6)
	require.Len(t, f, 6, "drained line %q", line)
	n := make([]int, 5)
	for i := range n {
		n[i], err = strconv.Atoi(f[i])
		require.NoError(t, err, "drained line %q", line)
	}
	t.Logf("%s: Shutdown returned %s after %d ms", kind, f[5], n[0])
	assert.Equal(t, "nil", f[5], "%s: Shutdown", kind)
	wg.Wait()

	rows := []drainRow{
		{server: kind, client: "raw HTTP/1.1 POST", drainCount: raw},
		{server: kind, client: "Go HTTP/1.1 GET+POST", drainCount: goH1},
		{server: kind, client: "Go HTTP/2 GET+POST", drainCount: goH2,
			note: fmt.Sprintf("server answered %d", n[2])},
	}
	rows[0].note = fmt.Sprintf("server answered %d HTTP/1.1 requests for both", n[1])
	for _, h1 := range []bool{false, true} {
		ch, ok := h2loadOut[h1]
		if !ok {
			continue
		}
		r := <-ch
		require.NoError(t, r.err)
		served, proto := n[4], "HTTP/2"
		if h1 {
			served, proto = n[3], "HTTP/1.1"
		}
		row := drainRow{server: kind, client: "h2load " + proto + " POST"}
		row.success = r.res.succeeded
		row.lost = served - r.res.succeeded
		if h1 {
			row.lost = max(row.lost, r.res.started-r.res.succeeded)
		}
		row.refused = r.res.started - r.res.succeeded - row.lost
		row.note = fmt.Sprintf("server answered %d; h2load: %d started, %d done, %d failed, %d errored", served, r.res.started, r.res.done, r.res.failed, r.res.errored)
		if row.lost != 0 {
			t.Logf("%s, h2load %s output:\n%s", kind, proto, r.res.out)
		}
		rows = append(rows, row)
	}
	return rows
}
