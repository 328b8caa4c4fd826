package app

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/testenv/neonapi"
)

// An outage met while preparing is not the input: restore's listing of the
// fleet failing exits 1 and prints what Neon answered, not exit 2 "fix the
// input".
func TestOutageDuringPrepareExitsOneWithItsCause(t *testing.T) {
	neon := neonapi.New(neonapi.Config{APIKey: "key"})
	t.Cleanup(neon.Close)
	neon.AddProject(neonapi.Project{ID: "p1", Name: "one"})
	neon.FailNext(1, http.StatusBadRequest) // not retried, not a credential

	env := map[string]string{"NEON_API_KEY": "key", "GITHUB_ACTIONS": ""}
	var stdout, stderr bytes.Buffer
	code := MainWithStdin(context.Background(), []string{"restore",
		"--neon-api-url=" + neon.URL(),
		"--destination=file://" + t.TempDir(),
		"--restore-project=p1",
		"--restore-target-url=postgres://u:p@127.0.0.1:1/db",
		"--report-file=" + t.TempDir() + "/r.json",
	}, func(k string) string { return env[k] }, nil, &stdout, &stderr)
	if code != ExitFailed {
		t.Errorf("exit %d, want %d\n%s%s", code, ExitFailed, stdout.String(), stderr.String())
	}
	msg := stdout.String() + stderr.String()
	if !strings.Contains(msg, "preparing the run failed, nothing was touched") || !strings.Contains(msg, "400") {
		t.Errorf("stderr does not give the cause:\n%s", msg)
	}
	if strings.Contains(msg, "fix the input") {
		t.Errorf("an outage is reported as bad input:\n%s", msg)
	}
}

func TestInputErrorKeepsItsCause(t *testing.T) {
	cause := errors.New("open migrations: no such file")
	err := error(&input.Error{Input: "migrations-dir", Err: cause})
	if !errors.Is(err, cause) {
		t.Errorf("errors.Is does not find the cause of %v", err)
	}
	if got, want := err.Error(), "input migrations-dir: open migrations: no such file"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !isInputError(err) || isInputError(cause) {
		t.Errorf("isInputError tells an input error from an outage wrongly")
	}
}

// Prepare returns the problems it recorded: each is printed once.
func TestJoinInputErrorsListsEachProblemOnce(t *testing.T) {
	recorded := &input.Error{Input: "a", Problem: "bad"}
	other := &input.Error{Input: "b", Problem: "worse"}
	got := input.Split(joinInputErrors(errors.Join(recorded), errors.Join(recorded, other)))
	if len(got) != 2 || got[0] != error(recorded) || got[1] != error(other) {
		t.Errorf("joined %v, want a then b once each", got)
	}
	if joinInputErrors(nil, nil) != nil {
		t.Errorf("no problems joined to an error")
	}
}
