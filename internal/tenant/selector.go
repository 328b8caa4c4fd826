package tenant

import (
	"fmt"
	"hash/fnv"
	"path"
	"strconv"
	"strings"
)

// Shard is a stable partition of the fleet: tenant IDs hash into Count
// buckets, and this job takes bucket Index (1-based). A matrix of Count jobs
// with Index 1..Count covers every tenant exactly once.
type Shard struct {
	Index, Count int
}

// ParseShard reads "i/n" with 1 <= i <= n. An empty string means no sharding.
func ParseShard(s string) (Shard, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Shard{Index: 1, Count: 1}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 1 || i > n {
		return Shard{}, fmt.Errorf("want i/n with 1 <= i <= n, like 1/3, got %q", s)
	}
	return Shard{Index: i, Count: n}, nil
}

// Contains reports whether the tenant with this id falls in the shard.
func (s Shard) Contains(id string) bool {
	if s.Count <= 1 {
		return true
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32()%uint32(s.Count)) == s.Index-1
}

// Selector decides which tenants a run touches.
type Selector struct {
	Include []string // globs on id or name; empty means all
	Exclude []string // globs on id or name
	Shard   Shard
}

// Selects reports whether a tenant with this id and name is in the run.
func (s Selector) Selects(id, name string) bool {
	if len(s.Include) > 0 && !MatchAny(s.Include, id, name) {
		return false
	}
	if MatchAny(s.Exclude, id, name) {
		return false
	}
	return s.Shard.Contains(id)
}

// MatchAny reports whether any glob matches the id or the name.
func MatchAny(globs []string, id, name string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, id); ok {
			return true
		}
		if name != "" {
			if ok, _ := path.Match(g, name); ok {
				return true
			}
		}
	}
	return false
}

// ValidateGlobs returns an error naming the first malformed glob.
func ValidateGlobs(globs []string) error {
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("malformed glob %q: %v", g, err)
		}
	}
	return nil
}

// SplitList splits a newline- or comma-separated input into trimmed,
// non-empty items.
func SplitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == ',' || r == '\r' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
