package neonapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// BranchConfig says how POST and DELETE /projects/{id}/branches behave.
// The zero value creates and deletes at once, without limits, and lets a
// new branch share its parent's connection URIs (no copy of the data).
type BranchConfig struct {
	// OperationTime is how long each operation a change starts
	// (create_branch, start_compute, suspend_compute, delete_timeline)
	// runs. While one runs, any other branch change on the project answers
	// 423, as Neon does.
	OperationTime time.Duration

	// MaxBranches is the plan's branch limit per project, the default
	// branch included; creating one more answers 422. 0: unlimited.
	MaxBranches int
	// ProjectMaxBranches overrides MaxBranches for the projects it names.
	ProjectMaxBranches map[string]int

	// RefuseExpiresAt imitates an account outside the early-access
	// program: a create with branch.expires_at answers 400.
	RefuseExpiresAt bool

	// CopyDatabase makes a new branch's copy of one of its parent's
	// databases and returns where it is; nil: the branch's database is the
	// parent's (fine for API tests, never for a rehearsal). branchID names
	// the new branch, so a copy can be named after it.
	CopyDatabase func(ctx context.Context, parent Database, branchID, databaseName string) (Database, error)
	// DropDatabase removes a copy CopyDatabase made, when its branch is
	// deleted.
	DropDatabase func(ctx context.Context, copy Database) error

	// FailChanges are statuses answered, one each, by the next branch
	// creations and deletions (before anything is done), e.g. 503 or 429,
	// for a test of a client's retries on those routes alone.
	FailChanges []int
}

// Messages Neon answers to branch changes, in its wording.
const (
	conflictingOperationsMessage = "project already has running conflicting operations, scheduling of new ones is prohibited"
	branchLimitMessage           = "branches limit exceeded"
	// ExpiresAtRefusedMessage is the 400 an account outside the early
	// access program gets for branch.expires_at.
	ExpiresAtRefusedMessage = "expires_at is not available: the feature is limited to participants in the Early Access Program"
)

// maxExpiry is how far ahead Neon accepts expires_at.
const maxExpiry = 30 * 24 * time.Hour

const (
	routeCreateBranch = "POST /projects/{project_id}/branches"
	routeDeleteBranch = "DELETE /projects/{project_id}/branches/{branch_id}"
	routeGetOperation = "GET /projects/{project_id}/operations/{operation_id}"
)

func matchBranchChange(method, path string) (string, map[string]string) {
	rest, ok := strings.CutPrefix(path, PathPrefix)
	if !ok {
		return "", nil
	}
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	if len(parts) < 3 || parts[0] != "projects" || parts[2] != "branches" {
		return "", nil
	}
	switch {
	case method == http.MethodPost && len(parts) == 3:
		return routeCreateBranch, map[string]string{"project_id": parts[1]}
	case method == http.MethodDelete && len(parts) == 4:
		return routeDeleteBranch, map[string]string{"project_id": parts[1], "branch_id": parts[3]}
	}
	return "", nil
}

// operation is one of a project's operations; it runs until finishAt.
type operation struct {
	id, branchID, endpointID, action string
	created, finishAt                time.Time
}

func (o *operation) status(now time.Time) string {
	if now.Before(o.finishAt) {
		return "running"
	}
	return "finished"
}

type operationJSON struct {
	ID              string `json:"id"`
	ProjectID       string `json:"project_id"`
	BranchID        string `json:"branch_id,omitempty"`
	EndpointID      string `json:"endpoint_id,omitempty"`
	Action          string `json:"action"`
	Status          string `json:"status"`
	FailuresCount   int32  `json:"failures_count"`
	CreatedAt       string `json:"created_at"`
	UpdatedAt       string `json:"updated_at"`
	TotalDurationMs int32  `json:"total_duration_ms"`
}

func (o *operation) json(projectID string, now time.Time) operationJSON {
	return operationJSON{
		ID: o.id, ProjectID: projectID, BranchID: o.branchID, EndpointID: o.endpointID,
		Action: o.action, Status: o.status(now), CreatedAt: ts(o.created), UpdatedAt: ts(now),
		TotalDurationMs: int32(o.finishAt.Sub(o.created).Milliseconds()),
	}
}

// busy reports whether an operation of p is still running. Call with s.mu.
func (p *project) busy(now time.Time) bool {
	return slices.ContainsFunc(p.operations, func(o *operation) bool { return now.Before(o.finishAt) })
}

// startOperations records one operation per action on branch b. Call with
// s.mu.
func (s *Server) startOperations(p *project, b *branch, now time.Time, actions ...string) []*operation {
	var out []*operation
	for _, a := range actions {
		o := &operation{id: newRequestID(), branchID: b.ID, action: a, created: now, finishAt: now.Add(s.cfg.Branching.OperationTime)}
		if a == "start_compute" || a == "suspend_compute" {
			o.endpointID = b.endpointID
		}
		p.operations = append(p.operations, o)
		out = append(out, o)
	}
	return out
}

type createBranchRequest struct {
	Branch struct {
		ParentID  string `json:"parent_id"`
		Name      string `json:"name"`
		ExpiresAt string `json:"expires_at"`
	} `json:"branch"`
	Endpoints []struct {
		Type string `json:"type"`
	} `json:"endpoints"`
}

type endpointJSON struct {
	Host                  string         `json:"host"`
	ID                    string         `json:"id"`
	ProjectID             string         `json:"project_id"`
	BranchID              string         `json:"branch_id"`
	RegionID              string         `json:"region_id"`
	AutoscalingLimitMinCU float64        `json:"autoscaling_limit_min_cu"`
	AutoscalingLimitMaxCU float64        `json:"autoscaling_limit_max_cu"`
	Type                  string         `json:"type"`
	CurrentState          string         `json:"current_state"`
	PoolerEnabled         bool           `json:"pooler_enabled"`
	PoolerMode            string         `json:"pooler_mode"`
	Disabled              bool           `json:"disabled"`
	PasswordlessAccess    bool           `json:"passwordless_access"`
	CreationSource        string         `json:"creation_source"`
	CreatedAt             string         `json:"created_at"`
	UpdatedAt             string         `json:"updated_at"`
	Settings              map[string]any `json:"settings"`
	ProxyHost             string         `json:"proxy_host"`
	SuspendTimeoutSeconds int64          `json:"suspend_timeout_seconds"`
	Provisioner           string         `json:"provisioner"`
}

type connectionDetails struct {
	ConnectionURI        string `json:"connection_uri"`
	ConnectionParameters struct {
		Database   string `json:"database"`
		Password   string `json:"password"`
		Role       string `json:"role"`
		Host       string `json:"host"`
		PoolerHost string `json:"pooler_host"`
	} `json:"connection_parameters"`
}

// failChange answers the next of Branching.FailChanges, if any is left.
func (s *Server) failChange(w http.ResponseWriter, requestID string) bool {
	s.mu.Lock()
	status := 0
	if f := s.cfg.Branching.FailChanges; len(f) > 0 {
		status, s.cfg.Branching.FailChanges = f[0], f[1:]
	}
	s.mu.Unlock()
	switch status {
	case 0:
		return false
	case http.StatusLocked:
		writeError(w, status, conflictingOperationsMessage, requestID)
	case http.StatusServiceUnavailable:
		writeError(w, status, unavailableMessage, requestID)
	case http.StatusTooManyRequests:
		writeError(w, status, rateLimitMessage, requestID)
	default:
		writeError(w, status, http.StatusText(status), requestID)
	}
	return true
}

// createBranch serves POST /projects/{project_id}/branches.
func (s *Server) createBranch(w http.ResponseWriter, req *http.Request, projectID string, body []byte, requestID string) {
	if s.failChange(w, requestID) {
		return
	}
	var in createBranchRequest
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			writeError(w, http.StatusBadRequest, "invalid request body: "+err.Error(), requestID)
			return
		}
	}
	now := time.Now()
	if in.Branch.ExpiresAt != "" {
		if s.cfg.Branching.RefuseExpiresAt {
			writeError(w, http.StatusBadRequest, ExpiresAtRefusedMessage, requestID)
			return
		}
		at, err := time.Parse(time.RFC3339, in.Branch.ExpiresAt)
		switch {
		case err != nil || strings.Contains(in.Branch.ExpiresAt, "."):
			writeError(w, http.StatusBadRequest, "expires_at must be an RFC 3339 timestamp with precision up to seconds", requestID)
			return
		case !at.After(now):
			writeError(w, http.StatusBadRequest, "expires_at must be in the future", requestID)
			return
		case at.After(now.Add(maxExpiry)):
			writeError(w, http.StatusBadRequest, "expires_at must be at most 30 days in the future", requestID)
			return
		}
	}
	for _, e := range in.Endpoints {
		if e.Type != "read_write" && e.Type != "read_only" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid endpoint type %q", e.Type), requestID)
			return
		}
	}

	p := s.lockProject(w, projectID, requestID)
	if p == nil {
		return
	}
	if p.busy(now) {
		s.mu.Unlock()
		writeError(w, http.StatusLocked, conflictingOperationsMessage, requestID)
		return
	}
	limit := s.cfg.Branching.MaxBranches
	if l, ok := s.cfg.Branching.ProjectMaxBranches[projectID]; ok {
		limit = l
	}
	if limit > 0 && len(p.branches) >= limit {
		s.mu.Unlock()
		writeError(w, http.StatusUnprocessableEntity, branchLimitMessage, requestID)
		return
	}
	var parent *branch
	for _, b := range p.branches {
		if (in.Branch.ParentID == "" && b.Default) || b.ID == in.Branch.ParentID {
			parent = b
		}
	}
	if parent == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, fmt.Sprintf("parent branch %q not found", in.Branch.ParentID), requestID)
		return
	}
	s.seq++
	nb := &branch{
		Branch:    Branch{ID: fmt.Sprintf("br-%s-%08d", words[s.seq%len(words)], s.seq), Name: in.Branch.Name},
		createdAt: now, parentID: parent.ID, expiresAt: in.Branch.ExpiresAt, created: true,
	}
	if nb.Name == "" {
		nb.Name = nb.ID
	}
	if len(in.Endpoints) > 0 {
		nb.endpointID = fmt.Sprintf("ep-%s-%08d", words[(s.seq+5)%len(words)], s.seq)
	}
	parentDBs := parent.Databases
	regionID := p.RegionID
	// Reserve the branch (and its operations) now, so a concurrent change
	// sees the project busy while the copy is made.
	p.branches = append(p.branches, nb)
	actions := []string{"create_branch"}
	if nb.endpointID != "" {
		actions = append(actions, "start_compute")
	}
	ops := s.startOperations(p, nb, now, actions...)
	s.mu.Unlock()

	dbs := map[string]Database{}
	names := make([]string, 0, len(parentDBs))
	for name := range parentDBs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		db := parentDBs[name]
		if s.cfg.Branching.CopyDatabase != nil {
			c, err := s.cfg.Branching.CopyDatabase(req.Context(), db, nb.ID, name)
			if err != nil {
				s.dropBranch(p, nb, dbs)
				writeError(w, http.StatusInternalServerError, "could not create the branch: "+err.Error(), requestID)
				return
			}
			if c.Role == "" {
				c.Role = db.Role
			}
			db = c
		}
		dbs[name] = db
	}
	s.mu.Lock()
	nb.Databases = dbs
	s.mu.Unlock()

	type roleJSON struct {
		BranchID  string `json:"branch_id"`
		Name      string `json:"name"`
		Password  string `json:"password,omitempty"`
		Protected bool   `json:"protected"`
		CreatedAt string `json:"created_at"`
		UpdatedAt string `json:"updated_at"`
	}
	type databaseJSON struct {
		ID        int64  `json:"id"`
		BranchID  string `json:"branch_id"`
		Name      string `json:"name"`
		OwnerName string `json:"owner_name"`
		CreatedAt string `json:"created_at"`
		UpdatedAt string `json:"updated_at"`
	}
	roles := []roleJSON{}
	databases := []databaseJSON{}
	seenRole := map[string]bool{}
	for i, name := range names {
		db := dbs[name]
		role := db.Role
		if role == "" {
			role = userOf(db.URI)
		}
		databases = append(databases, databaseJSON{ID: int64(i + 1), BranchID: nb.ID, Name: name, OwnerName: role, CreatedAt: ts(now), UpdatedAt: ts(now)})
		if !seenRole[role] {
			seenRole[role] = true
			roles = append(roles, roleJSON{BranchID: nb.ID, Name: role, CreatedAt: ts(now), UpdatedAt: ts(now)})
		}
	}
	endpoints := []endpointJSON{}
	if nb.endpointID != "" {
		host := "ep.invalid"
		if len(names) > 0 {
			if u, err := url.Parse(dbs[names[0]].URI); err == nil && u.Hostname() != "" {
				host = u.Hostname()
			}
		}
		endpoints = append(endpoints, endpointJSON{
			Host: host, ID: nb.endpointID, ProjectID: projectID, BranchID: nb.ID, RegionID: regionID,
			AutoscalingLimitMinCU: 0.25, AutoscalingLimitMaxCU: 0.25, Type: in.Endpoints[0].Type, CurrentState: "init",
			PoolerMode: "transaction", CreationSource: "console", CreatedAt: ts(now), UpdatedAt: ts(now),
			Settings: map[string]any{}, ProxyHost: strings.TrimPrefix(regionID, "aws-") + ".aws.neon.tech",
			SuspendTimeoutSeconds: 0, Provisioner: "k8s-neonvm",
		})
	}
	opsJSON := make([]operationJSON, len(ops))
	for i, o := range ops {
		opsJSON[i] = o.json(projectID, now)
	}
	resp := map[string]any{
		"branch":     s.branchJSON(projectID, nb, "init"),
		"endpoints":  endpoints,
		"operations": opsJSON,
		"roles":      roles,
		"databases":  databases,
	}
	// Neon leaves connection_uris out when the parent has several roles or
	// databases: the client must then ask connection_uri?branch_id=.
	if len(names) == 1 && len(roles) == 1 && nb.endpointID != "" {
		var cd connectionDetails
		db := dbs[names[0]]
		cd.ConnectionURI = db.URI
		cd.ConnectionParameters.Database = names[0]
		cd.ConnectionParameters.Role = roles[0].Name
		if u, err := url.Parse(db.URI); err == nil {
			cd.ConnectionParameters.Password, _ = u.User.Password()
			cd.ConnectionParameters.Host = u.Host
			cd.ConnectionParameters.PoolerHost = hostOf(poolerURI(db.URI))
		}
		resp["connection_uris"] = []connectionDetails{cd}
	}
	writeJSON(w, http.StatusCreated, resp)
}

func hostOf(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return ""
	}
	return u.Host
}

func (s *Server) branchJSON(projectID string, b *branch, state string) map[string]any {
	out := map[string]any{
		"id": b.ID, "project_id": projectID, "name": b.Name, "current_state": state,
		"state_changed_at": ts(b.createdAt), "creation_source": "console", "created_at": ts(b.createdAt),
		"updated_at": ts(b.createdAt), "default": b.Default, "protected": false, "primary": b.Default,
		"cpu_used_sec": 0, "active_time_seconds": 0, "compute_time_seconds": 0, "written_data_bytes": 0,
		"data_transfer_bytes": 0, "init_source": "parent-data",
	}
	if b.parentID != "" {
		out["parent_id"] = b.parentID
	}
	if b.expiresAt != "" {
		out["expires_at"] = b.expiresAt
	}
	return out
}

// dropBranch removes b from p and drops the copies made for it.
func (s *Server) dropBranch(p *project, b *branch, dbs map[string]Database) {
	s.mu.Lock()
	p.branches = slices.DeleteFunc(p.branches, func(c *branch) bool { return c == b })
	s.mu.Unlock()
	if s.cfg.Branching.DropDatabase == nil || s.cfg.Branching.CopyDatabase == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, db := range dbs {
		s.cfg.Branching.DropDatabase(ctx, db) //nolint:errcheck // best effort; Branches shows what is left
	}
}

// deleteBranch serves DELETE /projects/{project_id}/branches/{branch_id}.
func (s *Server) deleteBranch(w http.ResponseWriter, req *http.Request, projectID, branchID, requestID string) {
	if s.failChange(w, requestID) {
		return
	}
	now := time.Now()
	p := s.lockProject(w, projectID, requestID)
	if p == nil {
		return
	}
	i := slices.IndexFunc(p.branches, func(b *branch) bool { return b.ID == branchID })
	if i < 0 {
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent) // the spec: already deleted
		return
	}
	b := p.branches[i]
	switch {
	case b.Default:
		s.mu.Unlock()
		writeError(w, http.StatusUnprocessableEntity, "cannot delete the default branch", requestID)
		return
	case p.busy(now):
		s.mu.Unlock()
		writeError(w, http.StatusLocked, conflictingOperationsMessage, requestID)
		return
	}
	var actions []string
	if b.endpointID != "" {
		actions = append(actions, "suspend_compute")
	}
	ops := s.startOperations(p, b, now, append(actions, "delete_timeline")...)
	p.branches = slices.Delete(p.branches, i, i+1)
	dbs := b.Databases
	s.mu.Unlock()
	if b.created && s.cfg.Branching.DropDatabase != nil && s.cfg.Branching.CopyDatabase != nil {
		for _, db := range dbs {
			s.cfg.Branching.DropDatabase(req.Context(), db) //nolint:errcheck // best effort
		}
	}
	opsJSON := make([]operationJSON, len(ops))
	for i, o := range ops {
		opsJSON[i] = o.json(projectID, now)
	}
	writeJSON(w, http.StatusOK, map[string]any{"branch": s.branchJSON(projectID, b, "ready"), "operations": opsJSON})
}

// getOperation serves GET /projects/{project_id}/operations/{operation_id}.
func (s *Server) getOperation(w http.ResponseWriter, projectID, operationID, requestID string) {
	now := time.Now()
	s.mu.Lock()
	p, ok := s.byID[projectID]
	var op *operation
	if ok {
		for _, o := range p.operations {
			if o.id == operationID {
				op = o
			}
		}
	}
	s.mu.Unlock()
	if op == nil {
		writeError(w, http.StatusNotFound, "operation not found", requestID)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"operation": op.json(projectID, now)})
}

// BranchInfo is one branch as a test sees it.
type BranchInfo struct {
	ID, Name, ParentID, ExpiresAt string
	Default                       bool
	Databases                     map[string]Database
}

// Branches lists the branches a project has now, those made through the
// API included, so a test can check that a run left none behind.
func (s *Server) Branches(projectID string) []BranchInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.byID[projectID]
	if !ok {
		return nil
	}
	var out []BranchInfo
	for _, b := range p.branches {
		out = append(out, BranchInfo{ID: b.ID, Name: b.Name, ParentID: b.parentID, ExpiresAt: b.expiresAt, Default: b.Default, Databases: b.Databases})
	}
	return out
}

// CreatedBranches lists every branch made through the API and not yet
// deleted, over all projects.
func (s *Server) CreatedBranches() []BranchInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []BranchInfo
	for _, p := range s.projects {
		for _, b := range p.branches {
			if b.created {
				out = append(out, BranchInfo{ID: b.ID, Name: b.Name, ParentID: b.parentID, ExpiresAt: b.expiresAt, Databases: b.Databases})
			}
		}
	}
	return out
}

// finishOperations ends every operation of a project now (for tests).
func (s *Server) finishOperations(projectID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.byID[projectID]; ok {
		for _, o := range p.operations {
			o.finishAt = time.Now()
		}
	}
}
