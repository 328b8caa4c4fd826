package status

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Object is one schema object as the catalog describes it: what kind it is,
// its name (schema-qualified outside public) and a definition that changes
// when the object does.
type Object struct {
	Kind string
	Name string
	Def  string
}

// key identifies an object across tenants.
func (o Object) key() string { return o.Kind + " " + o.Name }

// userSchema keeps the system's schemas out; objects that belong to an
// extension are left out too (the extension itself is listed, with its
// version), so a tenant is compared on what its own migrations made.
const userSchema = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'`

func notFromExtension(classid, objid string) string {
	return fmt.Sprintf(`NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '%s'::regclass AND d.objid = %s AND d.deptype = 'e')`, classid, objid)
}

// qualified names an object as people write it: bare in public.
func qualified(schema, name string) string {
	return fmt.Sprintf(`CASE WHEN %[1]s = 'public' THEN %[2]s ELSE %[1]s || '.' || %[2]s END`, schema, name)
}

// catalogQuery reads every object of the user's schemas in one round trip:
// on a fleet the query's cost is dwarfed by the connection's, and a second
// query would double the round trips.
var catalogQuery = strings.Join([]string{
	// Tables (and partitioned tables).
	`SELECT 'table', ` + qualified("n.nspname", "c.relname") + `, c.relkind::text || c.relpersistence::text
	 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	 WHERE c.relkind IN ('r', 'p') AND ` + userSchema + ` AND ` + notFromExtension("pg_class", "c.oid"),
	// Columns: type, nullability, default.
	`SELECT 'column', ` + qualified("n.nspname", "c.relname") + ` || '.' || a.attname,
	        format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
	        || COALESCE(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
	 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
	 LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
	 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ` + userSchema + ` AND ` + notFromExtension("pg_class", "c.oid"),
	// Constraints of tables and domains.
	`SELECT 'constraint', ` + qualified("n.nspname", "COALESCE(c.relname, t.typname)") + ` || '.' || co.conname, pg_get_constraintdef(co.oid)
	 FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
	 LEFT JOIN pg_class c ON c.oid = co.conrelid LEFT JOIN pg_type t ON t.oid = co.contypid
	 WHERE ` + userSchema + ` AND ` + notFromExtension("pg_constraint", "co.oid"),
	// Indexes.
	`SELECT 'index', ` + qualified("n.nspname", "c.relname") + `, pg_get_indexdef(c.oid)
	 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	 WHERE c.relkind IN ('i', 'I') AND ` + userSchema + ` AND ` + notFromExtension("pg_class", "c.oid"),
	// Sequences.
	`SELECT 'sequence', ` + qualified("n.nspname", "c.relname") + `,
	        format_type(s.seqtypid, NULL) || ' start ' || s.seqstart || ' increment ' || s.seqincrement || ' min ' || s.seqmin || ' max ' || s.seqmax || ' cache ' || s.seqcache || CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END
	 FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
	 WHERE ` + userSchema + ` AND ` + notFromExtension("pg_class", "c.oid"),
	// Views and materialized views: their definitions, hashed (they can be long).
	`SELECT CASE c.relkind WHEN 'v' THEN 'view' ELSE 'materialized view' END, ` + qualified("n.nspname", "c.relname") + `, 'md5 ' || md5(pg_get_viewdef(c.oid))
	 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	 WHERE c.relkind IN ('v', 'm') AND ` + userSchema + ` AND ` + notFromExtension("pg_class", "c.oid"),
	// Functions and procedures: signature, result and hashed body.
	`SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END, ` + qualified("n.nspname", "p.proname") + ` || '(' || pg_get_function_identity_arguments(p.oid) || ')',
	        'returns ' || COALESCE(pg_get_function_result(p.oid), 'nothing') || ', md5 ' || md5(pg_get_functiondef(p.oid))
	 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
	 WHERE p.prokind IN ('f', 'p') AND ` + userSchema + ` AND ` + notFromExtension("pg_proc", "p.oid"),
	// Enum types (their labels in order) and domains (base type, not null, default).
	`SELECT CASE t.typtype WHEN 'e' THEN 'enum' ELSE 'domain' END, ` + qualified("n.nspname", "t.typname") + `,
	        CASE t.typtype WHEN 'e' THEN (SELECT string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid)
	        ELSE format_type(t.typbasetype, t.typtypmod) || CASE WHEN t.typnotnull THEN ' not null' ELSE '' END || COALESCE(' default ' || t.typdefault, '') END
	 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
	 WHERE t.typtype IN ('e', 'd') AND ` + userSchema + ` AND ` + notFromExtension("pg_type", "t.oid"),
	// Triggers.
	`SELECT 'trigger', ` + qualified("n.nspname", "c.relname") + ` || '.' || tg.tgname, pg_get_triggerdef(tg.oid)
	 FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
	 WHERE NOT tg.tgisinternal AND ` + userSchema,
	// Extensions, with their versions.
	`SELECT 'extension', x.extname, x.extversion FROM pg_extension x WHERE x.extname <> 'plpgsql'`,
}, "\nUNION ALL\n")

// readCatalog reads the tenant's schema objects, sorted.
func readCatalog(ctx context.Context, tx pgx.Tx) ([]Object, error) {
	rows, err := tx.Query(ctx, catalogQuery)
	if err != nil {
		return nil, fmt.Errorf("read the schema from the catalog: %w", err)
	}
	objs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Object, error) {
		var o Object
		var def *string
		err := r.Scan(&o.Kind, &o.Name, &def)
		if def != nil {
			o.Def = *def
		}
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the schema from the catalog: %w", err)
	}
	slices.SortFunc(objs, func(a, b Object) int { return strings.Compare(a.key(), b.key()) })
	return objs, nil
}

// fingerprint is a short hash of every object and its definition: two
// tenants with the same fingerprint have the same schema.
func fingerprint(objs []Object) string {
	h := sha256.New()
	for _, o := range objs {
		fmt.Fprintf(h, "%s\x00%s\x00%s\n", o.Kind, o.Name, o.Def)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// CatalogQuery is the one query that reads a tenant's schema, for the
// benchmark's floor (internal/bench), which runs it in a bare pgx loop.
func CatalogQuery() string { return catalogQuery }
