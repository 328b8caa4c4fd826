package dir

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/storagetest"
)

func TestParseDestination(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"file:///var/backups", "/var/backups", ""},
		{"file:///var/backups/", "/var/backups/", ""},
		{"file://localhost/var/backups", "/var/backups", ""},
		{"file:///my%20backups", "/my backups", ""},
		{"file:backups/daily", "backups/daily", ""},
		{"file:my%20backups", "my backups", ""},
		{"file://backups/daily", "", "host"},
		{"s3://bkt/p", "", "not a file URL"},
		{"file:///x?y=1", "", "no ?query"},
		{"file://", "", "no folder"},
	} {
		got, err := ParseDestination(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseDestination(%q): err = %v, want it to say %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseDestination(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestPutInProgress looks at the folder while a Put is reading: the temp
// file is there and Pending shows it, List and Get do not.
func TestPutInProgress(t *testing.T) {
	ctx := context.Background()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	checked := false
	r := storagetest.HookReader(storagetest.NewStream(1, 4<<20), 1<<20, func() {
		checked = true
		ups, err := s.Pending(ctx, "")
		if err != nil || len(ups) != 1 || ups[0].Key != "t/x.dump" || !strings.Contains(ups[0].ID, partialMarker) {
			t.Errorf("Pending during Put = %+v, %v; want the temp file of t/x.dump", ups, err)
		}
		storagetest.AssertAbsent(t, s, "t/x.dump")
	})
	if _, err := s.Put(ctx, "t/x.dump", r); err != nil {
		t.Fatal(err)
	}
	if !checked {
		t.Fatal("the hook never ran")
	}
	storagetest.AssertNoPending(t, s, "")
	fi, err := os.Stat(filepath.Join(s.Root(), "t", "x.dump"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != fileMode {
		t.Errorf("object mode %v, want %v", fi.Mode().Perm(), os.FileMode(fileMode))
	}
}

func TestReservedAndEscapingNames(t *testing.T) {
	ctx := context.Background()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "a/.x"+partialMarker+"1", strings.NewReader("x")); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("Put of a temp file's name: err = %v, want ErrInvalidKey", err)
	}
	// Abort refuses anything but a temp file, so debris clean-up can
	// never remove a backup.
	if _, err := s.Put(ctx, "a/real.dump", strings.NewReader("keep")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a/real.dump", "../a/.real.dump" + partialMarker + "1", "/etc/.passwd" + partialMarker + "1"} {
		if err := s.Abort(ctx, storage.Upload{Key: "a/real.dump", ID: id}); err == nil {
			t.Errorf("Abort(ID %q) succeeded", id)
		}
	}
	if got := storagetest.MustGet(t, s, "a/real.dump"); string(got) != "keep" {
		t.Errorf("a/real.dump = %q", got)
	}
}

func TestSymlinkedRoot(t *testing.T) {
	ctx := context.Background()
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "backups")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	s, err := New(link)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "t/x", bytes.NewReader([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	if got := storagetest.Keys(t, s, ""); len(got) != 1 || got[0] != "t/x" {
		t.Errorf("List through a symlinked root = %q, want [t/x]", got)
	}
}

func TestMissingRoot(t *testing.T) {
	s, err := New(filepath.Join(t.TempDir(), "not", "yet"))
	if err != nil {
		t.Fatal(err)
	}
	if got := storagetest.Keys(t, s, ""); len(got) != 0 {
		t.Errorf("List of a missing folder = %q", got)
	}
	storagetest.AssertNoPending(t, s, "")
	if _, err := s.Get(context.Background(), "x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get from a missing folder: err = %v, want ErrNotFound", err)
	}
}
