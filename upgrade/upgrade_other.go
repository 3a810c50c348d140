//go:build !unix

package upgrade

import "net"

// Upgrader is not supported on this system; see [ErrNotSupported].
type Upgrader struct{}

// New returns ErrNotSupported on this system.
func New(opts Options) (*Upgrader, error) { return nil, ErrNotSupported }

// HasParent reports false on this system.
func (u *Upgrader) HasParent() bool { return false }

// Listen returns ErrNotSupported on this system.
func (u *Upgrader) Listen(network, addr string) (net.Listener, error) { return nil, ErrNotSupported }

// Ready returns ErrNotSupported on this system.
func (u *Upgrader) Ready() error { return ErrNotSupported }

// Upgrade returns ErrNotSupported on this system.
func (u *Upgrader) Upgrade() error { return ErrNotSupported }

// Exit returns a channel that is never closed on this system.
func (u *Upgrader) Exit() <-chan struct{} { return nil }
