package httpsrv

import (
	"bufio"
	"io"
	"net/http"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIdleConnStack checks that an idle TLS connection does not keep the
// stack its handshake grew (conn.serve hands the connection to a new
// goroutine after the handshake): the goroutine stacks in use grow by
// less than 6 KiB per idle HTTP/1.1 connection; on the handshake's own
// goroutine they grew by 8 KiB. Not parallel: it measures the process's
// stacks, and sets a package hook.
func TestIdleConnStack(t *testing.T) {
	if raceEnabled {
		t.Skip("under -race the request loop's own frames need 8 KiB of stack")
	}
	const conns = 200
	idle := make(chan *h1conn, 2*conns+2)
	SetTestHookIdleRead(t, func(h *h1conn) { idle <- h })
	addr := startTLS(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})})

	stacks := func() uint64 {
		runtime.GC()
		runtime.GC() // the second frees the stack spans the first emptied
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.StackInuse
	}
	// One connection first, so that the test's goroutine has grown its
	// stack for the client's handshake and the server its pools.
	dialIdle := func() {
		c := dialTLS(t, addr, "http/1.1")
		_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		_, body, err := readOne(bufio.NewReader(c), "GET")
		require.NoError(t, err)
		require.Equal(t, "ok", body)
	}
	waitIdle := func(n int) {
		for range n {
			select {
			case <-idle: // the wait for the first request
			case <-t.Context().Done():
				t.Fatal("test timeout")
			}
			select {
			case <-idle: // the wait after the request
			case <-t.Context().Done():
				t.Fatal("test timeout")
			}
		}
	}
	dialIdle()
	waitIdle(1)
	before := stacks()
	for range conns {
		dialIdle()
	}
	waitIdle(conns)
	perConn := float64(stacks()-before) / conns
	t.Logf("goroutine stacks per idle connection: %.0f bytes", perConn)
	assert.Less(t, perConn, float64(6<<10), "stack bytes per idle connection")
}
