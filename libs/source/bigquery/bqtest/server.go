// Package bqtest is a local BigQuery: the REST v2 endpoints the official Go
// client (cloud.google.com/go/bigquery) calls to run queries and page through
// their results, backed by an in-memory DuckDB database that executes the SQL.
//
// It is held to BigQuery's documented wire shapes, not to what Ebb happens to
// need: schemas with the REST type names (INTEGER, FLOAT, BOOLEAN, NUMERIC,
// BIGNUMERIC, TIMESTAMP, DATETIME, DATE, TIME, BYTES, JSON, RECORD, REPEATED
// mode), rows as f/v cells with every scalar a string, TIMESTAMP as epoch
// microseconds when the client asks for int64 timestamps (float seconds
// otherwise), page tokens on results larger than one page, and errors in
// Google's JSON error shape with BigQuery's reasons (accessDenied, notFound,
// invalidQuery).
//
// Endpoints, under /bigquery/v2/projects/{project}:
//
//	POST /queries               jobs.query (the client's fast path)
//	GET  /queries/{job}         jobs.getQueryResults (pageToken, startIndex, maxResults)
//	POST /jobs                  jobs.insert of a query job, dry runs included
//	GET  /jobs/{job}            jobs.get
//	POST /datasets              datasets.insert
//	GET  /datasets/{ds}         datasets.get
//	GET  /datasets/{ds}/tables  tables.list (pageToken, maxResults)
//	GET  /datasets/{ds}/tables/{t}  tables.get (schema)
//	POST /datasets/{ds}/tables/{t}:testIamPermissions  tables.testIamPermissions
//
// and the media upload of jobs.insert, for a load job with its data
// (uploadType multipart or resumable, see load.go):
//
//	POST /upload/bigquery/v2/projects/{project}/jobs
//
// Query jobs run queries, DML (INSERT, UPDATE, DELETE, with
// numDmlAffectedRows and dmlStats) and the DDL of tables, views and
// schemas, each job reporting its statementType; DDL statistics beyond the
// statement type (ddlOperationPerformed, ddlTargetTable) are not served.
//
// Load jobs load CSV or NEWLINE_DELIMITED_JSON (BYTES as base64) into an
// existing table of scalar columns (a missing table fails the job whatever
// the createDisposition; no autodetect), with writeDisposition
// WRITE_APPEND, WRITE_TRUNCATE or WRITE_EMPTY, all or nothing, and report
// statistics.load (outputRows, inputFileBytes, badRecords). Rows in error
// fail the job past maxBadRecords, with BigQuery's "too many errors"
// errorResult and each row's error in status.errors. The CSV options read
// are fieldDelimiter, skipLeadingRows, nullMarker(s), allowJaggedRows,
// allowQuotedNewlines and ignoreUnknownValues (also for JSON); quote must
// be '"'.
//
// Datasets are DuckDB schemas. A query's result is written to a table in the
// hidden schema _jobs, like BigQuery's anonymous result tables, and pages
// are read from it by row number. The SQL goes through the dialect shim in
// dialect.go. Access control is by table name: DenyTable makes any query
// naming a table fail with 403 accessDenied and BigQuery's message naming
// the missing permission; DenyJobs refuses every query for lack of
// bigquery.jobs.create.
//
// The Storage Read API (gRPC) is served once ServeStorage is called (see
// storage.go): the client uses it, when asked to with
// EnableStorageReadClient, to read query results of more than one page.
// jobs.get reports a query's result table as its destinationTable, and
// tables.get serves that table's schema.
package bqtest

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"
)

// Server is a local BigQuery for one project.
type Server struct {
	// Project is the one project the server answers for.
	Project string
	// PageSize is the most rows a page of results holds.
	PageSize int

	http *httptest.Server
	db   *sql.DB

	mu       sync.Mutex
	jobs     map[string]*job
	denied   map[string]string // "dataset.table", lower case → permission
	denyJobs bool
	// denyDatasets refuses datasets.insert (bigquery.datasets.create).
	denyDatasets bool
	nextJob      atomic.Int64
	uploads      map[string]*upload // resumable upload sessions by upload_id
	nextUpload   atomic.Int64

	// Pages counts the result pages served by jobs.getQueryResults.
	Pages atomic.Int64

	// BatchRows is the most rows a record batch of the Storage Read API
	// holds (1,000 unless set before reading).
	BatchRows int
	// ReadSessions and ReadRowsCalls count the Storage Read API's
	// CreateReadSession and ReadRows calls, RecordBatches the batches sent.
	ReadSessions, ReadRowsCalls, RecordBatches atomic.Int64
	activeReads                                atomic.Int64 // ReadRows calls not yet returned
	storage                                    *storage     // nil until ServeStorage
}

// New starts a server with results paged at pageSize rows, stopped when the
// test ends.
func New(t testing.TB, project string, pageSize int) *Server {
	t.Helper()
	s, err := Start(project, pageSize)
	if err != nil {
		t.Fatalf("starting local BigQuery: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start starts a server; Close stops it.
func Start(project string, pageSize int) (*Server, error) {
	c, err := duckdbdriver.NewConnector("", initConn)
	if err != nil {
		return nil, fmt.Errorf("opening DuckDB: %w", err)
	}
	s := &Server{
		Project:   project,
		PageSize:  pageSize,
		BatchRows: 1000,
		db:        sql.OpenDB(c),
		jobs:      map[string]*job{},
		denied:    map[string]string{},
		uploads:   map[string]*upload{},
	}
	if _, err := s.db.Exec("CREATE SCHEMA " + jobsDataset); err != nil {
		_ = s.db.Close()
		return nil, fmt.Errorf("creating job schema: %w", err)
	}
	s.http = httptest.NewServer(s.routes())
	return s, nil
}

// jobsDataset is the hidden dataset of the jobs' result tables (BigQuery's
// anonymous datasets), of the sessions' snapshots and of load staging.
const jobsDataset = "_jobs"

// initConn fixes the session time zone (TIMESTAMP text forms depend on it),
// sorts NULLs as BigQuery does (first in ascending order, last in
// descending order: NULL is the smallest value) and defines the shim's
// macros on each DuckDB connection.
func initConn(execer driver.ExecerContext) error {
	settings := []string{"SET TimeZone = 'UTC'", "SET default_null_order = 'nulls_first_on_asc_last_on_desc'"}
	for _, q := range append(settings, macros...) {
		if _, err := execer.ExecContext(context.Background(), q, nil); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// Close stops the server and drops the database and the data of
// unfinished uploads.
func (s *Server) Close() {
	s.http.Close()
	s.mu.Lock()
	st := s.storage
	s.mu.Unlock()
	if st != nil {
		st.stop()
	}
	_ = s.db.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, u := range s.uploads {
		u.remove()
		delete(s.uploads, id)
	}
}

// Endpoint is the base URL to give the client (option.WithEndpoint).
func (s *Server) Endpoint() string { return s.http.URL + "/bigquery/v2/" }

// Exec runs DuckDB SQL directly, to set up datasets (schemas) and tables.
// Backquoted names, `project.dataset.table` as BigQuery writes them, are
// accepted too.
func (s *Server) Exec(ctx context.Context, sql string) error {
	_, err := s.db.ExecContext(ctx, unquoteBackticks(sql))
	return err
}

// DenyTable makes queries that name dataset.table fail as if the caller
// lacked permission (bigquery.tables.getData, say) on it.
func (s *Server) DenyTable(datasetTable, permission string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[strings.ToLower(datasetTable)] = permission
}

// DenyJobs makes every query fail for lack of bigquery.jobs.create.
func (s *Server) DenyJobs(deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denyJobs = deny
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	const p = "/bigquery/v2/projects/{project}"
	mux.HandleFunc("POST "+p+"/queries", s.project(s.handleQuery))
	mux.HandleFunc("GET "+p+"/queries/{job}", s.project(s.handleGetQueryResults))
	mux.HandleFunc("POST "+p+"/jobs", s.project(s.handleInsertJob))
	mux.HandleFunc("POST /upload"+p+"/jobs", s.project(s.handleUpload))
	mux.HandleFunc("GET "+p+"/jobs/{job}", s.project(s.handleGetJob))
	mux.HandleFunc("POST "+p+"/datasets", s.project(s.handleInsertDataset))
	mux.HandleFunc("GET "+p+"/datasets/{dataset}", s.project(s.handleGetDataset))
	mux.HandleFunc("GET "+p+"/datasets/{dataset}/tables", s.project(s.handleListTables))
	mux.HandleFunc("GET "+p+"/datasets/{dataset}/tables/{table}", s.project(s.handleGetTable))
	mux.HandleFunc("POST "+p+"/datasets/{dataset}/tables/{table}", s.project(s.handleTestIamPermissions))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, notFound("Not found: "+r.Method+" "+r.URL.Path))
	})
	return mux
}

// project checks the request is for the server's project.
func (s *Server) project(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if p := r.PathValue("project"); p != s.Project {
			writeError(w, notFound(fmt.Sprintf("Not found: Project %s", p)))
			return
		}
		h(w, r)
	}
}

// apiError is an error response in Google's JSON error shape.
type apiError struct {
	code    int
	status  string
	reason  string
	message string
}

func (e *apiError) Error() string { return e.message }

func notFound(msg string) *apiError {
	return &apiError{http.StatusNotFound, "NOT_FOUND", "notFound", msg}
}

func accessDenied(msg string) *apiError {
	return &apiError{http.StatusForbidden, "PERMISSION_DENIED", "accessDenied", msg}
}

func invalidQuery(msg string) *apiError {
	return &apiError{http.StatusBadRequest, "INVALID_ARGUMENT", "invalidQuery", msg}
}

func invalid(msg string) *apiError {
	return &apiError{http.StatusBadRequest, "INVALID_ARGUMENT", "invalid", msg}
}

func writeError(w http.ResponseWriter, err error) {
	var e *apiError
	if !errors.As(err, &e) {
		e = &apiError{http.StatusInternalServerError, "INTERNAL", "backendError", err.Error()}
	}
	writeJSON(w, e.code, map[string]any{"error": map[string]any{
		"code":    e.code,
		"message": e.message,
		"errors":  []any{map[string]any{"message": e.message, "domain": "global", "reason": e.reason}},
		"status":  e.status,
	}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func readJSON(r *http.Request, v any) error {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		return invalid("Invalid JSON payload received. " + err.Error())
	}
	return nil
}
