// Command load is httpsrv's load-test suite (issue 9, item 1): it measures
// httpsrv against net/http, same handlers, same run, and prints a Markdown
// table of medians and ratios.
//
// Each server runs in a child process of this program ("load server"),
// pinned to one CPU with GOMAXPROCS=1; the load generators (h2load, wrk, and
// the Go clients "load hs", "load idle" and "load latency") run pinned to
// another CPU. Server CPU time is read from /proc/<pid>/stat (utime + stime)
// around each measured run and divided by the requests or connections the
// load generator completed; memory is VmRSS from /proc/<pid>/status. The two
// servers alternate within each round (A B, then B A in the next round), and
// the table gives the median over the rounds.
//
// Usage, from the repository root:
//
//	go run ./bench/load            # full: 5 rounds of 3 s, 2,000 and 5,000 idle connections
//	go run ./bench/load -quick     # smoke: 1 round of 1 s, 200 idle connections
//	go run ./bench/load -only h1-small -profile /tmp/prof
//
// It needs Linux; h2load (Debian nghttp2-client) and wrk are installed with
// apt-get when missing and the program runs as root, and their rows are
// skipped otherwise. Without taskset(1) the processes run unpinned, and the
// report says so. See bench/README.md.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "server":
			serverMain(os.Args[2:])
			return
		case "hs":
			hsMain(os.Args[2:])
			return
		case "idle":
			idleMain(os.Args[2:])
			return
		case "latency":
			latencyMain(os.Args[2:])
			return
		}
	}
	runMain(os.Args[1:])
}

var impls = []string{"httpsrv", "nethttp"}

// suite holds the run's settings and the children's plumbing.
type suite struct {
	self       string
	pinned     bool
	serverCPU  string
	clientCPU  string
	d          time.Duration
	warm       time.Duration
	profileDir string
	tmp        string
	postFile   string
	wrkPost    string
	rate       float64
	conns      []int
	seq        int
}

// command returns a command for a child pinned to cpus, when pinning works.
func (s *suite) command(cpus, name string, args ...string) *exec.Cmd {
	if s.pinned {
		return exec.Command("taskset", append([]string{"-c", cpus, name}, args...)...)
	}
	return exec.Command(name, args...)
}

// server is a server child.
type server struct {
	impl, cert string
	cmd        *exec.Cmd
	pid        int
	addr       string
	out        *bufio.Reader
}

func (s *suite) startServer(impl, cert string) *server {
	args := []string{"server", "-impl", impl, "-cert", cert}
	if s.profileDir != "" {
		s.seq++
		base := filepath.Join(s.profileDir, fmt.Sprintf("%s-%s-%d", impl, cert, s.seq))
		args = append(args, "-cpuprofile", base+".cpu.pprof", "-memprofile", base+".heap.pprof")
	}
	cmd := s.command(s.serverCPU, s.self, args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	srv := &server{impl: impl, cert: cert, cmd: cmd, pid: cmd.Process.Pid, out: bufio.NewReader(out)}
	addr, err := srv.out.ReadString('\n')
	if err != nil {
		log.Fatalf("server %s: %v", impl, err)
	}
	srv.addr = strings.TrimSpace(addr)
	return srv
}

func (srv *server) cpu() time.Duration {
	d, err := procCPU(srv.pid)
	if err != nil {
		log.Fatalf("server %s: %v", srv.impl, err)
	}
	return d
}

func (srv *server) rss() int64 {
	n, err := procRSS(srv.pid)
	if err != nil {
		log.Fatalf("server %s: %v", srv.impl, err)
	}
	return n
}

// gc makes the server collect its garbage and return the freed memory to the
// operating system, and waits until it has.
func (srv *server) gc() {
	srv.cmd.Process.Signal(syscall.SIGUSR1)
	if l, err := srv.out.ReadString('\n'); err != nil || strings.TrimSpace(l) != "gc" {
		log.Fatalf("server %s: gc: %q %v", srv.impl, l, err)
	}
}

// stop ends the server with SIGTERM, which lets it write its profiles.
func (srv *server) stop() {
	srv.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { srv.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		srv.cmd.Process.Kill()
		<-done
	}
}

// metric is one row of the table.
type metric struct {
	key    string
	label  string
	unit   string
	target float64 // the ratio httpsrv/net/http must not exceed; 0: none
	higher bool    // higher is better (rates)
}

// cell is one measurement: run is called once per server per round and
// returns a value for each of the cell's metrics, by key.
type cell struct {
	name    string
	tool    string // "h2load", "wrk" or "" (the suite's own clients)
	cert    string // "ecdsa", "rsa"; the cell's two servers live through its rounds
	fresh   bool   // a new server for each run instead
	metrics []metric
	run     func(s *suite, srv *server, warm bool) (map[string]float64, error)
}

func cpuMetric(label string, target float64) metric {
	return metric{key: "cpu", label: label + ": server CPU per request", unit: "µs", target: target}
}

func rpsMetric(label string) metric {
	return metric{key: "rps", label: label + ": requests/s", unit: "/s", higher: true}
}

func (s *suite) cells() []cell {
	var cs []cell
	h1 := func(name, label, path string, post bool, target float64) {
		cs = append(cs, cell{name: name, tool: "h2load", cert: "ecdsa",
			metrics: []metric{cpuMetric(label, target), rpsMetric(label)},
			run: func(s *suite, srv *server, warm bool) (map[string]float64, error) {
				args := []string{"--h1", "-c16", "-t1"}
				if post {
					args = append(args, "-d", s.postFile)
				}
				return s.tool(srv, warm, "h2load", parseH2load, args, path)
			}})
	}
	h1("h1-small", "HTTP/1.1 small GET (h2load --h1, 16 conns)", "/small", false, 0.75)
	h1("h1-1k", "HTTP/1.1 1 KiB GET (h2load --h1)", "/1k", false, 0)
	h1("h1-64k", "HTTP/1.1 64 KiB GET (h2load --h1)", "/64k", false, 0)
	h1("h1-post", "HTTP/1.1 1 KiB POST echo (h2load --h1)", "/echo", true, 0)
	wrk := func(name, label, path string, post bool, target float64) {
		cs = append(cs, cell{name: name, tool: "wrk", cert: "ecdsa",
			metrics: []metric{cpuMetric(label, target), rpsMetric(label)},
			run: func(s *suite, srv *server, warm bool) (map[string]float64, error) {
				args := []string{"-t1", "-c16"}
				if post {
					args = append(args, "-s", s.wrkPost)
				}
				return s.tool(srv, warm, "wrk", parseWrk, args, path)
			}})
	}
	wrk("wrk-small", "HTTP/1.1 small GET (wrk, 16 conns)", "/small", false, 0.75)
	wrk("wrk-1k", "HTTP/1.1 1 KiB GET (wrk)", "/1k", false, 0)
	wrk("wrk-64k", "HTTP/1.1 64 KiB GET (wrk)", "/64k", false, 0)
	wrk("wrk-post", "HTTP/1.1 1 KiB POST echo (wrk)", "/echo", true, 0)
	h2 := func(name, label, path string, target float64) {
		cs = append(cs, cell{name: name, tool: "h2load", cert: "ecdsa",
			metrics: []metric{cpuMetric(label, target), rpsMetric(label)},
			run: func(s *suite, srv *server, warm bool) (map[string]float64, error) {
				return s.tool(srv, warm, "h2load", parseH2load, []string{"-c4", "-m32", "-t1"}, path)
			}})
	}
	h2("h2-small", "HTTP/2 small GET (h2load, 4 conns x 32 streams)", "/small", 1.00)
	h2("h2-1k", "HTTP/2 1 KiB GET (h2load, 4 conns x 32 streams)", "/1k", 0)

	latLabel := fmt.Sprintf("HTTP/1.1 small GET at %.0f/s (8 conns)", s.rate)
	cs = append(cs, cell{name: "latency", cert: "ecdsa",
		metrics: []metric{
			{key: "p50", label: latLabel + ": p50 latency", unit: "µs"},
			{key: "p99", label: latLabel + ": p99 latency", unit: "µs"},
			cpuMetric(latLabel, 0),
		},
		run: (*suite).latency})

	hs := func(name, cert, label string, resume bool) {
		cs = append(cs, cell{name: name, cert: cert,
			metrics: []metric{
				{key: "cpu", label: label + ": server CPU per connection", unit: "µs", target: 1.00},
				{key: "rate", label: label + ": connections/s", unit: "/s", higher: true},
			},
			run: func(s *suite, srv *server, warm bool) (map[string]float64, error) {
				return s.handshakes(srv, warm, resume)
			}})
	}
	hs("hs-ecdsa", "ecdsa", "Full handshake, ECDSA P-256", false)
	hs("hs-rsa", "rsa", "Full handshake, RSA-2048", false)
	hs("hs-resumed", "ecdsa", "Resumed handshake (TLS 1.3 ticket), ECDSA", true)

	for _, proto := range []string{"h1", "h2"} {
		name := map[string]string{"h1": "HTTP/1.1", "h2": "HTTP/2"}[proto]
		var ms []metric
		for _, n := range s.conns {
			target := 0.0
			if n == 5000 {
				target = 0.75
			}
			ms = append(ms,
				metric{key: fmt.Sprintf("gc%d", n), label: fmt.Sprintf("RSS per idle %s connection, %d conns, after GC", name, n), unit: "KiB", target: target},
				metric{key: fmt.Sprintf("raw%d", n), label: fmt.Sprintf("RSS per idle %s connection, %d conns, settled 1 s", name, n), unit: "KiB"})
		}
		cs = append(cs, cell{name: "rss-" + proto, cert: "ecdsa", fresh: true, metrics: ms,
			run: func(s *suite, srv *server, warm bool) (map[string]float64, error) {
				return s.idle(srv, proto)
			}})
	}
	return cs
}

// tool runs h2load or wrk against srv for the suite's duration (or the
// warm-up's) and returns the server's CPU per request and the tool's rate.
func (s *suite) tool(srv *server, warm bool, name string, parse func(string) (toolResult, error), args []string, path string) (map[string]float64, error) {
	d := s.d
	if warm {
		d = s.warm
	}
	switch name {
	case "h2load":
		args = append(args, "-D", fmt.Sprintf("%dms", d.Milliseconds()))
	case "wrk":
		args = append(args, "-d", fmt.Sprintf("%ds", max(1, int(d.Round(time.Second).Seconds()))))
	}
	args = append(args, "https://"+srv.addr+path)
	cmd := s.command(s.clientCPU, name, args...)
	c0 := srv.cpu()
	out, err := cmd.CombinedOutput()
	c1 := srv.cpu()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	r, err := parse(string(out))
	if err != nil {
		return nil, err
	}
	if r.Requests == 0 {
		return nil, fmt.Errorf("%s %s: no request succeeded\n%s", name, strings.Join(args, " "), out)
	}
	if r.Failed > 0 && !warm {
		log.Printf("  warning: %s reported %d failed requests", name, r.Failed)
	}
	return map[string]float64{
		"cpu": float64(c1-c0) / float64(time.Microsecond) / float64(r.Requests),
		"rps": r.RPS,
	}, nil
}

// child runs one of this program's client modes pinned to the client CPU and
// decodes its JSON report into v.
func (s *suite) child(v any, args ...string) error {
	cmd := s.command(s.clientCPU, s.self, args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("load %s: %v", strings.Join(args, " "), err)
	}
	return json.Unmarshal(out, v)
}

func (s *suite) handshakes(srv *server, warm, resume bool) (map[string]float64, error) {
	d := s.d
	if warm {
		d = s.warm
	}
	args := []string{"hs", "-addr", srv.addr, "-d", d.String(), "-workers", "8"}
	if resume {
		args = append(args, "-resume")
	}
	var r hsResult
	c0 := srv.cpu()
	err := s.child(&r, args...)
	c1 := srv.cpu()
	if err != nil {
		return nil, err
	}
	if r.Conns == 0 {
		return nil, fmt.Errorf("no connection completed (%d errors)", r.Errors)
	}
	if !warm {
		if r.Errors > 0 {
			log.Printf("  warning: %d connections failed", r.Errors)
		}
		if resume && r.Resumed < r.Conns {
			log.Printf("  warning: %d of %d handshakes were not resumed", r.Conns-r.Resumed, r.Conns)
		}
		if !resume && r.Resumed > 0 {
			log.Printf("  warning: %d handshakes resumed", r.Resumed)
		}
	}
	return map[string]float64{
		"cpu":  float64(c1-c0) / float64(time.Microsecond) / float64(r.Conns),
		"rate": float64(r.Conns) / r.Seconds,
	}, nil
}

func (s *suite) latency(srv *server, warm bool) (map[string]float64, error) {
	d := s.d
	if warm {
		d = s.warm
	}
	var r latResult
	c0 := srv.cpu()
	err := s.child(&r, "latency", "-addr", srv.addr, "-rate", fmt.Sprint(s.rate), "-d", d.String())
	c1 := srv.cpu()
	if err != nil {
		return nil, err
	}
	if r.Measured == 0 {
		return nil, fmt.Errorf("no request answered (%d errors)", r.Errors)
	}
	if r.Errors > 0 && !warm {
		log.Printf("  warning: %d connections failed", r.Errors)
	}
	return map[string]float64{
		"p50": r.P50,
		"p99": r.P99,
		"cpu": float64(c1-c0) / float64(time.Microsecond) / float64(r.Requests),
	}, nil
}

// idleWarm is how many connections the idle client opens before the
// baseline RSS is read, so that every code path the connections take has run.
const idleWarm = 16

// idle opens the suite's connection counts of idle connections to a fresh
// server and returns the RSS they add, per connection, in KiB.
func (s *suite) idle(srv *server, proto string) (map[string]float64, error) {
	steps := []string{strconv.Itoa(idleWarm)}
	for _, n := range s.conns {
		steps = append(steps, strconv.Itoa(idleWarm+n))
	}
	cmd := s.command(s.clientCPU, s.self, "idle", "-addr", srv.addr, "-proto", proto, "-steps", strings.Join(steps, ","))
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	outp, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		in.Close()
		cmd.Wait()
	}()
	out := bufio.NewReader(outp)
	ready := func(want int) error {
		l, err := out.ReadString('\n')
		if err != nil {
			return fmt.Errorf("idle client: %v", err)
		}
		var have, failed int
		fmt.Sscanf(l, "ready %d %d", &have, &failed)
		if have != want {
			return fmt.Errorf("idle client: %d connections open of %d (%d failed)", have, want, failed)
		}
		return nil
	}
	settle := func() { time.Sleep(time.Second) }
	if err := ready(idleWarm); err != nil {
		return nil, err
	}
	settle()
	srv.gc()
	base := srv.rss()
	res := map[string]float64{}
	for _, n := range s.conns {
		fmt.Fprintln(in, "next")
		if err := ready(idleWarm + n); err != nil {
			return nil, err
		}
		settle()
		raw := srv.rss()
		srv.gc()
		gc := srv.rss()
		res[fmt.Sprintf("raw%d", n)] = float64(raw-base) / 1024 / float64(n)
		res[fmt.Sprintf("gc%d", n)] = float64(gc-base) / 1024 / float64(n)
	}
	return res, nil
}

func runMain(args []string) {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	quick := fs.Bool("quick", false, "smoke mode: 1 round of 1 s, 200 idle connections")
	rounds := fs.Int("rounds", 5, "rounds (runs of each server per cell)")
	d := fs.Duration("d", 3*time.Second, "measured duration of each run")
	conns := fs.String("conns", "2000,5000", "idle connection counts for the RSS cells")
	rate := fs.Float64("rate", 2000, "request rate of the latency cell, requests/s")
	only := fs.String("only", "", "comma-separated cell names or prefixes to run (default all): h1-, wrk-, h2-, latency, hs-, rss-")
	serverCPU := fs.String("server-cpu", "0", "CPU list for the servers (taskset -c)")
	clientCPU := fs.String("client-cpu", "1", "CPU list for the load generators (taskset -c)")
	profile := fs.String("profile", "", "directory for the servers' CPU and heap profiles (one pair per server process)")
	install := fs.Bool("install", true, "install missing tools with apt-get (as root)")
	fs.Parse(args)
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		if !set["rounds"] {
			*rounds = 1
		}
		if !set["d"] {
			*d = time.Second
		}
		if !set["conns"] {
			*conns = "200"
		}
	}

	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	s := &suite{self: self, serverCPU: *serverCPU, clientCPU: *clientCPU, d: *d, rate: *rate, profileDir: *profile}
	s.warm = min(*d/2, time.Second)
	for _, c := range strings.Split(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n <= 0 {
			log.Fatalf("bad -conns %q", *conns)
		}
		s.conns = append(s.conns, n)
	}
	if *profile != "" {
		if err := os.MkdirAll(*profile, 0o755); err != nil {
			log.Fatal(err)
		}
	}
	_, tsErr := exec.LookPath("taskset")
	s.pinned = tsErr == nil && runtime.NumCPU() >= 2
	raiseNoFile(uint64(2*(slices.Max(s.conns)+idleWarm) + 256))

	s.tmp, err = os.MkdirTemp("", "httpsrv-load")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(s.tmp)
	s.postFile = filepath.Join(s.tmp, "post.bin")
	os.WriteFile(s.postFile, fill(1<<10), 0o644)
	s.wrkPost = filepath.Join(s.tmp, "post.lua")
	os.WriteFile(s.wrkPost, []byte("wrk.method = \"POST\"\nwrk.body = string.rep(\"x\", 1024)\nwrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n"), 0o644)

	haveH2load, haveWrk := ensureTools(*install)

	var cells []cell
	for _, c := range s.cells() {
		if *only != "" && !slices.ContainsFunc(strings.Split(*only, ","), func(p string) bool { return p != "" && strings.HasPrefix(c.name, p) }) {
			continue
		}
		if (c.tool == "h2load" && !haveH2load) || (c.tool == "wrk" && !haveWrk) {
			log.Printf("warning: %s not installed: skipping %s", c.tool, c.name)
			continue
		}
		cells = append(cells, c)
	}

	command := "go run ./bench/load"
	if len(args) > 0 {
		command += " " + strings.Join(args, " ")
	}
	var header []string
	header = append(header, machine()...)
	if s.pinned {
		header = append(header, fmt.Sprintf("servers pinned to CPU %s with GOMAXPROCS=1, load generators pinned to CPU %s (taskset)", s.serverCPU, s.clientCPU))
	} else {
		header = append(header, "NOT pinned (taskset missing or a single CPU): servers and load generators share the CPUs; servers GOMAXPROCS=1")
	}
	header = append(header, fmt.Sprintf("%d rounds per cell, %v per run (after a %v warm-up run per server), idle connections %s; load average before %s",
		*rounds, s.d, s.warm, *conns, loadAvg()))
	for _, l := range header {
		log.Print(l)
	}

	start := time.Now()
	// results[cell][metric][impl] holds one value per round.
	results := map[string]map[string]map[string][]float64{}
	for _, c := range cells {
		res := map[string]map[string][]float64{}
		results[c.name] = res
		servers := map[string]*server{}
		if !c.fresh {
			for _, impl := range impls {
				servers[impl] = s.startServer(impl, c.cert)
				if _, err := c.run(s, servers[impl], true); err != nil {
					log.Fatalf("%s %s warm-up: %v", c.name, impl, err)
				}
			}
		}
		for r := range *rounds {
			order := slices.Clone(impls)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, impl := range order {
				srv := servers[impl]
				if c.fresh {
					srv = s.startServer(impl, c.cert)
				}
				vals, err := c.run(s, srv, false)
				if c.fresh {
					srv.stop()
				}
				if err != nil {
					log.Fatalf("%s %s round %d: %v", c.name, impl, r+1, err)
				}
				var parts []string
				for _, m := range c.metrics {
					if res[m.key] == nil {
						res[m.key] = map[string][]float64{}
					}
					res[m.key][impl] = append(res[m.key][impl], vals[m.key])
					parts = append(parts, fmt.Sprintf("%s %s", m.key, num(vals[m.key])))
				}
				log.Printf("%-10s round %d %-8s %s", c.name, r+1, impl, strings.Join(parts, ", "))
			}
		}
		for _, srv := range servers {
			srv.stop()
		}
	}
	elapsed := time.Since(start)

	fmt.Println()
	fmt.Printf("Command: `%s` (%v)\n\n", command, elapsed.Round(time.Second))
	for _, l := range header {
		fmt.Printf("- %s\n", l)
	}
	fmt.Printf("- load average after %s\n\n", loadAvg())
	fmt.Println("| Metric | httpsrv | net/http | ratio httpsrv/net/http | per-round ratios | target |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, c := range cells {
		for _, m := range c.metrics {
			a, b := results[c.name][m.key]["httpsrv"], results[c.name][m.key]["nethttp"]
			if len(a) == 0 || len(b) == 0 {
				continue
			}
			ra, rb := median(a), median(b)
			ratio := ra / rb
			var rr []float64
			for i := range min(len(a), len(b)) {
				rr = append(rr, a[i]/b[i])
			}
			spread := fmt.Sprintf("%.2f", rr[0])
			if len(rr) > 1 {
				spread = fmt.Sprintf("%.2f–%.2f", slices.Min(rr), slices.Max(rr))
			}
			target := ""
			if m.target > 0 {
				verdict := "met"
				if ratio > m.target {
					verdict = "**not met**"
				}
				target = fmt.Sprintf("≤ %.2f: %s", m.target, verdict)
			}
			fmt.Printf("| %s | %s %s | %s %s | %.2f | %s | %s |\n", m.label, num(ra), m.unit, num(rb), m.unit, ratio, spread, target)
		}
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// num formats a value with three significant digits or more, and thousands
// separators.
func num(v float64) string {
	var s string
	switch {
	case v >= 100:
		s = strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		s = strconv.FormatFloat(v, 'f', 1, 64)
	default:
		s = strconv.FormatFloat(v, 'f', 2, 64)
	}
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(intPart, "-")
	for i := len(intPart) - 3; i > 0; i -= 3 {
		intPart = intPart[:i] + "," + intPart[i:]
	}
	if neg {
		intPart = "-" + intPart
	}
	if frac != "" {
		return intPart + "." + frac
	}
	return intPart
}
