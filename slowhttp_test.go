package httpsrv

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// slowAttack is one slowhttptest mode.
type slowAttack struct {
	name string
	args []string
}

// slowAttacks are the three slow-client attacks, as slowhttptest runs them:
// a header line of up to 24 bytes every 10 s, a body of up to 24 bytes every
// 10 s, and a client that advertises a tiny TCP window and reads 32 bytes
// every 5 s of a response it asked for three times.
var slowAttacks = []slowAttack{
	{"slow headers", []string{"-H", "-i", "10", "-x", "24"}},
	{"slow body", []string{"-B", "-i", "10", "-x", "24", "-s", "8192"}},
	{"slow read", []string{"-X", "-k", "3", "-n", "5", "-w", "512", "-y", "1024", "-z", "32"}},
}

// slowResult is what one slowhttptest run saw.
type slowResult struct {
	connected, closed int // slowhttptest's view: connections made, and closed by the end
	opened, shut      int // the server's view (ConnState), probes excluded
	probes, failed    int // normal requests made during the run, and failures
	elapsed           time.Duration
}

// slowHTTPDuration is the length of each slowhttptest run: 60 s unless
// HTTPSRV_SLOWHTTP_SECONDS says otherwise.
func slowHTTPDuration() int {
	if s, err := strconv.Atoi(os.Getenv("HTTPSRV_SLOWHTTP_SECONDS")); err == nil && s > 0 {
		return s
	}
	return 60
}

// slowHandler reads the whole body and answers with 1 MiB, so that a slow
// reader has something to be slow about.
func slowHandler(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	if r.URL.Path == "/probe" {
		io.WriteString(w, "ok")
		return
	}
	w.Write(slowBody)
}

var slowBody = bytes.Repeat([]byte("0123456789abcdef"), 1<<16)

// TestSlowHTTP runs slowhttptest's slow-headers, slow-body and slow-read
// attacks, 1000 connections each, against a zero-config Server and, side
// by side, against net/http's zero-config server, while a probe client
// makes a normal request every second. Each server runs in a process of
// its own (startServerProcess); the probe runs in the test process and
// uses a second listener of the same server, so that the server's
// ConnState counts leave the probe out. The Server must answer every probe
// and must have closed at least 90% of the slow connections by the end.
func TestSlowHTTP(t *testing.T) {
	requireInterop(t)
	bin := lookTool(t, "slowhttptest")
	seconds := slowHTTPDuration()
	for _, attack := range slowAttacks {
		t.Run(attack.name, func(t *testing.T) {
			ours := startServerProcess(t, "httpsrv", "slow")
			theirs := startServerProcess(t, "net/http", "slow")
			var wg sync.WaitGroup
			var oursRes, theirsRes slowResult
			var oursErr, theirsErr error
			wg.Go(func() { oursRes, oursErr = runSlowHTTPTest(t, bin, ours, attack, seconds) })
			wg.Go(func() { theirsRes, theirsErr = runSlowHTTPTest(t, bin, theirs, attack, seconds) })
			wg.Wait()
			require.NoError(t, oursErr)
			require.NoError(t, theirsErr)
			for _, r := range []struct {
				name string
				res  slowResult
			}{{"httpsrv", oursRes}, {"net/http", theirsRes}} {
				t.Logf("%s, %d s, %s: server closed %d of %d slow connections within %v (slowhttptest saw %d of %d closed); %d/%d probes failed",
					attack.name, seconds, r.name, r.res.shut, r.res.opened, r.res.elapsed.Round(time.Second),
					r.res.closed, r.res.connected, r.res.failed, r.res.probes)
			}
			assert.Zero(t, oursRes.failed, "probes failed against httpsrv")
			assert.NotZero(t, oursRes.probes, "no probe ran")
			assert.GreaterOrEqual(t, oursRes.opened, 900, "the attack did not get its connections in")
			assert.GreaterOrEqual(t, oursRes.shut*10, oursRes.opened*9, "httpsrv closed fewer than 90%% of the slow connections")
		})
	}
}

// runSlowHTTPTest runs one slowhttptest attack with 1000 connections
// against the server process p while probing it every second.
func runSlowHTTPTest(t testing.TB, bin string, p *serverProcess, attack slowAttack, seconds int) (slowResult, error) {
	var res slowResult
	addr := p.addr
	prefix := filepath.Join(t.TempDir(), "slow")
	args := append([]string{"-c", "1000", "-r", "200", "-l", strconv.Itoa(seconds), "-p", "5",
		"-u", "https://" + addr + "/", "-g", "-o", prefix}, attack.args...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+60)*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out

	probeCtx, stopProbes := context.WithCancel(ctx)
	probes := make(chan [2]int, 1)
	go func() { probes <- probeEverySecond(probeCtx, t, p.probeAddr) }()

	// The server's view is sampled until a second before slowhttptest's
	// time limit: when it exits, its connections close by themselves. If
	// it ends earlier (the server closed every connection), the last
	// sample is taken then.
	start := time.Now()
	cutoff := start.Add(time.Duration(seconds-1) * time.Second)
	var sampleErr error
	sample := func() {
		if now := time.Now(); now.Before(cutoff) && sampleErr == nil {
			opened, shut, err := p.counts()
			if err != nil {
				sampleErr = err
				return
			}
			res.elapsed = now.Sub(start)
			res.opened, res.shut = opened, shut
		}
	}
	if err := cmd.Start(); err != nil {
		stopProbes()
		<-probes
		return res, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(250 * time.Millisecond)
	var err error
wait:
	for {
		select {
		case err = <-exited:
			sample()
			break wait
		case <-tick.C:
			sample()
		}
	}
	tick.Stop()
	stopProbes()
	pr := <-probes
	res.probes, res.failed = pr[0], pr[1]
	if err != nil {
		return res, fmt.Errorf("slowhttptest: %v\n%s", err, out.String())
	}
	if sampleErr != nil {
		return res, sampleErr
	}
	data, err := os.ReadFile(prefix + ".csv")
	if err != nil {
		return res, err
	}
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil || len(rows) < 2 {
		return res, fmt.Errorf("slowhttptest CSV: %v: %q", err, data)
	}
	// Columns: Seconds, Closed, Pending, Connected, Service Available.
	for _, row := range rows[1:] {
		closed, _ := strconv.Atoi(row[1])
		connected, _ := strconv.Atoi(row[3])
		res.closed = closed
		res.connected = max(res.connected, connected+closed)
	}
	return res, nil
}

// probeEverySecond makes a normal request on a new connection to addr
// every second until ctx ends, and returns the count of requests and of
// failures.
func probeEverySecond(ctx context.Context, t testing.TB, addr string) [2]int {
	c := newClient(t, false)
	c.Transport.(*http.Transport).DisableKeepAlives = true
	c.Timeout = 5 * time.Second
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var n, failed int
	for {
		select {
		case <-ctx.Done():
			return [2]int{n, failed}
		case <-tick.C:
		}
		n++
		resp, err := c.Get("https://" + addr + "/probe")
		if err != nil {
			if ctx.Err() == nil {
				failed++
				t.Logf("probe of %s failed: %v", addr, err)
			}
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || string(b) != "ok" {
			failed++
			t.Logf("probe of %s: status %d, body %q, err %v", addr, resp.StatusCode, b, err)
		}
	}
}
