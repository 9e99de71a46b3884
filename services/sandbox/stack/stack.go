// Package stack builds the two services and runs them as real processes
// beside the simulators: for whole-process tests and for the local demo.
package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Binaries are the built commands.
type Binaries struct {
	Fulfillment string
	Gateway     string
	Grpcurl     string
	// FulfillmentFailpoints is fulfillment built with -tags failpoints
	// (only when Build was asked for it).
	FulfillmentFailpoints string
}

// ModuleRoot returns the directory of the project's go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the project's Go module")
	}
	return filepath.Dir(mod), nil
}

// Build compiles the services (and grpcurl, pinned in go.mod) into dir.
// With race, the services are built with the race detector; with
// failpoints, a second fulfillment binary has its crash points armed by the
// FAILPOINTS variable.
func Build(ctx context.Context, dir string, race, failpoints bool) (Binaries, error) {
	root, err := ModuleRoot()
	if err != nil {
		return Binaries{}, err
	}
	b := Binaries{
		Fulfillment: filepath.Join(dir, "fulfillment"),
		Gateway:     filepath.Join(dir, "webhook-gateway"),
		Grpcurl:     filepath.Join(dir, "grpcurl"),
	}
	args := []string{"build"}
	if race {
		args = append(args, "-race")
	}
	builds := [][]string{
		append(append([]string{}, args...), "-o", dir, "./services/fulfillment", "./services/webhook-gateway"),
		{"build", "-o", b.Grpcurl, "github.com/fullstorydev/grpcurl/cmd/grpcurl"},
	}
	if failpoints {
		b.FulfillmentFailpoints = filepath.Join(dir, "fulfillment-failpoints")
		builds = append(builds, append(append([]string{}, args...),
			"-tags", "failpoints", "-o", b.FulfillmentFailpoints, "./services/fulfillment"))
	}
	for _, c := range builds {
		cmd := exec.CommandContext(ctx, "go", c...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return Binaries{}, fmt.Errorf("go %s: %w\n%s", strings.Join(c, " "), err, out)
		}
	}
	return b, nil
}

// FreeAddr returns a loopback address with a port free at the time of the
// call, from ProcessPorts.
func FreeAddr() (string, error) {
	p, err := ProcessPorts.Free(1)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p[0])), nil
}

// PortRange is a range of loopback ports, Lo to Hi-1.
type PortRange struct{ Lo, Hi int }

// The ranges ports are picked from. Both lie below the kernel's ephemeral
// range (32768 and up on Linux), where port-0 listeners and outgoing
// connections never land, and each has one use, so that a port picked
// stays free for it: etcd members bind theirs again when they restart, and
// processes bind theirs once started.
var (
	MemberPorts  = PortRange{20000, 26000}
	ProcessPorts = PortRange{26000, 32000}
)

// handedOut holds every port Free has returned in this process: a port
// picked is not bound at once, so a later pick must not return it again.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Free returns n distinct ports of r that are free now and that no earlier
// call in this process returned.
func (r PortRange) Free(n int) ([]int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries > 1000 {
			return nil, fmt.Errorf("no %d free ports in [%d, %d)", n, r.Lo, r.Hi)
		}
		p := r.Lo + rand.IntN(r.Hi-r.Lo)
		if handedOut.ports[p] {
			continue
		}
		handedOut.ports[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		out = append(out, p)
	}
	return out, nil
}

// Proc is one running service process.
type Proc struct {
	Name string
	Addr string // its LISTEN_ADDR
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// Output returns what the process wrote to stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

// Exited is closed when the process has ended.
func (p *Proc) Exited() <-chan struct{} { return p.done }

// Err is the process's exit error, once Exited is closed.
func (p *Proc) Err() error { <-p.done; return p.err }

// Stop asks the process to shut down gracefully (SIGTERM) and waits.
func (p *Proc) Stop() error {
	if p.cmd.Process == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// Kill ends the process at once (SIGKILL), as a crash would.
func (p *Proc) Kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Pause stops the process where it stands (SIGSTOP), as a long GC pause,
// a stalled VM or a debugger would: it keeps its sockets but runs nothing,
// not even its lease keep-alives, until Resume.
func (p *Proc) Pause() error {
	if p.cmd.Process == nil {
		return nil
	}
	return p.cmd.Process.Signal(syscall.SIGSTOP)
}

// Resume lets a paused process run again (SIGCONT). Resuming a process that
// is not paused, or has ended, does nothing.
func (p *Proc) Resume() error {
	if p.cmd.Process == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	return p.cmd.Process.Signal(syscall.SIGCONT)
}

// Start runs bin with env added to the current environment. It returns
// once the process started; see WaitGRPC and WaitHTTP for readiness.
func Start(name, bin string, env map[string]string, tee *os.File) (*Proc, error) {
	cmd := exec.Command(bin)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &Proc{Name: name, Addr: env["LISTEN_ADDR"], cmd: cmd, out: &syncBuffer{tee: tee}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Renice sets the process's CPU priority (nice value, -20 to 19; raising
// it needs no privilege), as a service manager's Nice= would. Linux keeps a
// nice value per thread, and a new thread takes its creator's, so every
// thread the process has is set, until a pass finds no new one.
func (p *Proc) Renice(n int) error {
	if p.cmd.Process == nil {
		return nil
	}
	done := map[int]bool{}
	for range 10 {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.cmd.Process.Pid))
		if err != nil {
			return fmt.Errorf("renice %s: %w", p.Name, err)
		}
		fresh := false
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			err = syscall.Setpriority(syscall.PRIO_PROCESS, tid, n)
			if err != nil && !errors.Is(err, syscall.ESRCH) { // ESRCH: the thread ended
				return fmt.Errorf("renice %s (thread %d): %w", p.Name, tid, err)
			}
			done[tid], fresh = true, true
		}
		if !fresh {
			return nil
		}
	}
	return fmt.Errorf("renice %s: it kept starting threads through 10 passes", p.Name)
}

// WaitGRPC waits until the process serves grpc.health.v1 as SERVING.
func (p *Proc) WaitGRPC(ctx context.Context) error {
	conn, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	return p.poll(ctx, func(ctx context.Context) bool {
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil && r.Status == healthpb.HealthCheckResponse_SERVING
	})
}

// WaitHTTP waits until GET path on the process answers 200.
func (p *Proc) WaitHTTP(ctx context.Context, path string) error {
	return p.poll(ctx, func(ctx context.Context) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (p *Proc) poll(ctx context.Context, ok func(context.Context) bool) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		good := ok(cctx)
		cancel()
		if good {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v\n%s", p.Name, p.err, p.Output())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w\n%s", p.Name, ctx.Err(), p.Output())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// syncBuffer collects a process's output, and copies it to tee if set.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	tee *os.File
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tee != nil {
		b.tee.Write(p)
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
