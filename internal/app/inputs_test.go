package app

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestParseArgs(t *testing.T) {
	cases := []struct {
		args []string
		want map[string]string
		err  string
	}{
		{[]string{"migrate", "--concurrency=5", "--migrations-dir", "db/m"}, map[string]string{"mode": "migrate", "concurrency": "5", "migrations-dir": "db/m"}, ""},
		{[]string{"migrate", "--dry-run"}, map[string]string{"mode": "migrate", "dry-run": "true"}, ""},
		{[]string{"migrate", "--dry-run", "false"}, map[string]string{"mode": "migrate", "dry-run": "false"}, ""},
		{[]string{"migrate", "--dry-run", "--concurrency", "3"}, map[string]string{"mode": "migrate", "dry-run": "true", "concurrency": "3"}, ""},
		{[]string{"--mode=migrate"}, map[string]string{"mode": "migrate"}, ""},
		{[]string{"migrate", "--bogus=1"}, nil, "unknown flag --bogus"},
		{[]string{"migrate", "--concurrency"}, nil, "needs a value"},
		{[]string{"migrate", "backup"}, nil, "unexpected argument"},
	}
	for _, c := range cases {
		got, err := parseArgs(c.args)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseArgs(%q) err = %v, want %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseArgs(%q): %v", c.args, err)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("parseArgs(%q) = %v, want %v", c.args, got, c.want)
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("parseArgs(%q)[%s] = %q, want %q", c.args, k, got[k], v)
			}
		}
	}
}

func TestLookupPrecedence(t *testing.T) {
	env := map[string]string{
		"INPUT_CONCURRENCY":    "7",
		"INPUT_MIGRATIONS-DIR": "from-env",
		"NEON_API_KEY":         "key-from-env",
	}
	get := lookup(map[string]string{"migrations-dir": "from-flag"}, func(k string) string { return env[k] })
	if got := get("migrations-dir"); got != "from-flag" {
		t.Errorf("a flag must win over INPUT_*: got %q", got)
	}
	if got := get("concurrency"); got != "7" {
		t.Errorf("INPUT_CONCURRENCY not read: got %q", got)
	}
	if got := get("neon-api-key"); got != "key-from-env" {
		t.Errorf("NEON_API_KEY not used for neon-api-key: got %q", got)
	}
	env["INPUT_NEON-API-KEY"] = "key-from-input"
	if got := get("neon-api-key"); got != "key-from-input" {
		t.Errorf("INPUT_NEON-API-KEY must win over NEON_API_KEY: got %q", got)
	}
}

// TestActionYAMLMatchesTheBinary keeps action.yml, the public contract,
// in step with the binary: it must parse, declare every input the binary
// reads (else the runner never passes it) and no input it ignores, and
// declare every output the binary writes.
func TestActionYAMLMatchesTheBinary(t *testing.T) {
	b, err := readFileUp("action.yml")
	if err != nil {
		t.Fatal(err)
	}
	var action struct {
		Inputs  map[string]any `yaml:"inputs"`
		Outputs map[string]any `yaml:"outputs"`
		Runs    struct {
			Using string `yaml:"using"`
			Image string `yaml:"image"`
		} `yaml:"runs"`
	}
	if err := yaml.Unmarshal([]byte(b), &action); err != nil {
		t.Fatalf("action.yml does not parse: %v", err)
	}
	for _, name := range inputNames {
		if _, ok := action.Inputs[name]; !ok {
			t.Errorf("input %q is read by the binary but not declared in action.yml", name)
		}
	}
	for name := range action.Inputs {
		if !slices.Contains(inputNames, name) {
			t.Errorf("action.yml declares input %q, which the binary never reads", name)
		}
	}
	for _, name := range []string{"total", "succeeded", "failed", "skipped", "up-to-date", "cancelled", "pending", "report-file"} {
		if _, ok := action.Outputs[name]; !ok {
			t.Errorf("output %q is written by the binary but not declared in action.yml", name)
		}
	}
	if action.Runs.Using != "docker" || action.Runs.Image != "Dockerfile" {
		t.Errorf("runs = %+v, want the Docker container action built from Dockerfile", action.Runs)
	}
}
