package app

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pgfleet/pgfleet/internal/report"
)

const reportUsage = `usage: pgfleet report merge PATH...

Reads the JSON reports of the jobs of one workflow run (a canary job and the
shards of a matrix: each PATH a report, or a folder searched for *.json, as
actions/download-artifact lays them out) and writes one job summary: the
totals of the whole fleet, one row per report, every tenant once. In Actions
it is appended to GITHUB_STEP_SUMMARY, else written to standard output.
Exit status: 0 when every tenant succeeded or was up to date, 1 when not, 2
when a report cannot be read.
`

// reportCommand runs "pgfleet report ...": commands on finished runs'
// reports, which need no inputs, no fleet and no credential.
func reportCommand(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "merge" || slices.Contains(args, "--help") || slices.Contains(args, "-h") {
		w, code := stderr, ExitInvalidInput
		if slices.Contains(args, "--help") || slices.Contains(args, "-h") {
			w, code = stdout, ExitOK
		}
		fmt.Fprint(w, reportUsage)
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "pgfleet report merge: "+format+"\n", a...)
		return ExitInvalidInput
	}
	if len(args) == 1 {
		return fail("name the reports to merge (files, or folders holding them)")
	}
	var files []string
	for _, arg := range args[1:] {
		found, err := reportFiles(arg)
		if err != nil {
			return fail("%v", err)
		}
		files = append(files, found...)
	}
	if len(files) == 0 {
		return fail("no *.json report under %s: did every job upload its report?", strings.Join(args[1:], ", "))
	}
	parts := make([]report.Part, 0, len(files))
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return fail("%v", err)
		}
		run, err := report.ReadJSON(f)
		f.Close()
		if err != nil {
			return fail("%s: %v", path, err)
		}
		parts = append(parts, report.Part{Name: report.PartName(path, files), Run: run})
	}
	merged, err := report.Merge(parts)
	if err != nil {
		return fail("%v", err)
	}
	summary := report.Summary(merged, 0)
	if path := getenv("GITHUB_STEP_SUMMARY"); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = io.WriteString(f, summary)
			err = joinClose(err, f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "pgfleet report merge: write the job summary: %v\n", err)
			return ExitFailed
		}
		fmt.Fprintf(stdout, "pgfleet report merge: %d reports, %s in the job summary\n", len(parts), report.Plural(len(merged.Results), "tenant", "tenants"))
	} else {
		fmt.Fprint(stdout, summary)
	}
	if !merged.OK() {
		return ExitFailed
	}
	return ExitOK
}

// reportFiles is path itself, or the *.json files under the folder path, in
// name order.
func reportFiles(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".json") {
			files = append(files, p)
		}
		return err
	})
	return files, err
}

func joinClose(err error, f *os.File) error {
	if cerr := f.Close(); err == nil {
		return cerr
	}
	return err
}
