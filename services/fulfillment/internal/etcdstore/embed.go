package etcdstore

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Embedded is a single-member etcd run inside the process: the default on a
// laptop, when no ETCD_ENDPOINTS are configured.
type Embedded struct {
	etcd     *embed.Etcd
	Endpoint string // client URL, e.g. http://127.0.0.1:2379
}

// StartEmbedded starts a single-member etcd keeping its data in dir and
// serving clients on clientURL (port 0 picks a free port).
func StartEmbedded(ctx context.Context, dir, clientURL string) (*Embedded, error) {
	cu, err := url.Parse(clientURL)
	if err != nil || cu.Host == "" {
		return nil, fmt.Errorf("ETCD_EMBED_CLIENT_URL %q is not a URL like http://127.0.0.1:2379", clientURL)
	}
	pu, _ := url.Parse("http://127.0.0.1:0")
	cfg := embed.NewConfig()
	cfg.Name = "backorder"
	cfg.Dir = dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// Keep an hour of history: without compaction every revision of every
	// record is kept for ever and the data grows without bound.
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		// The data directory or the client URL (a port in use): both named.
		return nil, fmt.Errorf("start embedded etcd (ETCD_DATA_DIR %q, ETCD_EMBED_CLIENT_URL %q): %w", dir, clientURL, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	case <-time.After(time.Minute):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %q did not become ready within a minute", dir)
	}
	return &Embedded{etcd: e, Endpoint: "http://" + e.Clients[0].Addr().String()}, nil
}

// Close stops the embedded etcd.
func (e *Embedded) Close() { e.etcd.Close() }
