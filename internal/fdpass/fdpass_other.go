//go:build !unix

package fdpass

import (
	"errors"
	"net"
	"os"
)

// errNotSupported is returned on systems without descriptor inheritance.
var errNotSupported = errors.New("descriptor passing is not supported on this system")

// Check is not supported on this system.
func Check(fd int, types ...int) error { return errNotSupported }

// Listener is not supported on this system.
func Listener(fd int, name string) (net.Listener, error) { return nil, errNotSupported }

// File is not supported on this system.
func File(ln net.Listener) (*os.File, error) { return nil, errNotSupported }
