package app

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sethvargo/go-githubactions"

	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/redact"
	"github.com/pgfleet/pgfleet/internal/report"
	"github.com/pgfleet/pgfleet/internal/syncio"
)

// console is the run's log and its Actions I/O. Everything it writes passes
// through the redactor. In Actions it speaks through go-githubactions:
// annotations for failures, groups for each failed tenant's detail, debug
// lines, masks, outputs and the step summary.
type console struct {
	w       io.Writer // the scrubbed log (stdout)
	errW    io.Writer // the scrubbed stderr
	secrets *redact.Redactor
	gha     *githubactions.Action // writes to w; reads inputs
	actions bool                  // running in GitHub Actions
	getenv  func(string) string

	// Failure annotations are capped (see maxFailureAnnotations); these
	// count what tenantDone saw, for the closing annotation.
	failureKinds map[string]bool // report.FailureKey of every failure seen
	annotated    int             // failed tenants given an annotation
	unannotated  int             // failed tenants left to the summary and report
}

// maxFailureAnnotations is how many failed tenants get an error annotation
// of their own, the first of each kind of failure. GitHub shows about 10
// annotations per step and drops the rest: a thousand would bury every
// other one. The rest are counted in one closing annotation that says where
// to read them.
const maxFailureAnnotations = 5

func newConsole(getenv func(string) string, stdout, stderr io.Writer) *console {
	c := &console{actions: getenv("GITHUB_ACTIONS") == "true", getenv: getenv, failureKinds: map[string]bool{}}
	raw := syncio.NewWriter(stdout)
	masks := githubactions.New(githubactions.WithWriter(raw), githubactions.WithGetenv(getenv))
	c.secrets = redact.New(func(secret string) {
		if c.actions {
			// The runner must learn each secret before any line could carry
			// it; the mask command itself is the one line that may.
			masks.AddMask(secret)
		}
	})
	c.w = c.secrets.Writer(raw)
	c.errW = c.secrets.Writer(syncio.NewWriter(stderr))
	c.gha = githubactions.New(githubactions.WithWriter(c.w), githubactions.WithGetenv(getenv))
	return c
}

// annotate writes an error (or warning) annotation. go-githubactions
// escapes '%' and line breaks before the text reaches the scrubbing writer,
// where a credential holding them would no longer be recognised: so the
// title and message are scrubbed first.
func (c *console) annotate(warning bool, title, msg string) {
	a := c.gha.WithFieldsMap(map[string]string{"title": c.secrets.Scrub(title)})
	if warning {
		a.Warningf("%s", c.secrets.Scrub(msg))
		return
	}
	a.Errorf("%s", c.secrets.Scrub(msg))
}

// invalid reports bad input, one line per problem.
func (c *console) invalid(err error) {
	for _, e := range input.Split(err) {
		var ie *input.Error
		title := "invalid input"
		if errors.As(e, &ie) {
			title = "invalid input " + ie.Input
		}
		if c.actions {
			c.annotate(false, "pgfleet: "+title, e.Error())
		}
		fmt.Fprintf(c.errW, "pgfleet: %s\n", e.Error())
	}
	fmt.Fprintln(c.errW, "pgfleet: nothing was touched; fix the input and run again (pgfleet --help lists the inputs)")
}

func (c *console) errorf(format string, a ...any) { c.problemf(false, format, a...) }

func (c *console) warnf(format string, a ...any) { c.problemf(true, format, a...) }

// problemf prints an error or a warning: an annotation in Actions, a line
// saying "error:" or "warning:" elsewhere.
func (c *console) problemf(warning bool, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if c.actions {
		c.annotate(warning, "pgfleet", msg)
		return
	}
	level := "error"
	if warning {
		level = "warning"
	}
	fmt.Fprintf(c.w, "%s: %s\n", level, msg)
}

// apiRetry notes a Neon API retry. In Actions every one is a debug line
// (shown when step debug logging is on); on a terminal only repeated ones,
// since a single 429 under load is routine.
func (c *console) apiRetry(route string, attempt int, wait time.Duration, err error) {
	msg := fmt.Sprintf("Neon API %s: attempt %d failed (%v); retrying in %s", route, attempt, err, wait.Round(time.Millisecond))
	switch {
	case c.actions:
		c.gha.Debugf("%s", c.secrets.Scrub(msg))
	case attempt >= 3:
		fmt.Fprintf(c.w, "%s\n", msg)
	}
}

// tenantDone prints one line per tenant with the mode's cells, and for each
// failure a log group with the error and the mode's log lines. In Actions,
// the first failure of each kind also gets an annotation, up to
// maxFailureAnnotations. The runner calls it from one goroutine.
func (c *console) tenantDone(r fleet.Result) {
	switch r.Status {
	case fleet.Failed, fleet.Cancelled:
		head := fmt.Sprintf("%s %s", strings.ToUpper(string(r.Status)), r.Tenant)
		if c.actions {
			c.gha.Group(c.secrets.Scrub(head))
		} else {
			fmt.Fprintln(c.w, head)
		}
		fmt.Fprintf(c.w, "  error: %v\n", r.Err)
		if l, ok := r.Detail.(fleet.Logged); ok {
			for _, line := range l.LogLines() {
				fmt.Fprintf(c.w, "  %s\n", line)
			}
		}
		if c.actions {
			c.gha.EndGroup()
			key := report.FailureKey(r)
			newKind := !c.failureKinds[key]
			c.failureKinds[key] = true
			if !newKind || c.annotated >= maxFailureAnnotations {
				c.unannotated++
				return
			}
			c.annotated++
			c.annotate(false, fmt.Sprintf("pgfleet: %s %s", r.Status, r.Tenant), fmt.Sprint(r.Err))
		}
	default:
		cells := ""
		if r.Detail != nil {
			cells = " " + strings.Join(r.Detail.Cells(), " · ")
		}
		fmt.Fprintf(c.w, "%-10s %s%s in %s\n", r.Status, r.Tenant, cells, r.Duration.Round(time.Millisecond))
	}
}

// publish writes the step summary and the outputs, when the runner asked
// for them (GITHUB_STEP_SUMMARY, GITHUB_OUTPUT).
func (c *console) publish(run report.Run) (err error) {
	// go-githubactions panics when a file command cannot be written.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	if c.getenv("GITHUB_STEP_SUMMARY") != "" {
		c.gha.AddStepSummary(report.Summary(run, 0))
	}
	if c.getenv("GITHUB_OUTPUT") != "" {
		outputs := report.Outputs(run)
		for _, k := range slices.Sorted(maps.Keys(outputs)) {
			c.gha.SetOutput(k, outputs[k])
		}
	}
	return nil
}

func (c *console) final(run report.Run) {
	n := fleet.Count(run.Results)
	fmt.Fprintf(c.w, "pgfleet %s: %s: %d succeeded, %d up to date, %d failed, %d skipped, %d cancelled in %s; report: %s\n",
		run.Mode, report.Plural(n.Total, "tenant", "tenants"), n.Succeeded, n.UpToDate, n.Failed, n.Skipped, n.Cancelled, run.Duration.Round(time.Millisecond), run.ReportFile)
	if run.Stopped != nil {
		fmt.Fprintf(c.w, "stopped early: %v\n", run.Stopped)
	}
	if c.actions && c.unannotated > 0 {
		where := "the JSON report"
		if run.ReportFile != "" {
			where += " " + run.ReportFile
		}
		c.annotate(false, fmt.Sprintf("pgfleet: %s failed", report.Plural(c.unannotated, "more tenant", "more tenants")),
			fmt.Sprintf("%s did not succeed, with %s; only the first of each kind has an annotation (at most %d). "+
				"Read them all in the job summary (grouped by error), in %s (each tenant's own error), or in this step's log (a group per failed tenant).",
				report.Plural(c.annotated+c.unannotated, "tenant", "tenants"), report.Plural(len(c.failureKinds), "distinct error", "distinct errors"),
				maxFailureAnnotations, where))
	}
}
