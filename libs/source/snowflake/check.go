package snowflake

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/grant"
	"github.com/ebb-etl/ebb/libs/source/internal/query"
)

var _ source.Checker = (*Source)(nil)

// Check reads the role's privileges with SHOW GRANTS TO ROLE, for the
// session's role and every role granted to it, and checks them against
// what Ebb needs. SHOW runs in Snowflake's cloud services: no warehouse
// starts. OWNERSHIP of an object counts as every privilege on it.
func (s *Source) Check(ctx context.Context, req source.CheckRequest) ([]source.Finding, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("snowflake source: connecting: %w", err)
	}
	defer conn.Close()
	role := s.cfg.Role
	if role == "" {
		if err := conn.QueryRowContext(ctx, "SELECT CURRENT_ROLE()").Scan(&role); err != nil {
			return nil, fmt.Errorf("snowflake source: reading the current role: %w", err)
		}
	}
	role = upperIdent(role)
	grants, err := roleGrants(ctx, conn, role)
	if err != nil {
		return nil, fmt.Errorf("snowflake source: reading the grants of role %s: %w", role, err)
	}
	c := &sfChecker{role: role, grants: grants, db: upperIdent(s.cfg.Database), schema: upperIdent(s.cfg.Schema)}
	findings := []source.Finding{{
		Check: fmt.Sprintf("log in as %s with role %s", s.cfg.User, role), OK: true,
		Detail: "fix statements below grant to this role",
	}}
	findings = append(findings, c.warehouse(upperIdent(s.cfg.Warehouse)))
	tables := c.tables(req.Models)
	findings = append(findings, c.containers(tables)...)
	for _, t := range tables {
		findings = append(findings, c.table(t))
	}
	return append(findings, c.snapshot(upperIdent(req.SchemaOrDefault()))), nil
}

// sfGrant is one row of SHOW GRANTS TO ROLE that matters here.
type sfGrant struct{ privilege, on, name string }

// roleGrants reads the grants of role and, through its granted roles
// (privilege USAGE on a ROLE), the roles it inherits from.
func roleGrants(ctx context.Context, conn *sql.Conn, role string) ([]sfGrant, error) {
	var all []sfGrant
	seen := map[string]bool{}
	queue := []string{role}
	for len(queue) > 0 {
		r := queue[0]
		queue = queue[1:]
		if seen[r] {
			continue
		}
		seen[r] = true
		grants, err := showGrants(ctx, conn, r)
		if err != nil {
			return nil, err
		}
		for _, g := range grants {
			if g.on == "ROLE" && g.privilege == "USAGE" {
				queue = append(queue, g.name)
			}
		}
		all = append(all, grants...)
	}
	return all, nil
}

func showGrants(ctx context.Context, conn *sql.Conn, role string) ([]sfGrant, error) {
	rows, err := conn.QueryContext(ctx, "SHOW GRANTS TO ROLE "+grant.SfIdent(role))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	idx := func(name string) int { return slices.Index(cols, name) }
	priv, on, name := idx("privilege"), idx("granted_on"), idx("name")
	if priv < 0 || on < 0 || name < 0 {
		return nil, fmt.Errorf("SHOW GRANTS answered columns %v, want privilege, granted_on and name", cols)
	}
	var grants []sfGrant
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		grants = append(grants, sfGrant{
			privilege: strings.ToUpper(vals[priv].String),
			on:        strings.ToUpper(vals[on].String),
			name:      vals[name].String,
		})
	}
	return grants, rows.Err()
}

// sfChecker checks privileges against the grants read.
type sfChecker struct {
	role       string
	grants     []sfGrant
	db, schema string
}

// has reports a privilege on an object of one of the kinds, by its
// printed name.
func (c *sfChecker) has(privilege, name string, kinds ...string) bool {
	for _, g := range c.grants {
		if !slices.Contains(kinds, g.on) || !strings.EqualFold(g.name, name) && g.name != name {
			continue
		}
		if g.privilege == privilege || g.privilege == "OWNERSHIP" {
			return true
		}
	}
	return false
}

func (c *sfChecker) finding(check, detail, fix string, ok bool) source.Finding {
	f := source.Finding{Check: check, OK: ok, Detail: detail}
	if !ok {
		f.Fix = fix
	}
	return f
}

func (c *sfChecker) warehouse(wh string) source.Finding {
	if wh == "" {
		return source.Finding{
			Check:  "a warehouse to run the models",
			Detail: `the source config names no "warehouse": set it, and grant its use`,
			Fix:    grant.SfGrant("USAGE", "WAREHOUSE", "<warehouse>", c.role),
		}
	}
	return c.finding("USAGE on warehouse "+wh, "runs the models' queries",
		grant.SfGrant("USAGE", "WAREHOUSE", grant.SfIdent(wh), c.role), c.has("USAGE", grant.SfIdent(wh), "WAREHOUSE"))
}

// sfTable is a table the models name, fully qualified, and its readers.
type sfTable struct {
	db, schema, name string
	syncs            []string
}

func (t *sfTable) qualified() string { return grant.SfName(t.db, t.schema, t.name) }

// tables resolves the names the models write against the source's
// database and schema; unquoted names are upper case in Snowflake.
func (c *sfChecker) tables(models []source.CheckModel) []*sfTable {
	var out []*sfTable
	byName := map[string]*sfTable{}
	for _, m := range models {
		for _, r := range query.Relations(m.SQL) {
			parts := make([]string, len(r.Parts))
			for i, p := range r.Parts {
				parts[i] = p
				if !r.Quoted[i] {
					parts[i] = strings.ToUpper(p)
				}
			}
			t := &sfTable{db: c.db, schema: c.schema, name: parts[len(parts)-1]}
			if len(parts) >= 2 {
				t.schema = parts[len(parts)-2]
			}
			if len(parts) == 3 {
				t.db = parts[0]
			}
			if prev := byName[t.qualified()]; prev != nil {
				t = prev
			} else {
				byName[t.qualified()] = t
				out = append(out, t)
			}
			if !slices.Contains(t.syncs, m.Sync) {
				t.syncs = append(t.syncs, m.Sync)
			}
		}
	}
	return out
}

// containers checks USAGE on each database and schema holding the tables.
func (c *sfChecker) containers(tables []*sfTable) []source.Finding {
	var findings []source.Finding
	seen := map[string]bool{}
	for _, t := range tables {
		db, schema := grant.SfIdent(t.db), grant.SfName(t.db, t.schema)
		if !seen[db] {
			seen[db] = true
			findings = append(findings, c.finding("USAGE on database "+db, "holds the models' tables",
				grant.SfGrant("USAGE", "DATABASE", db, c.role), c.has("USAGE", db, "DATABASE")))
		}
		if !seen[schema] {
			seen[schema] = true
			findings = append(findings, c.finding("USAGE on schema "+schema, "holds the models' tables",
				grant.SfGrant("USAGE", "SCHEMA", schema, c.role), c.has("USAGE", schema, "SCHEMA")))
		}
	}
	return findings
}

func (c *sfChecker) table(t *sfTable) source.Finding {
	name := t.qualified()
	ok := c.has("SELECT", name, "TABLE", "VIEW", "MATERIALIZED_VIEW", "EXTERNAL_TABLE", "DYNAMIC_TABLE")
	syncs := make([]string, len(t.syncs))
	for i, s := range t.syncs {
		syncs[i] = fmt.Sprintf("%q", s)
	}
	detail := "read by the model of sync " + strings.Join(syncs, ", ") + " (for a view the fix says ON VIEW)"
	return c.finding("SELECT on table "+name, detail, grant.SfGrant("SELECT", "TABLE", name, c.role), ok)
}

// snapshot checks the warehouse engine can create its tables: USAGE and
// CREATE TABLE on the snapshot schema, or CREATE SCHEMA on the database.
func (c *sfChecker) snapshot(schema string) source.Finding {
	db := grant.SfIdent(c.db)
	name := grant.SfName(c.db, schema)
	ok := c.has("USAGE", name, "SCHEMA") && c.has("CREATE TABLE", name, "SCHEMA") || c.has("CREATE SCHEMA", db, "DATABASE")
	fix := "CREATE SCHEMA IF NOT EXISTS " + name + "; " + grant.SfGrant("USAGE, CREATE TABLE", "SCHEMA", name, c.role)
	return c.finding("USAGE and CREATE TABLE on snapshot schema "+name,
		"the warehouse diff engine keeps its snapshot tables there (CREATE SCHEMA on database "+db+" also does)", fix, ok)
}

// upperIdent resolves a config name as Snowflake resolves an unquoted
// identifier; a name given in double quotes keeps its case.
func upperIdent(name string) string {
	if len(name) >= 2 && name[0] == '"' && name[len(name)-1] == '"' {
		return strings.ReplaceAll(name[1:len(name)-1], `""`, `"`)
	}
	return strings.ToUpper(name)
}
