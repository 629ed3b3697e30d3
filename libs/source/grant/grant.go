// Package grant writes the statements that give Ebb's role the least
// privilege it needs in each warehouse: the whole setup (`ebb source
// setup-sql TYPE`) and the single statements the credential checks print
// to fix what is missing. It links no driver, so the admin server can use
// it whatever warehouses it reads.
package grant

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Options name the objects of a setup. Empty fields take the defaults of
// withDefaults, placeholders an administrator edits.
type Options struct {
	// Role holds the grants; User logs in and is granted Role.
	Role     string
	User     string
	Password string
	// Database is the database the models read (Postgres, Redshift,
	// Snowflake).
	Database string
	// Schemas are the schemas the models read (BigQuery: datasets).
	Schemas []string
	// SnapshotSchema holds the warehouse diff engine's tables (BigQuery: a
	// dataset).
	SnapshotSchema string
	// Warehouse is the Snowflake virtual warehouse the queries run on.
	Warehouse string
	// Project and Location are BigQuery's.
	Project  string
	Location string
}

// Types lists the source types with a setup.
var Types = []string{"bigquery", "postgres", "redshift", "snowflake"}

// Setup returns the whole least-privilege setup of a source type.
func Setup(typ string, o Options) (string, error) {
	switch typ {
	case "postgres":
		return postgresSetup(o.withDefaults("ebb_role", "ebb", "change-me", "analytics", "public")), nil
	case "redshift":
		return redshiftSetup(o.withDefaults("ebb_role", "ebb", "Change-me-1", "dev", "public")), nil
	case "snowflake":
		return snowflakeSetup(o.withDefaults("EBB_ROLE", "EBB", "change-me", "ANALYTICS", "PUBLIC")), nil
	case "bigquery":
		return bigquerySetup(o.withDefaults("", "ebb", "", "", "analytics")), nil
	case "duckdb":
		return "", fmt.Errorf("duckdb sources are files: Ebb needs read access to the file (and write access for the warehouse engine), no grants")
	}
	return "", fmt.Errorf("no setup for source type %q (known: %s)", typ, strings.Join(Types, ", "))
}

func (o Options) withDefaults(role, user, password, database, schema string) Options {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&o.Role, role)
	def(&o.User, user)
	def(&o.Password, password)
	def(&o.Database, database)
	def(&o.SnapshotSchema, "ebb")
	def(&o.Warehouse, "EBB_WH")
	def(&o.Project, "my-project")
	def(&o.Location, "US")
	if len(o.Schemas) == 0 {
		o.Schemas = []string{schema}
	}
	return o
}

// script joins statements and comments into lines.
type script []string

func (s *script) add(format string, args ...any) { *s = append(*s, fmt.Sprintf(format, args...)) }

func (s script) String() string { return strings.Join(s, "\n") + "\n" }

// PgIdent quotes a Postgres or Redshift identifier.
func PgIdent(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// PgLiteral quotes a Postgres or Redshift string literal.
func PgLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// pgTable is schema.table, quoted.
func pgTable(schema, table string) string { return PgIdent(schema) + "." + PgIdent(table) }

// PgSelect grants reading one table or view.
func PgSelect(schema, table, role string) string {
	return "GRANT SELECT ON TABLE " + pgTable(schema, table) + " TO " + PgIdent(role) + ";"
}

// PgSchemaUsage grants looking up the objects of a schema.
func PgSchemaUsage(schema, role string) string {
	return "GRANT USAGE ON SCHEMA " + PgIdent(schema) + " TO " + PgIdent(role) + ";"
}

// PgSnapshotSchema gives the role the use of the snapshot schema, creating
// it first when it is missing: the role then needs no CREATE on the
// database.
func PgSnapshotSchema(schema, role string, exists bool) string {
	grant := "GRANT USAGE, CREATE ON SCHEMA " + PgIdent(schema) + " TO " + PgIdent(role) + ";"
	if exists {
		return grant
	}
	return "CREATE SCHEMA " + PgIdent(schema) + "; " + grant
}

func postgresSetup(o Options) string {
	var s script
	s.add("-- Ebb's least-privilege setup for PostgreSQL. Run it as a superuser, or as the owner of")
	s.add("-- the schemas below with CREATEROLE. Change the password, and list every schema the models read.")
	s.add("-- The role holds the grants; the user logs in and inherits them.")
	s.add("CREATE ROLE %s NOLOGIN;", PgIdent(o.Role))
	s.add("CREATE ROLE %s LOGIN PASSWORD %s IN ROLE %s;", PgIdent(o.User), PgLiteral(o.Password), PgIdent(o.Role))
	s.add("GRANT CONNECT ON DATABASE %s TO %s;", PgIdent(o.Database), PgIdent(o.Role))
	for _, sc := range o.Schemas {
		s.add("-- Read schema %s: its tables and views now, and those its owner creates later.", sc)
		s.add("GRANT USAGE ON SCHEMA %s TO %s;", PgIdent(sc), PgIdent(o.Role))
		s.add("GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s;", PgIdent(sc), PgIdent(o.Role))
		s.add("ALTER DEFAULT PRIVILEGES IN SCHEMA %s GRANT SELECT ON TABLES TO %s;", PgIdent(sc), PgIdent(o.Role))
	}
	s.add("-- The snapshot schema holds the warehouse diff engine's tables; Ebb writes nowhere else.")
	s.add("CREATE SCHEMA IF NOT EXISTS %s;", PgIdent(o.SnapshotSchema))
	s.add("GRANT USAGE, CREATE ON SCHEMA %s TO %s;", PgIdent(o.SnapshotSchema), PgIdent(o.Role))
	return s.String()
}

// redshiftSetup grants to a group: Redshift's HAS_TABLE_PRIVILEGE, which
// the checks use, sees a user's groups but not RBAC roles.
func redshiftSetup(o Options) string {
	var s script
	s.add("-- Ebb's least-privilege setup for Amazon Redshift. Run it as a superuser (or the schemas' owner).")
	s.add("-- Change the password (8 to 64 characters with an upper-case letter, a lower-case letter and a")
	s.add("-- digit), and list every schema the models read. The group holds the grants.")
	s.add("CREATE USER %s PASSWORD %s;", PgIdent(o.User), PgLiteral(o.Password))
	s.add("CREATE GROUP %s WITH USER %s;", PgIdent(o.Role), PgIdent(o.User))
	for _, sc := range o.Schemas {
		s.add("-- Read schema %s: its tables and views now, and those its owner creates later.", sc)
		s.add("GRANT USAGE ON SCHEMA %s TO GROUP %s;", PgIdent(sc), PgIdent(o.Role))
		s.add("GRANT SELECT ON ALL TABLES IN SCHEMA %s TO GROUP %s;", PgIdent(sc), PgIdent(o.Role))
		s.add("ALTER DEFAULT PRIVILEGES IN SCHEMA %s GRANT SELECT ON TABLES TO GROUP %s;", PgIdent(sc), PgIdent(o.Role))
	}
	s.add("-- The snapshot schema holds the warehouse diff engine's tables; Ebb writes nowhere else.")
	s.add("CREATE SCHEMA IF NOT EXISTS %s;", PgIdent(o.SnapshotSchema))
	s.add("GRANT USAGE, CREATE ON SCHEMA %s TO GROUP %s;", PgIdent(o.SnapshotSchema), PgIdent(o.Role))
	return s.String()
}

var sfBare = regexp.MustCompile(`^[A-Z_][A-Z0-9_$]*$`)

// SfIdent writes a Snowflake identifier bare when Snowflake would read it
// back unchanged (upper case), quoted otherwise.
func SfIdent(name string) string {
	if sfBare.MatchString(name) {
		return name
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// SfName joins the parts of a qualified Snowflake name.
func SfName(parts ...string) string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = SfIdent(p)
	}
	return strings.Join(out, ".")
}

// SfGrant writes GRANT privilege ON kind object TO ROLE role.
func SfGrant(privilege, kind, object, role string) string {
	return "GRANT " + privilege + " ON " + kind + " " + object + " TO ROLE " + SfIdent(role) + ";"
}

func snowflakeSetup(o Options) string {
	var s script
	role := SfIdent(o.Role)
	s.add("-- Ebb's least-privilege setup for Snowflake. Change the password (or use key-pair auth:")
	s.add("-- ALTER USER ... SET RSA_PUBLIC_KEY = '...'), and list every schema the models read.")
	s.add("USE ROLE USERADMIN;")
	s.add("CREATE ROLE IF NOT EXISTS %s;", role)
	s.add("CREATE USER IF NOT EXISTS %s PASSWORD = '%s' DEFAULT_ROLE = %s DEFAULT_WAREHOUSE = %s;",
		SfIdent(o.User), strings.ReplaceAll(o.Password, "'", "''"), role, SfIdent(o.Warehouse))
	s.add("GRANT ROLE %s TO USER %s;", role, SfIdent(o.User))
	s.add("USE ROLE SECURITYADMIN;")
	s.add("-- Run queries (a small warehouse is enough: only keys, hashes and changed rows leave it).")
	s.add("%s", SfGrant("USAGE", "WAREHOUSE", SfIdent(o.Warehouse), o.Role))
	s.add("%s", SfGrant("USAGE", "DATABASE", SfIdent(o.Database), o.Role))
	for _, sc := range o.Schemas {
		name := SfName(o.Database, sc)
		s.add("-- Read schema %s: its tables and views now and later.", name)
		s.add("%s", SfGrant("USAGE", "SCHEMA", name, o.Role))
		for _, kind := range []string{"TABLES", "VIEWS"} {
			s.add("%s", SfGrant("SELECT", "ALL "+kind+" IN SCHEMA", name, o.Role))
			s.add("%s", SfGrant("SELECT", "FUTURE "+kind+" IN SCHEMA", name, o.Role))
		}
	}
	// The source's snapshot_schema is an unquoted name: Snowflake upper-cases it.
	snap := SfName(o.Database, strings.ToUpper(o.SnapshotSchema))
	s.add("-- The snapshot schema holds the warehouse diff engine's tables; Ebb writes nowhere else.")
	s.add("USE ROLE SYSADMIN;")
	s.add("CREATE SCHEMA IF NOT EXISTS %s;", snap)
	s.add("%s", SfGrant("USAGE, CREATE TABLE", "SCHEMA", snap, o.Role))
	return s.String()
}

// BqMember is the IAM member of the service account named user.
func BqMember(user, project string) string {
	return "serviceAccount:" + user + "@" + project + ".iam.gserviceaccount.com"
}

// BqGrantDataset grants an IAM role on a dataset, in BigQuery's DCL.
func BqGrantDataset(role, project, dataset, member string) string {
	return "GRANT `" + role + "` ON SCHEMA `" + project + "." + dataset + "` TO \"" + member + "\";"
}

// BqGrantProject grants an IAM role on the project; there is no SQL for it.
func BqGrantProject(role, project, member string) string {
	return "gcloud projects add-iam-policy-binding " + project + " --member=" + member + " --role=" + role
}

func bigquerySetup(o Options) string {
	var s script
	member := BqMember(o.User, o.Project)
	s.add("-- Ebb's least-privilege setup for BigQuery: a service account that runs query jobs in the")
	s.add("-- project, reads the models' datasets and owns the tables of one snapshot dataset.")
	s.add("-- First, in a shell (BigQuery's SQL cannot create accounts or grant on a project):")
	s.add("--   gcloud iam service-accounts create %s --project=%s", o.User, o.Project)
	s.add("--   %s", BqGrantProject("roles/bigquery.jobUser", o.Project, member))
	s.add("--   gcloud iam service-accounts keys create key.json --iam-account=%s@%s.iam.gserviceaccount.com", o.User, o.Project)
	s.add("-- Then in BigQuery, for every dataset the models read:")
	for _, ds := range o.Schemas {
		s.add("%s", BqGrantDataset("roles/bigquery.dataViewer", o.Project, ds, member))
	}
	s.add("-- The snapshot dataset holds the warehouse diff engine's tables; Ebb writes nowhere else.")
	s.add("CREATE SCHEMA IF NOT EXISTS `%s.%s` OPTIONS (location = '%s');", o.Project, o.SnapshotSchema, o.Location)
	s.add("%s", BqGrantDataset("roles/bigquery.dataEditor", o.Project, o.SnapshotSchema, member))
	return s.String()
}

// Known reports whether a type has a setup.
func Known(typ string) bool { return slices.Contains(Types, typ) }
