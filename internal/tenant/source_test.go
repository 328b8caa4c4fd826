package tenant

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func static(n int) Static {
	s := make(Static, n)
	for i := range s {
		s[i] = Tenant{ID: fmt.Sprintf("db-%02d", i)}
	}
	return s
}

func TestStaticYieldsInOrder(t *testing.T) {
	var got []string
	err := static(4).Tenants(context.Background(), func(tn Tenant) bool {
		got = append(got, tn.ID)
		return true
	})
	if err != nil || strings.Join(got, ",") != "db-00,db-01,db-02,db-03" {
		t.Errorf("got %v, err %v", got, err)
	}
}

func TestStaticStops(t *testing.T) {
	s := static(10)

	// The consumer stops: no more yields, no error.
	var got []string
	err := s.Tenants(context.Background(), func(tn Tenant) bool {
		got = append(got, tn.ID)
		return len(got) < 3
	})
	if err != nil || strings.Join(got, ",") != "db-00,db-01,db-02" {
		t.Errorf("stopped after 3: %v, err %v", got, err)
	}

	// Cancelled before it starts: nothing yielded.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := 0
	err = s.Tenants(ctx, func(Tenant) bool { n++; return true })
	if !errors.Is(err, context.Canceled) || n != 0 {
		t.Errorf("cancelled: %d yielded, err %v", n, err)
	}

	// Cancelled part-way: the listing ends there and says why.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	n = 0
	err = s.Tenants(ctx, func(Tenant) bool {
		n++
		if n == 4 {
			cancel()
		}
		return true
	})
	if !errors.Is(err, context.Canceled) || n != 4 {
		t.Errorf("cancelled at 4: %d yielded, err %v", n, err)
	}

	// Cancelled, and the consumer stops at once: still the cancellation.
	ctx, cancel = context.WithCancel(context.Background())
	err = s.Tenants(ctx, func(Tenant) bool { cancel(); return false })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled and stopped: err %v", err)
	}
}

func TestSourceFunc(t *testing.T) {
	want := errors.New("page 2: 500")
	var src Source = SourceFunc(func(ctx context.Context, yield func(Tenant) bool) error {
		yield(Tenant{ID: "a"})
		return want
	})
	var got []string
	err := src.Tenants(context.Background(), func(tn Tenant) bool { got = append(got, tn.ID); return true })
	if !errors.Is(err, want) || strings.Join(got, ",") != "a" {
		t.Errorf("got %v, err %v", got, err)
	}
}
