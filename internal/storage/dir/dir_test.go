package dir

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/storagetest"
)

func TestStore(t *testing.T) {
	storagetest.Run(t, storagetest.Harness{
		LargeSize: 1 << 20,
		Setup: func(t *testing.T) storagetest.Env {
			base := t.TempDir()
			return storagetest.Env{
				Open: func(prefix string) storage.Store {
					// Through the URL, so "file:///x/pre/" and
					// "file:///x/pre" are both exercised.
					p, err := ParseDestination("file://" + base + "/" + prefix)
					if err != nil {
						t.Fatal(err)
					}
					s, err := New(p)
					if err != nil {
						t.Fatal(err)
					}
					return s
				},
				Orphan: func(s storage.Store, key string) {
					p := filepath.Join(s.(*Store).root, filepath.FromSlash(key))
					tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+partialMarker+"4242")
					if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(tmp, []byte("half a dump"), 0o600); err != nil {
						t.Fatal(err)
					}
				},
			}
		},
	})
}
