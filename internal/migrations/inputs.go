package migrations

import "github.com/pgfleet/pgfleet/internal/input"

// The inputs naming the files and dbmate's table, declared once for every
// mode that reads them (the input table merges identical declarations).
var (
	InputDir   = &input.Input{Name: "migrations-dir", Default: "db/migrations", Description: "Directory of dbmate migrations (relative to the workspace); validated once, before any tenant is touched."}
	InputTable = &input.Input{Name: "migrations-table", Default: "schema_migrations", Description: "dbmate's table recording applied migrations (may be schema.table)."}
)

// OutputPending is the count of tenants with pending migrations.
var OutputPending = input.Output{Name: "pending", Description: "Tenants with pending migrations (migrate and rollback: set by a dry run only)."}
