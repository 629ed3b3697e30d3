package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/source/postgres/pgtest"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

// This file is the harness of the tests that run Ebb's services as
// separate OS processes of the built binary, so they can be killed with
// SIGKILL and stopped with SIGSTOP like processes in production.

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

// ebbBinary builds the ebb binary once per test binary run.
func ebbBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "ebb-bin-")
		if buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "ebb")
		cmd := exec.Command("go", "build", "-o", builtBin, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return builtBin
}

// TestMain removes the built binary.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// proc is one `ebb serve` process, restartable under the same name.
type proc struct {
	name string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// procs runs and kills service processes.
type procs struct {
	t    *testing.T
	bin  string
	dir  string
	nats string
	env  []string

	mu    sync.Mutex
	procs map[string]*proc
}

func newProcs(t *testing.T, natsURL string, env ...string) *procs {
	t.Helper()
	ps := &procs{t: t, bin: ebbBinary(t), dir: t.TempDir(), nats: natsURL, env: env, procs: map[string]*proc{}}
	t.Cleanup(func() {
		ps.mu.Lock()
		names := make([]string, 0, len(ps.procs))
		for n := range ps.procs {
			names = append(names, n)
		}
		ps.mu.Unlock()
		for _, n := range names {
			ps.signal(n, syscall.SIGCONT)
			ps.kill(n)
		}
		if t.Failed() {
			for _, n := range names {
				ps.dumpLog(n, 100)
			}
		}
	})
	return ps
}

// logPath is where a process's output goes, appended across restarts.
func (ps *procs) logPath(name string) string { return filepath.Join(ps.dir, name+".log") }

// start starts `ebb serve <args>` under name.
func (ps *procs) start(name string, args ...string) {
	ps.t.Helper()
	log, err := os.OpenFile(ps.logPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(ps.t, err)
	defer log.Close()
	cmd := exec.Command(ps.bin, append([]string{"serve", "--nats", ps.nats}, args...)...)
	cmd.Dir = ps.dir
	cmd.Env = append(append(os.Environ(), "EBB_LOG_LEVEL=info"), ps.env...)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(ps.t, cmd.Start())
	p := &proc{name: name, args: args, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.procs[name] = p
	ps.mu.Unlock()
}

func (ps *procs) get(name string) *proc {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.procs[name]
}

// kill sends SIGKILL and waits until the process is gone.
func (ps *procs) kill(name string) {
	p := ps.get(name)
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// restart kills a process and starts it again with the same arguments.
func (ps *procs) restart(name string) {
	ps.t.Helper()
	p := ps.get(name)
	ps.kill(name)
	ps.start(name, p.args...)
}

func (ps *procs) signal(name string, sig syscall.Signal) {
	if p := ps.get(name); p != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

func (ps *procs) pid(name string) int { return ps.get(name).cmd.Process.Pid }

// running reports whether the process has not exited.
func (ps *procs) running(name string) bool {
	select {
	case <-ps.get(name).done:
		return false
	default:
		return true
	}
}

func (ps *procs) readLog(name string) string {
	data, _ := os.ReadFile(ps.logPath(name))
	return string(data)
}

func (ps *procs) dumpLog(name string, lines int) {
	all := strings.Split(strings.TrimSpace(ps.readLog(name)), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	ps.t.Logf("--- last lines of %s ---\n%s", name, strings.Join(all, "\n"))
}

// ebbCmd runs a client command of the binary.
func ebbCmd(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// adminClient dials the admin API (lazily: it may not be up yet).
func adminClient(t *testing.T, addr string) adminv1.AdminServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return adminv1.NewAdminServiceClient(conn)
}

// postgresDSN is the test server (see pgtest.DSN).
func postgresDSN() string { return pgtest.DSN() }

// pgSchema is a Postgres schema of the test's own, dropped when it ends.
type pgSchema struct {
	t      *testing.T
	pool   *pgxpool.Pool
	schema string
}

func newPGSchema(t *testing.T) *pgSchema {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, postgresDSN())
	require.NoError(t, err)
	schema := fmt.Sprintf("ebb_proc_%d", rand.Int64())
	_, err = pool.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		pool.Close()
	})
	return &pgSchema{t: t, pool: pool, schema: schema}
}

func (p *pgSchema) exec(sql string, args ...any) {
	p.t.Helper()
	_, err := p.pool.Exec(context.Background(), strings.ReplaceAll(sql, "$S", p.schema), args...)
	require.NoError(p.t, err, sql)
}

// rows reads (key json, row json) pairs into a map keyed like the
// capture's state, numbers exact.
func (p *pgSchema) rows(sql string) map[string]map[string]any {
	p.t.Helper()
	rows, err := p.pool.Query(context.Background(), strings.ReplaceAll(sql, "$S", p.schema))
	require.NoError(p.t, err)
	defer rows.Close()
	out := map[string]map[string]any{}
	for rows.Next() {
		var k, v string
		require.NoError(p.t, rows.Scan(&k, &v))
		out[capture.KeyString(decodeJSON(p.t, k))] = decodeJSON(p.t, v)
	}
	require.NoError(p.t, rows.Err())
	return out
}

func decodeJSON(t *testing.T, s string) map[string]any {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	require.NoError(t, d.Decode(&m))
	return m
}

// waitFor polls cond, logging nothing, until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	require.Eventually(t, cond, timeout, 50*time.Millisecond, append([]any{msg}, args...)...)
}
