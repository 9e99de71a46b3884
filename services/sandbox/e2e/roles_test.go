package e2e_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/sandbox/stack"
)

// statusOf asks one replica for its GetServiceStatus.
func statusOf(t *testing.T, p *stack.Proc) *backorderv1.GetServiceStatusResponse {
	t.Helper()
	conn, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := backorderv1.NewFulfillmentServiceClient(conn).GetServiceStatus(ctx, &backorderv1.GetServiceStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitProcessingReplicas waits until p says want processing replicas
// divide the queue.
func waitProcessingReplicas(t *testing.T, p *stack.Proc, want int32) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st := statusOf(t, p)
		if st.GetRole() != backorderv1.ReplicaRole_REPLICA_ROLE_PROCESS {
			t.Fatalf("%s: role %v, want PROCESS", p.Name, st.GetRole())
		}
		if st.GetProcessingReplicas() == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: processing_replicas %d, want %d", p.Name, st.GetProcessingReplicas(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An intake replica takes the deliveries; two processing replicas divide
// the queue, say so in GetServiceStatus, and send every order once; when
// one stops, the other takes every order.
func TestProcessingReplicasDivideTheQueue(t *testing.T) {
	e := newEnv(t, options{replicas: 1, mode: "live", env: map[string]string{"ROLE": "intake"}})
	a := e.startReplicaWith("live", bins.Fulfillment, map[string]string{"ROLE": "process"})
	b := e.startReplicaWith("live", bins.Fulfillment, map[string]string{"ROLE": "process"})
	waitProcessingReplicas(t, a, 2)
	waitProcessingReplicas(t, b, 2)

	e.sendAll(e.backorders(3000, 20), 8)
	for id := uint64(3000); id < 3020; id++ {
		e.waitState(id, writtenBack)
	}
	b.Stop()
	waitProcessingReplicas(t, a, 1)
	e.sendAll(e.backorders(3020, 20), 8)
	for id := uint64(3020); id < 3040; id++ {
		e.waitState(id, writtenBack)
	}
	l := e.ts.Ledger()
	checkNoDuplicates(t, l)
	if len(l.References) != 40 {
		t.Fatalf("supplier has orders for %d references, want 40", len(l.References))
	}
}
