package httpsrv

import (
	"os"
	"runtime/debug"
	"strings"
	"sync"
)

// binaryGODEBUG returns the GODEBUG defaults compiled into the binary: the
// settings of go.mod's godebug lines and of //go:debug directives, and
// those implied by the main module's Go version. The linker records them
// in the build information under "DefaultGODEBUG".
var binaryGODEBUG = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == "DefaultGODEBUG" {
			return s.Value
		}
	}
	return ""
})

// godebugValue returns the value of the GODEBUG setting name as the runtime
// resolves it: env (the GODEBUG environment variable) overrides def (the
// binary's defaults), and within each list the last occurrence of name
// wins. A "#pattern" suffix (bisect) is not part of the value. The result
// is "" when neither list sets name.
func godebugValue(def, env, name string) string {
	for _, list := range [...]string{env, def} {
		if v, ok := lastGODEBUG(list, name); ok {
			return v
		}
	}
	return ""
}

// lastGODEBUG returns the value of the last "name=value" entry of the
// comma-separated list, and whether there is one.
func lastGODEBUG(list, name string) (string, bool) {
	for i := len(list); i >= 0; {
		start := strings.LastIndexByte(list[:i], ',') + 1
		entry := list[start:i]
		i = start - 1
		k, v, ok := strings.Cut(entry, "=")
		if !ok || k != name {
			continue
		}
		v, _, _ = strings.Cut(v, "#")
		return v, true
	}
	return "", false
}

// http2ServerDisabledByGODEBUG reports whether the effective GODEBUG has
// http2server=0, which turns HTTP/2 off in net/http's servers (see
// net/http's Server.protocols and onceSetNextProtoDefaults), and so in
// ours. The environment is read on each call, as the runtime follows
// changes made with os.Setenv.
func http2ServerDisabledByGODEBUG() bool {
	return godebugValue(binaryGODEBUG(), os.Getenv("GODEBUG"), "http2server") == "0"
}
