package httpsrv

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	yaml "go.yaml.in/yaml/v3"
)

// desyncCase is one test case of aws/http-desync-guardian.
type desyncCase struct {
	Name    string `yaml:"name"`
	URI     string `yaml:"uri"`
	Method  string `yaml:"method"`
	Version string `yaml:"version"`
	Headers []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"headers"`
	Expected struct {
		Tier   string `yaml:"tier"`
		Reason string `yaml:"reason"`
	} `yaml:"expected"`
}

// desyncDir holds the cases, copied from the upstream repository's tests
// directory; its README.md says where from and under which license.
const desyncDir = "testdata/http-desync-guardian"

// loadDesyncCases reads every case file, by file name. It fails the test
// when there is none: the cases are part of the repository.
func loadDesyncCases(t *testing.T) map[string][]desyncCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(desyncDir, "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no http-desync-guardian cases in %s", desyncDir)
	cases := make(map[string][]desyncCase)
	for _, file := range files {
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		var cs []desyncCase
		require.NoError(t, yaml.Unmarshal(data, &cs), file)
		cases[filepath.Base(file)] = cs
	}
	return cases
}

const smuggled = "GET /smuggled HTTP/1.1\r\nHost: example.com\r\n\r\n"

// desyncRequest builds the bytes of a case: its head (plus a Host field if
// it has none), a body as its framing fields imply, and a pipelined request.
func desyncRequest(c desyncCase) []byte {
	var b bytes.Buffer
	b.WriteString(c.Method + " " + c.URI + " " + c.Version + "\r\n")
	hasHost, hasTE := false, false
	cl := -1
	for _, h := range c.Headers {
		b.WriteString(h.Name + ": " + h.Value + "\r\n")
		switch strings.ToLower(strings.TrimSpace(h.Name)) {
		case "host":
			hasHost = true
		case "transfer-encoding":
			hasTE = true
		case "content-length":
			if n, err := strconv.Atoi(strings.TrimSpace(h.Value)); err == nil && n < 1<<16 {
				cl = n
			}
		}
	}
	if !hasHost {
		b.WriteString("Host: example.com\r\n")
	}
	b.WriteString("\r\n")
	switch {
	case hasTE:
		b.WriteString("5\r\nhello\r\n0\r\n\r\n")
	case cl > 0:
		b.WriteString(strings.Repeat("x", cl))
	}
	b.WriteString(smuggled)
	return b.Bytes()
}

// TestDesyncGuardian checks every http-desync-guardian case: Severe and
// Ambiguous ones must be rejected or end the connection, and no case may
// let a second request other than the pipelined one be read.
func TestDesyncGuardian(t *testing.T) {
	var total, stricter, netHTTPKeepsAlive, dangerous, netHTTPEnds int
	for file, cases := range loadDesyncCases(t) {
		for _, c := range cases {
			total++
			t.Run(file+"/"+c.Name, func(t *testing.T) {
				data := desyncRequest(c)
				br := bufio.NewReader(bytes.NewReader(data))
				req, f, _, err := readRequest(br, http.DefaultMaxHeaderBytes)
				want := netHTTPOutcome(data)
				ends := err != nil || f.forceClose || req.Close
				if want.req != nil && !want.req.Close && ends {
					stricter++
					if testing.Verbose() {
						t.Logf("stricter than net/http (%s): err=%v forceClose=%v", c.Expected.Tier, err, f.forceClose)
					}
				}
				if c.Expected.Tier == "Severe" || c.Expected.Tier == "Ambiguous" {
					dangerous++
					if want.req != nil && !want.req.Close {
						netHTTPKeepsAlive++
					} else {
						netHTTPEnds++
					}
				}
				if c.Expected.Tier == "Severe" || c.Expected.Tier == "Ambiguous" {
					assert.True(t, ends, "a %s case must be rejected or close the connection\n%q", c.Expected.Tier, data)
				}
				if err != nil {
					var re *requestError
					assert.True(t, errors.As(err, &re), "error %v is not a requestError", err)
					return
				}
				body := newBody(br, req, f)
				if _, err := io.Copy(io.Discard, body); err != nil || req.Close {
					return // the server closes the connection here
				}
				next, _, _, err := readRequest(br, http.DefaultMaxHeaderBytes)
				if err == nil {
					assert.Equal(t, "/smuggled", next.RequestURI, "smuggled request\n%q", data)
					_, err = br.Peek(1)
					assert.Equal(t, io.EOF, err, "bytes left after the pipelined request\n%q", data)
				}
			})
		}
	}
	t.Logf("%d cases, %d Severe or Ambiguous: net/http rejects or closes %d and keeps %d alive; "+
		"we are stricter than net/http (reject or close where it keeps the connection) in %d cases",
		total, dangerous, netHTTPEnds, netHTTPKeepsAlive, stricter)
}
