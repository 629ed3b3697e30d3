package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// proc is an ebb process the benchmark started.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan error
	// anonPeak is the largest RssAnon sampled, in kB: the process's own
	// memory, without the pages of its binary that VmHWM also counts.
	anonPeak atomic.Int64
}

// startEbb runs the ebb binary with args; its output goes to stderr. Its
// `ebb dev` HTTP endpoint (where the binary has one) gets a free port, so it
// never clashes with an `ebb dev` the user is running.
func startEbb(bin, name string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if port, err := freePort(); err == nil && len(args) > 0 && args[0] == "dev" {
		cmd.Env = append(os.Environ(), "EBB_HTTP_LISTEN=127.0.0.1:"+strconv.Itoa(port))
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan error, 1)}
	exited := make(chan struct{})
	go func() { err := cmd.Wait(); close(exited); p.done <- err }()
	go p.sampleAnon(exited)
	return p, nil
}

// sampleAnon records the peak of RssAnon every 50 ms until the process
// exits: the kernel keeps a peak (VmHWM) only of the whole resident set.
func (p *proc) sampleAnon(exited <-chan struct{}) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if kb, err := p.statusKB("RssAnon:"); err == nil && kb > p.anonPeak.Load() {
			p.anonPeak.Store(kb)
		}
		select {
		case <-exited:
			return
		case <-tick.C:
		}
	}
}

// peakAnon is the peak of RssAnon sampled so far, in MB.
func (p *proc) peakAnon() float64 { return float64(p.anonPeak.Load()) / 1024 }

// stop asks the process to shut down and waits for it, killing it after
// 30 seconds.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// peakRSS is the process's peak resident set (VmHWM), in MB.
func (p *proc) peakRSS() (float64, error) {
	kb, err := p.statusKB("VmHWM:")
	return float64(kb) / 1024, err
}

// statusKB reads a field of /proc/<pid>/status given in kB.
func (p *proc) statusKB(field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, p.cmd.Process.Pid)
}

// freePort returns a loopback port nobody listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitDial waits until addr accepts connections or p exits.
func waitDial(ctx context.Context, p *proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-p.done:
			p.done <- err
			return fmt.Errorf("%s exited before listening on %s: %v", p.name, addr, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s within %s", p.name, addr, timeout)
		}
	}
}

// ebbCLI runs one ebb client command against an admin API address.
func ebbCLI(ctx context.Context, bin, server string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, append([]string{"--server", server}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ebb %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
