//go:build !(aix || darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package httpsrv

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestReusePortUnsupported checks the error of ReusePort where the system
// has no SO_REUSEPORT.
func TestReusePortUnsupported(t *testing.T) {
	srv := &Server{Addr: "127.0.0.1:0", ReusePort: true}
	err := srv.ListenAndServe()
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	assert.ErrorContains(t, err, "httpsrv: ReusePort: listen tcp 127.0.0.1:0:")
}
