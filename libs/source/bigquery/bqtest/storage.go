package bqtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The Storage Read API, google.cloud.bigquery.storage.v1.BigQueryRead over
// gRPC (without TLS), which the client uses for query results of more than
// one page once EnableStorageReadClient was called: it reads the query
// job's destination table (configuration.query.destinationTable of
// jobs.get, the job's result table in the hidden dataset _jobs), with one
// stream when the query has a top-level ORDER BY.
//
//   - CreateReadSession reads a table (a job's result table, or a table of a
//     dataset, which the session snapshots) as ARROW only (uncompressed),
//     with read_options.selected_fields (top-level columns) and
//     row_restriction (a GoogleSQL predicate). It splits the rows into up to
//     max_stream_count streams (preferred_min_stream_count when that is 0; 1
//     when both are), no more than one a batch of rows; an empty table has
//     no streams. snapshot_time and sample_percentage are refused.
//   - ReadRows sends a stream's rows from req.offset, BatchRows rows a
//     ReadRowsResponse (an ArrowRecordBatch with row_count, the stream's
//     progress, the Arrow schema in the first response).
//   - SplitReadStream is Unimplemented.
//
// Arrow types are BigQuery's (see arrow.go). Errors are gRPC statuses:
// NotFound, PermissionDenied (DenyTable), InvalidArgument, OutOfRange.
// Sessions and their snapshots last until Close.

// storage is the gRPC side of the server.
type storage struct {
	storagepb.UnimplementedBigQueryReadServer
	s    *Server
	grpc *grpc.Server
	addr string

	mu       sync.Mutex
	sessions map[string]*readSession // by session name
	next     int64
}

// readSession is a session's table and streams.
type readSession struct {
	table  string   // the DuckDB table read: a job's result table or a snapshot
	fields []*field // selected columns, in table order
	schema []byte   // the serialized Arrow schema
	bounds []int64  // stream i reads rows [bounds[i], bounds[i+1]) by rowid
}

// ServeStorage starts the Storage Read API on a local port, once; Close
// stops it. StorageEndpoint is its address.
func (s *Server) ServeStorage() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.storage != nil {
		return nil
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening for the Storage Read API: %w", err)
	}
	st := &storage{s: s, grpc: grpc.NewServer(), addr: lis.Addr().String(), sessions: map[string]*readSession{}}
	storagepb.RegisterBigQueryReadServer(st.grpc, st)
	go func() { _ = st.grpc.Serve(lis) }()
	s.storage = st
	return nil
}

// StorageEndpoint is the host:port of the Storage Read API ("" until
// ServeStorage), for the client's option.WithEndpoint.
func (s *Server) StorageEndpoint() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.storage == nil {
		return ""
	}
	return s.storage.addr
}

func (st *storage) stop() { st.grpc.Stop() }

// ActiveReads is the number of ReadRows calls under way: a reader that
// stops early must end its stream.
func (s *Server) ActiveReads() int64 { return s.activeReads.Load() }

// CreateReadSession answers BigQueryRead.CreateReadSession.
func (st *storage) CreateReadSession(ctx context.Context, req *storagepb.CreateReadSessionRequest) (*storagepb.ReadSession, error) {
	st.s.ReadSessions.Add(1)
	if want := "projects/" + st.s.Project; req.GetParent() != want {
		return nil, status.Errorf(codes.InvalidArgument, "parent must be %s, not %q", want, req.GetParent())
	}
	rs := req.GetReadSession()
	if err := checkSessionRequest(rs); err != nil {
		return nil, err
	}
	ds, table, err := st.s.parseTableName(rs.GetTable())
	if err != nil {
		return nil, err
	}
	id := st.newSessionID()
	src, err := st.s.sessionTable(ctx, ds, table, rs.GetReadOptions().GetRowRestriction(), id)
	if err != nil {
		return nil, err
	}
	sess, rows, err := st.s.newReadSession(ctx, src, rs.GetReadOptions().GetSelectedFields())
	if err != nil {
		return nil, err
	}
	sess.bounds = streamBounds(rows, streamCount(req), int64(st.s.BatchRows))
	name := fmt.Sprintf("projects/%s/locations/%s/sessions/%s", st.s.Project, strings.ToLower(location), id)
	st.mu.Lock()
	st.sessions[name] = sess
	st.mu.Unlock()
	out := &storagepb.ReadSession{
		Name:              name,
		ExpireTime:        timestamppb.New(time.Now().Add(6 * time.Hour)),
		DataFormat:        storagepb.DataFormat_ARROW,
		Schema:            &storagepb.ReadSession_ArrowSchema{ArrowSchema: &storagepb.ArrowSchema{SerializedSchema: sess.schema}},
		Table:             rs.GetTable(),
		ReadOptions:       rs.GetReadOptions(),
		EstimatedRowCount: rows,
	}
	for i := range len(sess.bounds) - 1 {
		out.Streams = append(out.Streams, &storagepb.ReadStream{Name: fmt.Sprintf("%s/streams/%d", name, i)})
	}
	return out, nil
}

func (st *storage) newSessionID() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.next++
	return fmt.Sprintf("session_%06d", st.next)
}

// checkSessionRequest refuses what the server does not serve.
func checkSessionRequest(rs *storagepb.ReadSession) error {
	opts := rs.GetReadOptions()
	switch {
	case rs == nil:
		return status.Error(codes.InvalidArgument, "read_session is required")
	case rs.GetDataFormat() != storagepb.DataFormat_ARROW:
		return status.Errorf(codes.InvalidArgument, "This server serves data_format ARROW only, not %s", rs.GetDataFormat())
	case rs.GetTableModifiers().GetSnapshotTime() != nil:
		return status.Error(codes.InvalidArgument, "This server reads tables as they are now: table_modifiers.snapshot_time is not served")
	case opts.GetSamplePercentage() != 0:
		return status.Error(codes.InvalidArgument, "read_options.sample_percentage is not served")
	case opts.GetArrowSerializationOptions().GetBufferCompression() != storagepb.ArrowSerializationOptions_COMPRESSION_UNSPECIFIED,
		opts.GetResponseCompressionCodec() != storagepb.ReadSession_TableReadOptions_RESPONSE_COMPRESSION_CODEC_UNSPECIFIED:
		return status.Error(codes.InvalidArgument, "This server sends uncompressed Arrow only")
	}
	return nil
}

// parseTableName reads projects/{p}/datasets/{d}/tables/{t}.
func (s *Server) parseTableName(name string) (string, string, error) {
	parts := strings.Split(name, "/")
	if len(parts) != 6 || parts[0] != "projects" || parts[2] != "datasets" || parts[4] != "tables" {
		return "", "", status.Errorf(codes.InvalidArgument, "Invalid table name %q: expected projects/{project}/datasets/{dataset}/tables/{table}", name)
	}
	if parts[1] != s.Project {
		return "", "", status.Errorf(codes.NotFound, "Not found: Project %s", parts[1])
	}
	return parts[3], parts[5], nil
}

// sessionTable is the DuckDB table a session reads: a job's result table
// as it is (it never changes), any other table (or rows restricted) as a
// snapshot in _jobs, since a session reads the table as it was when the
// session began.
func (s *Server) sessionTable(ctx context.Context, ds, table, restriction, id string) (string, error) {
	path := s.Project + ":" + ds + "." + table
	s.mu.Lock()
	perm, denied := s.denied[strings.ToLower(ds+"."+table)]
	s.mu.Unlock()
	if denied {
		return "", status.Errorf(codes.PermissionDenied, "Access Denied: Table %s: Permission %s denied on table %s (or it may not exist).", path, perm, path)
	}
	if err := s.checkTable(ctx, ds, table); err != nil {
		return "", status.Error(codes.NotFound, err.Error())
	}
	src := quoteIdent(ds) + "." + quoteIdent(table)
	if ds == jobsDataset && restriction == "" {
		return src, nil
	}
	where := ""
	if restriction != "" {
		st, err := translate(restriction)
		if err != nil || len(st.params) > 0 {
			return "", status.Errorf(codes.InvalidArgument, "Invalid row_restriction %q", restriction)
		}
		where = " WHERE " + st.sql
	}
	snapshot := jobsDataset + "." + quoteIdent(id)
	if _, err := s.db.ExecContext(ctx, "CREATE TABLE "+snapshot+" AS SELECT * FROM "+src+where); err != nil {
		if missingTable.MatchString(err.Error()) {
			return "", status.Errorf(codes.NotFound, "Not found: Table %s", path)
		}
		first, _, _ := strings.Cut(err.Error(), "\n")
		return "", status.Error(codes.InvalidArgument, first)
	}
	return snapshot, nil
}

// newReadSession describes the session's table: its selected columns,
// their Arrow schema, and its row count.
func (s *Server) newReadSession(ctx context.Context, table string, selected []string) (*readSession, int64, error) {
	sc, err := s.describe(ctx, s.db, "SELECT * FROM "+table)
	if err != nil {
		return nil, 0, status.Error(codes.Internal, err.Error())
	}
	fields, err := selectFields(sc.Fields, selected)
	if err != nil {
		return nil, 0, err
	}
	as, err := arrowSchema(fields)
	if err != nil {
		return nil, 0, status.Error(codes.InvalidArgument, err.Error())
	}
	enc, err := newIPCEncoder(as)
	if err != nil {
		return nil, 0, status.Error(codes.Internal, err.Error())
	}
	var rows int64
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&rows); err != nil {
		return nil, 0, status.Error(codes.Internal, err.Error())
	}
	return &readSession{table: table, fields: fields, schema: enc.schema}, rows, nil
}

// selectFields keeps the selected top-level columns, in table order, as
// BigQuery does; none selected is all.
func selectFields(fields []*field, selected []string) ([]*field, error) {
	if len(selected) == 0 {
		return fields, nil
	}
	var out []*field
	for _, name := range selected {
		i := slices.IndexFunc(fields, func(f *field) bool { return strings.EqualFold(f.Name, name) })
		if i < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "Field %s in read_options.selected_fields is not a top-level column of the table", name)
		}
		if !slices.Contains(out, fields[i]) {
			out = append(out, fields[i])
		}
	}
	slices.SortFunc(out, func(a, b *field) int { return slices.Index(fields, a) - slices.Index(fields, b) })
	return out, nil
}

// streamCount is how many streams a session asks for: max_stream_count,
// else preferred_min_stream_count, else one.
func streamCount(req *storagepb.CreateReadSessionRequest) int64 {
	if n := req.GetMaxStreamCount(); n > 0 {
		return int64(n)
	}
	return max(int64(req.GetPreferredMinStreamCount()), 1)
}

// streamBounds splits rows into at most n streams of at least one batch
// each (none for no rows): stream i reads [bounds[i], bounds[i+1]).
func streamBounds(rows, n, batch int64) []int64 {
	if rows == 0 {
		return []int64{0}
	}
	n = min(n, (rows+batch-1)/batch)
	bounds := make([]int64, n+1)
	for i := range n + 1 {
		bounds[i] = rows * i / n
	}
	return bounds
}

// ReadRows answers BigQueryRead.ReadRows: the stream's rows from the
// offset, in record batches of BatchRows rows.
func (st *storage) ReadRows(req *storagepb.ReadRowsRequest, stream storagepb.BigQueryRead_ReadRowsServer) error {
	st.s.ReadRowsCalls.Add(1)
	st.s.activeReads.Add(1)
	defer st.s.activeReads.Add(-1)
	sess, first, end, err := st.stream(req.GetReadStream())
	if err != nil {
		return err
	}
	if off := req.GetOffset(); off < 0 || off > end-first {
		return status.Errorf(codes.OutOfRange, "offset %d is out of range: stream %s has %d rows", off, req.GetReadStream(), end-first)
	}
	return st.s.sendRows(stream, sess, first, first+req.GetOffset(), end)
}

// stream finds a stream's session and rows.
func (st *storage) stream(name string) (*readSession, int64, int64, error) {
	session, idx, ok := strings.Cut(name, "/streams/")
	i, err := strconv.Atoi(idx)
	st.mu.Lock()
	sess := st.sessions[session]
	st.mu.Unlock()
	if !ok || err != nil || sess == nil || i < 0 || i >= len(sess.bounds)-1 {
		return nil, 0, 0, status.Errorf(codes.NotFound, "Not found: read stream %s", name)
	}
	return sess, sess.bounds[i], sess.bounds[i+1], nil
}

// sendRows reads rows [from, end) of a stream starting at row first with
// one query, and sends them a batch at a time: memory holds a batch.
func (s *Server) sendRows(stream storagepb.BigQueryRead_ReadRowsServer, sess *readSession, first, from, end int64) error {
	ctx := stream.Context()
	as, err := arrowSchema(sess.fields)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	enc, err := newIPCEncoder(as)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	bb := newBatchBuilder(as, sess.fields)
	defer bb.release()
	rows, err := s.db.QueryContext(ctx, "SELECT "+selectList(&schema{Fields: sess.fields})+" FROM "+sess.table+
		" WHERE rowid >= ? AND rowid < ? ORDER BY rowid", from, end)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	defer rows.Close()
	w := &batchSender{stream: stream, enc: enc, bb: bb, schema: sess.schema, done: from - first, total: end - first,
		batches: &s.RecordBatches}
	vals := make([]any, len(sess.fields))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		if err := bb.append(vals); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if bb.rows == int64(s.BatchRows) {
			if err := w.send(); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	if bb.rows > 0 {
		return w.send()
	}
	return nil
}

// batchSender sends a stream's record batches.
type batchSender struct {
	stream      storagepb.BigQueryRead_ReadRowsServer
	enc         *ipcEncoder
	bb          *batchBuilder
	schema      []byte
	sent        bool
	done, total int64 // rows of the stream sent (or skipped by the offset), and in all
	batches     *atomic.Int64
}

func (w *batchSender) send() error {
	n := w.bb.rows
	rec := w.bb.flush()
	defer rec.Release()
	data, err := w.enc.encode(rec)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	start := w.done
	w.done += n
	resp := &storagepb.ReadRowsResponse{
		Rows: &storagepb.ReadRowsResponse_ArrowRecordBatch{ArrowRecordBatch: &storagepb.ArrowRecordBatch{
			SerializedRecordBatch: data, RowCount: n,
		}},
		RowCount: n,
		Stats: &storagepb.StreamStats{Progress: &storagepb.StreamStats_Progress{
			AtResponseStart: float64(start) / float64(w.total), AtResponseEnd: float64(w.done) / float64(w.total),
		}},
	}
	if !w.sent {
		resp.Schema = &storagepb.ReadRowsResponse_ArrowSchema{ArrowSchema: &storagepb.ArrowSchema{SerializedSchema: w.schema}}
		w.sent = true
	}
	w.batches.Add(1)
	if err := w.stream.Send(resp); err != nil {
		if errors.Is(err, context.Canceled) {
			return status.Error(codes.Canceled, err.Error())
		}
		return err
	}
	return nil
}
