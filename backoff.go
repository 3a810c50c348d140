package httpsrv

import (
	"errors"
	"syscall"
	"time"
)

// The accept back-off: after a temporary Accept error the accept loop waits
// minAcceptDelay, doubling after each further error up to maxAcceptDelay,
// and starts again from minAcceptDelay after a successful Accept. These are
// net/http's values.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = 1 * time.Second
)

// nextAcceptDelay returns the wait after a temporary Accept error, given
// the previous wait (zero after a successful Accept).
func nextAcceptDelay(prev time.Duration) time.Duration {
	if prev <= 0 {
		return minAcceptDelay
	}
	return min(2*prev, maxAcceptDelay)
}

// temporaryAcceptErrnos are the errors from accept(2) that say nothing
// about the listener itself: the peer gave up, or the process is short of
// descriptors, memory or time.
var temporaryAcceptErrnos = []syscall.Errno{
	syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR,
	syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
	syscall.EAGAIN, syscall.ETIMEDOUT,
}

// isTemporaryAcceptError reports whether err is an Accept error worth
// retrying. It recognises the errno values directly, and still honours a
// Temporary method (deprecated in package net, but the contract of custom
// listeners written for net/http).
func isTemporaryAcceptError(err error) bool {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		for _, t := range temporaryAcceptErrnos {
			if errno == t {
				return true
			}
		}
	}
	var te interface{ Temporary() bool }
	return errors.As(err, &te) && te.Temporary()
}

// waitOrDone waits for d, and reports false if done is closed first.
func waitOrDone(d time.Duration, done <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
