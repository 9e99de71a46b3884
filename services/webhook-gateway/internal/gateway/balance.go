package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
)

// A replica can freeze without closing its connections: a stalled VM, a
// long pause, SIGSTOP. Its TCP connections stay up and its health stream
// stays SERVING, so round robin keeps sending it every other delivery, each
// of which hangs until FULFILLMENT_TIMEOUT and then answers 503. At half the
// deliveries failing, BigCommerce blocklists the whole domain.
//
// So a delivery's call is tried for at most AttemptTimeout on one replica
// (tryElsewhere), and a replica whose try ran out of time is passed over
// (stallAware) until one trial call, let through every stallCooldown,
// comes back in time.

// stallAwareName is the load-balancing policy of the gateway's connection.
const stallAwareName = "backorder_stall_aware"

// stallCooldown is how long a replica that did not answer in time is passed
// over before one call tries it again.
const stallCooldown = 5 * time.Second

// judged are the calls whose timeouts say a replica is stalled: a delivery
// is recorded in milliseconds, while the operator actions may rightly wait
// a minute for an order's lock or the supplier.
var judged = map[string]bool{
	backorderv1.FulfillmentService_HandleOrderWebhook_FullMethodName: true,
}

func init() {
	balancer.Register(base.NewBalancerBuilder(stallAwareName, &stallAware{stalls: &stalls{m: map[string]*stall{}}}, base.Config{HealthCheck: true}))
}

// stalls is what is known of replicas that did not answer in time, by
// address. It outlives the pickers, which are rebuilt whenever a connection
// changes state. It is shared by the process's connections, which in
// production is one.
type stalls struct {
	mu sync.Mutex
	m  map[string]*stall
}

type stall struct {
	until   time.Time // passed over until then
	probing bool      // a trial call is in flight, since probeAt
	probeAt time.Time
}

// choose returns the index in addrs of the replica a call goes to, round
// robin (start is the picker's counter) over those not passed over. A
// replica passed over is let through by one trial call once its cooldown is
// over, and then by one call every cooldown while its trial's end is not
// reported. When every replica is passed over, all are used.
func (s *stalls) choose(addrs []string, start uint32, now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	healthy := 0
	for i, a := range addrs {
		st, ok := s.m[a]
		switch {
		case !ok:
			healthy++
		case !now.Before(st.until) && (!st.probing || now.Sub(st.probeAt) >= stallCooldown):
			st.probing, st.probeAt = true, now
			return i
		}
	}
	if healthy == 0 {
		return int(start % uint32(len(addrs)))
	}
	k := int(start % uint32(healthy))
	for i, a := range addrs {
		if _, ok := s.m[a]; !ok {
			if k == 0 {
				return i
			}
			k--
		}
	}
	return 0 // not reached
}

// done records how a judged call to addr ended: out of time marks the
// replica passed over; an answer clears it; a call that was cancelled, lost
// its connection or was never sent only ends a trial.
func (s *stalls) done(addr string, d balancer.DoneInfo, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	code := status.Code(d.Err)
	switch {
	case code == codes.DeadlineExceeded:
		s.m[addr] = &stall{until: now.Add(stallCooldown)}
	case code == codes.Canceled, code == codes.Unavailable, d.Err == nil && !d.BytesReceived:
		// Says nothing of whether the replica answers (a broken
		// connection takes it out of the picker anyway).
		if st, ok := s.m[addr]; ok {
			st.probing = false
		}
	default:
		delete(s.m, addr)
	}
}

// stallAware builds round-robin pickers over the ready replicas that pass
// over the replicas that did not answer in time (see stalls.choose).
type stallAware struct {
	stalls *stalls
}

func (b *stallAware) Build(info base.PickerBuildInfo) balancer.Picker {
	if len(info.ReadySCs) == 0 {
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	}
	p := &stallAwarePicker{stalls: b.stalls}
	for sc, sci := range info.ReadySCs {
		p.conns = append(p.conns, sc)
		p.addrs = append(p.addrs, sci.Address.Addr)
	}
	p.next.Store(uint32(time.Now().UnixNano())) // start anywhere, as round_robin does
	return p
}

type stallAwarePicker struct {
	stalls *stalls
	conns  []balancer.SubConn
	addrs  []string
	next   atomic.Uint32
}

func (p *stallAwarePicker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	start := p.next.Add(1)
	if !judged[info.FullMethodName] {
		return balancer.PickResult{SubConn: p.conns[start%uint32(len(p.conns))]}, nil
	}
	i := p.stalls.choose(p.addrs, start, time.Now())
	addr := p.addrs[i]
	return balancer.PickResult{SubConn: p.conns[i], Done: func(d balancer.DoneInfo) {
		p.stalls.done(addr, d, time.Now())
	}}, nil
}

// maxTries bounds the tries of one call: one of at most the attempt
// timeout, then one with whatever is left of the call's deadline.
const maxTries = 2

// tryElsewhere gives the first try of a judged call at most attempt, and
// makes a try that ran out of time again on the replica the picker chooses
// next (the one that did not answer is passed over by then), with the rest
// of the call's deadline: a replica that is merely slow, as all are when
// etcd is, still answers within FULFILLMENT_TIMEOUT. Recording a delivery
// is idempotent: a try that was recorded after all makes the next one a
// duplicate, answered 200 as the first would have been. A replica's own
// answer, Unavailable included (its etcd is down, which another replica's
// is too), is final. timedOut, if not nil, is told of every try a replica
// did not answer in time, with the replica's address.
func tryElsewhere(attempt time.Duration, timedOut func(replica string)) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if !judged[method] {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		for try := 1; ; try++ {
			var p peer.Peer
			actx, cancel := ctx, context.CancelFunc(func() {})
			if try < maxTries {
				actx, cancel = context.WithTimeout(ctx, attempt)
			}
			err := invoker(actx, method, req, reply, cc, append(opts, grpc.Peer(&p))...)
			cancel()
			if status.Code(err) != codes.DeadlineExceeded {
				return err
			}
			if timedOut != nil && p.Addr != nil {
				timedOut(p.Addr.String())
			}
			if try == maxTries || ctx.Err() != nil {
				return err
			}
		}
	}
}
