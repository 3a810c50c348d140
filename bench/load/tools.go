package main

import (
	"fmt"
	"log"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// ensureTools installs the Debian packages of the load tools that are
// missing (as root, with apt-get) and reports which tools are usable.
func ensureTools(install bool) (h2load, wrk bool) {
	pkgs := map[string]string{"h2load": "nghttp2-client", "wrk": "wrk"}
	var missing []string
	for _, tool := range []string{"h2load", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, pkgs[tool])
		}
	}
	if len(missing) > 0 && install {
		if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
			log.Printf("warning: %s missing and cannot install them (needs root and apt-get)", strings.Join(missing, ", "))
		} else {
			log.Printf("installing %s", strings.Join(missing, " "))
			apt := func(args ...string) error {
				cmd := exec.Command("apt-get", args...)
				cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
				cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
				return cmd.Run()
			}
			install := append([]string{"install", "-y", "--no-install-recommends"}, missing...)
			if apt(install...) != nil {
				apt("update")
				if err := apt(install...); err != nil {
					log.Printf("warning: apt-get install: %v", err)
				}
			}
		}
	}
	_, e1 := exec.LookPath("h2load")
	_, e2 := exec.LookPath("wrk")
	return e1 == nil, e2 == nil
}

// toolResult is what a load tool reports for its run.
type toolResult struct {
	Requests int64   // requests answered with a 2xx
	Failed   int64   // requests that failed or errored, and socket errors
	RPS      float64 // the tool's requests per second
}

var (
	h2loadReqs   = regexp.MustCompile(`requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored`)
	h2loadRate   = regexp.MustCompile(`finished in [^,]+, ([\d.]+) req/s`)
	h2loadStatus = regexp.MustCompile(`status codes: (\d+) 2xx`)
	wrkReqs      = regexp.MustCompile(`(\d+) requests in ([\d.]+)(\w+),`)
	wrkRate      = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkSocket    = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx    = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// parseH2load reads h2load's summary.
func parseH2load(out string) (toolResult, error) {
	var r toolResult
	m := h2loadReqs.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("h2load: no request counts in its output:\n%s", out)
	}
	r.Requests = atoi(m[4])
	r.Failed = atoi(m[5]) + atoi(m[6])
	if s := h2loadStatus.FindStringSubmatch(out); s != nil {
		if ok := atoi(s[1]); ok < r.Requests {
			r.Failed += r.Requests - ok
			r.Requests = ok
		}
	}
	if m := h2loadRate.FindStringSubmatch(out); m != nil {
		r.RPS, _ = strconv.ParseFloat(m[1], 64)
	}
	return r, nil
}

// parseWrk reads wrk's summary.
func parseWrk(out string) (toolResult, error) {
	var r toolResult
	m := wrkReqs.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk: no request count in its output:\n%s", out)
	}
	r.Requests = atoi(m[1])
	if m := wrkRate.FindStringSubmatch(out); m != nil {
		r.RPS, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		r.Failed = atoi(m[1]) + atoi(m[2]) + atoi(m[3]) + atoi(m[4])
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		n := atoi(m[1])
		r.Failed += n
		r.Requests -= n
	}
	return r, nil
}
