package neonapi

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits from the spec: GET /projects takes limit 1..400 (default 10);
// branches take the shared LimitParam, 1..10000.
const (
	defaultProjectsLimit = 10
	maxProjectsLimit     = 400
	maxBranchesLimit     = 10000
)

// projectFields are the fields the spec's ProjectListItem and Project share,
// all the required ones included.
type projectFields struct {
	ID                          string `json:"id"`
	PlatformID                  string `json:"platform_id"`
	RegionID                    string `json:"region_id"`
	Name                        string `json:"name"`
	Provisioner                 string `json:"provisioner"`
	PgVersion                   int    `json:"pg_version"`
	ProxyHost                   string `json:"proxy_host"`
	BranchLogicalSizeLimit      int64  `json:"branch_logical_size_limit"`
	BranchLogicalSizeLimitBytes int64  `json:"branch_logical_size_limit_bytes"`
	StorePasswords              bool   `json:"store_passwords"`
	CPUUsedSec                  int64  `json:"cpu_used_sec"`
	CreationSource              string `json:"creation_source"`
	CreatedAt                   string `json:"created_at"`
	UpdatedAt                   string `json:"updated_at"`
	OwnerID                     string `json:"owner_id"`
	OrgID                       string `json:"org_id,omitempty"`
	HistoryRetentionSeconds     int32  `json:"history_retention_seconds"`
	SyntheticStorageSize        int64  `json:"synthetic_storage_size"`
}

// projectListItem is the spec's ProjectListItem.
type projectListItem struct {
	projectFields
	ActiveTime int64 `json:"active_time"`
}

// projectDetails is the spec's Project (GET /projects/{project_id}).
type projectDetails struct {
	projectFields
	DataStorageBytesHour   int64  `json:"data_storage_bytes_hour"`
	DataTransferBytes      int64  `json:"data_transfer_bytes"`
	WrittenDataBytes       int64  `json:"written_data_bytes"`
	ComputeTimeSeconds     int64  `json:"compute_time_seconds"`
	ActiveTimeSeconds      int64  `json:"active_time_seconds"`
	ConsumptionPeriodStart string `json:"consumption_period_start"`
	ConsumptionPeriodEnd   string `json:"consumption_period_end"`
}

// branchJSON is the spec's Branch with every required field.
type branchJSON struct {
	ID                 string `json:"id"`
	ProjectID          string `json:"project_id"`
	ParentID           string `json:"parent_id,omitempty"`
	Name               string `json:"name"`
	CurrentState       string `json:"current_state"`
	StateChangedAt     string `json:"state_changed_at"`
	LogicalSize        int64  `json:"logical_size"`
	CreationSource     string `json:"creation_source"`
	Primary            bool   `json:"primary"`
	Default            bool   `json:"default"`
	Protected          bool   `json:"protected"`
	CPUUsedSec         int64  `json:"cpu_used_sec"`
	ComputeTimeSeconds int64  `json:"compute_time_seconds"`
	ActiveTimeSeconds  int64  `json:"active_time_seconds"`
	WrittenDataBytes   int64  `json:"written_data_bytes"`
	DataTransferBytes  int64  `json:"data_transfer_bytes"`
	CreatedAt          string `json:"created_at"`
	UpdatedAt          string `json:"updated_at"`
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// orgOf is the organization a project belongs to. A project added without
// an OrgID belongs to Config.RequireOrgID when that is set, so a test that
// only wants the org_id requirement need not label every project.
func (s *Server) orgOf(p *project) string {
	if p.OrgID != "" {
		return p.OrgID
	}
	return s.cfg.RequireOrgID
}

func (s *Server) fields(p *project) projectFields {
	region := strings.TrimPrefix(p.RegionID, "aws-")
	return projectFields{
		ID:                          p.ID,
		PlatformID:                  "aws",
		RegionID:                    p.RegionID,
		Name:                        p.Name,
		Provisioner:                 "k8s-neonvm",
		PgVersion:                   p.PgVersion,
		ProxyHost:                   region + ".aws.neon.tech",
		BranchLogicalSizeLimit:      3072,
		BranchLogicalSizeLimitBytes: 3072 << 20,
		StorePasswords:              true,
		CPUUsedSec:                  0,
		CreationSource:              "console",
		CreatedAt:                   ts(p.createdAt),
		UpdatedAt:                   ts(p.createdAt.Add(time.Hour)),
		OwnerID:                     "0c6a1f3e-5b4d-4e2a-9f7c-2d8e6b1a4c90",
		OrgID:                       s.orgOf(p),
		HistoryRetentionSeconds:     86400,
		SyntheticStorageSize:        cmp.Or(p.SyntheticStorageSize, 31<<20),
	}
}

// queryLimit reads the limit parameter: def when it is absent, else a whole
// number from 1 to max. On anything else it answers 400 and returns false.
func queryLimit(w http.ResponseWriter, q url.Values, def, max int, requestID string) (int, bool) {
	v := q.Get("limit")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d", max), requestID)
		return 0, false
	}
	return n, true
}

// lockProject takes s.mu and returns the project; for an unknown one it
// unlocks again, answers 404 and returns nil.
func (s *Server) lockProject(w http.ResponseWriter, projectID, requestID string) *project {
	s.mu.Lock()
	p, ok := s.byID[projectID]
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "project not found", requestID)
		return nil
	}
	return p
}

// listProjects serves GET /projects. Like Neon, it returns
// pagination.cursor on every page that has projects, the last one included,
// so a client can only tell the end by a short (or empty) page.
func (s *Server) listProjects(w http.ResponseWriter, q url.Values, requestID string) {
	limit, ok := queryLimit(w, q, defaultProjectsLimit, maxProjectsLimit, requestID)
	if !ok {
		return
	}
	orgID := q.Get("org_id")
	if orgID != "" && !idPattern.MatchString(orgID) {
		writeError(w, http.StatusBadRequest, "org_id is invalid", requestID)
		return
	}
	if s.cfg.RequireOrgID != "" && orgID == "" {
		writeError(w, http.StatusBadRequest, OrgIDRequiredMessage, requestID)
		return
	}
	search := q.Get("search")
	cursor := q.Get("cursor")

	s.mu.Lock()
	start := 0
	if cursor != "" {
		i := slices.IndexFunc(s.projects, func(p *project) bool { return p.ID == cursor })
		if i < 0 {
			s.mu.Unlock()
			writeError(w, http.StatusBadRequest, "invalid cursor", requestID)
			return
		}
		start = i + 1
	}
	type response struct {
		Projects              []projectListItem   `json:"projects"`
		UnavailableProjectIDs []string            `json:"unavailable_project_ids,omitempty"`
		Pagination            *pagination         `json:"pagination,omitempty"`
		Applications          map[string][]string `json:"applications"`
		Integrations          map[string][]string `json:"integrations"`
	}
	resp := response{Projects: []projectListItem{}, Applications: map[string][]string{}, Integrations: map[string][]string{}}
	last := ""
	for _, p := range s.projects[start:] {
		if len(resp.Projects)+len(resp.UnavailableProjectIDs) >= limit {
			break
		}
		if orgID != "" && s.orgOf(p) != orgID {
			continue
		}
		if search != "" && !strings.Contains(p.Name, search) && !strings.Contains(p.ID, search) {
			continue
		}
		if p.Unavailable {
			resp.UnavailableProjectIDs = append(resp.UnavailableProjectIDs, p.ID)
		} else {
			resp.Projects = append(resp.Projects, projectListItem{projectFields: s.fields(p), ActiveTime: 3600})
		}
		last = p.ID
	}
	s.mu.Unlock()

	switch {
	case last != "":
		resp.Pagination = &pagination{Cursor: last}
	case cursor != "":
		// An empty page after a full one: Neon still answers a cursor.
		resp.Pagination = &pagination{Cursor: cursor}
	}
	writeJSON(w, http.StatusOK, resp)
}

type pagination struct {
	Cursor string `json:"cursor"`
}

func (s *Server) getProject(w http.ResponseWriter, id, requestID string) {
	s.mu.Lock()
	p, ok := s.byID[id]
	var body any
	if ok {
		start := time.Date(p.createdAt.Year(), p.createdAt.Month(), 1, 0, 0, 0, 0, time.UTC)
		body = map[string]any{"project": projectDetails{
			projectFields:          s.fields(p),
			DataStorageBytesHour:   1 << 20,
			DataTransferBytes:      1 << 20,
			WrittenDataBytes:       1 << 20,
			ComputeTimeSeconds:     3600,
			ActiveTimeSeconds:      3600,
			ConsumptionPeriodStart: ts(start),
			ConsumptionPeriodEnd:   ts(start.AddDate(0, 1, 0)),
		}}
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "project not found", requestID)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// listBranches serves GET /projects/{project_id}/branches with the spec's
// search, sort_by, sort_order, limit and cursor. The cursor (pagination.next)
// is present only while more branches follow.
func (s *Server) listBranches(w http.ResponseWriter, projectID string, q url.Values, requestID string) {
	limit, ok := queryLimit(w, q, 0, maxBranchesLimit, requestID)
	if !ok {
		return
	}
	sortBy := cmp.Or(q.Get("sort_by"), "updated_at")
	sortOrder := cmp.Or(q.Get("sort_order"), "desc")
	if !slices.Contains([]string{"name", "created_at", "updated_at"}, sortBy) || !slices.Contains([]string{"asc", "desc"}, sortOrder) {
		writeError(w, http.StatusBadRequest, "invalid sort_by or sort_order", requestID)
		return
	}
	search := q.Get("search")
	cursor := q.Get("cursor")

	p := s.lockProject(w, projectID, requestID)
	if p == nil {
		return
	}
	branches := slices.Clone(p.branches)
	defaultID := ""
	for _, b := range branches {
		if b.Default {
			defaultID = b.ID
		}
	}
	s.mu.Unlock()

	slices.SortStableFunc(branches, func(a, b *branch) int {
		c := a.createdAt.Compare(b.createdAt)
		if sortBy == "name" {
			c = strings.Compare(a.Name, b.Name)
		}
		if sortOrder == "desc" {
			c = -c
		}
		return cmp.Or(c, strings.Compare(a.ID, b.ID))
	})
	if search != "" {
		branches = slices.DeleteFunc(branches, func(b *branch) bool {
			return !strings.Contains(b.Name, search) && !strings.Contains(b.ID, search)
		})
	}
	if cursor != "" {
		i := slices.IndexFunc(branches, func(b *branch) bool { return b.ID == cursor })
		if i < 0 {
			writeError(w, http.StatusBadRequest, "invalid cursor", requestID)
			return
		}
		branches = branches[i+1:]
	}
	next := ""
	if limit > 0 && len(branches) > limit {
		branches = branches[:limit]
		next = branches[limit-1].ID
	}

	out := []branchJSON{}
	for _, b := range branches {
		parent := ""
		if !b.Default {
			parent = defaultID
		}
		out = append(out, branchJSON{
			ID:                 b.ID,
			ProjectID:          projectID,
			ParentID:           parent,
			Name:               b.Name,
			CurrentState:       "ready",
			StateChangedAt:     ts(b.createdAt),
			LogicalSize:        30 << 20,
			CreationSource:     "console",
			Primary:            b.Default,
			Default:            b.Default,
			CPUUsedSec:         0,
			ComputeTimeSeconds: 600,
			ActiveTimeSeconds:  600,
			WrittenDataBytes:   1 << 20,
			DataTransferBytes:  1 << 20,
			CreatedAt:          ts(b.createdAt),
			UpdatedAt:          ts(b.createdAt),
		})
	}
	type cursorPagination struct {
		Next      string `json:"next,omitempty"`
		SortBy    string `json:"sort_by"`
		SortOrder string `json:"sort_order"`
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"branches":    out,
		"annotations": map[string]any{},
		"pagination":  cursorPagination{Next: next, SortBy: sortBy, SortOrder: sortOrder},
	})
}

// connectionURI serves GET /projects/{project_id}/connection_uri.
func (s *Server) connectionURI(w http.ResponseWriter, projectID string, q url.Values, requestID string) {
	database, role := q.Get("database_name"), q.Get("role_name")
	if database == "" || role == "" {
		writeError(w, http.StatusBadRequest, "database_name and role_name are required", requestID)
		return
	}
	pooled := false
	if v := q.Get("pooled"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil || (v != "true" && v != "false") {
			writeError(w, http.StatusBadRequest, "pooled must be true or false", requestID)
			return
		}
		pooled = b
	}
	branchID := q.Get("branch_id")

	s.mu.Lock()
	p, ok := s.byID[projectID]
	var b *branch
	if ok {
		for _, c := range p.branches {
			if (branchID == "" && c.Default) || c.ID == branchID {
				b = c
			}
		}
	}
	s.mu.Unlock()
	switch {
	case !ok:
		writeError(w, http.StatusNotFound, "project not found", requestID)
		return
	case b == nil:
		writeError(w, http.StatusNotFound, fmt.Sprintf("branch %q not found", branchID), requestID)
		return
	}
	db, ok := b.Databases[database]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("database %q not found", database), requestID)
		return
	}
	if owner := cmp.Or(db.Role, userOf(db.URI)); role != owner {
		writeError(w, http.StatusNotFound, fmt.Sprintf("role %q not found", role), requestID)
		return
	}
	uri := db.URI
	if pooled {
		uri = poolerURI(uri)
	}
	writeJSON(w, http.StatusOK, map[string]string{"uri": uri})
}

func userOf(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.User == nil {
		return ""
	}
	return u.User.Username()
}

// poolerURI is what Neon hands back for pooled=true: the same URI with
// "-pooler" appended to the host's first label (ep-x.region... becomes
// ep-x-pooler.region...).
func poolerURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		return uri
	}
	host, port := u.Hostname(), u.Port()
	first, rest, found := strings.Cut(host, ".")
	host = first + "-pooler"
	if found {
		host += "." + rest
	}
	if port != "" {
		host += ":" + port
	}
	u.Host = host
	return u.String()
}
