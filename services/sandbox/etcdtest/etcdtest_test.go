package etcdtest

import (
	"context"
	"testing"
)

func TestStart(t *testing.T) {
	ep := Start(t)
	c := Client(t, ep)
	if _, err := c.Put(context.Background(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	r, err := c.Get(context.Background(), "k")
	if err != nil || string(r.Kvs[0].Value) != "v" {
		t.Fatal(r, err)
	}
	t.Log(ep)
}
