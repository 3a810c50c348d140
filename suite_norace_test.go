//go:build !race

package httpsrv

// raceEnabled reports whether the test binary was built with -race; see
// suite_race_test.go.
const raceEnabled = false
