package etcdtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backorder/backorder/services/sandbox/stack"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Cluster is a multi-member etcd of embedded members on loopback, for tests
// of member loss and quorum loss and for the load tool. Every member keeps
// its name, data directory and URLs for the life of the cluster, so a
// stopped member can be restarted and rejoin as itself.
type Cluster struct {
	token   string
	initial string // the initial-cluster flag: name=peerURL,...

	mu      sync.Mutex
	members []*member
}

type member struct {
	name   string
	dir    string
	client url.URL
	peer   url.URL // advertised: the gate's, if there is one
	// listen is where the member listens for its peers: peer, or the
	// address the gate forwards to.
	listen url.URL
	gate   *gate       // nil without WithPeerGates
	etcd   *embed.Etcd // nil while stopped
}

// Option is an option of NewCluster.
type Option func(*options)

type options struct{ gates bool }

// WithPeerGates routes each member's peer traffic through a gate, so that
// CutPeers can cut the members off from each other while they run.
func WithPeerGates() Option { return func(o *options) { o.gates = true } }

// NewCluster starts an n-member cluster with its members' data under dir
// and waits until every member is ready. Close stops it.
func NewCluster(n int, dir string, opts ...Option) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("etcdtest: a cluster needs at least one member, got %d", n)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	c := &Cluster{token: fmt.Sprintf("etcdtest-%d", rand.Uint64())}
	ports, err := stack.MemberPorts.Free(3 * n)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: %w", err)
	}
	hostURL := func(port int) url.URL {
		return url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	}
	var initial []string
	for i := range n {
		m := &member{
			name:   fmt.Sprintf("m%d", i),
			dir:    filepath.Join(dir, fmt.Sprintf("m%d", i)),
			client: hostURL(ports[3*i]),
			peer:   hostURL(ports[3*i+1]),
		}
		m.listen = m.peer
		if o.gates {
			m.listen = hostURL(ports[3*i+2])
			if m.gate, err = newGate(m.peer.Host, m.listen.Host); err != nil {
				c.Close()
				return nil, fmt.Errorf("etcdtest: gate of member %d: %w", i, err)
			}
		}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peer.String())
	}
	c.initial = strings.Join(initial, ",")

	// A new member waits for its peers before it is ready: start them all,
	// then wait.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = c.start(i) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] == nil {
			errs[i] = c.waitReady(i)
		}
		if errs[i] != nil {
			c.Close()
			return nil, fmt.Errorf("etcdtest: start member %d: %w", i, errs[i])
		}
	}
	return c, nil
}

// TestCluster is a Cluster bound to a test: its methods fail the test
// instead of returning errors, and it stops when the test ends.
type TestCluster struct {
	*Cluster
	tb testing.TB
}

// StartCluster starts an n-member cluster in the test's temporary
// directory and waits until every member is ready. The members are stopped
// when the test ends.
func StartCluster(tb testing.TB, n int) *TestCluster {
	tb.Helper()
	c, err := NewCluster(n, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return &TestCluster{Cluster: c, tb: tb}
}

// Endpoints returns the client URLs of every member, running or not, in
// member order.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.client.String()
	}
	return out
}

// Endpoint returns the client URL of member i.
func (c *Cluster) Endpoint(i int) string { return c.members[i].client.String() }

// Running reports whether member i is running.
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[i].etcd != nil
}

// Leader returns the index of the running member that is the leader as far
// as it knows, or -1 when no running member says it leads.
func (c *Cluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.members {
		if m.etcd == nil {
			continue
		}
		s := m.etcd.Server
		if s.Leader() == s.MemberID() {
			return i
		}
	}
	return -1
}

// AwaitLeader waits until a running member other than the ones in not
// leads and returns its index, or an error if none does within timeout (a
// cluster without a quorum never elects one).
func (c *Cluster) AwaitLeader(timeout time.Duration, not ...int) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		if l := c.Leader(); l >= 0 && !slices.Contains(not, l) {
			return l, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("etcdtest: no leader within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// AwaitApplied waits until every running member has applied every write
// committed before the call. A write commits once a quorum has it, so a
// member can lag behind; a test that reads from one member alone, or
// leaves one member alone, waits for this first. It writes a key of its
// own through the cluster (which needs a quorum), then reads it from each
// running member alone: members apply writes in order, so one that has it
// has everything before it.
func (c *Cluster) AwaitApplied(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var running []string
	c.mu.Lock()
	for _, m := range c.members {
		if m.etcd != nil {
			running = append(running, m.client.String())
		}
	}
	c.mu.Unlock()
	cli, err := clientv3.New(clientv3.Config{Endpoints: running, DialTimeout: timeout, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcdtest: %w", err)
	}
	defer cli.Close()
	const key = "/etcdtest/applied"
	put, err := cli.Put(ctx, key, "")
	if err != nil {
		return fmt.Errorf("etcdtest: the write to await: %w", err)
	}
	for _, ep := range running {
		if err := awaitRevision(ctx, ep, key, put.Header.Revision); err != nil {
			return fmt.Errorf("etcdtest: member %s has not applied revision %d within %s: %w", ep, put.Header.Revision, timeout, err)
		}
	}
	return nil
}

// awaitRevision polls a serializable read of key on the member at endpoint
// alone until it shows the key at revision rev or later.
func awaitRevision(ctx context.Context, endpoint, key string, rev int64) error {
	one, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer one.Close()
	for {
		r, err := one.Get(ctx, key, clientv3.WithSerializable())
		if err == nil && len(r.Kvs) == 1 && r.Kvs[0].ModRevision >= rev {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// WaitApplied is AwaitApplied that fails the test.
func (c *TestCluster) WaitApplied(timeout time.Duration) {
	c.tb.Helper()
	if err := c.AwaitApplied(timeout); err != nil {
		c.tb.Fatal(err)
	}
}

// WaitLeader is AwaitLeader that fails the test.
func (c *TestCluster) WaitLeader(timeout time.Duration) int {
	c.tb.Helper()
	l, err := c.AwaitLeader(timeout)
	if err != nil {
		c.tb.Fatal(err)
	}
	return l
}

// Stop ends member i: its client servers stop, then its raft node (a
// leader first hands leadership over, as etcd does on SIGTERM), then its
// listeners close. Its data directory is kept for Restart. Stopping a
// stopped member does nothing.
//
// It is not HardStop: that closes the member's database while its gRPC
// servers still answer, and a request served in that window crashes this
// whole process (a nil bbolt transaction in etcd's read path).
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	m := c.members[i]
	e := m.etcd
	m.etcd = nil
	c.mu.Unlock()
	if e == nil {
		return
	}
	e.Close()
}

// StartMember starts stopped member i again from its data directory, with
// the same name and URLs, and waits until it is ready. Ready means it has
// joined a quorum: restart enough members for one, or it fails after a
// minute.
func (c *Cluster) StartMember(i int) error {
	if c.Running(i) {
		return fmt.Errorf("etcdtest: member %d is running", i)
	}
	var err error
	// The ports were free when chosen, in a range of their own (see
	// stack.MemberPorts); retry briefly in case a closing socket still
	// holds one.
	for range 50 {
		if err = c.start(i); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("etcdtest: restart member %d: %w", i, err)
	}
	if err := c.waitReady(i); err != nil {
		return fmt.Errorf("etcdtest: %w", err)
	}
	return nil
}

// Restart is StartMember that fails the test.
func (c *TestCluster) Restart(i int) {
	c.tb.Helper()
	if err := c.StartMember(i); err != nil {
		c.tb.Fatal(err)
	}
}

// Client returns a client of every member, closed when the test ends.
func (c *TestCluster) Client() *clientv3.Client {
	c.tb.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.tb.Fatalf("etcd client: %v", err)
	}
	c.tb.Cleanup(func() { cli.Close() })
	return cli
}

func (c *Cluster) config(m *member) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.Logger = "zap"
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.ListenClientUrls = []url.URL{m.client}
	cfg.AdvertiseClientUrls = []url.URL{m.client}
	cfg.ListenPeerUrls = []url.URL{m.listen}
	cfg.AdvertisePeerUrls = []url.URL{m.peer}
	// With a data directory from an earlier run these are ignored: the
	// member restarts from its write-ahead log.
	cfg.InitialCluster = c.initial
	cfg.InitialClusterToken = c.token
	cfg.ClusterState = embed.ClusterStateFlagNew
	// Tests run beside race-built processes on small machines: a longer
	// election timeout keeps a busy leader from being deposed by mistake.
	cfg.TickMs = 100
	cfg.ElectionMs = 2000
	return cfg
}

func (c *Cluster) start(i int) error {
	m := c.members[i]
	e, err := embed.StartEtcd(c.config(m))
	if err != nil {
		return err
	}
	c.mu.Lock()
	m.etcd = e
	c.mu.Unlock()
	return nil
}

func (c *Cluster) waitReady(i int) error {
	c.mu.Lock()
	e := c.members[i].etcd
	c.mu.Unlock()
	if e == nil {
		return fmt.Errorf("member %d is stopped", i)
	}
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("member %d: %v", i, err)
	case <-time.After(time.Minute):
		return fmt.Errorf("member %d not ready within a minute (no quorum?)", i)
	}
}

// CutPeers cuts every member off from the others (the cluster needs
// WithPeerGates): open peer connections close and new ones are turned
// away, so no member has a quorum, while every member runs and answers
// its clients. MendPeers lets them talk again.
func (c *Cluster) CutPeers() error { return c.setCut(true) }

// MendPeers undoes CutPeers.
func (c *Cluster) MendPeers() error { return c.setCut(false) }

func (c *Cluster) setCut(cut bool) error {
	for i, m := range c.members {
		if m.gate == nil {
			return fmt.Errorf("etcdtest: member %d has no peer gate (start the cluster WithPeerGates)", i)
		}
		m.gate.setCut(cut)
	}
	return nil
}

// Close stops every member, then the gates.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for i := range c.members {
		wg.Go(func() { c.Stop(i) })
	}
	wg.Wait()
	for _, m := range c.members {
		if m.gate != nil {
			m.gate.close()
		}
	}
}
