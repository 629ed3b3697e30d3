package bqtest

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const location = "US"

// datasetRef, parameter and formatOptions are the REST request shapes.
type datasetRef struct {
	ProjectID string `json:"projectId"`
	DatasetID string `json:"datasetId"`
}

type parameter struct {
	Name          string `json:"name"`
	ParameterType struct {
		Type string `json:"type"`
	} `json:"parameterType"`
	ParameterValue struct {
		Value *string `json:"value"`
	} `json:"parameterValue"`
}

type formatOptions struct {
	UseInt64Timestamp bool `json:"useInt64Timestamp"`
}

// queryConfig is what jobs.query and jobs.insert share.
type queryConfig struct {
	Query           string      `json:"query"`
	UseLegacySQL    *bool       `json:"useLegacySql"`
	DefaultDataset  *datasetRef `json:"defaultDataset"`
	QueryParameters []parameter `json:"queryParameters"`
}

type queryRequest struct {
	queryConfig
	MaxResults    int            `json:"maxResults"`
	DryRun        bool           `json:"dryRun"`
	Location      string         `json:"location"`
	FormatOptions *formatOptions `json:"formatOptions"`
}

type jobRef struct {
	ProjectID string `json:"projectId"`
	JobID     string `json:"jobId"`
	Location  string `json:"location"`
}

type insertRequest struct {
	JobReference  *jobRef `json:"jobReference"`
	Configuration struct {
		Query  *queryConfig    `json:"query"`
		Load   json.RawMessage `json:"load"`
		DryRun bool            `json:"dryRun"`
	} `json:"configuration"`
}

// job is a query job and its result table, or a load job.
type job struct {
	ref      jobRef
	query    string
	schema   *schema // nil for statements without a result
	stmtType string  // statistics.query.statementType: SELECT, INSERT, CREATE_TABLE, …
	rows     int64
	affected int64 // rows a DML statement inserted, updated or deleted
	dryRun   bool
	err      *apiError   // the job ran and failed
	errs     []*apiError // status.errors when they say more than err
	created  time.Time
	// load is configuration.load as the client sent it; nil for a query.
	load   json.RawMessage
	loaded loadStats
}

func (s *Server) handleQuery(w http.ResponseWriter, r *http.Request) {
	var req queryRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	j, err := s.run(r.Context(), req.queryConfig, s.newJobRef(""), req.DryRun)
	if err == nil && j.err != nil {
		err = j.err
	}
	if err != nil {
		writeError(w, err)
		return
	}
	int64ts := req.FormatOptions != nil && req.FormatOptions.UseInt64Timestamp
	resp, err := s.page(r.Context(), j, 0, req.MaxResults, int64ts)
	if err != nil {
		writeError(w, err)
		return
	}
	resp["kind"] = "bigquery#queryResponse"
	if dml[j.stmtType] {
		resp["dmlStats"] = dmlStats(j)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleGetQueryResults(w http.ResponseWriter, r *http.Request) {
	j, err := s.job(r.PathValue("job"))
	if err == nil && j.err != nil {
		err = j.err
	}
	if err != nil {
		writeError(w, err)
		return
	}
	q := r.URL.Query()
	start, _ := strconv.ParseInt(q.Get("startIndex"), 10, 64)
	if tok := q.Get("pageToken"); tok != "" {
		if start, err = parseToken(tok); err != nil {
			writeError(w, err)
			return
		}
	}
	maxResults, _ := strconv.Atoi(q.Get("maxResults"))
	int64ts := q.Get("formatOptions.useInt64Timestamp") == "true"
	resp, err := s.page(r.Context(), j, start, maxResults, int64ts)
	if err != nil {
		writeError(w, err)
		return
	}
	s.Pages.Add(1)
	resp["kind"] = "bigquery#getQueryResultsResponse"
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleInsertJob(w http.ResponseWriter, r *http.Request) {
	var req insertRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Configuration.Load != nil {
		writeError(w, invalid("This server reads no Cloud Storage URIs: upload a load job's data "+
			"(POST /upload/bigquery/v2/projects/{project}/jobs)"))
		return
	}
	if req.Configuration.Query == nil {
		writeError(w, invalid("This server runs query and load jobs only"))
		return
	}
	id := ""
	if req.JobReference != nil {
		id = req.JobReference.JobID
	}
	j, err := s.run(r.Context(), *req.Configuration.Query, s.newJobRef(id), req.Configuration.DryRun)
	if err != nil {
		// A query that does not compile fails the insert itself; one that
		// fails while running makes a job that ended in error (j.err).
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.jobResource(j))
}

func (s *Server) handleGetJob(w http.ResponseWriter, r *http.Request) {
	j, err := s.job(r.PathValue("job"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.jobResource(j))
}

func (s *Server) handleGetDataset(w http.ResponseWriter, r *http.Request) {
	ds := r.PathValue("dataset")
	if err := s.checkDataset(r.Context(), ds); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.datasetResource(ds))
}

func (s *Server) handleGetTable(w http.ResponseWriter, r *http.Request) {
	ds, t := r.PathValue("dataset"), r.PathValue("table")
	if err := s.checkTable(r.Context(), ds, t); err != nil {
		writeError(w, err)
		return
	}
	sc, err := s.describe(r.Context(), s.db, fmt.Sprintf("SELECT * FROM %s.%s", quoteIdent(ds), quoteIdent(t)))
	if err != nil {
		writeError(w, s.mapError(err, queryConfig{DefaultDataset: &datasetRef{DatasetID: ds}}))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"kind":           "bigquery#table",
		"id":             s.Project + ":" + ds + "." + t,
		"tableReference": map[string]string{"projectId": s.Project, "datasetId": ds, "tableId": t},
		"schema":         sc,
		"type":           "TABLE",
		"location":       location,
	})
}

// checkTable checks a table's dataset exists; in the hidden dataset only
// the result tables of queries are visible.
func (s *Server) checkTable(ctx context.Context, ds, table string) error {
	if ds != jobsDataset {
		return s.checkDataset(ctx, ds)
	}
	if j, err := s.job(table); err != nil || j.schema == nil || j.dryRun || j.err != nil {
		return notFound(fmt.Sprintf("Not found: Table %s:%s.%s", s.Project, ds, table))
	}
	return nil
}

func (s *Server) newJobRef(id string) jobRef {
	if id == "" {
		id = fmt.Sprintf("job_ebb_%06d", s.nextJob.Add(1))
	}
	return jobRef{ProjectID: s.Project, JobID: id, Location: location}
}

func (s *Server) job(id string) (*job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return nil, notFound(fmt.Sprintf("Not found: Job %s:%s.%s", s.Project, location, id))
	}
	return j, nil
}

// jobResource is the Job resource of jobs.insert and jobs.get. Every job
// is DONE: the server runs them before it answers.
func (s *Server) jobResource(j *job) map[string]any {
	ms := strconv.FormatInt(j.created.UnixMilli(), 10)
	stats := map[string]any{"creationTime": ms, "startTime": ms, "endTime": ms, "totalBytesProcessed": "0"}
	var config map[string]any
	if j.load != nil {
		config = map[string]any{"load": j.load, "jobType": "LOAD"}
		stats["load"] = j.loaded.resource()
	} else {
		config = map[string]any{"query": s.queryConfigResource(j), "dryRun": j.dryRun, "jobType": "QUERY"}
		stats["query"] = queryStats(j)
	}
	return map[string]any{
		"kind":          "bigquery#job",
		"id":            j.ref.ProjectID + ":" + j.ref.Location + "." + j.ref.JobID,
		"jobReference":  j.ref,
		"configuration": config,
		"status":        jobStatus(j),
		"statistics":    stats,
	}
}

// jobStatus is status: errorResult is the error that failed the job,
// errors all the errors it met (BigQuery's load jobs list a row's error
// there, behind a "too many errors" errorResult).
func jobStatus(j *job) map[string]any {
	status := map[string]any{"state": "DONE"}
	if j.err == nil {
		return status
	}
	resource := func(e *apiError) map[string]any { return map[string]any{"reason": e.reason, "message": e.message} }
	status["errorResult"] = resource(j.err)
	errs := []any{resource(j.err)}
	for _, e := range j.errs {
		errs = append(errs, resource(e))
	}
	status["errors"] = errs
	return status
}

// queryConfigResource is configuration.query. A query that ran has its
// result table as destinationTable, which the client reads with the
// Storage Read API.
func (s *Server) queryConfigResource(j *job) map[string]any {
	cfg := map[string]any{"query": j.query, "useLegacySql": false}
	if j.stmtType == "SELECT" && !j.dryRun && j.err == nil {
		cfg["destinationTable"] = tableRef{ProjectID: s.Project, DatasetID: jobsDataset, TableID: j.ref.JobID}
	}
	return cfg
}

// queryStats is statistics.query.
func queryStats(j *job) map[string]any {
	stats := map[string]any{"totalBytesProcessed": "0", "cacheHit": false, "statementType": j.stmtType}
	if j.schema != nil {
		stats["schema"] = j.schema
	}
	if dml[j.stmtType] {
		stats["numDmlAffectedRows"] = strconv.FormatInt(j.affected, 10)
		stats["dmlStats"] = dmlStats(j)
	}
	return stats
}

// run checks and runs a query, writing its result to the job's table. It
// returns an error for a request BigQuery refuses outright (invalid SQL, a
// missing table, no permission) and a job with err set for a query that
// fails while running.
func (s *Server) run(ctx context.Context, cfg queryConfig, ref jobRef, dryRun bool) (*job, error) {
	if cfg.UseLegacySQL == nil || *cfg.UseLegacySQL {
		return nil, invalidQuery("This server runs GoogleSQL only: set useLegacySql to false")
	}
	if err := s.checkAccess(cfg); err != nil {
		return nil, err
	}
	st, err := translate(cfg.Query)
	if err != nil {
		return nil, invalidQuery(err.Error())
	}
	args, err := bindParams(st.params, cfg.QueryParameters)
	if err != nil {
		return nil, err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := s.useDataset(ctx, conn, cfg.DefaultDataset); err != nil {
		return nil, err
	}
	body := strings.TrimRight(strings.TrimSpace(st.sql), "; \t\r\n")
	j := &job{ref: ref, query: cfg.Query, stmtType: statementType(body), dryRun: dryRun, created: time.Now()}
	if j.stmtType == "" {
		kw, _, _ := strings.Cut(body, " ")
		return nil, invalidQuery(fmt.Sprintf("This server does not run %s statements", strings.ToUpper(kw)))
	}
	if j.stmtType != "SELECT" {
		if dryRun {
			return nil, invalidQuery("This server dry-runs queries only")
		}
		res, err := conn.ExecContext(ctx, body, args...)
		if err != nil {
			return nil, s.mapError(err, cfg)
		}
		if dml[j.stmtType] {
			j.affected, _ = res.RowsAffected()
		}
		s.addJob(j)
		return j, nil
	}
	// Planning the query with no rows checks it as BigQuery does before it
	// creates a job, and gives the schema of a dry run.
	if j.schema, err = s.describe(ctx, conn, body, args...); err != nil {
		return nil, s.mapError(err, cfg)
	}
	if !dryRun {
		if _, err := conn.ExecContext(ctx, "CREATE TABLE "+jobsDataset+"."+quoteIdent(ref.JobID)+" AS "+body+"\n", args...); err != nil {
			j.err = s.mapError(err, cfg)
		} else if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+jobsDataset+"."+quoteIdent(ref.JobID)).Scan(&j.rows); err != nil {
			return nil, err
		}
	}
	s.addJob(j)
	return j, nil
}

func (s *Server) addJob(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs[j.ref.JobID] = j
}

// dml are the statement types that report numDmlAffectedRows.
var dml = map[string]bool{"INSERT": true, "UPDATE": true, "DELETE": true, "MERGE": true}

// ddl maps the leading keywords of the DDL statements the server runs to
// their statementType; a CREATE TABLE with AS is CREATE_TABLE_AS_SELECT.
var ddl = []struct{ prefix, stmtType string }{
	{"CREATE OR REPLACE TABLE", "CREATE_TABLE"},
	{"CREATE TABLE", "CREATE_TABLE"},
	{"CREATE SCHEMA", "CREATE_SCHEMA"},
	{"CREATE OR REPLACE VIEW", "CREATE_VIEW"},
	{"CREATE VIEW", "CREATE_VIEW"},
	{"DROP TABLE", "DROP_TABLE"},
	{"DROP SCHEMA", "DROP_SCHEMA"},
	{"DROP VIEW", "DROP_VIEW"},
	{"ALTER TABLE", "ALTER_TABLE"},
	{"TRUNCATE TABLE", "TRUNCATE_TABLE"},
}

var (
	space = regexp.MustCompile(`\s+`)
	ctas  = regexp.MustCompile(`(?i)\sAS\s*(\(|SELECT\b|WITH\b)`)
)

// statementType classifies a statement as BigQuery's job statistics do
// (statistics.query.statementType), by its leading keywords, or returns ""
// for a statement the server does not run.
func statementType(sql string) string {
	for strings.HasPrefix(sql, "(") {
		sql = strings.TrimSpace(sql[1:])
	}
	head := strings.ToUpper(space.ReplaceAllString(sql[:min(len(sql), 64)], " "))
	kw, _, _ := strings.Cut(head, " ")
	switch kw {
	case "SELECT", "WITH", "FROM", "VALUES":
		return "SELECT"
	case "INSERT", "UPDATE", "DELETE", "MERGE":
		return kw
	}
	for _, d := range ddl {
		if !strings.HasPrefix(head, d.prefix+" ") {
			continue
		}
		if d.stmtType == "CREATE_TABLE" && ctas.MatchString(sql) {
			return "CREATE_TABLE_AS_SELECT"
		}
		return d.stmtType
	}
	return ""
}

// dmlStats is statistics.query.dmlStats: the affected rows by kind.
func dmlStats(j *job) map[string]string {
	n := strconv.FormatInt(j.affected, 10)
	switch j.stmtType {
	case "INSERT":
		return map[string]string{"insertedRowCount": n}
	case "UPDATE":
		return map[string]string{"updatedRowCount": n}
	case "DELETE":
		return map[string]string{"deletedRowCount": n}
	}
	return map[string]string{} // MERGE: DuckDB does not split the count
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// describe plans a query and returns its result schema.
func (s *Server) describe(ctx context.Context, q queryer, body string, args ...any) (*schema, error) {
	rows, err := q.QueryContext(ctx, "SELECT * FROM (\n"+body+"\n) AS _q LIMIT 0", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	sc := &schema{Fields: []*field{}}
	for _, t := range types {
		f, err := fieldOf(t.Name(), t.DatabaseTypeName())
		if err != nil {
			return nil, invalidQuery(err.Error())
		}
		sc.Fields = append(sc.Fields, f)
	}
	return sc, rows.Close()
}

// page reads rows [start, start+n) of a job's result as a response body.
func (s *Server) page(ctx context.Context, j *job, start int64, maxResults int, int64ts bool) (map[string]any, error) {
	resp := map[string]any{
		"jobReference":        j.ref,
		"jobComplete":         true,
		"cacheHit":            false,
		"totalBytesProcessed": "0",
	}
	if dml[j.stmtType] {
		resp["numDmlAffectedRows"] = strconv.FormatInt(j.affected, 10)
	}
	if j.schema == nil {
		return resp, nil
	}
	resp["schema"] = j.schema
	resp["totalRows"] = strconv.FormatInt(j.rows, 10)
	if j.dryRun {
		return resp, nil
	}
	n := int64(s.PageSize)
	if maxResults > 0 {
		n = min(n, int64(maxResults))
	}
	rows, err := s.db.QueryContext(ctx, "SELECT "+selectList(j.schema)+" FROM "+jobsDataset+"."+quoteIdent(j.ref.JobID)+
		" WHERE rowid >= ? AND rowid < ? ORDER BY rowid", start, start+n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []any{}
	vals := make([]any, len(j.schema.Fields))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		cells := make([]any, len(vals))
		for i, f := range j.schema.Fields {
			v, err := encodeCell(vals[i], f, int64ts)
			if err != nil {
				return nil, invalidQuery(err.Error())
			}
			cells[i] = map[string]any{"v": v}
		}
		out = append(out, map[string]any{"f": cells})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	resp["rows"] = out
	if next := start + int64(len(out)); next < j.rows {
		resp["pageToken"] = fmt.Sprintf("BQ%dT", next)
	}
	return resp, nil
}

// selectList reads JSON columns as their stored text, which the driver
// would otherwise decode (and re-encode differently).
func selectList(sc *schema) string {
	cols := make([]string, len(sc.Fields))
	for i, f := range sc.Fields {
		cols[i] = quoteIdent(f.Name)
		if f.Type == "JSON" && f.Mode != "REPEATED" {
			cols[i] = "CAST(" + cols[i] + " AS VARCHAR)"
		}
	}
	return strings.Join(cols, ", ")
}

func parseToken(tok string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(tok, "BQ"), "T"), 10, 64)
	if err != nil || n < 0 {
		return 0, invalid("Invalid page token: " + tok)
	}
	return n, nil
}

// bindParams orders the named parameters as the translated statement
// numbers them.
func bindParams(names []string, params []parameter) ([]any, error) {
	byName := map[string]parameter{}
	for _, p := range params {
		byName[strings.ToLower(p.Name)] = p
	}
	args := make([]any, len(names))
	for i, n := range names {
		p, ok := byName[strings.ToLower(n)]
		if !ok {
			return nil, invalidQuery(fmt.Sprintf("Query parameter '%s' not found", n))
		}
		v := p.ParameterValue.Value
		if v == nil {
			continue
		}
		switch p.ParameterType.Type {
		case "INT64":
			n, err := strconv.ParseInt(*v, 10, 64)
			if err != nil {
				return nil, invalidQuery(fmt.Sprintf("Invalid INT64 value for parameter %s: %s", p.Name, *v))
			}
			args[i] = n
		case "FLOAT64":
			f, err := strconv.ParseFloat(*v, 64)
			if err != nil {
				return nil, invalidQuery(fmt.Sprintf("Invalid FLOAT64 value for parameter %s: %s", p.Name, *v))
			}
			args[i] = f
		case "BOOL":
			args[i] = *v == "true"
		case "STRING":
			args[i] = *v
		case "BYTES":
			b, err := base64.StdEncoding.DecodeString(*v)
			if err != nil {
				return nil, invalidQuery(fmt.Sprintf("Invalid BYTES value for parameter %s: not base64", p.Name))
			}
			args[i] = b
		default:
			return nil, invalidQuery(fmt.Sprintf("This server does not bind %s parameters (%s)", p.ParameterType.Type, p.Name))
		}
	}
	return args, nil
}

// checkAccess refuses queries naming a denied table, with BigQuery's
// message naming the permission.
func (s *Server) checkAccess(cfg queryConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.denyJobs {
		return accessDenied(fmt.Sprintf("Access Denied: Project %s: User does not have bigquery.jobs.create permission in project %s.", s.Project, s.Project))
	}
	st, err := translate(cfg.Query)
	if err != nil {
		return nil // reported as invalidQuery by run
	}
	for _, id := range identifiers(st.sql) {
		if parts := strings.Split(id, "."); len(parts) == 3 {
			id = parts[1] + "." + parts[2]
		} else if len(parts) == 1 && cfg.DefaultDataset != nil {
			id = strings.ToLower(cfg.DefaultDataset.DatasetID) + "." + id
		}
		if perm, ok := s.denied[id]; ok {
			table := s.Project + ":" + id
			return accessDenied(fmt.Sprintf("Access Denied: Table %s: Permission %s denied on table %s (or it may not exist).", table, perm, table))
		}
	}
	return nil
}

// useDataset resolves unqualified table names in the default dataset.
func (s *Server) useDataset(ctx context.Context, conn *sql.Conn, ds *datasetRef) error {
	path := "main"
	if ds != nil && ds.DatasetID != "" {
		if err := s.checkDataset(ctx, ds.DatasetID); err != nil {
			return err
		}
		path = ds.DatasetID
	}
	_, err := conn.ExecContext(ctx, "SET search_path = '"+strings.ReplaceAll(path, "'", "''")+"'")
	return err
}

func (s *Server) checkDataset(ctx context.Context, ds string) error {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?", ds).Scan(&n)
	if err != nil {
		return err
	}
	if n == 0 || ds == jobsDataset {
		return notFound(fmt.Sprintf("Not found: Dataset %s:%s was not found in location %s", s.Project, ds, location))
	}
	return nil
}

var (
	missingTable  = regexp.MustCompile(`Table with name (\S+) does not exist`)
	missingSchema = regexp.MustCompile(`(?:Schema|Catalog) with name (\S+) does not exist`)
)

// mapError turns a DuckDB error into BigQuery's: missing tables and
// datasets are notFound with BigQuery's message, anything else is an
// invalidQuery carrying DuckDB's first line.
func (s *Server) mapError(err error, cfg queryConfig) *apiError {
	var api *apiError
	if errors.As(err, &api) {
		return api
	}
	msg := err.Error()
	if m := missingTable.FindStringSubmatch(msg); m != nil {
		return notFound(fmt.Sprintf("Not found: Table %s:%s was not found in location %s", s.Project, s.tablePath(m[1], cfg), location))
	}
	if m := missingSchema.FindStringSubmatch(msg); m != nil {
		return notFound(fmt.Sprintf("Not found: Dataset %s:%s was not found in location %s", s.Project, m[1], location))
	}
	first, _, _ := strings.Cut(msg, "\n")
	return invalidQuery(first)
}

// tablePath finds how the query named a missing table: dataset.table.
func (s *Server) tablePath(table string, cfg queryConfig) string {
	st, _ := translate(cfg.Query)
	for _, id := range identifiers(st.sql) {
		parts := strings.Split(id, ".")
		if len(parts) >= 2 && parts[len(parts)-1] == strings.ToLower(table) {
			return parts[len(parts)-2] + "." + table
		}
	}
	if cfg.DefaultDataset != nil {
		return cfg.DefaultDataset.DatasetID + "." + table
	}
	return table
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
