package sftest

import (
	"regexp"
	"strings"
)

// Grant is a privilege granted to a role, one row of SHOW GRANTS TO ROLE.
type Grant struct {
	// Privilege such as USAGE, SELECT, CREATE TABLE, CREATE SCHEMA or
	// OWNERSHIP.
	Privilege string
	// GrantedOn is the object's kind: WAREHOUSE, DATABASE, SCHEMA, TABLE,
	// VIEW or ROLE (a role granted to this one).
	GrantedOn string
	// Name is the object's name as Snowflake prints it, qualified and
	// upper-case unless quoted: EBB.PUBLIC.PEOPLE.
	Name string
}

// DefaultRole is the role of a session whose login names none.
const DefaultRole = "PUBLIC"

// SetGrants replaces the privileges granted to role, which SHOW GRANTS TO
// ROLE then lists. A role without grants does not exist for SHOW GRANTS.
func (s *Server) SetGrants(role string, grants ...Grant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grants == nil {
		s.grants = map[string][]Grant{}
	}
	s.grants[strings.ToUpper(role)] = grants
}

var (
	showGrants  = regexp.MustCompile(`(?is)^\s*SHOW\s+GRANTS\s+TO\s+ROLE\s+("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)\s*;?\s*$`)
	currentRole = regexp.MustCompile(`(?is)^\s*SELECT\s+CURRENT_ROLE\(\)\s*;?\s*$`)
)

// metadata answers the statements that read account metadata rather than
// data: SHOW GRANTS TO ROLE and SELECT CURRENT_ROLE(). ok is false for any
// other statement.
func (s *Server) metadata(sess *session, sqlText string) (a *answer, e *sfError, ok bool) {
	if currentRole.MatchString(sqlText) {
		role := sess.role
		return &answer{rowtype: []rowType{textColumn("CURRENT_ROLE()")}, rows: [][]*string{{&role}}}, nil, true
	}
	m := showGrants.FindStringSubmatch(sqlText)
	if m == nil {
		return nil, nil, false
	}
	role := identifier(m[1])
	s.mu.Lock()
	grants, exists := s.grants[role]
	s.mu.Unlock()
	if !exists {
		return nil, &sfError{"002003", "02000", "SQL compilation error:\nRole '" + role + "' does not exist or not authorized."}, true
	}
	return grantRows(role, grants), nil, true
}

// grantRows is SHOW GRANTS TO ROLE's result: created_on (TIMESTAMP_LTZ),
// privilege, granted_on, name, granted_to, grantee_name, grant_option and
// granted_by, as Snowflake documents it.
func grantRows(role string, grants []Grant) *answer {
	a := &answer{rowtype: []rowType{
		{Name: "created_on", Type: "timestamp_ltz", Scale: 3, Nullable: true},
		textColumn("privilege"), textColumn("granted_on"), textColumn("name"),
		textColumn("granted_to"), textColumn("grantee_name"), textColumn("grant_option"),
		textColumn("granted_by"),
	}}
	for _, g := range grants {
		a.rows = append(a.rows, cells("1700000000.000", g.Privilege, g.GrantedOn, g.Name, "ROLE", role, "false", "SECURITYADMIN"))
	}
	return a
}

func textColumn(name string) rowType {
	return rowType{Name: name, Type: "text", Length: 16777216, ByteLength: 16777216, Nullable: true}
}

func cells(values ...string) []*string {
	out := make([]*string, len(values))
	for i := range values {
		out[i] = &values[i]
	}
	return out
}

// identifier resolves a name as Snowflake does: quoted as written,
// otherwise upper-cased.
func identifier(name string) string {
	if strings.HasPrefix(name, `"`) {
		return strings.ReplaceAll(name[1:len(name)-1], `""`, `"`)
	}
	return strings.ToUpper(name)
}
