package status

import (
	"fmt"
	"slices"
	"strings"
)

// schemaGroup is the tenants at one version sharing one fingerprint.
type schemaGroup struct {
	version, fingerprint string
	members              []*Detail
}

// findDrift groups the tenants that were read by version and fingerprint.
// At each version the biggest group is the reference (ties: the smaller
// fingerprint, so a re-run names the same one); every tenant outside it is
// drifted, and its Drift lists what differs from the reference, object by
// object. It returns the groups, biggest first within a version.
func findDrift(details []*Detail) []*schemaGroup {
	byKey := map[[2]string]*schemaGroup{}
	var groups []*schemaGroup
	for _, d := range details {
		if d.Fingerprint == "" {
			continue
		}
		k := [2]string{d.Version, d.Fingerprint}
		g := byKey[k]
		if g == nil {
			g = &schemaGroup{version: d.Version, fingerprint: d.Fingerprint}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.members = append(g.members, d)
	}
	slices.SortFunc(groups, func(a, b *schemaGroup) int {
		if a.version != b.version {
			return compareVersions(a.version, b.version)
		}
		if len(a.members) != len(b.members) {
			return len(b.members) - len(a.members)
		}
		return strings.Compare(a.fingerprint, b.fingerprint)
	})
	var ref *schemaGroup
	for _, g := range groups {
		if ref == nil || ref.version != g.version {
			ref = g
			continue
		}
		for _, d := range g.members {
			d.Drifted = true
			d.Reference = ref.fingerprint
			d.Drift = differences(d.objects, ref.members[0].objects, len(ref.members))
		}
	}
	return groups
}

// differences says how objs (this tenant's) differ from ref, the
// reference group's objects (held by n tenants), one line per object.
func differences(objs, ref []Object, n int) []string {
	refBy := map[string]Object{}
	for _, o := range ref {
		refBy[o.key()] = o
	}
	var out []string
	seen := map[string]bool{}
	for _, o := range objs {
		seen[o.key()] = true
		r, ok := refBy[o.key()]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s present only here", o.key()))
		case r.Def != o.Def:
			out = append(out, fmt.Sprintf("%s: %s here, %s in %s", o.key(), o.Def, r.Def, tenantsText(n)))
		}
	}
	for _, r := range ref {
		if !seen[r.key()] {
			out = append(out, fmt.Sprintf("%s missing (present in %s)", r.key(), tenantsText(n)))
		}
	}
	slices.Sort(out)
	return out
}

func tenantsText(n int) string {
	if n == 1 {
		return "1 tenant"
	}
	return fmt.Sprintf("%d tenants", n)
}
