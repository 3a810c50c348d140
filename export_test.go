package httpsrv

import (
	"net"
	"testing"
)

// SetTestHookServerServe sets testHookServerServe for the duration of t.
func SetTestHookServerServe(t testing.TB, fn func(*Server, net.Listener)) {
	t.Helper()
	old := testHookServerServe
	testHookServerServe = fn
	t.Cleanup(func() { testHookServerServe = old })
}

// SetTestHookIdleRead sets testHookIdleRead for the duration of t.
func SetTestHookIdleRead(t testing.TB, fn func(*h1conn)) {
	t.Helper()
	old := testHookIdleRead
	testHookIdleRead = fn
	t.Cleanup(func() { testHookIdleRead = old })
}
