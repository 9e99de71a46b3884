package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/backorder/backorder/services/sandbox/webhook"
)

// sendConfig is the configuration of "sandbox send".
type sendConfig struct {
	url, secret    string
	headers        map[string]string
	store, storeID string
	order          uint64
	scope          string
	status, prev   uint
	times, conc    int
	bad            string
}

// scopeAliases lets a person type "created" for "store/order/created".
var scopeAliases = map[string]string{
	"created":       webhook.ScopeOrderCreated,
	"updated":       webhook.ScopeOrderUpdated,
	"archived":      webhook.ScopeOrderArchived,
	"statusUpdated": webhook.ScopeOrderStatusUpdated,
}

// badOptions make deliveries a receiver must refuse.
var badOptions = map[string]webhook.Option{
	"forged":   webhook.Forged(),
	"tampered": webhook.Tampered(),
	"stale":    webhook.Stale(10 * time.Minute),
	"unsigned": webhook.Unsigned(),
}

func parseSend(args []string) (sendConfig, error) {
	c := sendConfig{headers: map[string]string{}}
	if h := os.Getenv("WEBHOOK_SECRET_HEADER"); h != "" {
		c.headers[h] = os.Getenv("WEBHOOK_SECRET")
	}
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.StringVar(&c.url, "url", envOr("SANDBOX_WEBHOOK_URL", "http://127.0.0.1:8080/v1/webhooks/bigcommerce"), "destination (env SANDBOX_WEBHOOK_URL)")
	fs.StringVar(&c.secret, "secret", envOr("BIGCOMMERCE_CLIENT_SECRET", ""), "client secret that signs the delivery; empty: unsigned (env BIGCOMMERCE_CLIENT_SECRET)")
	fs.Func("header", `custom header "Name: value", repeatable (default from WEBHOOK_SECRET_HEADER / WEBHOOK_SECRET)`, func(v string) error {
		name, value, ok := strings.Cut(v, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return errors.New(`want "Name: value"`)
		}
		c.headers[strings.TrimSpace(name)] = strings.TrimSpace(value)
		return nil
	})
	fs.StringVar(&c.store, "store", envOr("BIGCOMMERCE_STORE_HASH", "sandbox"), "store hash (env BIGCOMMERCE_STORE_HASH)")
	fs.StringVar(&c.storeID, "store-id", envOr("SANDBOX_STORE_ID", "1000001"), "numeric store id (env SANDBOX_STORE_ID)")
	fs.Uint64Var(&c.order, "order", 0, "order id (required)")
	fs.StringVar(&c.scope, "scope", "statusUpdated", "created, updated, statusUpdated, archived, or a full scope")
	fs.UintVar(&c.status, "status", 11, "new status id, for statusUpdated")
	fs.UintVar(&c.prev, "prev-status", 0, "previous status id, for statusUpdated")
	fs.IntVar(&c.times, "times", 1, "deliveries of the one event (duplicates share webhook-id and hash)")
	fs.IntVar(&c.conc, "concurrency", 0, "deliveries in flight at once; 0: all of them")
	fs.StringVar(&c.bad, "bad", "", "send a delivery to be refused: forged, tampered, stale or unsigned")
	if err := parseFlags(fs, args); err != nil {
		return c, err
	}
	if full, ok := scopeAliases[c.scope]; ok {
		c.scope = full
	}
	return c, c.validate()
}

func (c sendConfig) validate() error {
	var errs []error
	if c.url == "" {
		errs = append(errs, errors.New("-url must not be empty"))
	}
	if c.order == 0 {
		errs = append(errs, errors.New("-order is required"))
	}
	if !strings.HasPrefix(c.scope, "store/") {
		errs = append(errs, fmt.Errorf("-scope %q is not a BigCommerce scope", c.scope))
	}
	if c.times < 1 || c.conc < 0 {
		errs = append(errs, errors.New("-times must be at least 1 and -concurrency not negative"))
	}
	if _, ok := badOptions[c.bad]; c.bad != "" && !ok {
		errs = append(errs, fmt.Errorf("-bad %q: want forged, tampered, stale or unsigned", c.bad))
	}
	if c.status > 14 || c.prev > 14 {
		errs = append(errs, errors.New("-status and -prev-status are BigCommerce status ids, 0 to 14"))
	}
	return errors.Join(errs...)
}

func runSend(ctx context.Context, args []string) error {
	cfg, err := parseSend(args)
	if err != nil {
		return err
	}
	ev := webhook.New(cfg.scope, cfg.store, cfg.storeID, cfg.order)
	if cfg.scope == webhook.ScopeOrderStatusUpdated {
		ev.Data.Status = &webhook.StatusChange{PreviousStatusID: uint32(cfg.prev), NewStatusID: uint32(cfg.status)}
	}
	var opts []webhook.Option
	if o, ok := badOptions[cfg.bad]; ok {
		opts = append(opts, o)
	}
	if cfg.bad == "unsigned" {
		// One right credential is enough for the gateway: an unsigned
		// delivery to be refused carries no shared-secret header either.
		cfg.headers = nil
	}
	events := make([]webhook.Event, cfg.times)
	for i := range events {
		events[i] = ev
	}
	conc := cfg.conc
	if conc == 0 {
		conc = cfg.times
	}
	sender := &webhook.Sender{URL: cfg.url, ClientSecret: cfg.secret, Headers: cfg.headers}
	fmt.Printf("event %s %s order %d, webhook-id %s, hash %s\n", ev.Scope, ev.Store, ev.Data.ID, ev.ID, ev.Hash())
	failed := 0
	for i, r := range sender.SendParallel(ctx, events, conc, opts...) {
		switch {
		case r.Err != nil:
			failed++
			fmt.Printf("delivery %d: %v\n", i+1, r.Err)
		default:
			if r.Status < 200 || r.Status > 299 {
				failed++
			}
			fmt.Printf("delivery %d: %d\n", i+1, r.Status)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d deliveries were not accepted", failed, cfg.times)
	}
	return nil
}
