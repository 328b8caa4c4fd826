package pgconnect

import "testing"

// Two spellings of one database are the same; another database, port or
// host is not. Credentials and parameters never matter.
func TestSameDatabase(t *testing.T) {
	tenant := "postgres://owner:secret@ep-cool-1.eu-central-1.aws.neon.tech/neondb?sslmode=require"
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{tenant, tenant, true},
		{tenant, "postgres://other:pw@EP-COOL-1.eu-central-1.aws.neon.tech./neondb", true},
		{tenant, "postgresql://owner:secret@ep-cool-1.eu-central-1.aws.neon.tech:5432/neondb?sslmode=disable&application_name=x", true},
		{tenant, "postgres://owner:secret@ep-cool-1.eu-central-1.aws.neon.tech/scratch", false},
		{tenant, "postgres://owner:secret@ep-cool-1.eu-central-1.aws.neon.tech:5433/neondb", false},
		{tenant, "postgres://owner:secret@ep-cool-2.eu-central-1.aws.neon.tech/neondb", false},
		// This machine's server by any name.
		{"postgres://u:p@127.0.0.1:5432/app", "postgres://v:q@localhost/app", true},
		{"postgres://u:p@[::1]:5432/app", "postgres://v:q@localhost:5432/app", true},
		{"postgres://u:p@127.0.0.1/app", "postgres://v:q@%2Fvar%2Frun%2Fpostgresql/app", true},
		{"postgres://u:p@127.0.0.1:5432/app", "postgres://u:p@127.0.0.1:5433/app", false},
		// An IP address in another spelling.
		{"postgres://u:p@10.0.0.7/app", "postgres://u:p@10.0.0.7:5432/app", true},
		{"postgres://u:p@[2001:db8::1]/app", "postgres://u:p@[2001:0db8:0:0::1]/app", true},
		// No database: the user's.
		{"postgres://app@db.example.com", "postgres://x:y@db.example.com/app", true},
		{"postgres://app@db.example.com", "postgres://x:y@db.example.com/other", false},
		// A multi-host string reaches each of its hosts.
		{"postgres://u:p@a.example.com,b.example.com/app", "postgres://u:p@b.example.com/app", true},
		// Unparseable is the same as nothing.
		{"not a url", tenant, false},
	} {
		if got := SameDatabase(c.a, c.b); got != c.same {
			t.Errorf("SameDatabase(%q, %q) = %v, want %v", c.a, c.b, got, c.same)
		}
		if got := SameDatabase(c.b, c.a); got != c.same {
			t.Errorf("SameDatabase(%q, %q) = %v, want %v (swapped)", c.b, c.a, got, c.same)
		}
	}
}
