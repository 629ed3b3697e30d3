package bigquery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"google.golang.org/api/googleapi"

	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/grant"
	"github.com/ebb-etl/ebb/libs/source/internal/query"
)

var _ source.Checker = (*Source)(nil)

// readPermission is what reading a table's rows needs.
const readPermission = "bigquery.tables.getData"

// Check checks, without running any query:
//   - each model with a dry run (free, nothing runs): it needs
//     bigquery.jobs.create on the project and read access to the tables;
//   - each table the models name with tables.testIamPermissions
//     (bigquery.tables.getData);
//   - the snapshot dataset with datasets.get: it must exist (BigQuery's API
//     cannot test a dataset's permissions; write access is proved when the
//     warehouse engine first creates a table there).
func (s *Source) Check(ctx context.Context, req source.CheckRequest) ([]source.Finding, error) {
	member := s.member
	if member == "" {
		member = grant.BqMember("<service-account>", s.project)
	}
	findings := []source.Finding{{
		Check: "reach project " + s.project, OK: true,
		Detail: "fix statements below grant to " + member,
	}}
	for _, m := range req.Models {
		findings = append(findings, s.dryRun(ctx, m, member))
	}
	for _, t := range s.tables(req.Models) {
		findings = append(findings, s.tableFinding(ctx, t, member))
	}
	return append(findings, s.snapshotFinding(ctx, req.SchemaOrDefault(), member)), nil
}

func (s *Source) dryRun(ctx context.Context, m source.CheckModel, member string) source.Finding {
	f := source.Finding{Check: fmt.Sprintf("dry-run the model of sync %q (bigquery.jobs.create)", m.Sync), OK: true}
	if _, err := s.schema(ctx, m.SQL); err != nil {
		f.OK, f.Detail = false, err.Error()
		if strings.Contains(err.Error(), "bigquery.jobs.create") {
			f.Fix = grant.BqGrantProject("roles/bigquery.jobUser", s.project, member)
		}
	}
	return f
}

// bqTable is a table the models name and the syncs reading it.
type bqTable struct {
	project, dataset, name string
	syncs                  []string
}

// tables resolves the names the models write: project.dataset.table,
// dataset.table, or a table of the default dataset. A backquoted name may
// hold every part.
func (s *Source) tables(models []source.CheckModel) []*bqTable {
	var out []*bqTable
	byName := map[string]*bqTable{}
	for _, m := range models {
		for _, r := range query.Relations(m.SQL) {
			var parts []string
			for _, p := range r.Parts {
				parts = append(parts, strings.Split(p, ".")...)
			}
			t := &bqTable{project: s.project, dataset: s.dataset, name: parts[len(parts)-1]}
			if len(parts) >= 2 {
				t.dataset = parts[len(parts)-2]
			}
			if len(parts) >= 3 {
				t.project = parts[len(parts)-3]
			}
			key := t.project + "." + t.dataset + "." + t.name
			if prev := byName[key]; prev != nil {
				t = prev
			} else {
				byName[key] = t
				out = append(out, t)
			}
			if !slices.Contains(t.syncs, m.Sync) {
				t.syncs = append(t.syncs, m.Sync)
			}
		}
	}
	return out
}

func (s *Source) tableFinding(ctx context.Context, t *bqTable, member string) source.Finding {
	name := t.project + "." + t.dataset + "." + t.name
	syncs := make([]string, len(t.syncs))
	for i, sy := range t.syncs {
		syncs[i] = fmt.Sprintf("%q", sy)
	}
	f := source.Finding{
		Check:  readPermission + " on table " + name,
		Detail: "read by the model of sync " + strings.Join(syncs, ", "),
		Fix:    "GRANT `roles/bigquery.dataViewer` ON TABLE `" + name + "` TO \"" + member + "\";",
	}
	held, err := s.client.DatasetInProject(t.project, t.dataset).Table(t.name).IAM().TestPermissions(ctx, []string{readPermission})
	if err != nil {
		f.Detail = s.apiError("testing permissions", err).Error() + "; " + f.Detail
		return f
	}
	if slices.Contains(held, readPermission) {
		f.OK, f.Fix = true, ""
	}
	return f
}

func (s *Source) snapshotFinding(ctx context.Context, dataset, member string) source.Finding {
	f := source.Finding{
		Check:  "snapshot dataset " + s.project + "." + dataset + " exists",
		OK:     true,
		Detail: "the warehouse diff engine keeps its snapshot tables there; it needs roles/bigquery.dataEditor on it",
	}
	_, err := s.client.Dataset(dataset).Metadata(ctx)
	var ge *googleapi.Error
	switch {
	case err == nil:
		return f
	case errors.As(err, &ge) && ge.Code == http.StatusNotFound:
		f.OK = false
		f.Fix = fmt.Sprintf("CREATE SCHEMA `%s.%s`; %s", s.project, dataset,
			grant.BqGrantDataset("roles/bigquery.dataEditor", s.project, dataset, member))
	default:
		f.OK, f.Detail = false, s.apiError("reading dataset "+dataset, err).Error()
		f.Fix = grant.BqGrantDataset("roles/bigquery.dataEditor", s.project, dataset, member)
	}
	return f
}

// memberOf reads the service account's email from its key, so fixes name
// the account Ebb runs as.
func memberOf(credentials string) string {
	var key struct {
		Email string `json:"client_email"`
	}
	if credentials == "" || json.Unmarshal([]byte(credentials), &key) != nil || key.Email == "" {
		return ""
	}
	return "serviceAccount:" + key.Email
}
