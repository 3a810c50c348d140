//go:build unix

package upgrade

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newUpgrader returns an Upgrader listening on "tcp 127.0.0.1:0", ready.
func newUpgrader(t *testing.T, opts Options) (*Upgrader, net.Listener) {
	t.Helper()
	u, err := New(opts)
	require.NoError(t, err)
	require.False(t, u.HasParent())
	ln, err := u.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	require.NoError(t, u.Ready())
	return u, ln
}

func TestUpgradeNotReady(t *testing.T) {
	u, err := New(Options{})
	require.NoError(t, err)
	assert.ErrorIs(t, u.Upgrade(), ErrNotReady)
}

func TestListenTwice(t *testing.T) {
	u, _ := newUpgrader(t, Options{})
	_, err := u.Listen("tcp", "127.0.0.1:0")
	assert.ErrorContains(t, err, "already listening on tcp 127.0.0.1:0")
}

// TestUpgradeHandsOverListener upgrades to a copy of the test binary that
// takes the listener and answers one connection on it after the parent
// closed its own; failed upgrades before it leave the parent serving.
func TestUpgradeHandsOverListener(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "app.pid")
	u, ln := newUpgrader(t, Options{UpgradeTimeout: time.Minute, PIDFile: pidFile})
	pid, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(os.Getpid())+"\n", string(pid))
	// A second Upgrader, with a short timeout, for the child that hangs.
	short, _ := newUpgrader(t, Options{UpgradeTimeout: 300 * time.Millisecond})

	tests := []struct {
		name, mode string
		u          *Upgrader
		wantErr    string
	}{
		{"exits before Ready", "exit", u, "exited before it was ready: exit status 3"},
		{"never ready", "hang", short, "not ready within 300ms; killed"},
		// The PID file is rewritten after a failure; a failed Ready in the
		// new process ends the upgrade at once, not after the timeout.
		{"Ready fails", "ready-fails", u, "closed the readiness pipe without being ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(childModeEnv, tt.mode)
			assert.ErrorContains(t, tt.u.Upgrade(), tt.wantErr)
			select {
			case <-tt.u.Exit():
				t.Fatal("Exit closed after a failed upgrade")
			default:
			}
			if tt.u == u {
				pid, err := os.ReadFile(pidFile)
				require.NoError(t, err)
				assert.Equal(t, strconv.Itoa(os.Getpid())+"\n", string(pid))
			}
		})
	}

	t.Setenv(childModeEnv, "serve")
	require.NoError(t, u.Upgrade())
	select {
	case <-u.Exit():
	default:
		t.Fatal("Exit not closed after the upgrade")
	}
	assert.ErrorIs(t, u.Upgrade(), ErrUpgraded)
	_, err = u.Listen("tcp", "127.0.0.1:1")
	assert.ErrorIs(t, err, ErrUpgraded)

	// The parent stops accepting; the socket stays open in the child.
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	child, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err)
	assert.NotEqual(t, os.Getpid(), child)
	// The child exits after answering; the Upgrader reaps it.
	u.mu.Lock()
	next := u.next
	u.mu.Unlock()
	require.NotNil(t, next)
	assert.Equal(t, child, next.pid)
	select {
	case <-next.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the new process did not exit")
	}
	require.NoError(t, next.err)
	assert.Equal(t, 0, next.state.ExitCode())
}

// TestNewBadHandoff checks that New reads and unsets HTTPSRV_UPGRADE, and
// rejects a malformed value.
func TestNewBadHandoff(t *testing.T) {
	t.Setenv(envName, "{")
	_, err := New(Options{})
	assert.ErrorContains(t, err, "upgrade: HTTPSRV_UPGRADE:")
	_, set := os.LookupEnv(envName)
	assert.False(t, set)
	t.Setenv(envName, `{"ready":1}`)
	_, err = New(Options{})
	assert.ErrorContains(t, err, "descriptor 1 is not an inherited one")
}

func TestKeepAliveFor(t *testing.T) {
	tests := []struct {
		name string
		lc   *net.ListenConfig
		want *net.KeepAliveConfig
	}{
		{"nil", nil, nil},
		{"zero: net.FileListener's defaults already", &net.ListenConfig{}, nil},
		{"off", &net.ListenConfig{KeepAlive: -1}, &net.KeepAliveConfig{}},
		{"idle", &net.ListenConfig{KeepAlive: time.Minute}, &net.KeepAliveConfig{Enable: true, Idle: time.Minute}},
		{"config wins", &net.ListenConfig{KeepAlive: time.Minute, KeepAliveConfig: net.KeepAliveConfig{Enable: true, Count: 3}},
			&net.KeepAliveConfig{Enable: true, Count: 3}},
		{"config disabled, KeepAlive off", &net.ListenConfig{KeepAlive: -1, KeepAliveConfig: net.KeepAliveConfig{Count: 3}},
			&net.KeepAliveConfig{Count: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, keepAliveFor(tt.lc))
		})
	}
}
