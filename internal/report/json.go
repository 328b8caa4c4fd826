package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"time"

	"github.com/pgfleet/pgfleet/internal/fleet"
)

type jsonReport struct {
	Mode        string     `json:"mode"`
	StartedAt   *time.Time `json:"started_at"`
	DurationMS  int64      `json:"duration_ms"`
	DryRun      bool       `json:"dry_run"`
	Cancelled   bool       `json:"cancelled"`
	Stopped     string     `json:"stopped"`
	SourceError string     `json:"source_error"`
	Error       string     `json:"error"`        // why the run never started
	FinishError string     `json:"finish_error"` // what failed once every tenant was done
	Counts      jsonCounts `json:"counts"`
	// "tenants" is streamed after these fields.
}

type jsonCounts struct {
	Total     int `json:"total"`
	Succeeded int `json:"succeeded"`
	UpToDate  int `json:"up_to_date"`
	Failed    int `json:"failed"`
	Skipped   int `json:"skipped"`
	Cancelled int `json:"cancelled"`
}

type jsonTenant struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Host       string     `json:"host"`
	Database   string     `json:"database"`
	Status     string     `json:"status"`
	Error      string     `json:"error"`
	Reason     string     `json:"reason"`
	Canary     bool       `json:"canary"`
	StartedAt  *time.Time `json:"started_at"` // null when the tenant never started
	DurationMS int64      `json:"duration_ms"`
	// The mode's detail fields follow, from its own struct tags.
}

// WriteJSON writes the JSON report. Tenants are in the order of r.Results and
// are encoded one at a time, so a large fleet needs no large buffer.
func WriteJSON(w io.Writer, r Run) error {
	counts := fleet.Count(r.Results)
	head := jsonReport{
		Mode:        r.scrub(r.Mode),
		StartedAt:   timeOrNil(r.Started),
		DurationMS:  r.Duration.Milliseconds(),
		DryRun:      r.DryRun,
		Cancelled:   r.Cancelled,
		Stopped:     r.scrubErr(r.Stopped),
		SourceError: r.scrubErr(r.SourceErr),
		Counts: jsonCounts{
			Total: counts.Total, Succeeded: counts.Succeeded, UpToDate: counts.UpToDate,
			Failed: counts.Failed, Skipped: counts.Skipped, Cancelled: counts.Cancelled,
		},
	}
	head.Error = r.scrubErr(r.PrepareErr)
	head.FinishError = r.scrubErr(r.FinishErr)
	b, err := json.Marshal(head)
	if err != nil {
		return err
	}

	bw := bufio.NewWriter(w)
	bw.Write(b[:len(b)-1]) // drop the closing brace: tenants follow
	bw.WriteString(`,"tenants":[`)
	for i, res := range r.Results {
		b, err := r.tenantJSON(res)
		if err != nil {
			return err
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteByte('\n')
		if _, err := bw.Write(b); err != nil { // bufio's error is sticky: stop at the first
			return err
		}
	}
	bw.WriteString("\n]}\n")
	return bw.Flush()
}

// tenantJSON is one tenant's record: the shared fields, then the fields of
// the mode's detail, every string scrubbed.
func (r Run) tenantJSON(res fleet.Result) ([]byte, error) {
	tt := r.tenantText(res)
	base, err := json.Marshal(jsonTenant{
		ID:         tt.id,
		Name:       tt.name,
		Host:       tt.host,
		Database:   tt.database,
		Status:     string(res.Status),
		Error:      tt.err,
		Reason:     tt.reason,
		Canary:     res.Canary,
		StartedAt:  timeOrNil(res.Started),
		DurationMS: res.Duration.Milliseconds(),
	})
	if err != nil || res.Detail == nil {
		return base, err
	}
	fields, err := r.detailFields(res.Detail)
	if err != nil || len(fields) == 0 {
		return base, err
	}
	for _, shared := range []string{"id", "name", "host", "database", "status", "error", "reason", "canary", "started_at", "duration_ms"} {
		delete(fields, shared) // the shared fields are the spine's; a mode cannot redefine them
	}
	extra, err := json.Marshal(fields)
	if err != nil || len(extra) <= 2 {
		return base, err
	}
	return append(append(base[:len(base)-1], ','), extra[1:]...), nil
}

// detailFields decodes the detail's own JSON encoding and scrubs every
// string in it: a mode's detail may quote an error or a log line.
func (r Run) detailFields(d fleet.Detail) (map[string]any, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	fields, ok := r.scrubValue(v).(map[string]any)
	if !ok {
		return map[string]any{"detail": r.scrubValue(v)}, nil
	}
	return fields, nil
}

func (r Run) scrubValue(v any) any {
	switch x := v.(type) {
	case string:
		return r.scrub(x)
	case []any:
		for i := range x {
			x[i] = r.scrubValue(x[i])
		}
	case map[string]any:
		for k, e := range x {
			x[k] = r.scrubValue(e)
		}
	}
	return v
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
