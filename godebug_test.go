package httpsrv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGODEBUGValue checks that a GODEBUG setting resolves as the runtime
// resolves it: the environment overrides the binary's defaults (go.mod
// godebug lines, //go:debug directives), and the last occurrence wins
// within each. Before, only the environment was read, so
// http2server=0 set in go.mod was ignored.
func TestGODEBUGValue(t *testing.T) {
	tests := []struct {
		name     string
		def, env string
		want     string
	}{
		{name: "unset", want: ""},
		{name: "binary default only", def: "http2server=0", want: "0"},
		{name: "binary default among others", def: "panicnil=1,http2server=0,tls10server=1", want: "0"},
		{name: "environment only", env: "http2server=0", want: "0"},
		{name: "environment overrides default", def: "http2server=0", env: "http2server=1", want: "1"},
		{name: "environment sets another key", def: "http2server=0", env: "http2client=1", want: "0"},
		{name: "last wins in environment", env: "http2server=0,http2server=1", want: "1"},
		{name: "last wins in default", def: "http2server=1,http2server=0", want: "0"},
		{name: "empty value in environment wins", def: "http2server=0", env: "http2server=", want: ""},
		{name: "bisect suffix", env: "http2server=0#+5", want: "0"},
		{name: "name is a prefix", env: "http2serverx=0,xhttp2server=0", want: ""},
		{name: "no equals sign", env: "http2server", want: ""},
		{name: "empty entries", env: ",http2server=0,,", want: "0"},
		{name: "value with equals sign", env: "http2server=0=1", want: "0=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, godebugValue(tt.def, tt.env, "http2server"))
		})
	}
}

// goDebugProgram serves and prints the ALPN protocol a client offering h2
// and http/1.1 gets. directive is replaced by a //go:debug line or nothing.
const goDebugProgram = `directive

package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"

	"github.com/seed80f6b3e8/httpsrv"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &httpsrv.Server{}
	go srv.ServeTLS(ln, os.Args[1], os.Args[2])
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		panic(err)
	}
	fmt.Print(c.ConnectionState().NegotiatedProtocol)
	c.Close()
	srv.Close()
}
`

// TestGODEBUGDirective builds programs that set http2server=0 in the
// binary's default GODEBUG, with a //go:debug directive or a go.mod
// godebug line, and checks that their servers turn HTTP/2 off, as
// net/http's would, with no GODEBUG in the environment (issue 11, item 4).
// Before, only the environment was read.
func TestGODEBUGDirective(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs")
	}
	root, err := os.Getwd()
	require.NoError(t, err)
	tests := []struct {
		name, directive, gomod string
		want                   map[string]string // GODEBUG in the environment → ALPN
	}{{
		name:      "go:debug directive",
		directive: "//go:debug http2server=0",
		want:      map[string]string{"": "http/1.1", "http2server=1": "h2"},
	}, {
		name:  "go.mod godebug line",
		gomod: "godebug http2server=0\n",
		want:  map[string]string{"": "http/1.1", "http2server=1": "h2"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bin := buildTestProgram(t, tt.gomod, strings.Replace(goDebugProgram, "directive", tt.directive, 1))
			for env, want := range tt.want {
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout())
				defer cancel()
				run := exec.CommandContext(ctx, bin, filepath.Join(root, testCertFile), filepath.Join(root, testKeyFile))
				run.Env = append(os.Environ(), "GODEBUG="+env)
				out, err := run.Output()
				require.NoError(t, err, "program: %s", out)
				assert.Equal(t, want, string(out), "ALPN with GODEBUG=%s", env)
			}
		})
	}
}

// buildTestProgram builds the main package src in a module of its own that
// requires this one (replaced by the working tree) and has the extra go.mod
// lines gomod, with the go command's extra flags, and returns the binary.
func buildTestProgram(t *testing.T, gomod, src string, flags ...string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	root, err := os.Getwd()
	require.NoError(t, err)
	dir := t.TempDir()
	mod := "module testprog\n\ngo 1.25\n\n" + gomod +
		"require github.com/seed80f6b3e8/httpsrv v0.0.0\n\nreplace github.com/seed80f6b3e8/httpsrv => " + root + "\n"
	writeTestFile(t, dir, "go.mod", []byte(mod))
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	require.NoError(t, err)
	writeTestFile(t, dir, "go.sum", sum)
	writeTestFile(t, dir, "main.go", []byte(src))

	ctx, cancel := context.WithTimeout(context.Background(), 6*testTimeout())
	defer cancel()
	bin := filepath.Join(dir, "prog")
	args := append([]string{"build", "-mod=mod", "-o", bin}, flags...)
	build := exec.CommandContext(ctx, goTool, append(args, ".")...)
	build.Dir = dir
	build.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=", "GOWORK=off")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}
