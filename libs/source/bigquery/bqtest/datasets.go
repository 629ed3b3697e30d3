package bqtest

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// datasetID is what BigQuery accepts as a dataset ID (at most 1,024 of them).
var datasetID = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// handleInsertDataset answers datasets.insert, POST .../datasets with a
// Dataset resource: it creates the dataset (a DuckDB schema) in the
// server's one location. An existing dataset is 409 duplicate, as in
// BigQuery; DenyDatasetCreate makes it 403.
func (s *Server) handleInsertDataset(w http.ResponseWriter, r *http.Request) {
	var req struct {
		DatasetReference *datasetRef `json:"datasetReference"`
		Location         string      `json:"location"`
	}
	if err := readJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.DatasetReference == nil || req.DatasetReference.DatasetID == "" {
		writeError(w, invalid("Required parameter is missing: datasetReference.datasetId"))
		return
	}
	ds := req.DatasetReference.DatasetID
	if p := req.DatasetReference.ProjectID; p != "" && p != s.Project {
		writeError(w, invalid(fmt.Sprintf("Project %s in the dataset reference differs from project %s of the request", p, s.Project)))
		return
	}
	if !datasetID.MatchString(ds) || len(ds) > 1024 {
		writeError(w, invalid(fmt.Sprintf("Invalid dataset ID %q. Dataset IDs must be alphanumeric (plus underscores) and must be at most 1024 characters long.", ds)))
		return
	}
	if req.Location != "" && !strings.EqualFold(req.Location, location) {
		writeError(w, invalid(fmt.Sprintf("This server holds datasets in location %s only, not %s", location, req.Location)))
		return
	}
	s.mu.Lock()
	deny := s.denyDatasets
	s.mu.Unlock()
	if deny {
		writeError(w, accessDenied(fmt.Sprintf("Access Denied: Project %s: User does not have bigquery.datasets.create permission in project %s.", s.Project, s.Project)))
		return
	}
	if err := s.checkDataset(r.Context(), ds); err == nil || ds == jobsDataset {
		writeError(w, &apiError{http.StatusConflict, "ALREADY_EXISTS", "duplicate", fmt.Sprintf("Already Exists: Dataset %s:%s", s.Project, ds)})
		return
	}
	if _, err := s.db.ExecContext(r.Context(), "CREATE SCHEMA "+quoteIdent(ds)); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.datasetResource(ds))
}

func (s *Server) datasetResource(ds string) map[string]any {
	return map[string]any{
		"kind":             "bigquery#dataset",
		"id":               s.Project + ":" + ds,
		"datasetReference": datasetRef{ProjectID: s.Project, DatasetID: ds},
		"location":         location,
	}
}

// DenyDatasetCreate makes datasets.insert fail for lack of
// bigquery.datasets.create.
func (s *Server) DenyDatasetCreate(deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denyDatasets = deny
}

// handleListTables answers tables.list, GET .../datasets/{dataset}/tables
// (maxResults, pageToken): the dataset's tables and views by name, at most
// a page (PageSize, or maxResults when smaller) per response, with a
// nextPageToken while more follow, and totalItems.
func (s *Server) handleListTables(w http.ResponseWriter, r *http.Request) {
	ds := r.PathValue("dataset")
	if err := s.checkDataset(r.Context(), ds); err != nil {
		writeError(w, err)
		return
	}
	q := r.URL.Query()
	var start int64
	if tok := q.Get("pageToken"); tok != "" {
		var err error
		if start, err = parseToken(tok); err != nil {
			writeError(w, err)
			return
		}
	}
	n := int64(s.PageSize)
	if m, _ := strconv.ParseInt(q.Get("maxResults"), 10, 64); m > 0 {
		n = min(n, m)
	}
	names, types, err := s.tables(r.Context(), ds)
	if err != nil {
		writeError(w, err)
		return
	}
	resp := map[string]any{"kind": "bigquery#tableList", "totalItems": len(names)}
	tables := []any{}
	for i := start; i < min(start+n, int64(len(names))); i++ {
		tables = append(tables, map[string]any{
			"kind":           "bigquery#table",
			"id":             s.Project + ":" + ds + "." + names[i],
			"tableReference": map[string]string{"projectId": s.Project, "datasetId": ds, "tableId": names[i]},
			"type":           types[i],
		})
	}
	if len(tables) > 0 {
		resp["tables"] = tables
	}
	if next := start + int64(len(tables)); next < int64(len(names)) {
		resp["nextPageToken"] = fmt.Sprintf("BQ%dT", next)
	}
	writeJSON(w, http.StatusOK, resp)
}

// tables lists a dataset's tables and views by name, with their REST type.
func (s *Server) tables(ctx context.Context, ds string) (names, types []string, err error) {
	rows, err := s.db.QueryContext(ctx, "SELECT table_name, table_type FROM information_schema.tables "+
		"WHERE table_schema = ? ORDER BY table_name", ds)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, nil, err
		}
		if typ == "BASE TABLE" {
			typ = "TABLE"
		}
		names, types = append(names, name), append(types, typ)
	}
	return names, types, rows.Err()
}

// Tables lists the tables of a dataset, read from DuckDB directly, for
// tests to check what a run left behind.
func (s *Server) Tables(ctx context.Context, dataset string) ([]string, error) {
	names, _, err := s.tables(ctx, dataset)
	return names, err
}
