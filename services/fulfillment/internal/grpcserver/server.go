// Package grpcserver implements backorder.v1.FulfillmentService on top of the
// fulfill use case. Conversion between proto and domain, and the mapping of
// errors to gRPC status codes, live here and nowhere else.
package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	backorderv1 "github.com/backorder/backorder/gen/backorder/v1"
	"github.com/backorder/backorder/services/fulfillment/internal/fulfill"
	"github.com/backorder/backorder/services/fulfillment/internal/order"
)

// Info describes the replica for GetServiceStatus.
type Info struct {
	Replica      string
	EmbeddedEtcd bool
	StoreHash    string
	StartedAt    time.Time
	// Quota reads the replica's view of the store's BigCommerce API quota
	// (nil: none is reported).
	Quota func() Quota
	// Queued counts the orders with work queued, across all replicas (nil:
	// none is reported).
	Queued func(ctx context.Context) (int64, error)
}

// Quota is a replica's view of the store's BigCommerce API quota; zero
// fields are unknown (Left is known while ResetsAt is set).
type Quota struct {
	Left                int64
	ResetsAt, HeldUntil time.Time
	Spacing             time.Duration
	Burst               int
}

// Server is the gRPC face of a fulfill.Service.
type Server struct {
	backorderv1.UnimplementedFulfillmentServiceServer
	svc  *fulfill.Service
	info Info
}

// New returns a Server for svc.
func New(svc *fulfill.Service, info Info) *Server { return &Server{svc: svc, info: info} }

// Register adds the service to g.
func (s *Server) Register(g *grpc.Server) { backorderv1.RegisterFulfillmentServiceServer(g, s) }

// WebhookIDMetadata is the metadata key the gateway forwards the
// Standard Webhooks webhook-id header under.
const WebhookIDMetadata = "webhook-id"

// HandleOrderWebhook implements the RPC.
func (s *Server) HandleOrderWebhook(ctx context.Context, req *backorderv1.HandleOrderWebhookRequest) (*backorderv1.HandleOrderWebhookResponse, error) {
	d := fulfill.Delivery{
		Scope:    req.GetScope(),
		StoreID:  req.GetStoreId(),
		Producer: req.GetProducer(),
		OrderID:  req.GetData().GetId(),
		Hash:     req.GetHash(),
	}
	d.NewStatusID = req.GetData().GetStatus().GetNewStatusId()
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(WebhookIDMetadata); len(v) > 0 {
			d.WebhookID = v[0]
		}
	}
	res, err := s.svc.Intake(ctx, d)
	if err != nil {
		return nil, toStatus(err)
	}
	return &backorderv1.HandleOrderWebhookResponse{Recorded: res.Recorded, Duplicate: res.Duplicate, Ignored: res.Ignored}, nil
}

// ProcessOrder implements the RPC.
func (s *Server) ProcessOrder(ctx context.Context, req *backorderv1.ProcessOrderRequest) (*backorderv1.ProcessOrderResponse, error) {
	k, err := key(req.GetStoreHash(), req.GetOrderId())
	if err != nil {
		return nil, err
	}
	o, err := s.svc.Process(ctx, k, fulfill.ProcessOptions{Force: true, ValidateOnly: req.GetValidateOnly()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &backorderv1.ProcessOrderResponse{Order: toProto(o)}, nil
}

// GetOrder implements the RPC.
func (s *Server) GetOrder(ctx context.Context, req *backorderv1.GetOrderRequest) (*backorderv1.GetOrderResponse, error) {
	k, err := key(req.GetStoreHash(), req.GetOrderId())
	if err != nil {
		return nil, err
	}
	o, err := s.svc.Get(ctx, k)
	if err != nil {
		return nil, toStatus(err)
	}
	return &backorderv1.GetOrderResponse{Order: toProto(o)}, nil
}

// ListOrders implements the RPC.
func (s *Server) ListOrders(ctx context.Context, req *backorderv1.ListOrdersRequest) (*backorderv1.ListOrdersResponse, error) {
	if req.GetPageSize() < 0 {
		return nil, status.Error(codes.InvalidArgument, "page_size must not be negative")
	}
	orders, next, err := s.svc.List(ctx, fulfill.ListFilter{
		Store:     req.GetStoreHash(),
		State:     order.State(req.GetState()),
		Pending:   req.GetPending(),
		PageSize:  int(req.GetPageSize()),
		PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &backorderv1.ListOrdersResponse{NextPageToken: next}
	for _, o := range orders {
		resp.Orders = append(resp.Orders, toProto(o))
	}
	return resp, nil
}

// RetryOrder implements the RPC.
func (s *Server) RetryOrder(ctx context.Context, req *backorderv1.RetryOrderRequest) (*backorderv1.RetryOrderResponse, error) {
	k, err := key(req.GetStoreHash(), req.GetOrderId())
	if err != nil {
		return nil, err
	}
	o, err := s.svc.Act(ctx, k, fulfill.Action{Kind: order.ActionRetry, Actor: req.GetActor(), Note: req.GetNote()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &backorderv1.RetryOrderResponse{Order: toProto(o)}, nil
}

// ResolveOrder implements the RPC.
func (s *Server) ResolveOrder(ctx context.Context, req *backorderv1.ResolveOrderRequest) (*backorderv1.ResolveOrderResponse, error) {
	k, err := key(req.GetStoreHash(), req.GetOrderId())
	if err != nil {
		return nil, err
	}
	a := fulfill.Action{Actor: req.GetActor(), Note: req.GetNote()}
	switch r := req.GetResolution().(type) {
	case *backorderv1.ResolveOrderRequest_OfflineOrderId:
		if strings.TrimSpace(r.OfflineOrderId) == "" {
			return nil, status.Error(codes.InvalidArgument, "offline_order_id is empty: give the supplier's id, or supplier_has_no_order")
		}
		a.Kind, a.OfflineOrderID = order.ActionResolveFound, r.OfflineOrderId
	case *backorderv1.ResolveOrderRequest_SupplierHasNoOrder:
		if !r.SupplierHasNoOrder {
			return nil, status.Error(codes.InvalidArgument, "supplier_has_no_order must be true when given")
		}
		a.Kind = order.ActionResolveNotAtSupplier
	default:
		return nil, status.Error(codes.InvalidArgument, "give either offline_order_id or supplier_has_no_order")
	}
	o, err := s.svc.Act(ctx, k, a)
	if err != nil {
		return nil, toStatus(err)
	}
	return &backorderv1.ResolveOrderResponse{Order: toProto(o)}, nil
}

// GetServiceStatus implements the RPC.
func (s *Server) GetServiceStatus(ctx context.Context, _ *backorderv1.GetServiceStatusRequest) (*backorderv1.GetServiceStatusResponse, error) {
	return &backorderv1.GetServiceStatusResponse{
		SupplierMode:       backorderv1.SupplierMode(s.svc.Mode()),
		Replica:            s.info.Replica,
		EmbeddedEtcd:       s.info.EmbeddedEtcd,
		StoreHash:          s.info.StoreHash,
		StartedAt:          timestamppb.New(s.info.StartedAt),
		OrdersSweep:        s.ordersSweep(ctx),
		WriteBack:          s.svc.WritesBack(),
		BigcommerceQuota:   s.quota(),
		QueuedOrders:       s.queued(ctx),
		SupplierBreaker:    s.breaker(),
		Role:               s.role(),
		ProcessingReplicas: int32(s.svc.QueueShare()),
	}, nil
}

// role is the replica's ROLE.
func (s *Server) role() backorderv1.ReplicaRole {
	switch s.svc.Role() {
	case fulfill.RoleIntake:
		return backorderv1.ReplicaRole_REPLICA_ROLE_INTAKE
	case fulfill.RoleProcess:
		return backorderv1.ReplicaRole_REPLICA_ROLE_PROCESS
	}
	return backorderv1.ReplicaRole_REPLICA_ROLE_ALL
}

// breaker reports the replica's TropShip breaker; nil when it is off.
func (s *Server) breaker() *backorderv1.SupplierBreaker {
	st, on := s.svc.BreakerState()
	if !on {
		return nil
	}
	return &backorderv1.SupplierBreaker{After: int32(st.After), Open: st.Open, ProbeAt: ts(st.Until), HeldRuns: int64(st.Held),
		ThrottledUntil: ts(st.ThrottledUntil)}
}

func (s *Server) quota() *backorderv1.BigCommerceQuota {
	if s.info.Quota == nil {
		return nil
	}
	q := s.info.Quota()
	out := &backorderv1.BigCommerceQuota{ResetsAt: ts(q.ResetsAt), HeldUntil: ts(q.HeldUntil), Burst: int32(q.Burst)}
	if !q.ResetsAt.IsZero() {
		out.RequestsLeft = proto.Int64(q.Left) // 0 included: the quota is spent
	}
	if q.Spacing > 0 {
		out.SpacingMs = proto.Int64(q.Spacing.Milliseconds())
	}
	return out
}

// queued counts the backlog; nil when etcd cannot say now.
func (s *Server) queued(ctx context.Context) *int64 {
	if s.info.Queued == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, statusReadTimeout)
	defer cancel()
	n, err := s.info.Queued(ctx)
	if err != nil {
		return nil
	}
	return &n
}

// ordersSweep reports the Orders API sweep. The status answers even when
// etcd does not: the failure to read is then the sweep's last_error.
func (s *Server) ordersSweep(ctx context.Context) *backorderv1.OrdersSweepStatus {
	// A caller without a deadline (grpcurl) would wait as long as etcd is
	// unreachable.
	ctx, cancel := context.WithTimeout(ctx, statusReadTimeout)
	defer cancel()
	enabled, every, st, err := s.svc.OrdersSweepStatus(ctx)
	out := sweepProto(enabled, every, st)
	if err != nil {
		out.LastError = "the sweep's state could not be read now: " + err.Error()
	}
	return out
}

func sweepProto(enabled bool, every time.Duration, st fulfill.SweepState) *backorderv1.OrdersSweepStatus {
	return &backorderv1.OrdersSweepStatus{
		Enabled: enabled, IntervalSeconds: int64(every / time.Second),
		Since: ts(st.Since), Cursor: ts(st.Cursor), LastRun: ts(st.LastRun),
		Listed: int64(st.Listed), Recorded: int64(st.Recorded), LastError: st.LastError,
	}
}

// statusReadTimeout bounds each of GetServiceStatus's etcd reads.
const statusReadTimeout = 2 * time.Second

// SweepOrders implements the RPC.
func (s *Server) SweepOrders(ctx context.Context, req *backorderv1.SweepOrdersRequest) (*backorderv1.SweepOrdersResponse, error) {
	if req.GetStoreHash() != s.info.StoreHash {
		return nil, toStatus(fmt.Errorf("%w: store_hash %q; this service serves store %q", fulfill.ErrUnknownStore, req.GetStoreHash(), s.info.StoreHash))
	}
	rep, err := s.svc.SweepOrders(ctx, 0)
	if err != nil {
		return nil, toStatus(err)
	}
	enabled, every := s.svc.OrdersSweepEvery()
	return &backorderv1.SweepOrdersResponse{Skipped: rep.Skipped, First: rep.First, Status: sweepProto(enabled, every, rep.State)}, nil
}

func key(store string, id uint64) (order.Key, error) {
	if store == "" {
		return order.Key{}, status.Error(codes.InvalidArgument, "store_hash is required")
	}
	if id == 0 {
		return order.Key{}, status.Error(codes.InvalidArgument, "order_id is required")
	}
	return order.Key{Store: store, ID: id}, nil
}

// toStatus is the one mapping of errors to gRPC codes. The codes are chosen
// for the HTTP status the gateway turns them into, because that status
// drives BigCommerce's retries: Unavailable (503) means "try again later",
// and nothing recorded is ever answered with an error.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var code codes.Code
	switch {
	case errors.Is(err, fulfill.ErrInvalidDelivery), errors.Is(err, fulfill.ErrBadPageToken),
		errors.Is(err, order.ErrActorRequired):
		code = codes.InvalidArgument
	case errors.Is(err, fulfill.ErrUnknownStore):
		code = codes.PermissionDenied
	case errors.Is(err, fulfill.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, order.ErrInvalidTransition), errors.Is(err, fulfill.ErrSupplierIDInUse),
		errors.Is(err, fulfill.ErrCredentialsRefused):
		code = codes.FailedPrecondition
	case errors.Is(err, fulfill.ErrFenced), errors.Is(err, fulfill.ErrLockLost):
		code = codes.Aborted
	case errors.Is(err, fulfill.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		code = codes.Unavailable
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, fulfill.ErrOrderNotFound):
		code = codes.NotFound
	default:
		var re *fulfill.RetryableError
		if errors.As(err, &re) {
			code = codes.Unavailable
		} else if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
			return err // already a status, e.g. from a validation above
		} else {
			code = codes.Internal
		}
	}
	return status.Error(code, err.Error())
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func toProto(o *order.Order) *backorderv1.Order {
	if o == nil {
		return nil
	}
	p := &backorderv1.Order{
		StoreHash:           o.Key.Store,
		OrderId:             o.Key.ID,
		State:               backorderv1.OrderState(o.State),
		Reference:           o.Reference,
		OfflineOrderId:      o.OfflineOrderID,
		Attempts:            o.Attempts,
		WriteBackFailures:   o.WriteBackFailures,
		LastError:           o.LastError,
		IneligibleReason:    o.IneligibleReason,
		BigcommerceStatusId: o.StatusID,
		Mode:                backorderv1.SupplierMode(o.Mode),
		CreatedAt:           ts(o.CreatedAt),
		UpdatedAt:           ts(o.UpdatedAt),
		SubmittedAt:         ts(o.SubmittedAt),
		NextAttemptAt:       ts(o.NextAttemptAt),
		Pending:             o.Pending,
		ReviewReason:        o.ReviewReason,
	}
	for _, a := range o.Actions {
		p.Actions = append(p.Actions, &backorderv1.OperatorAction{
			Action: a.Kind, Actor: a.Actor, Note: a.Note, At: ts(a.At),
			FromState: backorderv1.OrderState(a.From), ToState: backorderv1.OrderState(a.To),
			OfflineOrderId: a.OfflineOrderID,
		})
	}
	for _, e := range o.Events {
		p.Events = append(p.Events, &backorderv1.OrderEvent{
			Key: e.Key, Scope: e.Scope, NewStatusId: e.NewStatusID, ReceivedAt: ts(e.ReceivedAt),
		})
	}
	return p
}
