//go:build unix && !linux

package httpsrv

// openYielder returns a yielder on a new pipe, or nil.
func openYielder() *netYielder { return newPipeYielder() }
