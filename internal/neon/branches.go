package neon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/internal/retry"
)

// Branch changes (create, delete) are not GETs: Neon warns that repeating a
// change whose answer was lost may repeat it. So a change is retried only
// when the answer proves it was not made (429: refused before any work;
// 423: another operation holds the project), or when repeating it is
// harmless (DELETE of a branch answers 204 once it is gone), or after
// checking that it was not made (a create whose answer was lost is looked
// up by its name first). Every attempt goes through the client's one
// limiter, like every GET.

// Operation is one of Neon's asynchronous operations on a project
// (create_branch, start_compute, delete_timeline, ...).
type Operation struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	Status string `json:"status"` // scheduling, running, finished, failed, ...
}

// done reports whether the operation will not hold the project any more.
func (o Operation) done() bool {
	switch o.Status {
	case "finished", "failed", "error", "cancelled", "skipped":
		return true
	}
	return false
}

// CreatedBranch is what pgfleet uses of Neon's answer to a branch creation.
type CreatedBranch struct {
	ID        string
	Name      string
	ParentID  string
	ExpiresAt string // "" when no expiry was set
	// ConnectionURIs are the new branch's connection strings: present only
	// when the parent has one role and one database. Credentials.
	ConnectionURIs []string
	// Operations are those the creation started; a change of the project
	// answers 423 until they are done. DeleteBranch waits for them.
	Operations []Operation
	// Found is set when the creation's answer was lost and the branch was
	// found by its name instead: URIs and operations are then unknown.
	Found bool
}

// CreateBranch creates a branch of parentID ("" = the project's default
// branch) named name, with a read-write endpoint, and, unless expiresAt is
// zero, an expires_at (RFC 3339 with seconds) after which Neon deletes it
// itself.
func (c *Client) CreateBranch(ctx context.Context, projectID, parentID, name string, expiresAt time.Time) (CreatedBranch, error) {
	type branchReq struct {
		ParentID  string `json:"parent_id,omitempty"`
		Name      string `json:"name"`
		ExpiresAt string `json:"expires_at,omitempty"`
	}
	in := struct {
		Branch    branchReq           `json:"branch"`
		Endpoints []map[string]string `json:"endpoints"`
	}{Branch: branchReq{ParentID: parentID, Name: name}, Endpoints: []map[string]string{{"type": "read_write"}}}
	if !expiresAt.IsZero() {
		in.Branch.ExpiresAt = expiresAt.UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	body, err := json.Marshal(in)
	if err != nil {
		return CreatedBranch{}, err
	}
	var resp struct {
		Branch struct {
			ID        string `json:"id"`
			Name      string `json:"name"`
			ParentID  string `json:"parent_id"`
			ExpiresAt string `json:"expires_at"`
		} `json:"branch"`
		Operations     []Operation `json:"operations"`
		ConnectionURIs []struct {
			URI string `json:"connection_uri"`
		} `json:"connection_uris"`
	}
	r := request{
		method:   http.MethodPost,
		route:    "/projects/{project_id}/branches",
		path:     "/projects/" + url.PathEscape(projectID) + "/branches",
		body:     body,
		notFound: fmt.Sprintf("project %s or its branch %s not found", projectID, parentID),
	}
	var found string
	err = c.change(ctx, r, &resp, func(ctx context.Context) (bool, error) {
		// The answer was lost: was the branch made? Its name is unique
		// to the run, so a branch of that name is this one.
		id, err := c.BranchID(ctx, projectID, name)
		if errors.Is(err, ErrBranchNotFound) {
			return false, nil
		}
		found = id
		return err == nil, err
	}, nil)
	if err != nil {
		return CreatedBranch{}, err
	}
	if found != "" {
		return CreatedBranch{ID: found, Name: name, ParentID: parentID, ExpiresAt: in.Branch.ExpiresAt, Found: true}, nil
	}
	out := CreatedBranch{ID: resp.Branch.ID, Name: resp.Branch.Name, ParentID: resp.Branch.ParentID, ExpiresAt: resp.Branch.ExpiresAt, Operations: resp.Operations}
	for _, u := range resp.ConnectionURIs {
		out.ConnectionURIs = append(out.ConnectionURIs, u.URI)
	}
	if out.ID == "" {
		return CreatedBranch{}, fmt.Errorf("neon: project %s answered a branch creation without a branch id", projectID)
	}
	return out, nil
}

// DeleteBranch deletes a branch; one already gone is not an error. While
// the project's operations run (those pending, from the branch's creation,
// first of all) Neon answers 423: DeleteBranch then waits for those
// operations, polling each one at growing intervals rather than retrying
// the delete in a loop, and tries again.
func (c *Client) DeleteBranch(ctx context.Context, projectID, branchID string, pending []Operation) error {
	r := request{
		method: http.MethodDelete,
		route:  "/projects/{project_id}/branches/{branch_id}",
		path:   "/projects/" + url.PathEscape(projectID) + "/branches/" + url.PathEscape(branchID),
	}
	// The answer (200 with the deletion's operations, or 204 for a branch
	// already gone) is not needed.
	return c.change(ctx, r, nil, nil, func(ctx context.Context) (bool, error) {
		return c.waitOperations(ctx, projectID, pending)
	})
}

// Operation fetches one operation (GET /projects/{project_id}/operations/{operation_id}).
func (c *Client) Operation(ctx context.Context, projectID, operationID string) (Operation, error) {
	var resp struct {
		Operation Operation `json:"operation"`
	}
	err := c.get(ctx, request{
		route: "/projects/{project_id}/operations/{operation_id}",
		path:  "/projects/" + url.PathEscape(projectID) + "/operations/" + url.PathEscape(operationID),
	}, &resp)
	return resp.Operation, err
}

// operationPolls are the waits before each look at a running operation: a
// branch's operations take about a second, so the first look usually finds
// them done, and a slow one is not asked about more than every 5 s.
var operationPolls = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second}

// waitOperations waits until the operations in ops are done. It asks only
// about the last one not known to be done: a creation's start_compute
// follows its create_branch, so when the last is done so are the others.
// waited is false when there was nothing to wait for.
func (c *Client) waitOperations(ctx context.Context, projectID string, ops []Operation) (waited bool, err error) {
	last := -1
	for i, op := range ops {
		if !op.done() {
			last = i
		}
	}
	if last < 0 {
		return false, nil // none known to wait for: the caller backs off instead
	}
	op := ops[last]
	for n := 0; !op.done(); n++ {
		if err := retry.Sleep(ctx, operationPolls[min(n, len(operationPolls)-1)]); err != nil {
			return true, err
		}
		got, err := c.Operation(ctx, projectID, op.ID)
		if err != nil {
			return true, err
		}
		op = got
	}
	for i := range ops[:last+1] {
		ops[i].Status = op.Status
	}
	return true, nil
}

// maxLockedWaits bounds how often a change waits out a 423 before it fails:
// a project whose operations never end must not stall the run.
const maxLockedWaits = 20

// change performs a POST or DELETE. A 429 is retried after a backoff, a 423
// after onLocked (wait for the operations that hold the project; nil: a
// backoff), both within MaxAttempts and maxLockedWaits. A 5xx or a lost
// answer is retried only when lostAnswer says the change was not made (a
// DELETE, harmless to repeat, passes nil: always retried); lostAnswer
// returning true ends the change as done.
func (c *Client) change(ctx context.Context, r request, out any, lostAnswer func(context.Context) (bool, error), onLocked func(context.Context) (waited bool, err error)) error {
	routeKey := r.method + " " + r.route
	u := c.base + r.path
	locked, other := 0, 0
	for attempt := 1; ; attempt++ {
		retryAfter, err := c.send(ctx, routeKey, r, u, attempt, out)
		if err == nil || ctx.Err() != nil {
			return err
		}
		var apiErr *APIError
		isAPI := errors.As(err, &apiErr)
		var te *transportError
		switch {
		case isAPI && apiErr.Status == http.StatusLocked:
			locked++
			if locked > maxLockedWaits {
				return err
			}
			if c.onRetry != nil {
				c.onRetry(routeKey, attempt, 0, err)
			}
			if onLocked != nil && locked == 1 {
				waited, werr := onLocked(ctx)
				if werr != nil {
					return fmt.Errorf("%w (waiting for the project's operations: %v)", err, werr)
				}
				if waited {
					continue
				}
			}
			if serr := retry.Sleep(ctx, c.backoff.Delay(min(locked, 5))+retryAfter); serr != nil {
				return serr
			}
			continue
		case isAPI && apiErr.Status == http.StatusTooManyRequests:
		case (isAPI && retryableStatus(apiErr.Status)) || (errors.As(err, &te) && retry.TransientNetwork(te.err)):
			if lostAnswer != nil {
				done, lerr := lostAnswer(ctx)
				if lerr != nil {
					return fmt.Errorf("%w (and checking whether it was done failed: %v)", err, lerr)
				}
				if done {
					return nil
				}
			}
		default:
			return err
		}
		other++
		if other >= c.maxAttempts {
			return err
		}
		if retryAfter > maxRetryAfter {
			return fmt.Errorf("%w (Neon asked to retry after %s; giving up)", err, retryAfter.Round(time.Second))
		}
		wait := max(c.backoff.Delay(other), retryAfter)
		if c.onRetry != nil {
			c.onRetry(routeKey, attempt, wait, err)
		}
		if serr := retry.Sleep(ctx, wait); serr != nil {
			return serr
		}
	}
}

// IsExpiresAtRefused reports whether Neon refused a branch's expires_at:
// the spec calls it early access, so an account outside the program gets a
// 400 naming the field.
func IsExpiresAtRefused(err error) bool {
	var e *APIError
	return errors.As(err, &e) && (e.Status == http.StatusBadRequest || e.Status == http.StatusForbidden) && strings.Contains(e.Message, "expires_at")
}

// IsBranchLimit reports whether Neon refused a branch because the project
// is at its plan's branch limit (422).
func IsBranchLimit(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusUnprocessableEntity
}

// Calls is how many requests the client has sent, retries included.
func (c *Client) Calls() int64 { return c.calls.Load() }
