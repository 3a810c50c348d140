// Command handshakeflood measures how a flood of new TLS connections delays
// requests on connections that are already established, for httpsrv and
// net/http side by side in the same run (issue 8, item 2).
//
// For each certificate type (RSA-2048, ECDSA P-256) and each server, it
// starts the server in a child process pinned to one CPU with GOMAXPROCS=1,
// opens 8 keep-alive HTTP/1.1 connections that each send a GET every 10 ms,
// and records each request's latency, first without a flood and then while
// a flooder process (pinned to another CPU) opens new connections as fast as
// it can, each with a full handshake (no session resumption) and one GET
// with "Connection: close". The servers alternate within each round, so
// that both see the same machine load.
//
// Latency is measured from the time a request was due, not from when it was
// sent, so that a slow response also counts against the requests it held
// up (no coordinated omission).
//
// Usage, from the repository root:
//
//	go run ./bench/handshakeflood -rounds 3 -duration 10s
//
// It needs Linux and taskset(1) to pin the processes; without taskset it
// runs them unpinned and says so.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/seed80f6b3e8/httpsrv/bench/internal/benchcert"

	"github.com/seed80f6b3e8/httpsrv"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "server":
			serverMain(os.Args[2:])
			return
		case "flood":
			floodMain(os.Args[2:])
			return
		case "probe":
			probeMain(os.Args[2:])
			return
		}
	}
	runMain(os.Args[1:])
}

// ---- orchestrator ----

type cellKey struct {
	cert, impl string
	flood      bool
}

func runMain(args []string) {
	fs := flag.NewFlagSet("handshakeflood", flag.ExitOnError)
	rounds := fs.Int("rounds", 3, "rounds; each measures every server and certificate without and with the flood")
	duration := fs.Duration("duration", 10*time.Second, "measuring time per cell")
	workers := fs.Int("workers", 64, "flooder's concurrent connections")
	conns := fs.Int("conns", 8, "established keep-alive connections")
	interval := fs.Duration("interval", 10*time.Millisecond, "interval between two requests on one established connection")
	serverCPU := fs.String("server-cpu", "0", "CPU list for the server (taskset -c)")
	clientCPU := fs.String("client-cpu", "1", "CPU list for the probe and the flooder (taskset -c)")
	certs := fs.String("certs", "rsa,ecdsa", "certificate types")
	impls := fs.String("impls", "httpsrv,nethttp", "servers")
	probeRT := fs.Bool("probe-rt", true, "run the probe under chrt -f 1 (real-time FIFO), so that the flooder sharing its CPU does not delay it: the latency measured is then the server's")
	fs.Parse(args)

	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	_, tsErr := exec.LookPath("taskset")
	pinned := tsErr == nil && runtime.NumCPU() >= 2
	command := func(cpus string, a ...string) *exec.Cmd {
		if pinned {
			return exec.Command("taskset", append([]string{"-c", cpus, self}, a...)...)
		}
		return exec.Command(self, a...)
	}
	if !pinned {
		log.Printf("warning: not pinned (taskset missing or a single CPU)")
	}
	probeCommand := command
	if *probeRT {
		if _, err := exec.LookPath("chrt"); err == nil && exec.Command("chrt", "-f", "1", "true").Run() == nil {
			probeCommand = func(cpus string, a ...string) *exec.Cmd {
				c := command(cpus, a...)
				c.Args = append([]string{"chrt", "-f", "1"}, c.Args...)
				c.Path, _ = exec.LookPath("chrt")
				return c
			}
		} else {
			log.Printf("warning: chrt -f 1 not permitted; the probe shares its CPU with the flooder at normal priority")
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	log.Printf("go %s, %d CPUs, load average %s", runtime.Version(), runtime.NumCPU(), strings.TrimSpace(string(load)))
	log.Printf("server on CPU %s (GOMAXPROCS=1); probe: %d connections x GET every %v; flooder: %d workers, full handshakes + GET, CPU %s; %v per cell, %d rounds",
		*serverCPU, *conns, *interval, *workers, *clientCPU, *duration, *rounds)

	lat := map[cellKey][]time.Duration{}
	rate := map[cellKey]float64{}
	errs := map[cellKey]int{}
	implList := strings.Split(*impls, ",")
	for r := range *rounds {
		for _, cert := range strings.Split(*certs, ",") {
			order := slices.Clone(implList)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, impl := range order {
				res := measure(command, probeCommand, *serverCPU, *clientCPU, impl, cert, *duration, *workers, *conns, *interval)
				for i, flood := range []bool{false, true} {
					k := cellKey{cert, impl, flood}
					lat[k] = append(lat[k], res[i].Latencies...)
					errs[k] += res[i].Errors
					rate[k] += res[i].FloodRate / float64(*rounds)
					l := res[i].Latencies
					log.Printf("round %d %-6s %-8s flood=%-5v p50 %s p90 %s p99 %s max %s requests %d errors %d handshakes/s %.0f",
						r+1, cert, impl, flood, ms(pct(l, 50)), ms(pct(l, 90)), ms(pct(l, 99)), ms(pct(l, 100)), len(l), res[i].Errors, res[i].FloodRate)
				}
			}
		}
	}
	load, _ = os.ReadFile("/proc/loadavg")
	log.Printf("load average after: %s", strings.TrimSpace(string(load)))
	fmt.Println()
	fmt.Println("| cert | server | p50 no flood | p99 no flood | p50 flood | p99 flood | p99 ratio | flood handshakes/s | probe errors |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, cert := range strings.Split(*certs, ",") {
		for _, impl := range implList {
			q, f := cellKey{cert, impl, false}, cellKey{cert, impl, true}
			ratio := float64(pct(lat[f], 99)) / float64(pct(lat[q], 99))
			fmt.Printf("| %s | %s | %v | %v | %v | %v | %.1fx | %.0f | %d |\n", cert, impl,
				ms(pct(lat[q], 50)), ms(pct(lat[q], 99)), ms(pct(lat[f], 50)), ms(pct(lat[f], 99)), ratio, rate[f], errs[q]+errs[f])
		}
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// probeResult is what a probe child reports.
type probeResult struct {
	Latencies []time.Duration
	Errors    int
	FloodRate float64 // handshakes per second, filled by the orchestrator
}

// measure runs one server, a probe without and then with the flood, and
// returns the two results.
func measure(command, probeCommand func(string, ...string) *exec.Cmd, serverCPU, clientCPU, impl, cert string, d time.Duration, workers, conns int, interval time.Duration) [2]probeResult {
	srv := command(serverCPU, "server", "-impl", impl, "-cert", cert)
	srv.Env = append(os.Environ(), "GOMAXPROCS=1")
	srv.Stderr = os.Stderr
	out, err := srv.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() {
		srv.Process.Kill()
		srv.Wait()
	}()
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		log.Fatalf("server: %v", err)
	}
	addr = strings.TrimSpace(addr)

	// The probe runs as long as both phases; it splits its latencies at
	// the moment the flood starts, which it learns on stdin.
	probe := probeCommand(clientCPU, "probe", "-addr", addr, "-conns", fmt.Sprint(conns), "-interval", interval.String(), "-warmup", "1s")
	probe.Env = append(os.Environ(), "GOMAXPROCS=1")
	probe.Stderr = os.Stderr
	pin, _ := probe.StdinPipe()
	pout, _ := probe.StdoutPipe()
	if err := probe.Start(); err != nil {
		log.Fatal(err)
	}
	br := bufio.NewReader(pout)
	if _, err := br.ReadString('\n'); err != nil { // "ready" after the warm-up
		log.Fatalf("probe: %v", err)
	}
	var res [2]probeResult
	phase := func(i int, d time.Duration) {
		io.WriteString(pin, "start\n")
		time.Sleep(d)
		io.WriteString(pin, "stop\n")
		line, err := br.ReadString('\n')
		if err != nil {
			log.Fatalf("probe: %v", err)
		}
		if err := json.Unmarshal([]byte(line), &res[i]); err != nil {
			log.Fatalf("probe: %v", err)
		}
	}
	phase(0, d)

	flood := command(clientCPU, "flood", "-addr", addr, "-workers", fmt.Sprint(workers))
	flood.Env = append(os.Environ(), "GOMAXPROCS=1")
	flood.Stderr = os.Stderr
	fin, _ := flood.StdinPipe()
	fout, _ := flood.StdoutPipe()
	if err := flood.Start(); err != nil {
		log.Fatal(err)
	}
	time.Sleep(time.Second) // let the flood reach its pace
	phase(1, d)
	fin.Close()
	var fr struct{ Handshakes, Errors int }
	json.NewDecoder(fout).Decode(&fr)
	flood.Wait()
	res[1].FloodRate = float64(fr.Handshakes) / (d + time.Second).Seconds()
	pin.Close()
	probe.Wait()
	return res
}

// ---- server child ----

func serverMain(args []string) {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	impl := fs.String("impl", "httpsrv", "httpsrv or nethttp")
	certType := fs.String("cert", "rsa", "rsa or ecdsa")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the server to this file until SIGTERM")
	fs.Parse(args)
	cert := selfSigned(*certType)
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		go func() {
			<-sig
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(0)
		}()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	fmt.Println(ln.Addr())
	quiet := log.New(io.Discard, "", 0) // handshake errors of the flood
	switch *impl {
	case "httpsrv":
		srv := &httpsrv.Server{Handler: h, TLSConfig: cfg, ErrorLog: quiet}
		err = srv.ServeTLS(ln, "", "")
	case "nethttp":
		srv := &http.Server{Handler: h, TLSConfig: cfg, ErrorLog: quiet}
		err = srv.ServeTLS(ln, "", "")
	default:
		err = fmt.Errorf("unknown server %q", *impl)
	}
	log.Fatal(err)
}

// selfSigned returns a fresh self-signed certificate of the kind given
// (rsa or ecdsa); see benchcert.SelfSigned.
func selfSigned(kind string) tls.Certificate {
	cert, err := benchcert.SelfSigned(kind)
	if err != nil {
		log.Fatal(err)
	}
	return cert
}

// ---- probe child: established connections ----

func probeMain(args []string) {
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	conns := fs.Int("conns", 8, "keep-alive connections")
	interval := fs.Duration("interval", 10*time.Millisecond, "interval between requests on one connection")
	warmup := fs.Duration("warmup", time.Second, "warm-up before measuring")
	fs.Parse(args)

	var (
		mu        sync.Mutex
		recording bool
		lats      []time.Duration
		errs      int
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range *conns {
		wg.Go(func() {
			// Spread the connections over the interval.
			offset := *interval * time.Duration(i) / time.Duration(*conns)
			for ctx.Err() == nil {
				err := probeConn(ctx, *addr, *interval, offset, func(d time.Duration) {
					mu.Lock()
					if recording {
						lats = append(lats, d)
					}
					mu.Unlock()
				})
				if err != nil && ctx.Err() == nil {
					mu.Lock()
					if recording {
						errs++
					}
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(*warmup)
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "start":
			mu.Lock()
			recording, lats, errs = true, nil, 0
			mu.Unlock()
		case "stop":
			mu.Lock()
			recording = false
			b, _ := json.Marshal(probeResult{Latencies: lats, Errors: errs})
			mu.Unlock()
			fmt.Println(string(b))
		}
	}
	cancel()
	wg.Wait()
}

// probeConn opens one connection and sends a GET on it every interval,
// reporting each latency from the time the request was due.
func probeConn(ctx context.Context, addr string, interval, offset time.Duration, report func(time.Duration)) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
		&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	br := bufio.NewReader(c)
	req := []byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
	due := time.Now().Add(offset)
	for {
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(req); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		resp.Body.Close()
		report(time.Since(due))
		if resp.Close {
			return errors.New("server closed the connection")
		}
		due = due.Add(interval)
	}
}

// ---- flood child: new connections with full handshakes ----

func floodMain(args []string) {
	fs := flag.NewFlagSet("flood", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	workers := fs.Int("workers", 64, "concurrent connections")
	fs.Parse(args)
	// No ClientSessionCache: every handshake is a full one.
	cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}
	var ok, bad atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	req := []byte("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
	for range *workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", *addr, cfg)
				if err != nil {
					bad.Add(1)
					continue
				}
				stop := context.AfterFunc(ctx, func() { c.Close() })
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(req); err == nil {
					io.Copy(io.Discard, c)
				}
				stop()
				c.Close()
				ok.Add(1)
			}
		})
	}
	io.Copy(io.Discard, os.Stdin) // until the orchestrator closes stdin
	cancel()
	wg.Wait()
	json.NewEncoder(os.Stdout).Encode(struct{ Handshakes, Errors int64 }{ok.Load(), bad.Load()})
}
