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
// changes state.
type stalls struct {
	mu sync.Mutex
	m  map[string]*stall
}

type stall struct {
	until   time.Time // passed over until then
	probing bool      // a trial call is in flight, since probeAt
	probeAt time.Time
}

// admit reports whether a call may go to addr now. A replica passed over is
// let through by one trial call at a time once its cooldown is over. (A
// trial whose end was never reported does not bar the replica for good:
// after another cooldown, another call tries it.)
func (s *stalls) admit(addr string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.m[addr]
	if !ok {
		return true
	}
	if now.Before(st.until) || st.probing && now.Sub(st.probeAt) < stallCooldown {
		return false
	}
	st.probing, st.probeAt = true, now
	return true
}

// done records how a judged call to addr ended: out of time marks the
// replica stalled; any answer at all clears it.
func (s *stalls) done(addr string, err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch status.Code(err) {
	case codes.DeadlineExceeded:
		s.m[addr] = &stall{until: now.Add(stallCooldown)}
	case codes.Canceled, codes.Unavailable:
		// The caller gave up, or the connection broke: says nothing of
		// whether the replica answers (a broken connection takes it out
		// of the picker anyway). A trial ends either way.
		if st, ok := s.m[addr]; ok {
			st.probing = false
		}
	default:
		delete(s.m, addr)
	}
}

// stallAware builds round-robin pickers over the ready replicas that skip
// those passed over, unless every ready replica is.
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
	n := uint32(len(p.conns))
	start := p.next.Add(1)
	if !judged[info.FullMethodName] {
		return balancer.PickResult{SubConn: p.conns[start%n]}, nil
	}
	now := time.Now()
	i := start % n
	for k := range n {
		if j := (start + k) % n; p.stalls.admit(p.addrs[j], now) {
			i = j
			break
		}
	}
	addr := p.addrs[i]
	return balancer.PickResult{SubConn: p.conns[i], Done: func(d balancer.DoneInfo) {
		p.stalls.done(addr, d.Err, time.Now())
	}}, nil
}

// maxTries bounds the tries of one call.
const maxTries = 3

// tryElsewhere gives each try of a judged call at most attempt, and tries a
// call that ran out of time again, on the replica the picker chooses next,
// up to maxTries and within the call's own deadline. Recording a delivery
// is idempotent: a try that was recorded after all makes the next one a
// duplicate, answered 200 as the first would have been. A replica's own
// answer, Unavailable included (its etcd is down, which another replica's
// is too), is final.
// timedOut, if not nil, is told of every try a replica did not answer in
// time, with the replica's address.
func tryElsewhere(attempt time.Duration, timedOut func(replica string)) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if !judged[method] {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		for try := 1; ; try++ {
			var p peer.Peer
			actx, cancel := context.WithTimeout(ctx, attempt)
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
