package bqtest

import (
	"fmt"
	"net/http"
	"strings"
)

// handleTestIamPermissions answers tables.testIamPermissions, POST
// .../datasets/{dataset}/tables/{table}:testIamPermissions with
// {"permissions": [...]}: it returns the subset of the permissions asked
// that the caller holds, as Google documents (an empty object when none).
// Every permission is held except those DenyTable took away from the table;
// a missing table is notFound.
func (s *Server) handleTestIamPermissions(w http.ResponseWriter, r *http.Request) {
	ds := r.PathValue("dataset")
	table, ok := strings.CutSuffix(r.PathValue("table"), ":testIamPermissions")
	if !ok {
		writeError(w, notFound("Not found: "+r.Method+" "+r.URL.Path))
		return
	}
	var req struct {
		Permissions []string `json:"permissions"`
	}
	if err := readJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := s.checkDataset(r.Context(), ds); err != nil {
		writeError(w, err)
		return
	}
	if _, err := s.describe(r.Context(), s.db, fmt.Sprintf("SELECT * FROM %s.%s", quoteIdent(ds), quoteIdent(table))); err != nil {
		writeError(w, notFound(fmt.Sprintf("Not found: Table %s:%s.%s", s.Project, ds, table)))
		return
	}
	s.mu.Lock()
	denied := s.denied[strings.ToLower(ds+"."+table)]
	s.mu.Unlock()
	var held []string
	for _, p := range req.Permissions {
		if p != denied {
			held = append(held, p)
		}
	}
	resp := map[string]any{}
	if len(held) > 0 {
		resp["permissions"] = held
	}
	writeJSON(w, http.StatusOK, resp)
}

// AllowTable undoes DenyTable: the caller may read dataset.table again.
func (s *Server) AllowTable(datasetTable string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.denied, strings.ToLower(datasetTable))
}
