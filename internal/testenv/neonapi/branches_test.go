package neonapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// call sends one request with a JSON body and decodes the answer.
func call(t *testing.T, s *Server, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.URL()+path, rd)
	req.Header.Set("Authorization", "Bearer "+testKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &out) //nolint:errcheck // 204 has no body
	return resp.StatusCode, out
}

func branchServer(t *testing.T, cfg BranchConfig) *Server {
	t.Helper()
	s := New(Config{APIKey: testKey, Spec: loadSpec(t), Branching: cfg})
	t.Cleanup(func() {
		s.Close()
		for _, v := range s.SpecViolations() {
			t.Errorf("not per the spec: %s", v)
		}
	})
	s.AddProject(Project{ID: "one-db", Databases: map[string]Database{"neondb": {URI: "postgresql://neondb_owner:pw@ep-a.us-east-2.aws.neon.tech/neondb"}}})
	s.AddProject(Project{ID: "two-dbs", Databases: map[string]Database{
		"neondb": {URI: "postgresql://neondb_owner:pw@ep-b.us-east-2.aws.neon.tech/neondb"},
		"other":  {URI: "postgresql://other_owner:pw2@ep-b.us-east-2.aws.neon.tech/other"},
	}})
	return s
}

func createBody(expires string) map[string]any {
	b := map[string]any{"name": "pgfleet-rehearsal-1"}
	if expires != "" {
		b["expires_at"] = expires
	}
	return map[string]any{"branch": b, "endpoints": []any{map[string]any{"type": "read_write"}}}
}

func TestCreateAndDeleteBranch(t *testing.T) {
	s := branchServer(t, BranchConfig{OperationTime: time.Hour})
	expires := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	status, out := call(t, s, "POST", "/projects/one-db/branches", createBody(expires))
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, out)
	}
	br := out["branch"].(map[string]any)
	id := br["id"].(string)
	if br["current_state"] != "init" || br["expires_at"] != expires || br["parent_id"] == "" {
		t.Errorf("branch %v", br)
	}
	var actions []string
	for _, o := range out["operations"].([]any) {
		actions = append(actions, o.(map[string]any)["action"].(string))
	}
	if strings.Join(actions, ",") != "create_branch,start_compute" {
		t.Errorf("operations %v", actions)
	}
	uris, _ := out["connection_uris"].([]any)
	if len(uris) != 1 || !strings.Contains(uris[0].(map[string]any)["connection_uri"].(string), "ep-a") {
		t.Errorf("connection_uris %v", out["connection_uris"])
	}
	if eps := out["endpoints"].([]any); len(eps) != 1 || eps[0].(map[string]any)["type"] != "read_write" {
		t.Errorf("endpoints %v", eps)
	}

	// The operations run for an hour: every change answers 423 meanwhile.
	if status, _ := call(t, s, "DELETE", "/projects/one-db/branches/"+id, nil); status != http.StatusLocked {
		t.Errorf("delete while create_branch runs: %d, want 423", status)
	}
	if status, _ := call(t, s, "POST", "/projects/one-db/branches", createBody("")); status != http.StatusLocked {
		t.Errorf("create while create_branch runs: %d, want 423", status)
	}
	opID := out["operations"].([]any)[0].(map[string]any)["id"].(string)
	if status, op := call(t, s, "GET", "/projects/one-db/operations/"+opID, nil); status != 200 || op["operation"].(map[string]any)["status"] != "running" {
		t.Errorf("operation: %d %v", status, op)
	}
	if n := len(s.CreatedBranches()); n != 1 {
		t.Errorf("%d created branches, want 1", n)
	}

	// Once they finish, the delete goes through; a second one answers 204.
	s.finishOperations("one-db")
	if status, out := call(t, s, "DELETE", "/projects/one-db/branches/"+id, nil); status != 200 || len(out["operations"].([]any)) != 2 {
		t.Errorf("delete: %d %v", status, out)
	}
	s.finishOperations("one-db")
	if status, _ := call(t, s, "DELETE", "/projects/one-db/branches/"+id, nil); status != http.StatusNoContent {
		t.Errorf("second delete: %d, want 204", status)
	}
	if n := len(s.CreatedBranches()); n != 0 {
		t.Errorf("%d created branches left", n)
	}
}

func TestCreateBranchRefusals(t *testing.T) {
	s := branchServer(t, BranchConfig{MaxBranches: 2, RefuseExpiresAt: true})
	// Several databases: no connection_uris, the branch's URI is asked for.
	status, out := call(t, s, "POST", "/projects/two-dbs/branches", createBody(""))
	if status != http.StatusCreated || out["connection_uris"] != nil {
		t.Fatalf("two databases: %d, connection_uris %v", status, out["connection_uris"])
	}
	id := out["branch"].(map[string]any)["id"].(string)
	if status, uri := call(t, s, "GET", "/projects/two-dbs/connection_uri?database_name=other&role_name=other_owner&branch_id="+id, nil); status != 200 || uri["uri"] == "" {
		t.Errorf("connection_uri of the branch: %d %v", status, uri)
	}
	// At the limit (main and the new one): 422.
	if status, _ := call(t, s, "POST", "/projects/two-dbs/branches", createBody("")); status != http.StatusUnprocessableEntity {
		t.Errorf("past the branch limit: %d, want 422", status)
	}
	// expires_at refused on this account.
	expires := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if status, out := call(t, s, "POST", "/projects/one-db/branches", createBody(expires)); status != http.StatusBadRequest || out["message"] != ExpiresAtRefusedMessage {
		t.Errorf("expires_at refused: %d %v", status, out)
	}
	s.cfg.Branching.RefuseExpiresAt = false
	for _, bad := range []string{time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), time.Now().Add(31 * 24 * time.Hour).UTC().Format(time.RFC3339)} {
		if status, _ := call(t, s, "POST", "/projects/one-db/branches", createBody(bad)); status != http.StatusBadRequest {
			t.Errorf("expires_at %s: %d, want 400", bad, status)
		}
	}
	if status, _ := call(t, s, "DELETE", "/projects/one-db/branches/"+s.Branches("one-db")[0].ID, nil); status != http.StatusUnprocessableEntity {
		t.Errorf("delete the default branch: %d, want 422", status)
	}
}

// A request body the spec would reject is reported, as for GETs.
func TestCreateBranchBodyCheckedAgainstSpec(t *testing.T) {
	s := New(Config{APIKey: testKey, Spec: loadSpec(t)})
	defer s.Close()
	s.AddProject(Project{ID: "one-db"})
	call(t, s, "POST", "/projects/one-db/branches", map[string]any{"branch": map[string]any{"name": 5, "parent_id": "Not An Id!"}})
	v := s.SpecViolations()
	if len(v) == 0 || v[0].Kind != "request" {
		t.Fatalf("violations %v, want the request's body", v)
	}
}
