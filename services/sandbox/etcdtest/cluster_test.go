package etcdtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestStartCluster loses the leader, then the quorum, and brings both back: what
// was written survives, writes fail (rather than hang) without a quorum, and
// restarted members rejoin as themselves.
func TestStartCluster(t *testing.T) {
	c := StartCluster(t, 3)
	cli := c.Client()
	put := func(k, v string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := cli.Put(ctx, k, v)
		return err
	}
	get := func(k string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, err := cli.Get(ctx, k)
		if err != nil {
			t.Fatalf("get %s: %v", k, err)
		}
		if len(r.Kvs) == 0 {
			return ""
		}
		return string(r.Kvs[0].Value)
	}
	if err := put("a", "1"); err != nil {
		t.Fatal(err)
	}

	// One member down, the leader: the other two elect one and go on.
	l := c.WaitLeader(30 * time.Second)
	st := time.Now()
	c.Stop(l)
	if c.Running(l) {
		t.Fatalf("member %d still running after Stop", l)
	}
	if next := c.WaitLeader(30 * time.Second); next == l {
		t.Fatalf("stopped member %d still reported as leader", l)
	}
	t.Logf("new leader after %s", time.Since(st))
	eventually(t, func() error { return put("b", "2") })
	if got := get("a"); got != "1" {
		t.Fatalf("a = %q after losing the leader, want 1", got)
	}

	// Two down: no quorum. A write fails within its deadline.
	other := (l + 1) % 3
	c.Stop(other)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := cli.Put(ctx, "c", "3")
	cancel()
	if err == nil {
		t.Fatal("write succeeded without a quorum")
	}
	t.Logf("write without quorum: %v", err)
	// A client of the one member left fails too.
	one, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Endpoint(3 - l - other)}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	_, err = one.Put(ctx, "c", "3")
	cancel()
	if err == nil {
		t.Fatal("the lone member accepted a write")
	}
	t.Logf("write to the lone member: %v", err)

	// Both back, from their data directories, under their old names.
	c.Restart(l)
	c.Restart(other)
	c.WaitLeader(30 * time.Second)
	eventually(t, func() error { return put("d", "4") })
	for k, want := range map[string]string{"a": "1", "b": "2", "d": "4"} {
		if got := get(k); got != want {
			t.Fatalf("%s = %q after restarts, want %q", k, got, want)
		}
	}
	members, err := cli.MemberList(context.Background())
	if err != nil || len(members.Members) != 3 {
		t.Fatalf("member list: %v %v", members, err)
	}
}

func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCutPeers cuts every member off from the others while they run: no
// write commits and no member leads, though each still answers its
// clients; once mended, the cluster elects a leader and writes commit again,
// and what was written before is there.
func TestCutPeers(t *testing.T) {
	c, err := NewCluster(3, t.TempDir(), WithPeerGates())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	put := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_, err := cli.Put(ctx, "k", "v")
		return err
	}
	if err := put(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	// A put commits once a quorum has it; the third member may apply it
	// later. Cut only once every member has it, so each can serve it below.
	if err := c.AwaitApplied(time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := (&Cluster{members: []*member{{}}}).CutPeers(); err == nil {
		t.Error("CutPeers of a cluster without gates did not fail")
	}

	if err := c.CutPeers(); err != nil {
		t.Fatal(err)
	}
	if err := put(2 * time.Second); err == nil {
		t.Fatal("a write committed with every member cut off")
	}
	// The leader steps down once it has not heard from a quorum for an
	// election timeout (2 s here).
	eventually(t, func() error {
		if l := c.Leader(); l >= 0 {
			return fmt.Errorf("member %d still leads", l)
		}
		return nil
	})
	for i := range 3 {
		if !c.Running(i) {
			t.Fatalf("member %d stopped", i)
		}
		one, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Endpoint(i)}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := one.Get(ctx, "k", clientv3.WithSerializable())
		cancel()
		one.Close()
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("member %d, serializable read while cut off: %v, %v", i, r, err)
		}
	}

	if err := c.MendPeers(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AwaitLeader(time.Minute); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error { return put(5 * time.Second) })
}
