package httpsrv

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind. The
// process an upgrade replaced (TestUpgradeUnderLoad's server A) still waits
// for the new one when it exits, as documented.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/seed80f6b3e8/httpsrv/upgrade.(*child).wait"))
}
