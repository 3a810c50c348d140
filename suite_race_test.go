//go:build race

package httpsrv

// raceEnabled reports whether the test binary was built with -race. Tests
// that build a program build it the same way, so that the build reuses the
// test build's cached packages.
const raceEnabled = true
