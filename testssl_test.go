package httpsrv

// testssl.sh scans a zero-config httpsrv server and net/http's server with
// the same certificate, and the findings are compared: httpsrv must offer
// no protocol below TLS 1.2, no CBC (or weaker) cipher, and nothing
// testssl rates MEDIUM or worse; net/http, the oracle, must differ in the
// CBC finding, which shows that the scan can tell the two apart.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testsslFinding is one entry of testssl's flat JSON output (--jsonfile).
type testsslFinding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Finding  string `json:"finding"`
}

// testsslChecks selects the smallest set of testssl checks that covers
// the assertions: -p protocols (with ALPN/HTTP2), -s cipher categories
// (NULL, aNULL, EXPORT, LOW, 3DES, AVERAGE = CBC, STRONG = AEAD), -U
// vulnerabilities (LUCKY13, SWEET32, BEAST, ROBOT, ...).
var testsslChecks = []string{"-p", "-s", "-U"}

// testsslOracleChecks are the checks of the net/http scan: only what the
// "net/http differs" subtest compares, -s cipher categories and -L LUCKY13.
// A full scan of both servers takes twice the time, over 5 minutes on a
// loaded 2-core machine.
var testsslOracleChecks = []string{"-s", "-L"}

// testsslCertFindings are findings about the test certificate itself,
// self-signed for localhost, which no server setting can fix. The checks
// above do not produce them (they come from -S); they are listed so that
// adding -S does not turn the test red for the wrong reason.
var testsslCertFindings = map[string]string{
	"cert_chain_of_trust":        "self-signed test certificate, trusted by no CA store",
	"cert_trust":                 "the certificate names localhost, not the scanned IP",
	"cert_caIssuers":             "no AIA CA issuers URL in a test certificate",
	"cert_crlDistributionPoints": "no CRL for a test certificate",
	"cert_ocspURL":               "no OCSP responder for a test certificate",
	"OCSP_stapling":              "nothing to staple without an OCSP responder",
	"cert_mustStapleExtension":   "no must-staple without an OCSP responder",
	"certificate_transparency":   "a test certificate is not logged in CT",
	"DNS_CAArecord":              "no DNS, so no CAA record, for 127.0.0.1",
	"cert_validityPeriod":        "the test certificate is valid until 2084, longer than a public CA allows",
}

// TestSSL runs testssl.sh against both servers, concurrently, each server
// in a process of its own (startServerProcess).
func TestSSL(t *testing.T) {
	requireInterop(t)
	testssl := lookTool(t, "testssl")
	servers := []struct {
		name   string
		addr   string
		checks []string
	}{
		{"httpsrv", startServerProcess(t, "httpsrv", "hello").addr, testsslChecks},
		{"net/http", startServerProcess(t, "net/http", "hello").addr, testsslOracleChecks},
	}

	// The scans are CPU-bound shell scripts: they took 2.5 to 10.5
	// minutes on a 2-core machine shared with other work.
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute*time.Duration(testTimeout()/(10*time.Second)))
	defer cancel()
	start := time.Now()
	results := make([]map[string]testsslFinding, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Go(func() {
			results[i], errs[i] = runTestssl(ctx, t, testssl, srv.addr, srv.checks)
		})
	}
	wg.Wait()
	t.Logf("testssl %s on httpsrv and %s on net/http took %v", strings.Join(testsslChecks, " "),
		strings.Join(testsslOracleChecks, " "), time.Since(start).Round(time.Millisecond))
	for i, srv := range servers {
		require.NoError(t, errs[i], srv.name)
		logTestssl(t, srv.name, results[i])
	}
	ours, std := results[0], results[1]

	t.Run("httpsrv", func(t *testing.T) {
		for _, id := range []string{"SSLv2", "SSLv3", "TLS1", "TLS1_1",
			"cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
			"cipherlist_3DES_IDEA", "cipherlist_AVERAGE"} {
			if assert.Contains(t, ours, id) {
				assert.Equal(t, "not offered", ours[id].Finding, id)
			}
		}
		for _, id := range []string{"TLS1_2", "TLS1_3", "cipherlist_STRONG"} {
			if assert.Contains(t, ours, id) {
				assert.True(t, strings.HasPrefix(ours[id].Finding, "offered"), "%s: %q", id, ours[id].Finding)
			}
		}
		if assert.Contains(t, ours, "LUCKY13") {
			assert.Equal(t, "OK", ours["LUCKY13"].Severity, "LUCKY13: %q", ours["LUCKY13"].Finding)
			assert.Contains(t, ours["LUCKY13"].Finding, "not vulnerable")
		}
		if assert.Contains(t, ours, "ALPN_HTTP2") {
			assert.Contains(t, strings.Fields(ours["ALPN_HTTP2"].Finding), "h2")
		}
		for id, f := range ours {
			switch f.Severity {
			case "MEDIUM", "HIGH", "CRITICAL":
				if why, ok := testsslCertFindings[id]; ok {
					t.Logf("allowed %s finding %s (%q): %s", f.Severity, id, f.Finding, why)
					continue
				}
				t.Errorf("%s finding %s: %q", f.Severity, id, f.Finding)
			}
		}
	})
	t.Run("net/http differs", func(t *testing.T) {
		// Go's default suites include ECDHE with AES-CBC: testssl rates
		// them AVERAGE and flags LUCKY13. This proves the scan tells the
		// servers apart.
		require.Contains(t, std, "cipherlist_AVERAGE")
		assert.NotEqual(t, ours["cipherlist_AVERAGE"].Finding, std["cipherlist_AVERAGE"].Finding)
		assert.Equal(t, "offered", std["cipherlist_AVERAGE"].Finding)
		assert.NotEqual(t, ours["LUCKY13"].Severity, std["LUCKY13"].Severity, "LUCKY13")
	})
}

// runTestssl scans addr with the given checks and returns the findings by
// id.
func runTestssl(ctx context.Context, t testing.TB, testssl, addr string, checks []string) (map[string]testsslFinding, error) {
	dir := t.TempDir()
	jsonFile := filepath.Join(dir, "findings.json")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	args := append([]string{"--quiet", "--warnings", "off", "--color", "0", "--jsonfile", jsonFile}, checks...)
	args = append(args, host+":"+port)
	cmd := exec.CommandContext(ctx, testssl, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TERM=dumb")
	out, err := cmd.CombinedOutput()
	data, rerr := os.ReadFile(jsonFile)
	if rerr != nil {
		// testssl exits non-zero for some findings; only a missing report
		// is a failure.
		return nil, fmt.Errorf("testssl %s: %v (%v); output:\n%s", addr, rerr, err, out)
	}
	var findings []testsslFinding
	if err := json.Unmarshal(data, &findings); err != nil {
		return nil, fmt.Errorf("testssl %s: parsing %s: %v", addr, jsonFile, err)
	}
	byID := make(map[string]testsslFinding, len(findings))
	for _, f := range findings {
		byID[f.ID] = f
	}
	if _, ok := byID["scanTime"]; !ok {
		return nil, fmt.Errorf("testssl %s: incomplete scan (%v); output:\n%s", addr, err, out)
	}
	return byID, nil
}

// logTestssl logs the findings the test looks at.
func logTestssl(t testing.TB, name string, byID map[string]testsslFinding) {
	t.Helper()
	var b strings.Builder
	for _, id := range []string{"TLS1", "TLS1_1", "TLS1_2", "TLS1_3", "ALPN_HTTP2",
		"cipherlist_3DES_IDEA", "cipherlist_AVERAGE", "cipherlist_STRONG", "LUCKY13", "SWEET32", "BEAST", "ROBOT", "scanTime"} {
		f, ok := byID[id]
		if !ok {
			continue // not checked in this scan
		}
		b.WriteString("\n  " + id + ": " + f.Severity + " " + f.Finding)
	}
	t.Logf("testssl findings for %s:%s", name, b.String())
}
