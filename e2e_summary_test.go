package main

// End-to-end test of the job summary and annotations of a run where a large
// fleet fails the same few ways.

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// 1,000 tenants failing with 3 distinct errors, each naming the tenant's
// own database or user: the summary's failures part is 3 groups on its
// first screen, the tenants table is folded, and only the first failure of
// each kind is annotated, plus one annotation counting the rest.
func TestE2EThousandFailuresGrouped(t *testing.T) {
	db := newTenants(t, "grp", 1)[0]
	base, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	tenantURL := func(user *url.Userinfo, database, sslmode string) string {
		u := *base
		u.User, u.Path, u.RawQuery = user, "/"+database, "sslmode="+sslmode
		return u.String()
	}
	// Each cause fails at once (none is worth a retry), so the run is quick.
	var list []string
	for i := range 1000 {
		switch i % 3 {
		case 0: // a database that does not exist: "database "nodb_0000" does not exist"
			list = append(list, fmt.Sprintf("nodb-%04d=%s", i, tenantURL(base.User, fmt.Sprintf("nodb_%04d", i), "disable")))
		case 1: // a role that does not exist: "password authentication failed for user "nobody_0001""
			list = append(list, fmt.Sprintf("norole-%04d=%s", i, tenantURL(url.UserPassword(fmt.Sprintf("nobody_%04d", i), "not-a-password"), db.Name, "disable")))
		case 2: // TLS required of a server without it
			list = append(list, fmt.Sprintf("tls-%04d=%s", i, tenantURL(base.User, db.Name, "require")))
		}
	}
	r := runPgfleet(t, inputs{"mode": "migrate", "database-urls": strings.Join(list, "\n"), "migrations-dir": "testdata/migrations", "concurrency": "20"})
	mustCode(t, r, 1)
	if r.outputs["failed"] != "1000" {
		t.Fatalf("failed output %q, want 1000\n%s", r.outputs["failed"], tail(r.stdout, 3000))
	}

	first := strings.Join(strings.SplitN(r.summary, "\n", 26)[:min(25, strings.Count(r.summary, "\n"))], "\n")
	t.Logf("the summary's first 25 lines:\n%s", first)
	failures := r.summary[strings.Index(r.summary, "\n### Failures\n"):]
	failures = failures[:strings.Index(failures, "\n### Tenants\n")]
	var groups []string
	total := 0
	for _, line := range strings.Split(failures, "\n") {
		cells := strings.Split(line, " | ")
		if !strings.HasPrefix(line, "| ") || len(cells) < 4 {
			continue
		}
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimPrefix(cells[0], "| "), ",", ""))
		if err != nil {
			continue // the header row
		}
		total += n
		groups = append(groups, line)
		if !strings.Contains(first, line) {
			t.Errorf("group not on the summary's first screen: %s", line)
		}
	}
	if len(groups) != 3 || total != 1000 {
		t.Fatalf("want 3 groups of 1,000 tenants in all, got %d of %d:\n%s", len(groups), total, failures)
	}
	for _, want := range []string{`database "&lt;database&gt;" does not exist`, `password authentication failed for user "&lt;user&gt;"`, "server refused TLS connection"} {
		if !strings.Contains(failures, want) {
			t.Errorf("no group for %q:\n%s", want, failures)
		}
	}
	if !strings.Contains(r.summary, "\n<details><summary>All 1,000 tenants") || strings.Count(r.summary, "| ❌ failed |") != 1000+3 {
		t.Errorf("the tenants table should be folded and hold every tenant")
	}

	// Annotations: the first failure of each kind, and one for the rest.
	var annotations []string
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, "::error") {
			annotations = append(annotations, line)
		}
	}
	if len(annotations) != 3+1 {
		t.Fatalf("want 4 error annotations (3 kinds of failure, 1 for the rest), got %d:\n%s", len(annotations), strings.Join(annotations, "\n"))
	}
	if last := annotations[3]; !strings.Contains(last, "997 more tenants failed::1,000 tenants did not succeed") || !strings.Contains(last, "3 distinct errors") ||
		!strings.Contains(last, "job summary") || !strings.Contains(last, r.outputs["report-file"]) {
		t.Errorf("closing annotation: %s", last)
	}
	assertNoLeak(t, r, db.Password, "not-a-password")
}
