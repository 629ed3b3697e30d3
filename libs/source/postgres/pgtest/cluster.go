package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// Cluster is a throwaway PostgreSQL server of a test's own, for tests that
// stop and start Postgres under a running pipeline; the shared server at
// DSN() is never restarted. It runs the PostgreSQL server binaries
// installed under /usr/lib/postgresql/<version>/bin, as the postgres user
// when the test runs as root (PostgreSQL refuses to run as root), on a
// free loopback port, with its data in a temp dir removed at the end.
type Cluster struct {
	t    testing.TB
	bin  string
	dir  string // data directory (and socket directory)
	log  string
	port int
	// DSN connects as the superuser to the postgres database.
	DSN string
}

// StartCluster initialises and starts a cluster for t, stopped and removed
// when t ends. It skips t, saying why, when the server binaries or (as
// root) the postgres user are missing.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := serverBinaries()
	if bin == "" {
		t.Skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql): " +
			"this test starts and restarts a throwaway cluster of its own")
	}
	var owner *user.User
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and there is no postgres user to run a throwaway PostgreSQL cluster as: %v", err)
		}
		owner = u
	}
	base, err := os.MkdirTemp("", "ebb-pgtest-")
	require.NoError(t, err)
	c := &Cluster{t: t, bin: bin, dir: filepath.Join(base, "data"), log: filepath.Join(base, "postgres.log")}
	t.Cleanup(func() {
		_ = c.pgCtl("stop", "-m", "immediate")
		_ = os.RemoveAll(base)
	})
	require.NoError(t, os.Mkdir(c.dir, 0o700))
	if owner != nil {
		uid, _ := strconv.Atoi(owner.Uid)
		gid, _ := strconv.Atoi(owner.Gid)
		for _, p := range []string{base, c.dir} {
			require.NoError(t, os.Chown(p, uid, gid))
		}
	}
	c.port = freePort(t)
	c.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	out, err := c.command("initdb", "-D", c.dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput()
	require.NoError(t, err, "initdb: %s", out)
	require.NoError(t, c.Start())
	return c
}

// serverBinaries is the bin directory of the newest PostgreSQL installed,
// or "" when there is none.
func serverBinaries() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var ok []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
				ok = append(ok, d)
			}
		}
	}
	if len(ok) == 0 {
		return ""
	}
	sort.Slice(ok, func(i, j int) bool { return version(ok[i]) < version(ok[j]) })
	return ok[len(ok)-1]
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// command runs one of the server binaries, as the postgres user when root.
func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (c *Cluster) pgCtl(args ...string) error {
	args = append([]string{"-D", c.dir}, args...)
	out, err := c.command("pg_ctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %v: %w: %s", args, err, bytes.TrimSpace(out))
	}
	return nil
}

// Start starts the server (again) on its port and data, and waits until it
// accepts connections. fsync is off: the data survives a crash of the
// server (pg_ctl stop -m immediate), not one of the machine, which a test
// does not need.
func (c *Cluster) Start() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200",
		c.port, c.dir)
	if err := c.pgCtl("start", "-w", "-t", "60", "-l", c.log, "-o", opts); err != nil {
		return fmt.Errorf("%w\n%s", err, c.tail())
	}
	return nil
}

// Stop stops the server: mode "fast" disconnects clients and shuts down
// cleanly; "immediate" kills it like a crash, recovered at the next Start.
func (c *Cluster) Stop(mode string) error { return c.pgCtl("stop", "-w", "-m", mode) }

// Restart stops the server in mode, keeps it down for down, and starts it.
func (c *Cluster) Restart(mode string, down time.Duration) error {
	if err := c.Stop(mode); err != nil {
		return err
	}
	time.Sleep(down)
	return c.Start()
}

// Connect opens a connection to the cluster.
func (c *Cluster) Connect(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, c.DSN) }

// tail is the end of the server's log, for errors.
func (c *Cluster) tail() string {
	data, _ := os.ReadFile(c.log)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(data)
}
