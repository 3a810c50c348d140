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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// The Go clients below run as children of the orchestrator, pinned to the
// load CPU like h2load and wrk, and report one JSON object on stdout.

// ---- handshakes ----

// hsResult is what the handshake client reports.
type hsResult struct {
	Conns   int64   // connections completed: handshake, GET, response read
	Resumed int64   // of those, resumed handshakes
	Errors  int64   // failed connections
	Seconds float64 // measured time
}

// hsMain opens new connections back to back from several workers for a
// duration: each is a TLS handshake, one "GET /small" with "Connection:
// close", and the response read to EOF (which also reads the session
// tickets). Without -resume every handshake is a full one; with it the
// workers share a session cache, so all but the first few resume.
func hsMain(args []string) {
	fs := flag.NewFlagSet("hs", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	workers := fs.Int("workers", 8, "concurrent connections")
	d := fs.Duration("d", 3*time.Second, "duration")
	resume := fs.Bool("resume", false, "resume sessions from a shared session cache")
	fs.Parse(args)

	cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}, ServerName: "localhost"}
	if *resume {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1024)
		// Prime the cache so that the measured connections all resume.
		if _, err := hsConn(*addr, cfg); err != nil {
			log.Fatal(err)
		}
	}
	var res hsResult
	req := []byte("GET /small HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
	start := time.Now()
	deadline := start.Add(*d)
	var wg sync.WaitGroup
	for range *workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				resumed, err := hsConnReq(*addr, cfg, req)
				if err != nil {
					atomic.AddInt64(&res.Errors, 1)
					continue
				}
				atomic.AddInt64(&res.Conns, 1)
				if resumed {
					atomic.AddInt64(&res.Resumed, 1)
				}
			}
		})
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	json.NewEncoder(os.Stdout).Encode(res)
}

func hsConn(addr string, cfg *tls.Config) (bool, error) {
	return hsConnReq(addr, cfg, []byte("GET /small HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
}

func hsConnReq(addr string, cfg *tls.Config, req []byte) (bool, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return false, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return false, err
	}
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		return false, err
	}
	if n == 0 {
		return false, errors.New("empty response")
	}
	return c.ConnectionState().DidResume, nil
}

// ---- idle connections ----

// idleMain opens connections in steps (-steps 2000,5000: 2000, then 3000
// more), each a handshake and one "GET /small" answered, then left idle. After
// each step it prints "ready N" and waits for a line on stdin before the next;
// it exits when stdin closes.
func idleMain(args []string) {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	proto := fs.String("proto", "h1", "h1 or h2")
	steps := fs.String("steps", "2000,5000", "connection counts at which to stop and report")
	par := fs.Int("par", 16, "connections opened at once")
	fs.Parse(args)

	var (
		mu    sync.Mutex
		conns []io.Closer
	)
	open := func() error {
		switch *proto {
		case "h1":
			cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}, ServerName: "localhost"}
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", *addr, cfg)
			if err != nil {
				return err
			}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			io.WriteString(c, "GET /small HTTP/1.1\r\nHost: localhost\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				c.Close()
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			c.SetDeadline(time.Time{})
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		case "h2":
			cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}, ServerName: "localhost"}
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", *addr, cfg)
			if err != nil {
				return err
			}
			if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
				c.Close()
				return fmt.Errorf("negotiated %q, not h2", p)
			}
			cc, err := (&http2.Transport{}).NewClientConn(c)
			if err != nil {
				c.Close()
				return err
			}
			req, _ := http.NewRequest("GET", "https://localhost/small", nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			resp, err := cc.RoundTrip(req.WithContext(ctx))
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			cancel()
			if err != nil {
				cc.Close()
				return err
			}
			mu.Lock()
			conns = append(conns, cc)
			mu.Unlock()
		default:
			return fmt.Errorf("unknown protocol %q", *proto)
		}
		return nil
	}

	in := bufio.NewScanner(os.Stdin)
	have := 0
	for _, s := range strings.Split(*steps, ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			log.Fatal(err)
		}
		var next atomic.Int64
		next.Store(int64(have))
		var failed atomic.Int64
		var wg sync.WaitGroup
		for range *par {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					if err := open(); err != nil {
						if failed.Add(1) == 1 {
							log.Printf("idle: %v", err)
						}
					}
				}
			})
		}
		wg.Wait()
		mu.Lock()
		have = len(conns)
		mu.Unlock()
		fmt.Printf("ready %d %d\n", have, failed.Load())
		if !in.Scan() {
			break
		}
	}
	for in.Scan() {
	}
	for _, c := range conns {
		c.Close()
	}
}

// ---- latency at a fixed rate ----

// latResult is what the latency client reports; latencies in microseconds.
type latResult struct {
	Requests int64 // requests answered, warm-up included
	Measured int
	Errors   int64
	P50, P90 float64
	P99, Max float64
}

// latencyMain sends GET requests on keep-alive HTTP/1.1 connections at a
// fixed total rate (open loop: each connection has a schedule, and each
// request's latency counts from when it was due, so that a slow response also
// counts against the requests it delayed).
func latencyMain(args []string) {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	path := fs.String("path", "/small", "path to GET")
	conns := fs.Int("conns", 8, "keep-alive connections")
	rate := fs.Float64("rate", 2000, "requests per second, all connections together")
	d := fs.Duration("d", 3*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 500*time.Millisecond, "unmeasured warm-up")
	fs.Parse(args)

	interval := time.Duration(float64(*conns) / *rate * float64(time.Second))
	start := time.Now()
	measureFrom := start.Add(*warmup)
	end := measureFrom.Add(*d)
	var (
		mu   sync.Mutex
		lats []time.Duration
		res  latResult
	)
	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: localhost\r\n\r\n")
	cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}, ServerName: "localhost"}
	var wg sync.WaitGroup
	for i := range *conns {
		wg.Go(func() {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", *addr, cfg)
			if err != nil {
				atomic.AddInt64(&res.Errors, 1)
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			due := start.Add(interval * time.Duration(i) / time.Duration(*conns))
			for due.Before(end) {
				if w := time.Until(due); w > 0 {
					time.Sleep(w)
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(req); err != nil {
					atomic.AddInt64(&res.Errors, 1)
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					atomic.AddInt64(&res.Errors, 1)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat := time.Since(due)
				atomic.AddInt64(&res.Requests, 1)
				if !due.Before(measureFrom) {
					mu.Lock()
					lats = append(lats, lat)
					mu.Unlock()
				}
				due = due.Add(interval)
			}
		})
	}
	wg.Wait()
	slices.Sort(lats)
	us := func(p float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		i := int(float64(len(lats))*p/100+0.5) - 1
		return float64(lats[min(max(i, 0), len(lats)-1)]) / float64(time.Microsecond)
	}
	res.Measured = len(lats)
	res.P50, res.P90, res.P99, res.Max = us(50), us(90), us(99), us(100)
	json.NewEncoder(os.Stdout).Encode(res)
}
