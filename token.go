package httpsrv

// Header list tokens. net/http reads a token list in two ways, and the
// difference shows in what a handler sees, so both are kept; they share
// one matcher and one case fold:
//
//   - hasToken, as net/http's hasToken, which conn.readRequest and
//     chunkWriter.writeHeader use for Connection and Expect: commas,
//     spaces and tabs all delimit elements, so "foo close" has "close";
//   - valuesHaveToken, as httpguts.HeaderValuesContainsToken, which
//     net/http's shouldClose uses for Request.Close: only commas delimit
//     elements, with optional white space around each.

// hasToken reports whether token, which must be non-empty lower-case
// ASCII, is an element of the header value v, delimited by the ends of v
// or by a space, comma or tab, and compared ASCII case-insensitively, as
// net/http's hasToken does.
func hasToken(v, token string) bool { return matchToken(v, token, true) }

// valuesHaveToken reports whether token, which must be non-empty
// lower-case ASCII, is an element of the comma-separated list in any of
// values, compared ASCII case-insensitively once optional white space is
// trimmed, as httpguts.HeaderValuesContainsToken does.
func valuesHaveToken(values []string, token string) bool {
	for _, v := range values {
		if matchToken(v, token, false) {
			return true
		}
	}
	return false
}

// matchToken reports whether v has token as a list element. When
// spaceDelimits is set, a space or tab ends an element as a comma does;
// otherwise only commas do, and spaces and tabs may surround the token.
func matchToken(v, token string, spaceDelimits bool) bool {
	if len(token) > len(v) || token == "" {
		return false
	}
	if v == token {
		return true
	}
	for sp := 0; sp <= len(v)-len(token); sp++ {
		// The token is lower-case ASCII: a byte that is neither its first
		// byte nor that byte's upper case cannot start it. asciiEqualFold
		// rejects the false positives of b|0x20.
		if b := v[sp]; b != token[0] && b|0x20 != token[0] {
			continue
		}
		end := sp + len(token)
		if !elementEdge(v, sp-1, -1, spaceDelimits) || !elementEdge(v, end, 1, spaceDelimits) {
			continue
		}
		if asciiEqualFold(v[sp:end], token) {
			return true
		}
	}
	return false
}

// elementEdge reports whether a list element may end at v[i], walking in
// direction dir (-1 before the token, 1 after it): at either end of v, at
// a comma, or, with spaceDelimits, at a space or tab; without it, spaces
// and tabs are skipped on the way to a comma or an end.
func elementEdge(v string, i, dir int, spaceDelimits bool) bool {
	for ; i >= 0 && i < len(v); i += dir {
		switch v[i] {
		case ',':
			return true
		case ' ', '\t':
			if spaceDelimits {
				return true
			}
		default:
			return false
		}
	}
	return true
}

// asciiEqualFold reports whether s and t are equal under ASCII case
// folding, as net/http's internal ascii.EqualFold does: other bytes,
// non-ASCII ones included, must be equal.
func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lowerASCII(s[i]) != lowerASCII(t[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
