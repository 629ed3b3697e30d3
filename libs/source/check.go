package source

import "context"

// Checker is implemented by sources that can check their credentials: can
// the role read each table the models name, use the compute, and create
// tables in the snapshot schema? Checks use metadata only (privilege
// functions, SHOW GRANTS, IAM permission tests), so they need no running
// compute and finish within seconds.
type Checker interface {
	// Check returns one finding per permission checked. An error means
	// the checks could not run at all, such as a failed login.
	Check(ctx context.Context, req CheckRequest) ([]Finding, error)
}

// CheckRequest is what the credentials must allow.
type CheckRequest struct {
	// Models are the SQL of the syncs reading the source.
	Models []CheckModel
	// SnapshotSchema is where the warehouse diff engine creates its tables
	// (DefaultSnapshotSchema when empty).
	SnapshotSchema string
}

// CheckModel is one sync's model.
type CheckModel struct {
	// Sync names the sync, in findings about the model's tables.
	Sync string
	SQL  string
}

// Finding is the outcome of one check.
type Finding struct {
	// Check says what was checked: "SELECT on table public.users".
	Check string
	// OK is true when the permission is there.
	OK bool
	// Detail says why the permission is needed (the syncs reading a
	// table) or why the check failed (the warehouse's message).
	Detail string
	// Fix is the statement an administrator runs to grant what is
	// missing to a least-privilege role; empty when OK.
	Fix string
}

// Missing counts the findings that are not OK.
func Missing(findings []Finding) int {
	n := 0
	for _, f := range findings {
		if !f.OK {
			n++
		}
	}
	return n
}

// SchemaOrDefault is the snapshot schema a request names.
func (r CheckRequest) SchemaOrDefault() string {
	if r.SnapshotSchema == "" {
		return DefaultSnapshotSchema
	}
	return r.SnapshotSchema
}
