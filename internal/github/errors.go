package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	gh "github.com/google/go-github/v66/github"
)

// Error is a GitHub operation that failed. It names the operation, the
// target and the secret, variable or environment concerned, never a value
// or the token. Callers classify it with errors.As and its Status (or
// IsNotFound), never by its text.
type Error struct {
	Op     string // what was being done: "put secret", "list secrets", "create environment", …
	Name   string // the secret, variable or environment name; "" for a list
	Target string // where, as Target.String() words it; "" for repository lookups
	// Status is the HTTP status of GitHub's answer: 0 when none came (a
	// transport error, a cancelled context) or the client refused the
	// operation before sending it (an invalid name, a value too large).
	Status int
	// Message is GitHub's message, with its validation details appended
	// (GitHub never echoes a secret's value; any credential is scrubbed
	// should one appear).
	Message string
	// RetryAfter is how long GitHub asked to wait, when a rate-limit answer
	// could not be waited out (the context's deadline was nearer).
	RetryAfter time.Duration
	Err        error // the cause: go-github's error, ErrInvalidName, ErrTooLarge, a context error, …
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("github: " + e.Op)
	if e.Name != "" {
		b.WriteString(" " + e.Name)
	}
	if e.Target != "" {
		if e.Name != "" {
			b.WriteString(" in")
		}
		b.WriteString(" " + e.Target)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, ": %d %s", e.Status, http.StatusText(e.Status))
		if hint := e.hint(); hint != "" {
			b.WriteString(": " + hint)
		}
		if e.Message != "" {
			fmt.Fprintf(&b, " (GitHub says %q)", e.Message)
		}
		var w *WaitError
		if errors.As(e.Err, &w) {
			b.WriteString(": " + w.Error())
		}
		return b.String()
	}
	if e.Err != nil {
		var w *WaitError
		if errors.As(e.Err, &w) {
			b.WriteString(": " + w.Error())
		} else {
			b.WriteString(": " + e.Err.Error())
		}
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

func (e *Error) hint() string {
	switch e.Status {
	case http.StatusUnauthorized:
		return "the token was rejected; check github-token"
	case http.StatusForbidden:
		if e.RetryAfter > 0 {
			return "rate limited by GitHub"
		}
		return "the token lacks a permission (Secrets, Environments or Variables: read and write) or the resource is not visible to it"
	case http.StatusNotFound:
		return "not found (or not visible to the token)"
	case http.StatusTooManyRequests:
		return "rate limited by GitHub"
	}
	return ""
}

// IsNotFound reports whether err is GitHub's 404.
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }

// StatusOf is the HTTP status of the GitHub answer behind err, 0 if none.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// WaitError is a wait the client did not start because the context's
// deadline would pass first: GitHub asked for a pause (Status 403 or 429)
// or the hourly write budget was spent (Status 0). It unwraps to
// context.DeadlineExceeded, so a run that stops on its time budget can tell
// this from a failure.
type WaitError struct {
	Reason string        // e.g. "secondary rate limit", "hourly write budget"
	Status int           // GitHub's status when GitHub asked for the wait
	Wait   time.Duration // how long the wait would have been
	// StartDeadline is set when the wait would pass the start deadline
	// (WithStartDeadline) rather than the context's deadline.
	StartDeadline bool
}

func (w *WaitError) Error() string {
	return fmt.Sprintf("waiting %s for %s would pass the deadline", w.Wait.Round(time.Second), w.Reason)
}

func (w *WaitError) Unwrap() error { return context.DeadlineExceeded }

// newError wraps err, the failure of one request, as an *Error.
func (c *Client) newError(o op, resp *gh.Response, err error) *Error {
	e := &Error{Op: o.verb, Name: o.name, Target: o.target, Err: err}
	if resp != nil && resp.Response != nil {
		e.Status = resp.StatusCode
		if secs, err := strconv.ParseInt(resp.Header.Get(waitHeader), 10, 64); err == nil {
			e.RetryAfter = time.Duration(secs) * time.Second
		}
	}
	var (
		er  *gh.ErrorResponse
		rl  *gh.RateLimitError
		arl *gh.AbuseRateLimitError
		w   *WaitError
	)
	switch {
	case errors.As(err, &er):
		e.Message = errorMessage(er)
		if er.Response != nil {
			e.Status = er.Response.StatusCode
		}
	case errors.As(err, &rl):
		e.Message = rl.Message
		if rl.Response != nil {
			e.Status = rl.Response.StatusCode
		}
		if d := c.clock.Now(); rl.Rate.Reset.After(d) {
			e.RetryAfter = rl.Rate.Reset.Sub(d)
		}
	case errors.As(err, &arl):
		e.Message = arl.Message
		if arl.Response != nil {
			e.Status = arl.Response.StatusCode
		}
		if arl.RetryAfter != nil {
			e.RetryAfter = *arl.RetryAfter
		}
	case errors.As(err, &w):
		e.Status = w.Status
		e.RetryAfter = w.Wait
	}
	if e.Status/100 == 2 {
		e.Status = 0 // an answer that could not be decoded, not a GitHub error
	}
	e.Message = c.scrub(e.Message)
	if msg := err.Error(); c.scrub(msg) != msg {
		e.Err = &scrubbedError{msg: c.scrub(msg), err: err}
	}
	return e
}

// errorMessage is GitHub's message with its validation details, such as
// "Validation Failed: name is invalid".
func errorMessage(er *gh.ErrorResponse) string {
	msg := er.Message
	for _, d := range er.Errors {
		detail := d.Message
		if detail == "" && d.Code != "" {
			detail = strings.TrimSpace(d.Field + " " + d.Code)
		}
		if detail != "" {
			msg += ": " + detail
		}
	}
	return msg
}

// scrubbedError is a cause whose text held a credential. Its text is kept
// scrubbed; the cause stays reachable for errors.As.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
