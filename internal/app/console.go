package app

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/internal/config"
	"github.com/pgfleet/pgfleet/internal/fleet"
	"github.com/pgfleet/pgfleet/internal/migrate"
	"github.com/pgfleet/pgfleet/internal/report"
)

// console writes the run's log. Everything it writes is already scrubbed of
// credentials by the writer underneath. In Actions it uses workflow commands
// (::error::, ::group::) so failures stand out in the log.
type console struct {
	w       io.Writer
	actions bool
}

// invalid reports bad input, one line per problem.
func (c *console) invalid(stderr io.Writer, err error) {
	for _, e := range flatten(err) {
		var ie *config.InputError
		title := "invalid input"
		if errors.As(e, &ie) {
			title = "invalid input " + ie.Input
		}
		if c.actions {
			fmt.Fprintf(c.w, "::error title=%s::%s\n", escapeProperty("pgfleet: "+title), escapeCommand(e.Error()))
		}
		fmt.Fprintf(stderr, "pgfleet: %s\n", e.Error())
	}
	fmt.Fprintln(stderr, "pgfleet: nothing was touched; fix the input and run again (pgfleet --help lists the inputs)")
}

func (c *console) errorf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if c.actions {
		fmt.Fprintf(c.w, "::error title=pgfleet::%s\n", escapeCommand(msg))
		return
	}
	fmt.Fprintf(c.w, "error: %s\n", msg)
}

func (c *console) warnf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if c.actions {
		fmt.Fprintf(c.w, "::warning title=pgfleet::%s\n", escapeCommand(msg))
		return
	}
	fmt.Fprintf(c.w, "warning: %s\n", msg)
}

// apiRetry notes a Neon API retry. In Actions every one is a debug line
// (shown when step debug logging is on); on a terminal only repeated ones,
// since a single 429 under load is routine.
func (c *console) apiRetry(route string, attempt int, wait time.Duration, err error) {
	msg := fmt.Sprintf("Neon API %s: attempt %d failed (%v); retrying in %s", route, attempt, err, wait.Round(time.Millisecond))
	switch {
	case c.actions:
		fmt.Fprintf(c.w, "::debug::%s\n", escapeCommand(msg))
	case attempt >= 3:
		fmt.Fprintf(c.w, "%s\n", msg)
	}
}

// tenantDone prints one line per tenant, and a log group with the error and
// dbmate's own output for each failure.
func (c *console) tenantDone(r fleet.Result) {
	d, _ := r.Detail.(*migrate.Detail)
	versions := ""
	if d != nil {
		versions = fmt.Sprintf(" %s -> %s", orNone(d.From), orNone(d.To))
		if len(d.Applied) > 0 {
			versions += fmt.Sprintf(" (%d applied)", len(d.Applied))
		}
		if d.DryRun && len(d.Pending) > 0 {
			versions = fmt.Sprintf(" at %s, %d pending: %s", orNone(d.From), len(d.Pending), strings.Join(d.Pending, ", "))
		}
	}
	switch r.Status {
	case fleet.Failed, fleet.Cancelled:
		if c.actions {
			fmt.Fprintf(c.w, "::group::%s %s\n", strings.ToUpper(string(r.Status)), r.Tenant)
		} else {
			fmt.Fprintf(c.w, "%s %s\n", strings.ToUpper(string(r.Status)), r.Tenant)
		}
		fmt.Fprintf(c.w, "  error: %v\n", r.Err)
		if d != nil {
			fmt.Fprintf(c.w, "  left at version %s%s\n", orNone(d.To), pendingNote(d))
			for _, l := range strings.Split(strings.TrimSpace(d.Log), "\n") {
				if l != "" {
					fmt.Fprintf(c.w, "  dbmate: %s\n", l)
				}
			}
		}
		if c.actions {
			fmt.Fprintln(c.w, "::endgroup::")
			fmt.Fprintf(c.w, "::error title=%s::%s\n", escapeProperty(fmt.Sprintf("pgfleet: %s %s", r.Status, r.Tenant)), escapeCommand(fmt.Sprint(r.Err)))
		}
	default:
		fmt.Fprintf(c.w, "%-10s %s%s in %s\n", r.Status, r.Tenant, versions, r.Duration.Round(1e6))
	}
}

func (c *console) final(run report.Run) {
	n := fleet.Count(run.Results)
	fmt.Fprintf(c.w, "pgfleet %s: %d tenants: %d succeeded, %d up to date, %d failed, %d skipped, %d cancelled in %s; report: %s\n",
		run.Mode, n.Total, n.Succeeded, n.UpToDate, n.Failed, n.Skipped, n.Cancelled, run.Duration.Round(1e6), run.ReportFile)
	if run.Stopped != "" {
		fmt.Fprintf(c.w, "stopped early: %s\n", run.Stopped)
	}
}

func pendingNote(d *migrate.Detail) string {
	if len(d.Pending) == 0 {
		return ""
	}
	return fmt.Sprintf(", %d still pending (first: %s)", len(d.Pending), d.Pending[0])
}

func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}

// escapeCommand escapes a workflow command's message as the runner expects.
func escapeCommand(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// escapeProperty escapes a workflow command property (such as title).
func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// flatten unwraps errors.Join trees into their leaves.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
