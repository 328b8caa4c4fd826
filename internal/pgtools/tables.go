package pgtools

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// tablesQuery lists the tables whose rows pg_dump dumps by default: every
// ordinary table (partitions included; a partitioned table holds no rows
// of its own) outside the system schemas, other than temporary tables and
// tables that belong to an extension.
const tablesQuery = `
SELECT n.nspname, c.relname
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND c.relpersistence <> 't'
  AND n.nspname <> 'information_schema'
  AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2`

// Table is a table and, once counted, its rows.
type Table struct {
	Schema, Name string
	Rows         int64 // MissingRows when counted with CountRowsIfPresent and absent
}

// MissingRows is the count CountRowsIfPresent gives a table that does not
// exist.
const MissingRows = -1

// ListTables lists the tables a dump holds rows of, in schema and name
// order.
func ListTables(ctx context.Context, q Querier) ([]Table, error) {
	rows, err := q.Query(ctx, tablesQuery)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Table, error) {
		var t Table
		err := r.Scan(&t.Schema, &t.Name)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return ts, nil
}

// Querier is a pgx connection or transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// countBatch is how many tables one round trip counts.
const countBatch = 50

// CountRows sets each table's Rows to its row count (FROM ONLY: a table's
// own rows, as pg_dump dumps them), a few tables per round trip. Every
// table must exist: the tables of a dump, counted in its snapshot.
func CountRows(ctx context.Context, q Querier, tables []Table) error {
	return countRows(ctx, q, tables, nil)
}

// CountRowsIfPresent is CountRows where a table may be missing (the tables
// a manifest lists, counted after a restore): a table that does not exist
// gets MissingRows rather than failing the count.
func CountRowsIfPresent(ctx context.Context, q Querier, tables []Table) error {
	absent := map[int]bool{}
	if len(tables) > 0 {
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = pgx.Identifier{t.Schema, t.Name}.Sanitize()
		}
		rows, err := q.Query(ctx, "SELECT i::int FROM unnest($1::text[]) WITH ORDINALITY AS t(name, i) WHERE to_regclass(name) IS NULL", names)
		if err != nil {
			return fmt.Errorf("count rows: %w", err)
		}
		gone, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return fmt.Errorf("count rows: %w", err)
		}
		for _, i := range gone {
			absent[i-1] = true
			tables[i-1].Rows = MissingRows
		}
	}
	return countRows(ctx, q, tables, absent)
}

// countRows counts the rows of every table but the absent ones.
func countRows(ctx context.Context, q Querier, tables []Table, absent map[int]bool) error {
	todo := make([]int, 0, len(tables))
	for i := range tables {
		if !absent[i] {
			todo = append(todo, i)
		}
	}
	for start := 0; start < len(todo); start += countBatch {
		batch := todo[start:min(start+countBatch, len(todo))]
		var sql strings.Builder
		for j, i := range batch {
			if j > 0 {
				sql.WriteString(" UNION ALL ")
			}
			fmt.Fprintf(&sql, "SELECT %d, (SELECT count(*) FROM ONLY %s)", i, pgx.Identifier{tables[i].Schema, tables[i].Name}.Sanitize())
		}
		rows, err := q.Query(ctx, sql.String())
		if err != nil {
			return fmt.Errorf("count rows: %w", err)
		}
		for rows.Next() {
			var i int
			var n int64
			if err := rows.Scan(&i, &n); err != nil {
				rows.Close()
				return fmt.Errorf("count rows: %w", err)
			}
			tables[i].Rows = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("count rows: %w", err)
		}
	}
	return nil
}
