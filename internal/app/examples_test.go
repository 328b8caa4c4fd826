package app

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The README's migrate quick start is examples/migrate-on-merge.yml without
// its comments: one source, so the workflow a new user copies from the
// README is the one the examples explain, not a shorter variant.
const quickStartMarker = "<!-- quick start: examples/migrate-on-merge.yml without its comments (go test ./internal/app -run Examples -update) -->"

// withoutComments is a workflow's text as the README shows it: comment
// lines and trailing comments (" #" outside quotes) removed, trailing
// spaces trimmed, blank lines dropped.
func withoutComments(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		line = line[:commentStart(line)]
		if line = strings.TrimRight(line, " "); line != "" {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n") + "\n"
}

// commentStart is where line's comment begins: a # at its start or after a
// space, outside quotes; len(line) when it has none.
func commentStart(line string) int {
	var quote rune
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (i == 0 || line[i-1] == ' '):
			return i
		}
	}
	return len(line)
}

func TestExamplesREADMEQuickStartIsTheExample(t *testing.T) {
	_, example := readRepoFile(t, "examples/migrate-on-merge.yml")
	want := withoutComments(string(example))
	path, b := readRepoFile(t, "README.md")
	s := string(b)
	i := strings.Index(s, quickStartMarker)
	if i < 0 {
		t.Fatalf("README has no line %s", quickStartMarker)
	}
	start := i + len(quickStartMarker) + len("\n```yaml\n")
	end := strings.Index(s[i+len(quickStartMarker):], "\n```\n")
	if !strings.HasPrefix(s[i+len(quickStartMarker):], "\n```yaml\n") || end < 0 {
		t.Fatal("README: the quick-start marker is not followed by a ```yaml block")
	}
	end += i + len(quickStartMarker) + 1
	if *update {
		s = s[:start] + want + s[end:]
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got := s[start:end]; got != want {
		t.Errorf("README's migrate quick start is not examples/migrate-on-merge.yml without its comments (go test ./internal/app -run Examples -update rewrites it):\n--- README\n%s--- example\n%s", got, want)
	}
}

func TestExamplesWithoutComments(t *testing.T) {
	in := "# head\non: # trailing\n  x: 'a # b'   # c\n  y: \"#x\"\n\n  url: a#b\n"
	want := "on:\n  x: 'a # b'\n  y: \"#x\"\n  url: a#b\n"
	if got := withoutComments(in); got != want {
		t.Errorf("withoutComments:\n%s\nwant\n%s", got, want)
	}
}

// docFiles are the files whose snippets users copy.
func docFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"README.md", "docs/*.md", "examples/*.yml", ".github/workflows/*.yml", "action.yml"} {
		m, err := filepath.Glob(repoFile(t, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	return files
}

// TestExamplesNameTheAction: every snippet names the action as the module
// path does, pgfleet/pgfleet (or its image on GHCR); none leaves an
// <owner> placeholder the user must guess.
func TestExamplesNameTheAction(t *testing.T) {
	uses := regexp.MustCompile(`uses:\s*(\S*pgfleet\S*)`)
	for _, path := range docFiles(t) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "<owner>/pgfleet") {
			t.Errorf("%s still says <owner>/pgfleet: the action is pgfleet/pgfleet", path)
		}
		for _, m := range uses.FindAllStringSubmatch(string(b), -1) {
			if !strings.HasPrefix(m[1], "pgfleet/pgfleet@v") && !strings.HasPrefix(m[1], "docker://ghcr.io/pgfleet/pgfleet") {
				t.Errorf("%s: uses: %s, want pgfleet/pgfleet@v1 (or the image ghcr.io/pgfleet/pgfleet)", path, m[1])
			}
		}
	}
}

// TestExamplesUploadTheReportOnEveryExit: every example's upload-artifact
// step runs whatever the pgfleet step's outcome, has a path even when the
// step stopped before setting its outputs, and does not fail a second time
// when the file is missing.
func TestExamplesUploadTheReportOnEveryExit(t *testing.T) {
	files, err := filepath.Glob(repoFile(t, "examples/*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var wf struct {
			Jobs map[string]struct {
				Steps []struct {
					If   string            `yaml:"if"`
					Uses string            `yaml:"uses"`
					With map[string]string `yaml:"with"`
				} `yaml:"steps"`
			} `yaml:"jobs"`
		}
		if err := yaml.Unmarshal(b, &wf); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for name, job := range wf.Jobs {
			for _, step := range job.Steps {
				if !strings.HasPrefix(step.Uses, "actions/upload-artifact@") {
					continue
				}
				where := filepath.Base(path) + " job " + name
				if step.If != "always()" {
					t.Errorf("%s: upload-artifact has if: %q, want always()", where, step.If)
				}
				if p := step.With["path"]; strings.Contains(p, "outputs.report-file") && !strings.Contains(p, "||") {
					t.Errorf("%s: upload-artifact path %q has no fallback for a run that set no outputs", where, p)
				}
				if step.With["if-no-files-found"] == "" {
					t.Errorf("%s: upload-artifact does not say if-no-files-found", where)
				}
			}
		}
	}
}
