package app

import (
	"fmt"
	"sort"
	"strings"
)

// inputNames are the public inputs, the same as action flags and CLI flags.
// Keep in sync with action.yml.
var inputNames = []string{
	"mode",
	"neon-api-key", "neon-api-url", "neon-org-id", "neon-rate-limit", "database", "role", "branch",
	"database-urls",
	"projects", "exclude-projects", "shard",
	"concurrency", "tenant-timeout", "max-failures", "canary",
	"migrations-dir", "migrations-table", "dry-run", "lock-timeout",
	"report-file",
}

var boolInputs = map[string]bool{"dry-run": true}

// parseArgs reads "pgfleet <mode> --name=value --name value --dry-run".
// Flags override INPUT_* variables, so a CLI user can lean on either.
func parseArgs(args []string) (map[string]string, error) {
	known := map[string]bool{}
	for _, n := range inputNames {
		known[n] = true
	}
	flags := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			if _, set := flags["mode"]; set {
				return nil, fmt.Errorf("unexpected argument %q: give the mode once, then --flags", a)
			}
			flags["mode"] = a
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !known[name] {
			return nil, fmt.Errorf("unknown flag --%s; known flags: --%s", name, strings.Join(sorted(inputNames), ", --"))
		}
		if !hasValue {
			if boolInputs[name] && (i+1 >= len(args) || strings.HasPrefix(args[i+1], "-") || !isBoolWord(args[i+1])) {
				value = "true"
			} else if i+1 < len(args) {
				i++
				value = args[i]
			} else {
				return nil, fmt.Errorf("flag --%s needs a value", name)
			}
		}
		flags[name] = value
	}
	return flags, nil
}

func isBoolWord(s string) bool {
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "1", "0", "on", "off":
		return true
	}
	return false
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// lookup reads an input: CLI flag first, then the INPUT_<NAME> variable the
// Actions runner sets (upper case, spaces to underscores, hyphens kept), then
// for the API key the conventional NEON_API_KEY, which keeps the key off a
// CLI command line.
func lookup(flags map[string]string, getenv func(string) string) func(string) string {
	return func(name string) string {
		if v, ok := flags[name]; ok {
			return v
		}
		if v := getenv("INPUT_" + strings.ToUpper(strings.ReplaceAll(name, " ", "_"))); v != "" {
			return v
		}
		if name == "neon-api-key" {
			return getenv("NEON_API_KEY")
		}
		return ""
	}
}
