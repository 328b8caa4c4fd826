package backup

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/dir"
)

// pendingStore is a folder whose unfinished uploads are a fixed list: it
// counts the listings, fails the first, and records what was aborted.
type pendingStore struct {
	*dir.Store
	uploads []storage.Upload
	lists   int
	aborted []string
}

func (s *pendingStore) Pending(ctx context.Context, prefix string) ([]storage.Upload, error) {
	s.lists++
	if s.lists == 1 {
		return nil, errors.New("store unreachable")
	}
	var ups []storage.Upload
	for _, u := range s.uploads {
		if strings.HasPrefix(u.Key, prefix) {
			ups = append(ups, u)
		}
	}
	return ups, nil
}

func (s *pendingStore) Abort(ctx context.Context, u storage.Upload) error {
	s.aborted = append(s.aborted, u.Key)
	return nil
}

// Retention lists the unfinished uploads once for the run, not once per
// tenant; a listing that failed is tried again by the next tenant, and
// each tenant still aborts its own stale uploads (and no one else's).
func TestPruneListsPendingUploadsOnce(t *testing.T) {
	ctx := context.Background()
	d, err := dir.New(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	current := ago(0)
	folders := []string{"a", "b", "c"}
	s := &pendingStore{Store: d}
	for _, f := range folders {
		for _, k := range []string{current + ".dump.zst", current + ".manifest.json"} {
			if _, err := d.Put(ctx, f+"/"+k, strings.NewReader("x")); err != nil {
				t.Fatal(err)
			}
		}
		s.uploads = append(s.uploads, storage.Upload{Key: f + "/" + ago(3*day) + ".dump.zst", ID: f})
	}
	j := NewJob(Options{Store: s, RetentionDays: 7, KeepLast: 3})
	j.o.Now = func() time.Time { return now }

	if err := j.prune(ctx, "a", current, &Detail{}); err == nil {
		t.Fatal("a: the failed listing did not fail the prune")
	}
	for _, f := range folders {
		d := &Detail{}
		if err := j.prune(ctx, f, current, d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if want := []string{f + "/" + ago(3*day) + ".dump.zst"}; !slices.Equal(d.Aborted, want) {
			t.Errorf("%s: aborted %v, want %v", f, d.Aborted, want)
		}
	}
	if s.lists != 2 {
		t.Errorf("the unfinished uploads were listed %d times for 3 tenants (the first failing), want 2", s.lists)
	}
	if len(s.aborted) != len(folders) {
		t.Errorf("aborted %v, want one upload per tenant", s.aborted)
	}
}
