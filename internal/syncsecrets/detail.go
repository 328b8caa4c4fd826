package syncsecrets

import "time"

// Actions in Detail.Action: past tense for what a run did, the verb for
// what a dry run would do.
const (
	didCreate   = "created"
	didUpdate   = "updated"
	didNothing  = "unchanged"
	didLeave    = "left" // max-duration was spent before the tenant's writes
	didFail     = "failed"
	wouldCreate = "create"
	wouldUpdate = "update"
)

// Detail is what sync-secrets reports about one tenant. Its JSON tags are
// the tenant's fields in the JSON report. It never holds the value or its
// fingerprint.
type Detail struct {
	Action             string     `json:"action"`                        // created, updated, unchanged, left, failed; dry run: create, update, unchanged
	Secret             string     `json:"secret"`                        // the secret's name
	Target             string     `json:"target"`                        // where it lives: repository o/r, environment "x" of o/r, organization o
	Environment        string     `json:"environment,omitempty"`         // environment target: the tenant's environment
	EnvironmentCreated bool       `json:"environment_created,omitempty"` // this run created the environment (dry run: would)
	Why                string     `json:"why,omitempty"`                 // why the secret is (or would be) written
	UpdatedAt          *time.Time `json:"secret_updated_at,omitempty"`   // the secret's updated_at as GitHub reported it after the write
	Writes             int        `json:"writes"`                        // writes GitHub answered for this tenant (rate-limit retries not counted)
	Refused            int        `json:"refused,omitempty"`             // of this tenant's write requests, those GitHub refused as too fast (secondary rate limit) and pgfleet sent again later

	envTarget bool
}

// Cells implements fleet.Detail: (environment,) secret, action.
func (d *Detail) Cells() []string {
	if d.envTarget {
		return []string{orDash(d.Environment), orDash(d.Secret), d.actionText()}
	}
	return []string{orDash(d.Secret), d.actionText()}
}

func (d *Detail) actionText() string {
	why := ""
	if d.Why != "" {
		why = " (" + d.Why + ")"
	}
	switch d.Action {
	case didCreate:
		if d.EnvironmentCreated {
			return "created, with its environment"
		}
		return "created" + why
	case didUpdate:
		return "updated" + why
	case didLeave:
		s := "left for the next run (max-duration spent"
		if d.EnvironmentCreated {
			s += "; environment created"
		}
		if d.Why != "" {
			s += "; " + d.Why
		}
		return s + ")"
	case wouldCreate:
		if d.EnvironmentCreated {
			return "would create, with its environment"
		}
		return "would create" + why
	case wouldUpdate:
		return "would update" + why
	case "":
		return "—"
	}
	return d.Action
}

// isCurrent reports whether the tenant's secret is current after the run
// (or would be after a real run, for a dry run).
func (d *Detail) isCurrent() bool {
	switch d.Action {
	case didCreate, didUpdate, didNothing, wouldCreate, wouldUpdate:
		return true
	}
	return false
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
