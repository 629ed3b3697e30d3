package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/grant"
	"github.com/ebb-etl/ebb/libs/source/internal/query"
)

var _ source.Checker = (*Source)(nil)

// Check checks the grants Ebb needs, with the privilege functions
// has_schema_privilege, has_table_privilege and has_database_privilege
// and the catalogs pg_namespace and pg_class, which Postgres and Redshift
// both have and which read metadata only. Every query runs in the "exec"
// mode (text parameters and results), which Redshift accepts.
//
// The tables come from the names the models write (query.Relations says
// why not EXPLAIN); each model is also planned, which names a table the
// names missed, or a schema the role cannot use.
func (s *Source) Check(ctx context.Context, req source.CheckRequest) ([]source.Finding, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s source: connecting: %w", s.d.Name, err)
	}
	defer conn.Release()
	c := &checker{conn: conn.Conn()}
	if err := c.query(ctx, "SELECT current_user, current_database()", nil, &c.user, &c.database); err != nil {
		return nil, fmt.Errorf("%s source: reading the current user: %w", s.d.Name, err)
	}
	findings := []source.Finding{{
		Check:  fmt.Sprintf("connect to database %s as %s", c.database, c.user),
		OK:     true,
		Detail: "fix statements below grant to this user",
	}}
	tables, plans := c.modelTables(ctx, req.Models)
	findings = append(findings, plans...)
	findings = append(findings, c.tableFindings(ctx, tables)...)
	return append(findings, c.snapshotFinding(ctx, req.SchemaOrDefault())), nil
}

// checker runs the checks on one connection.
type checker struct {
	conn     *pgx.Conn
	user     string
	database string
	// path is the search path, resolved once.
	path []string
}

func (c *checker) query(ctx context.Context, sql string, args []any, dest ...any) error {
	return c.conn.QueryRow(ctx, sql, append([]any{pgx.QueryExecModeExec}, args...)...).Scan(dest...)
}

// table is a table the models read, and the syncs reading it.
type table struct {
	schema, name string
	syncs        []string
}

// modelTables plans each model and resolves the tables it names, in the
// order first named. Names that resolve to no table (an alias the names
// took for a table, a table function) are left out: planning the model
// would have failed had a table been missing.
func (c *checker) modelTables(ctx context.Context, models []source.CheckModel) ([]*table, []source.Finding) {
	var tables []*table
	byName := map[string]*table{}
	var findings []source.Finding
	for _, m := range models {
		if _, err := describe(ctx, c.conn, m.SQL); err != nil {
			findings = append(findings, source.Finding{
				Check:  fmt.Sprintf("plan the model of sync %q", m.Sync),
				Detail: err.Error(),
			})
		}
		for _, r := range query.Relations(m.SQL) {
			schema, name, ok := c.resolve(ctx, r)
			if !ok {
				continue
			}
			key := schema + "." + name
			t := byName[key]
			if t == nil {
				t = &table{schema: schema, name: name}
				byName[key] = t
				tables = append(tables, t)
			}
			if len(t.syncs) == 0 || t.syncs[len(t.syncs)-1] != m.Sync {
				t.syncs = append(t.syncs, m.Sync)
			}
		}
	}
	return tables, findings
}

// resolve finds the schema of a relation name as the server would: the
// schema written, or the first schema of the search path holding it.
// Unquoted names fold to lower case.
func (c *checker) resolve(ctx context.Context, r query.Relation) (schema, name string, ok bool) {
	parts := make([]string, len(r.Parts))
	for i, p := range r.Parts {
		parts[i] = p
		if !r.Quoted[i] {
			parts[i] = strings.ToLower(p)
		}
	}
	name = parts[len(parts)-1]
	schemas := []string{}
	if len(parts) > 1 {
		schemas = append(schemas, parts[len(parts)-2])
	} else {
		schemas = c.searchPath(ctx)
	}
	for _, sc := range schemas {
		var n int
		err := c.query(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2`, []any{sc, name}, &n)
		if err == nil && n > 0 {
			return sc, name, true
		}
	}
	return "", "", false
}

// searchPath reads SHOW search_path ("$user", public) into schema names,
// pg_catalog first as the server searches it.
func (c *checker) searchPath(ctx context.Context) []string {
	if c.path != nil {
		return c.path
	}
	c.path = []string{"pg_catalog"}
	var raw string
	if err := c.query(ctx, "SHOW search_path", nil, &raw); err != nil {
		return c.path
	}
	for _, p := range strings.Split(raw, ",") {
		p = strings.TrimSpace(p)
		if len(p) >= 2 && p[0] == '"' {
			p = strings.ReplaceAll(p[1:len(p)-1], `""`, `"`)
		}
		if p == "$user" {
			p = c.user
		}
		if p != "" {
			c.path = append(c.path, p)
		}
	}
	return c.path
}

// tableFindings checks USAGE on each schema and SELECT on each table.
// has_table_privilege looks the table up by name, which fails without
// USAGE on its schema, so a table of such a schema is reported missing
// with its grant too.
func (c *checker) tableFindings(ctx context.Context, tables []*table) []source.Finding {
	var findings []source.Finding
	usage := map[string]bool{}
	for _, t := range tables {
		if _, done := usage[t.schema]; !done {
			f := c.privilege(ctx, "has_schema_privilege", t.schema, "USAGE")
			f.Check = "USAGE on schema " + t.schema
			f.Detail = join(f.Detail, "to look up the tables of the models of "+syncList(schemaSyncs(tables, t.schema)))
			f.Fix = fixIf(f.OK, grant.PgSchemaUsage(t.schema, c.user))
			usage[t.schema] = f.OK
			findings = append(findings, f)
		}
		f := source.Finding{Detail: "cannot be checked without USAGE on schema " + t.schema}
		if usage[t.schema] {
			f = c.privilege(ctx, "has_table_privilege", grant.PgIdent(t.schema)+"."+grant.PgIdent(t.name), "SELECT")
		}
		f.Check = "SELECT on table " + t.schema + "." + t.name
		f.Detail = join(f.Detail, "read by the model of "+syncList(t.syncs))
		f.Fix = fixIf(f.OK, grant.PgSelect(t.schema, t.name, c.user))
		findings = append(findings, f)
	}
	return findings
}

// snapshotFinding checks the warehouse engine can create its tables: USAGE
// and CREATE on the snapshot schema, or CREATE on the database when the
// schema does not exist yet.
func (c *checker) snapshotFinding(ctx context.Context, schema string) source.Finding {
	const why = "the warehouse diff engine keeps its snapshot tables there"
	var n int
	if err := c.query(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", []any{schema}, &n); err != nil {
		return source.Finding{Check: "snapshot schema " + schema, Detail: err.Error()}
	}
	if n == 0 {
		f := c.privilege(ctx, "has_database_privilege", c.database, "CREATE")
		f.Check = fmt.Sprintf("CREATE on database %s, to create the snapshot schema %s", c.database, schema)
		f.Detail = join(f.Detail, why+"; creating the schema for the role (the fix) avoids CREATE on the whole database")
		f.Fix = fixIf(f.OK, grant.PgSnapshotSchema(schema, c.user, false))
		return f
	}
	use := c.privilege(ctx, "has_schema_privilege", schema, "USAGE")
	create := c.privilege(ctx, "has_schema_privilege", schema, "CREATE")
	f := source.Finding{
		Check:  "USAGE and CREATE on snapshot schema " + schema,
		OK:     use.OK && create.OK,
		Detail: join(join(use.Detail, create.Detail), why),
	}
	f.Fix = fixIf(f.OK, grant.PgSnapshotSchema(schema, c.user, true))
	return f
}

// privilege calls one of the has_*_privilege functions for the current
// user; an error (such as a schema without USAGE) is a missing grant.
func (c *checker) privilege(ctx context.Context, fn, object, priv string) source.Finding {
	var ok bool
	if err := c.query(ctx, "SELECT "+fn+"($1, $2)", []any{object, priv}, &ok); err != nil {
		return source.Finding{Detail: err.Error()}
	}
	return source.Finding{OK: ok}
}

func fixIf(ok bool, fix string) string {
	if ok {
		return ""
	}
	return fix
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func schemaSyncs(tables []*table, schema string) []string {
	var syncs []string
	for _, t := range tables {
		if t.schema != schema {
			continue
		}
		for _, s := range t.syncs {
			if !slices.Contains(syncs, s) {
				syncs = append(syncs, s)
			}
		}
	}
	return syncs
}

// syncList names syncs: `sync "a"` or `syncs "a", "b"`.
func syncList(syncs []string) string {
	q := make([]string, len(syncs))
	for i, s := range syncs {
		q[i] = fmt.Sprintf("%q", s)
	}
	if len(q) == 1 {
		return "sync " + q[0]
	}
	return "syncs " + strings.Join(q, ", ")
}
