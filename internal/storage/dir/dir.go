// Package dir is a storage.Store in a local folder (file:///path
// destinations): a key is a file path under the folder.
//
// Put writes to a temp file beside the key's file, named
// ".<base>.pgfleet-partial-<random>", fsyncs it and renames it over the key
// only when the reader reached EOF, so a reader sees either the old object,
// none, or the complete new one. The temp file is removed on any failure; a
// run killed mid-Put leaves it behind, and Pending finds it.
package dir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/pgfleet/pgfleet/internal/storage"
)

// partialMarker sits in the name of every temp file Put writes, between the
// key's base name and a random suffix.
const partialMarker = ".pgfleet-partial-"

// fileMode is what a stored object's permissions become: readable by the
// runner's own user when a Docker action (running as root) wrote it into the
// workspace, as os.Create would have made it.
const fileMode = 0o644

var _ storage.Store = (*Store)(nil)

var (
	errNoSpace = syscall.ENOSPC
	errNotDir  = syscall.ENOTDIR
)

// Store keeps objects as files under a root folder. Its methods are safe for
// concurrent use, with the usual file system caveat: two Puts of one key
// race, and the last rename wins.
type Store struct {
	root string // absolute, cleaned
}

// New returns a Store rooted at the folder root. The folder need not exist
// yet: Put creates it and any folder a key names.
func New(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("dir: empty folder path")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("dir: folder %q: %w", root, err)
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("dir: %s is not a folder", abs)
	}
	return &Store{root: abs}, nil
}

// ParseDestination turns a file URL into a folder path: "file:///abs/path"
// or "file://localhost/abs/path" give "/abs/path", "file:rel/path" gives
// "rel/path" (relative to the working directory). Percent-escapes are
// decoded ("file:///my%20backups" is "/my backups").
func ParseDestination(dest string) (string, error) {
	u, err := url.Parse(dest)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("invalid file URL: %w", err)
	}
	if u.Scheme != "file" {
		return "", fmt.Errorf("not a file URL (want file:///path): scheme %q", u.Scheme)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("a file URL takes no ?query or #fragment")
	}
	if u.User != nil {
		return "", errors.New("a file URL takes no user or password")
	}
	if u.Opaque != "" {
		p, err := url.PathUnescape(u.Opaque)
		if err != nil {
			return "", fmt.Errorf("invalid file URL: %w", err)
		}
		return p, nil
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("file URL names host %q: write file:///abs/path (three slashes) or file:rel/path", u.Host)
	}
	if u.Path == "" {
		return "", errors.New("file URL names no folder: write file:///abs/path or file:rel/path")
	}
	return u.Path, nil
}

// Root is the folder's absolute path.
func (s *Store) Root() string { return s.root }

// String is the folder as a file URL, ending in a slash.
func (s *Store) String() string {
	u := url.URL{Scheme: "file", Path: strings.TrimSuffix(filepath.ToSlash(s.root), "/") + "/"}
	return u.String()
}

func (s *Store) fail(op, key string, err error) error {
	e := &storage.Error{Op: op, Dest: s.String(), Key: key, Err: err}
	switch {
	case errors.Is(err, fs.ErrPermission):
		e.Hint = "the process cannot write or read there: check the folder's owner and permissions"
	case errors.Is(err, errNoSpace):
		e.Hint = "the file system is full"
	}
	return e
}

// path maps a key to its file, refusing keys that would escape the root or
// collide with temp files.
func (s *Store) path(key string) (string, error) {
	if err := storage.CheckKey(key); err != nil {
		return "", err
	}
	if strings.Contains(path.Base(key), partialMarker) {
		return "", fmt.Errorf("%w %q: %q is reserved for unfinished uploads", storage.ErrInvalidKey, key, partialMarker)
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put streams r into a temp file beside key's file and renames it over the
// file once r reaches EOF. On any failure the temp file is removed. A Read
// that blocks is not interrupted by ctx; ctx is checked between reads.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	p, err := s.path(key)
	if err != nil {
		return 0, s.fail("put", key, err)
	}
	n, err := put(ctx, p, r)
	if err != nil {
		return 0, s.fail("put", key, err)
	}
	return n, nil
}

func put(ctx context.Context, p string, r io.Reader) (n int64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(p)+partialMarker+"*")
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// Neither side may offer io.CopyBuffer a shortcut (os.File.ReadFrom,
	// r's WriteTo) that would bypass ctxReader.
	buf := make([]byte, 256<<10)
	n, err = io.CopyBuffer(struct{ io.Writer }{f}, &ctxReader{ctx: ctx, r: r}, buf)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := f.Chmod(fileMode); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return 0, err
	}
	// The object is in place; syncing the folder makes the rename itself
	// survive a crash. A failure here cannot undo the rename, so it is not
	// reported as a failed Put.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return n, nil
}

// ctxReader stops a copy at the first Read after ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Get opens key's file; storage.ErrNotFound when there is none.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, s.fail("get", key, err)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
		return nil, s.fail("get", key, storage.ErrNotFound)
	}
	if err != nil {
		return nil, s.fail("get", key, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err != nil {
			return nil, s.fail("get", key, err)
		}
		return nil, s.fail("get", key, storage.ErrNotFound)
	}
	return f, nil
}

// List walks the folders under the root that can hold keys starting with
// prefix and returns the regular files among them, leaving temp files out.
func (s *Store) List(ctx context.Context, prefix string) ([]storage.Object, error) {
	var objs []storage.Object
	err := s.walk(ctx, prefix, func(key string, d fs.DirEntry, partial bool) error {
		if partial || !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted while we walked
		}
		if err != nil {
			return err
		}
		objs = append(objs, storage.Object{Key: key, Size: fi.Size(), LastModified: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, s.fail("list", prefix, err)
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	return objs, nil
}

// Pending lists the temp files of unfinished Puts whose key starts with
// prefix. Upload.ID is the temp file's slash-separated path under the root;
// Initiated is its last write time (a live Put keeps it fresh).
func (s *Store) Pending(ctx context.Context, prefix string) ([]storage.Upload, error) {
	var ups []storage.Upload
	err := s.walk(ctx, prefix, func(name string, d fs.DirEntry, partial bool) error {
		if !partial {
			return nil
		}
		key, ok := partialKey(name)
		if !ok || !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // finished or aborted while we walked
		}
		if err != nil {
			return err
		}
		ups = append(ups, storage.Upload{Key: key, ID: name, Initiated: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, s.fail("pending", prefix, err)
	}
	sort.Slice(ups, func(i, j int) bool {
		if ups[i].Key != ups[j].Key {
			return ups[i].Key < ups[j].Key
		}
		return ups[i].ID < ups[j].ID
	})
	return ups, nil
}

// Abort removes the temp file u.ID names. It refuses an ID that is not a
// temp file's, so it can never remove a complete object.
func (s *Store) Abort(ctx context.Context, u storage.Upload) error {
	if err := storage.CheckKey(u.ID); err != nil {
		return s.fail("abort", u.Key, fmt.Errorf("upload id: %w", err))
	}
	if _, ok := partialKey(u.ID); !ok {
		return s.fail("abort", u.Key, fmt.Errorf("%q is not an unfinished upload's temp file", u.ID))
	}
	err := os.Remove(filepath.Join(s.root, filepath.FromSlash(u.ID)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.fail("abort", u.Key, err)
	}
	return nil
}

// partialKey returns the key whose temp file name is the slash-separated
// path name, if name is one.
func partialKey(name string) (string, bool) {
	dir, base := path.Split(name)
	i := strings.LastIndex(base, partialMarker)
	if !strings.HasPrefix(base, ".") || i < 2 {
		return "", false
	}
	return dir + base[1:i], true
}

// Delete removes key's file; a missing file is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return s.fail("delete", key, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errNotDir) {
		return s.fail("delete", key, err)
	}
	return nil
}

// walk calls fn with the slash-separated key of every regular file under
// the folder that can hold keys starting with prefix (the prefix's folder
// part), in no particular order; partial tells temp files apart. A missing
// root or folder is empty, not an error.
func (s *Store) walk(ctx context.Context, prefix string, fn func(key string, d fs.DirEntry, partial bool) error) error {
	if err := storage.CheckPrefix(prefix); err != nil {
		return err
	}
	start := s.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	// The trailing separator makes WalkDir follow start when it is a
	// symlink to a folder (a backup folder often is one); deeper symlinks
	// are not followed.
	start += string(filepath.Separator)
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir)) {
				return fs.SkipAll
			}
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		_, partial := partialKey(key)
		return fn(key, d, partial)
	})
	return err
}
