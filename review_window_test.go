package httpsrv

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// watchedOutput collects a process's output and lets a test wait, under a
// deadline, for a string to appear in it.
type watchedOutput struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	change chan struct{} // closed and replaced on every write
}

func newWatchedOutput() *watchedOutput { return &watchedOutput{change: make(chan struct{})} }

func (o *watchedOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	close(o.change)
	o.change = make(chan struct{})
	return len(p), nil
}

// waitCount waits until s has appeared n times, and reports whether it
// did before the deadline.
func (o *watchedOutput) waitCount(s string, n int, deadline <-chan time.Time) bool {
	for {
		o.mu.Lock()
		got := bytes.Count(o.buf.Bytes(), []byte(s))
		ch := o.change
		o.mu.Unlock()
		if got >= n {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

func (o *watchedOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// TestReviewWinKeyUpdateAfterIdle: c2b6e89 stopped clearing the write
// deadline at the end of a response, on the grounds that every write of
// the engine puts its own deadline in force first. crypto/tls writes on
// its own too: a TLS 1.3 KeyUpdate with update_requested, which a client
// may send at any time, is answered from inside tls.Conn.Read (here the
// background read of an idle keep-alive connection), under whatever write
// deadline is in force; when that write fails, crypto/tls keeps the error
// and fails every later Write (handleKeyUpdate: "Surface the error at the
// next write"). With the previous response's deadline left in force and
// passed, the next request on the connection gets no response: the
// connection dies. Before c2b6e89 the idle connection had no write
// deadline and the KeyUpdate was answered.
func TestReviewWinKeyUpdateAfterIdle(t *testing.T) {
	openssl := lookTool(t, "openssl")
	const grace = 100 * time.Millisecond
	srv := &Server{ErrorLog: discardLogger(), MinResponseRate: testFloor, MinRateGracePeriod: grace,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "response to "+r.URL.Path+"\n")
		})}
	addr := startTLS(t, srv)

	cmd := exec.Command(openssl, "s_client", "-connect", addr, "-servername", "localhost",
		"-CAfile", testCertFile, "-tls1_3", "-alpn", "http/1.1")
	out := newWatchedOutput()
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.After(testTimeout())

	_, err = io.WriteString(stdin, "GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n")
	require.NoError(t, err)
	require.True(t, out.waitCount("response to /first", 1, deadline), "no first response; output:\n%s", out)
	// The connection idles past the first response's write deadline (the
	// grace period plus its few bytes at the floor, about 100 ms): the
	// idle time is the scenario, not a wait for an event.
	idle := time.NewTimer(10 * grace)
	t.Cleanup(func() { idle.Stop() })
	<-idle.C
	// s_client's "K" command: a KeyUpdate requesting the server's.
	_, err = io.WriteString(stdin, "K\n")
	require.NoError(t, err)
	require.True(t, out.waitCount("KEYUPDATE", 1, deadline), "s_client sent no KeyUpdate; output:\n%s", out)
	_, err = io.WriteString(stdin, "GET /second HTTP/1.1\r\nHost: localhost\r\n\r\n")
	require.NoError(t, err)
	assert.True(t, out.waitCount("response to /second", 1, deadline),
		"the request after a KeyUpdate on an idle keep-alive connection got no response; output:\n%s", out)
}
