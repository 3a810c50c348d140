package httpsrv

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"golang.org/x/net/http/httpguts"
)

// netHTTPHasToken is net/http's unexported hasToken, written out as its
// documentation describes it: token is an element of v when it is
// delimited by the ends of v or by a space, comma or tab, compared ASCII
// case-insensitively.
func netHTTPHasToken(v, token string) bool {
	if token == "" {
		return false
	}
	boundary := func(i int) bool { return i < 0 || i >= len(v) || strings.IndexByte(" ,\t", v[i]) >= 0 }
	for i := 0; i+len(token) <= len(v); i++ {
		if boundary(i-1) && boundary(i+len(token)) && strings.EqualFold(v[i:i+len(token)], token) && isASCII(v[i:i+len(token)]) {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// tokenInputs are header values that tell the two list rules apart.
var tokenInputs = []string{
	"", "close", "Close", "CLOSE", "close,", ",close", " close ", "\tclose\t",
	"keep-alive, close", "keep-alive,close", "keep-alive ,close", "keep-alive close",
	"close keep-alive", "foo close", "foo\tclose", "foo,  CLOSE ", "closed", "xclose",
	"close;x", "clo se", "close\x00", "\xc3close", "cl\xc3\xb3se", "closé", "close\u212a",
	"upgrade, keep-alive", "Keep-Alive", "keep-alive;x", "100-continue", "100-Continue",
	"100-continue, x", "x 100-continue", ",,", " , close , ", "chunked", "Chunked", "\vclose",
}

func TestTokenMatchesNetHTTP(t *testing.T) {
	for _, token := range []string{"close", "keep-alive", "100-continue", "upgrade", "chunked"} {
		for _, v := range tokenInputs {
			assert.Equal(t, netHTTPHasToken(v, token), hasToken(v, token), "hasToken(%q, %q)", v, token)
			assert.Equal(t, httpguts.HeaderValuesContainsToken([]string{v}, token), valuesHaveToken([]string{v}, token),
				"valuesHaveToken(%q, %q)", v, token)
		}
		assert.Equal(t, httpguts.HeaderValuesContainsToken(tokenInputs, token), valuesHaveToken(tokenInputs, token))
	}
}

func TestTokenListRules(t *testing.T) {
	tests := []struct {
		v          string
		hasToken   bool // a space also separates elements
		valuesHave bool // only commas do
	}{
		{"close", true, true},
		{" Close\t", true, true},
		{"a, close ,b", true, true},
		{"foo close", true, false},
		{"close foo", true, false},
		{"closed", false, false},
		{"close;x", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.v, func(t *testing.T) {
			assert.Equal(t, tt.hasToken, hasToken(tt.v, "close"))
			assert.Equal(t, tt.valuesHave, valuesHaveToken([]string{"x", tt.v}, "close"))
		})
	}
	assert.False(t, hasToken("close", ""))
	assert.False(t, valuesHaveToken(nil, "close"))
}

func TestASCIIEqualFold(t *testing.T) {
	tests := []struct {
		s, t string
		want bool
	}{
		{"chunked", "chunked", true},
		{"Chunked", "cHUNKED", true},
		{"chunke", "chunked", false},
		{"chunkeD ", "chunked", false},
		{"[", "{", false}, // '[' | 0x20 == '{', but they are not letters
		{"\xc3\xa9", "\xc3\x89", false},
		{"k", "\u212a", false}, // the Kelvin sign folds to k in Unicode only
		{"", "", true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, asciiEqualFold(tt.s, tt.t), "%q %q", tt.s, tt.t)
	}
}

func TestTokenAllocs(t *testing.T) {
	values := []string{"keep-alive", "Upgrade, Close"}
	var ok bool
	allocs := testing.AllocsPerRun(100, func() {
		ok = hasToken("foo, Keep-Alive", "keep-alive") && valuesHaveToken(values, "close") && asciiEqualFold("Chunked", "chunked")
	})
	assert.True(t, ok)
	assert.Equal(t, 0.0, allocs)
}
