package syncsecrets

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/github"
	"github.com/pgfleet/pgfleet/internal/report"
)

// What the run reports: the tenants' table, the outputs and the summary's
// sections.

func (j *Job) Columns() []report.Column {
	action := report.Column{Title: "action"}
	if j.o.dryRun {
		action.Title = "would"
	}
	if j.o.kind == github.KindEnvironment {
		return []report.Column{{Title: "environment"}, {Title: "secret"}, action}
	}
	return []report.Column{{Title: "secret"}, action}
}

// tally counts the results by what happened to each secret.
type tally struct {
	created, updated, unchanged, left, failed, remaining, deleted, writes int
}

func (j *Job) tally(results []fleet.Result) tally {
	var t tally
	for _, r := range results {
		d, _ := r.Detail.(*Detail)
		if d == nil || !d.isCurrent() {
			t.remaining++
		}
		if d == nil {
			continue
		}
		t.writes += d.Writes
		switch d.Action {
		case didCreate, wouldCreate:
			t.created++
		case didUpdate, wouldUpdate:
			t.updated++
		case didNothing:
			t.unchanged++
		case didLeave:
			t.left++
		case didFail:
			t.failed++
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, c := range j.plan.prune {
		if c.secret != "" && (c.done || j.o.dryRun) {
			t.deleted++
		}
		if c.done {
			t.writes += c.writes()
		}
	}
	return t
}

// Outputs: created, updated, unchanged, deleted, remaining.
func (j *Job) Outputs(results []fleet.Result) map[string]string {
	t := j.tally(results)
	return map[string]string{
		"created":   strconv.Itoa(t.created),
		"updated":   strconv.Itoa(t.updated),
		"unchanged": strconv.Itoa(t.unchanged),
		"deleted":   strconv.Itoa(t.deleted),
		"remaining": strconv.Itoa(t.remaining),
	}
}

// Sections: the secrets written and GitHub's share of the run, and the
// secrets prune deleted.
func (j *Job) Sections(results []fleet.Result) []report.Section {
	t := j.tally(results)
	verb := func(done, dry string) string {
		if j.o.dryRun {
			return dry
		}
		return done
	}
	sec := report.Section{
		Title:   "Secrets",
		Columns: []report.Column{{Title: "secrets"}, {Title: "tenants", Numeric: true}},
		Rows: [][]string{
			{verb("created", "would be created"), strconv.Itoa(t.created)},
			{verb("updated", "would be updated"), strconv.Itoa(t.updated)},
			{"unchanged (nothing written)", strconv.Itoa(t.unchanged)},
		},
	}
	if t.left > 0 {
		sec.Rows = append(sec.Rows, []string{"left for the next run", strconv.Itoa(t.left)})
	}
	if t.failed > 0 {
		sec.Rows = append(sec.Rows, []string{"failed", strconv.Itoa(t.failed)})
	}
	if j.o.prune {
		sec.Rows = append(sec.Rows, []string{verb("deleted by prune", "would be deleted by prune"), strconv.Itoa(t.deleted)})
	}
	st := j.gh.Stats()
	j.mu.Lock()
	outOfTime, pruneNote, envs := j.outOfTime, j.pruneNote, j.envsCreated
	j.mu.Unlock()
	var notes []string
	notes = append(notes, "Where: "+describeTarget(j.o)+".")
	if j.o.dryRun {
		notes = append(notes, fmt.Sprintf("A real run would make %s to GitHub.", report.Plural(j.plan.writes, "write", "writes")))
	} else {
		n := fmt.Sprintf("%s to GitHub (one at a time, %s apart), %s in all", report.Plural(st.Writes, "write", "writes"), max(j.gap, 0), report.Plural(st.Requests, "request", "requests"))
		if envs > 0 {
			n += fmt.Sprintf("; %s created", report.Plural(envs, "environment", "environments"))
		}
		if rl := st.RateLimited; rl > 0 {
			n += fmt.Sprintf("; %s from GitHub waited out", report.Plural(rl, "rate limit", "rate limits"))
		}
		notes = append(notes, n+".")
		if st.WritesRefused > 0 {
			notes = append(notes, fmt.Sprintf("GitHub refused %d of %s as too fast (its secondary rate limit): pgfleet widened the gap between writes up to %s, and was back to %s at the end.",
				st.WritesRefused, report.Plural(st.Writes, "write request", "write requests"), st.MaxWriteGap.Round(time.Millisecond), st.WriteGap.Round(time.Millisecond)))
		}
	}
	if outOfTime {
		notes = append(notes, fmt.Sprintf("max-duration (%s) was spent: %s left; run again to continue (unchanged tenants cost nothing).", j.o.maxDuration, report.Plural(t.remaining, "tenant", "tenants")))
	}
	if pruneNote != "" {
		notes = append(notes, "Prune "+pruneNote+".")
	}
	sec.Note = strings.Join(notes, " ")
	out := []report.Section{sec}
	if len(j.plan.prune) > 0 {
		ps := report.Section{
			Title:   verb("Deleted by prune", "Prune would delete"),
			Note:    "Secrets pgfleet wrote (a fingerprint variable is beside them) whose names this run's templates produce but no current tenant has; each with its fingerprint variable.",
			Columns: []report.Column{{Title: "secret"}, {Title: "where"}, {Title: "written for tenant"}, {Title: "result"}},
		}
		j.mu.Lock()
		for _, c := range j.plan.prune {
			result := "not reached"
			switch {
			case j.o.dryRun:
				result = "would delete"
			case c.done:
				result = "deleted"
			case c.err != nil:
				result = "failed: " + c.err.Error()
			}
			ps.Rows = append(ps.Rows, []string{c.name(), c.target.String(), c.whose(), result})
		}
		j.mu.Unlock()
		out = append(out, ps)
	}
	return out
}
