package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/testenv"
	"github.com/pgfleet/pgfleet/internal/testenv/neonapi"
	"github.com/pgfleet/pgfleet/internal/testenv/pgcluster"
)

// BenchmarkRehearse200Tenants: rehearse: true over 200 tenants against the
// emulator with Neon's strict limits (700 requests a minute, 40 a second
// per route) and branch operations that take a second. Targets (issue 17):
// at most 5 API calls per tenant on average (no busy polling), the run
// within 1.2x of the API floor (those calls at 700 a minute), no tenant
// lost to 429 or 423, no branch left.
func BenchmarkRehearse200Tenants(b *testing.B) {
	ctx := context.Background()
	root, bin := buildFromRoot(b)
	cluster := pgcluster.StartForTest(b)
	f, err := testenv.StartFleet(ctx, testenv.FleetOptions{Tenants: tenants, Prefix: "rh", Cluster: cluster, Neon: neonapi.Config{
		RequestsPerMinute: 700,
		PerRouteRPS:       40,
		Branching:         neonapi.BranchConfig{OperationTime: time.Second},
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		report := filepath.Join(b.TempDir(), "r.json")
		before, _ := f.Neon.Stats()
		took, out, _ := runPgfleet(b, bin, []string{"INPUT_NEON-API-KEY=" + f.APIKey, "INPUT_NEON-API-URL=" + f.Neon.URL()},
			"migrate", "--migrations-dir", filepath.Join(root, "testdata", "migrations"),
			"--rehearse", "--concurrency", fmt.Sprint(concurrency), "--neon-rate-limit", "700", "--report-file", report)
		total, limited := f.Neon.Stats()
		calls := total - before
		var rep struct {
			Tenants []struct {
				Status string `json:"status"`
			} `json:"tenants"`
		}
		data, _ := os.ReadFile(report)
		if err := json.Unmarshal(data, &rep); err != nil {
			b.Fatal(err)
		}
		failed := 0
		for _, t := range rep.Tenants {
			if t.Status != "succeeded" {
				failed++
			}
		}
		locked := 0
		for _, r := range f.Neon.Requests() {
			if r.Status == 423 {
				locked++
			}
		}
		floor := time.Duration(float64(calls) / 700 * float64(time.Minute))
		perTenant := float64(calls) / float64(tenants)
		b.ReportMetric(perTenant, "calls/tenant")
		b.ReportMetric(took.Seconds()/floor.Seconds(), "x-api-floor")
		fmt.Printf("\nrehearse: %d tenants, concurrency %d, operations of 1s, Neon limits 700/min and 40/s per route\n", tenants, concurrency)
		fmt.Printf("  %d API calls (%.2f per tenant, target <= 5), %d answered 429, %d answered 423\n", calls, perTenant, limited, locked)
		fmt.Printf("  took %s; the API floor (%d calls at 700/min) is %s: %.2fx (target <= 1.2x)\n", took.Round(time.Millisecond), calls, floor.Round(time.Millisecond), took.Seconds()/floor.Seconds())
		fmt.Printf("  tenants not rehearsed to success: %d; branches left: %d\n", failed, len(f.Neon.CreatedBranches()))
		if failed > 0 || len(f.Neon.CreatedBranches()) > 0 {
			b.Errorf("%d tenants failed, %d branches left:\n%s", failed, len(f.Neon.CreatedBranches()), strings.TrimSpace(string(out[max(0, len(out)-3000):])))
		}
	}
}
