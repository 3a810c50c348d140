package httpsrv

import (
	"net/http"
	"net/textproto"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The header snapshot: the handler's header map as WriteHeader saw it,
// net/http's clone in response.WriteHeader, kept as bytes.

// The header fields whose handler values writeHead may drop.
const (
	hkConnection = iota
	hkContentLength
	hkContentType
	hkTransferEncoding
	numHeaderKeys
)

var headerKeyIndex = map[string]int{
	"Connection":        hkConnection,
	"Content-Length":    hkContentLength,
	"Content-Type":      hkContentType,
	"Transfer-Encoding": hkTransferEncoding,
}

// headSnapshot is the handler's header map as WriteHeader saw it, already
// serialised. net/http clones the map for this; serialising into a
// per-connection buffer costs no allocation, and the few fields the server
// looks at or may drop are noted on the side.
type headSnapshot struct {
	buf  []byte   // the fields, sorted by key, without TrailerPrefix keys
	keys []string // scratch for sorting

	present [numHeaderKeys]bool
	first   [numHeaderKeys]string
	span    [numHeaderKeys][2]int // where the field is in buf
	drop    [numHeaderKeys]bool   // set by writeHead

	hasDate         bool
	contentEncoding string
	hasTrailers     bool // a Trailer field or a TrailerPrefix key
	protocolSwitch  bool // Upgrade, with Connection: Upgrade
}

// take records w's handler header.
func (hs *headSnapshot) take(w *response) {
	hdr := w.handlerHeader
	*hs = headSnapshot{buf: hs.buf[:0], keys: hs.keys[:0]}
	if len(hdr) == 0 {
		return
	}
	for k := range hdr {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			hs.hasTrailers = true
			continue
		}
		hs.keys = append(hs.keys, k)
	}
	slices.Sort(hs.keys)
	for _, k := range hs.keys {
		vv := hdr[k]
		idx, special := headerKeyIndex[k]
		if special {
			hs.present[idx] = true
			if len(vv) > 0 {
				hs.first[idx] = vv[0]
			}
			hs.span[idx][0] = len(hs.buf)
		}
		if httpguts.ValidHeaderFieldName(k) {
			for _, v := range vv {
				hs.buf = appendHeaderField(hs.buf, k, v)
			}
		}
		if special {
			hs.span[idx][1] = len(hs.buf)
		}
	}
	_, hs.hasDate = hdr["Date"]
	hs.contentEncoding = headerGet(hdr, "Content-Encoding")
	for _, v := range hdr["Trailer"] {
		hs.hasTrailers = true
		foreachHeaderElement(v, w.declareTrailer)
	}
	hs.protocolSwitch = w.status == http.StatusSwitchingProtocols &&
		hdr.Get("Upgrade") != "" && httpguts.HeaderValuesContainsToken(hdr["Connection"], "Upgrade")
	clear(hs.keys)
	hs.keys = hs.keys[:0]
}

// get returns the first value of field k unless it was dropped.
func (hs *headSnapshot) get(k int) string {
	if hs.drop[k] {
		return ""
	}
	return hs.first[k]
}

func (hs *headSnapshot) has(k int) bool { return hs.present[k] && !hs.drop[k] }

// appendHeaderField appends "k: v\r\n", with v trimmed and CR and LF in it
// turned into spaces, as http.Header.Write does.
func appendHeaderField(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ':', ' ')
	v = textproto.TrimString(v)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, '\r', '\n')
}

// foreachHeaderElement calls fn for each non-empty element of the
// comma-separated list v.
func foreachHeaderElement(v string, fn func(string)) {
	v = textproto.TrimString(v)
	if v == "" {
		return
	}
	for f := range strings.SplitSeq(v, ",") {
		if f = textproto.TrimString(f); f != "" {
			fn(f)
		}
	}
}

func (w *response) declareTrailer(k string) {
	k = http.CanonicalHeaderKey(k)
	if !httpguts.ValidTrailerHeader(k) {
		return
	}
	w.trailers = append(w.trailers, k)
}
