package neon

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/testenv/neonapi"
)

const (
	createRoute = "POST /projects/{project_id}/branches"
	deleteRoute = "DELETE /projects/{project_id}/branches/{branch_id}"
	opRoute     = "GET /projects/{project_id}/operations/{operation_id}"
)

func TestCreateThenDeleteWaitsForOperations(t *testing.T) {
	s := newEmulator(t, neonapi.Config{Branching: neonapi.BranchConfig{OperationTime: 300 * time.Millisecond}})
	addTenants(s, 1)
	c := New(fastOptions(s.URL()))
	ctx := context.Background()
	expires := time.Now().Add(time.Hour)
	b, err := c.CreateBranch(ctx, "tenant-0000", "", "pgfleet-rehearsal-1", expires)
	if err != nil {
		t.Fatal(err)
	}
	if b.ID == "" || len(b.ConnectionURIs) != 1 || len(b.Operations) != 2 || b.ExpiresAt != expires.UTC().Truncate(time.Second).Format(time.RFC3339) {
		t.Fatalf("created %+v", b)
	}
	// Right after the creation its operations still run: the delete meets
	// a 423, waits for them by polling, and goes through.
	if err := c.DeleteBranch(ctx, "tenant-0000", b.ID, b.Operations); err != nil {
		t.Fatal(err)
	}
	if n := len(s.CreatedBranches()); n != 0 {
		t.Errorf("%d branches left", n)
	}
	if d, polls := countRoute(s, deleteRoute), countRoute(s, opRoute); d != 2 || polls != 1 {
		t.Errorf("%d deletes and %d polls, want 2 (one 423) and 1", d, polls)
	}
	if got := c.Calls(); got != 4 {
		t.Errorf("%d calls counted, want 4", got)
	}
	// Gone already: not an error.
	if err := c.DeleteBranch(ctx, "tenant-0000", b.ID, nil); err != nil {
		t.Errorf("second delete: %v", err)
	}
}

func TestBranchChangesSurviveRateLimitsAndOutages(t *testing.T) {
	s := newEmulator(t, neonapi.Config{})
	addTenants(s, 1)
	c := New(fastOptions(s.URL()))
	ctx := context.Background()
	// A 429 and a 503 (the branch was not made): the create is retried,
	// after looking the name up once, and one branch results.
	s.FailNext(1, http.StatusTooManyRequests)
	s.FailNext(1, http.StatusServiceUnavailable)
	b, err := c.CreateBranch(ctx, "tenant-0000", "", "pgfleet-rehearsal-2", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.CreatedBranches()); n != 1 || b.Found {
		t.Fatalf("%d branches, found %v", n, b.Found)
	}
	s.FailNext(2, http.StatusServiceUnavailable)
	s.FailNext(1, http.StatusLocked)
	if err := c.DeleteBranch(ctx, "tenant-0000", b.ID, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(s.CreatedBranches()); n != 0 {
		t.Errorf("%d branches left", n)
	}
}

func TestBranchRefusals(t *testing.T) {
	s := newEmulator(t, neonapi.Config{Branching: neonapi.BranchConfig{MaxBranches: 1, RefuseExpiresAt: true}})
	addTenants(s, 1)
	c := New(fastOptions(s.URL()))
	_, err := c.CreateBranch(context.Background(), "tenant-0000", "", "x", time.Now().Add(time.Hour))
	if !IsExpiresAtRefused(err) {
		t.Errorf("expires_at refused: %v", err)
	}
	_, err = c.CreateBranch(context.Background(), "tenant-0000", "", "x", time.Time{})
	if !IsBranchLimit(err) || IsExpiresAtRefused(err) {
		t.Errorf("at the branch limit: %v", err)
	}
}
