package embedded

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a JetStream cluster of embedded servers, for tests of what
// happens when a node dies: each node keeps its ports and store directory,
// so Kill and Restart bring back the same node with the same data.
type Cluster struct {
	Name string

	mu    sync.Mutex
	nodes []*clusterNode
}

type clusterNode struct {
	opts *server.Options
	srv  *server.Server // nil while killed
}

// StartCluster starts an n-node JetStream cluster on free loopback ports,
// each node keeping its data in dir/<node name>, and waits until it has a
// JetStream meta leader.
func StartCluster(dir string, n int) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("a cluster needs at least one node, not %d", n)
	}
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Name: "ebb"}
	var routes []*url.URL
	for i := 0; i < n; i++ {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", ports[n+i])})
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("n%d", i+1)
		c.nodes = append(c.nodes, &clusterNode{opts: &server.Options{
			ServerName:         name,
			Host:               "127.0.0.1",
			Port:               ports[i],
			JetStream:          true,
			StoreDir:           filepath.Join(dir, name),
			NoSigs:             true,
			JetStreamMaxMemory: 256 << 20,
			Cluster:            server.ClusterOpts{Name: c.Name, Host: "127.0.0.1", Port: ports[n+i]},
			Routes:             routes,
		}})
	}
	// Start every node before waiting on any: a node is not ready for
	// JetStream until it sees a quorum of its peers.
	for i := range c.nodes {
		if err := c.start(i); err != nil {
			c.Shutdown()
			return nil, err
		}
	}
	if err := c.WaitReady(30 * time.Second); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

// freePorts reserves n distinct free TCP ports on loopback. They are
// released before the servers bind them, which is racy in principle but
// fine for tests.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (c *Cluster) start(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	nd := c.nodes[i]
	if nd.srv != nil {
		return nil
	}
	// The server keeps the options it was given; a restart gets a fresh copy.
	opts := nd.opts.Clone()
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("configuring cluster node %s: %w", nd.opts.ServerName, err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return fmt.Errorf("cluster node %s did not start within 10s", nd.opts.ServerName)
	}
	nd.srv = srv
	return nil
}

// Size is the number of nodes, running or not.
func (c *Cluster) Size() int { return len(c.nodes) }

// URLs are the client URLs of every node, joined by commas: what a client
// gives nats.Connect so it can reach whichever nodes are up.
func (c *Cluster) URLs() string {
	var urls []string
	for _, nd := range c.nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", nd.opts.Port))
	}
	return strings.Join(urls, ",")
}

// Server returns node i's server, or nil while it is killed.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// Kill stops node i as abruptly as an in-process server can stop: its
// client connections and routes drop at once. Its store directory stays for Restart.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	srv := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart starts node i again on its ports and store directory.
func (c *Cluster) Restart(i int) error { return c.start(i) }

// WaitReady waits until the running nodes have a JetStream meta leader
// and every one of them is current with it.
func (c *Cluster) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		leader, current := false, true
		for i := range c.nodes {
			srv := c.Server(i)
			if srv == nil {
				continue
			}
			leader = leader || srv.JetStreamIsLeader()
			current = current && srv.JetStreamEnabled() && srv.JetStreamIsCurrent()
		}
		if leader && current {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster %s has no current JetStream meta leader after %s", c.Name, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Shutdown stops every node.
func (c *Cluster) Shutdown() {
	for i := range c.nodes {
		c.Kill(i)
	}
}
