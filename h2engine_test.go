package httpsrv

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHTTP2EngineProbe checks that the probe of x/net's HTTP/2 server
// agrees with x/net's build tags for the x/net this module requires.
func TestHTTP2EngineProbe(t *testing.T) {
	wraps, err := h2ProbeEngine(testTimeout())
	require.NoError(t, err)
	assert.Equal(t, xnetWrapsByTags, wraps)
	cached, err := h2EngineWraps()
	require.NoError(t, err)
	assert.Equal(t, wraps, cached)
}

// standaloneXNetProgram serves with HTTP/2 settings and a ConnState hook,
// and prints the SETTINGS_MAX_CONCURRENT_STREAMS of an HTTP/2 connection
// and the ConnState transitions it goes through.
const standaloneXNetProgram = `package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"

	"github.com/seed80f6b3e8/httpsrv"
	"golang.org/x/net/http2"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	var mu sync.Mutex
	var states []http.ConnState
	srv := &httpsrv.Server{
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 3},
		ConnState: func(_ net.Conn, s http.ConnState) {
			mu.Lock()
			states = append(states, s)
			mu.Unlock()
		},
	}
	go srv.ServeTLS(ln, os.Args[1], os.Args[2])
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		panic(err)
	}
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	f, err := fr.ReadFrame()
	if err != nil {
		panic(err)
	}
	v, _ := f.(*http2.SettingsFrame).Value(http2.SettingMaxConcurrentStreams)
	c.Close()
	srv.Shutdown(context.Background())
	mu.Lock()
	fmt.Println(v, states)
	mu.Unlock()
}
`

// TestHTTP2StandaloneXNetOnGo127 builds a program against an x/net whose
// HTTP/2 server is standalone whatever the Go release, as one from before
// the Go 1.27 wrapper is (a replace can pin one): a copy of x/net without
// its wrapper files and the build constraints of its standalone ones.
// The settings and ConnState must still reach HTTP/2 (issue 11, item 3).
// When the mode was guessed from build tags, Go 1.27 passed no BaseConfig
// to that server, which then served with a zero http.Server: 250 streams
// and no StateActive or StateIdle. Where x/net's server is standalone
// already (Go 1.26, the http2legacy tag) the copy would change nothing.
func TestHTTP2StandaloneXNetOnGo127(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	if !xnetWrapsByTags {
		t.Skip("x/net's HTTP/2 server is standalone in this build already")
	}
	t.Parallel()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "golang.org/x/net").Output()
	require.NoError(t, err)
	xnet := strings.TrimSpace(string(out))
	// A copy of the x/net packages HTTP/2 needs, for a replace: the go
	// command takes no overlay of files in the module cache.
	xcopy := t.TempDir()
	for _, f := range []string{"go.mod", "LICENSE"} {
		b, err := os.ReadFile(filepath.Join(xnet, f))
		require.NoError(t, err)
		writeTestFile(t, xcopy, f, b)
	}
	sawWrapper := false
	for _, dir := range []string{"http2", "http2/hpack", "http/httpguts", "idna", "internal/httpcommon", "internal/httpsfv"} {
		entries, err := os.ReadDir(filepath.Join(xnet, dir))
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Join(xcopy, dir), 0o700))
		for _, e := range entries {
			name := e.Name()
			if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				continue
			}
			src, err := os.ReadFile(filepath.Join(xnet, dir, name))
			require.NoError(t, err)
			switch buildLine(src) {
			case "//go:build go1.27 && !http2legacy":
				sawWrapper = sawWrapper || name == "server_wrap.go"
				continue // left out
			case "//go:build !(go1.27 && !http2legacy)":
				src = []byte(strings.Replace(string(src), "//go:build", "// was go:build", 1))
			}
			writeTestFile(t, filepath.Join(xcopy, dir), name, src)
		}
	}
	require.True(t, sawWrapper, "x/net's file names changed")

	bin := buildTestProgram(t, "require golang.org/x/net v0.58.0\n\nreplace golang.org/x/net => "+xcopy+"\n\n", standaloneXNetProgram)
	root, err := os.Getwd()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout())
	defer cancel()
	got, err := exec.CommandContext(ctx, bin, filepath.Join(root, testCertFile), filepath.Join(root, testKeyFile)).Output()
	require.NoError(t, err, "program: %s", got)
	assert.Equal(t, "3 [new active idle closed]\n", string(got))
}

// buildLine returns the //go:build line of a Go source file, or "".
func buildLine(src []byte) string {
	sc := bufio.NewScanner(strings.NewReader(string(src)))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "//go:build") {
			return line
		}
		if strings.HasPrefix(line, "package ") {
			break
		}
	}
	return ""
}

// TestTooManyHTTP2Fields checks the field count that applies
// MaxHeaderValueCount to x/net's standalone HTTP/2 server against Go
// 1.27's, which counts every field of the header block, pseudo-header
// fields included, and the names the trailer fields list apart.
func TestTooManyHTTP2Fields(t *testing.T) {
	regular := func(n int) http.Header {
		h := http.Header{}
		for i := range n {
			h.Add("X-H"+strconv.Itoa(i), "v")
		}
		return h
	}
	tests := []struct {
		name string
		req  *http.Request
		max  int
		want bool
	}{
		{"GET at the limit", &http.Request{Method: "GET", Host: "h", Header: regular(6)}, 10, false},
		{"GET over the limit", &http.Request{Method: "GET", Host: "h", Header: regular(7)}, 10, true},
		{"repeated field counts each value", &http.Request{Method: "GET", Host: "h", Header: http.Header{"A": {"1", "2", "3", "4", "5", "6", "7"}}}, 10, true},
		{":authority counts", &http.Request{Method: "GET", Host: "h", Header: regular(6)}, 9, true},
		{"host field, no :authority", &http.Request{Method: "GET", Host: "h", Header: http.Header{"Host": {"h"}}}, 4, false},
		{"CONNECT has no :scheme or :path", &http.Request{Method: "CONNECT", Host: "h:443", Header: regular(8)}, 10, false},
		{"extended CONNECT", &http.Request{Method: "CONNECT", Host: "h", Header: http.Header{":protocol": {"websocket"}}}, 4, true},
		{"trailer names count apart", &http.Request{Method: "GET", Host: "h", Header: regular(6), Trailer: http.Header{"A": nil, "B": nil}}, 10, false},
		{"trailer names over the limit", &http.Request{Method: "GET", Host: "h", Trailer: http.Header{"A": nil, "B": nil, "C": nil}}, 2, true},
		{"joined cookies count once", &http.Request{Method: "GET", Host: "h", Header: http.Header{"Cookie": {"a=1; b=2; c=3"}}}, 5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tooManyHTTP2Fields(tt.req, tt.max))
		})
	}
}
