package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/storage"
)

// OutputBytes is the output both modes set.
var OutputBytes = input.Output{Name: "bytes", Description: "Bytes of backup objects (compressed and encrypted, as stored): written by backup, read by restore."}

// InputEncryptionIdentity is declared here because two modes read it:
// restore decrypts the backup it restores, and backup's restore drill the
// backups it drills.
var InputEncryptionIdentity = &input.Input{Name: "encryption-identity", Secret: true, Env: "PGFLEET_ENCRYPTION_IDENTITY", Description: "The age secret key that decrypts an encrypted backup (store it as a secret): the whole file age-keygen writes, comments and all, or its AGE-SECRET-KEY-1... line. Restore: required for an encrypted backup. Backup: required for a restore drill (drill-target-url) when encryption-recipient is set, and must match one of the recipients. CLI: also PGFLEET_ENCRYPTION_IDENTITY."}

// ManifestVersion is the version of the manifest's layout.
const ManifestVersion = 1

// maxManifestBytes bounds what is read of a manifest (a tenant with a
// hundred thousand tables is about 10 MB).
const maxManifestBytes = 64 << 20

// Manifest is written beside a dump once the dump is complete: what it
// holds and how to check it. A dump without one is not a good backup.
type Manifest struct {
	Version       int         `json:"version"`
	Tool          string      `json:"tool"` // "pgfleet <version>"
	Tenant        string      `json:"tenant"`
	ProjectID     string      `json:"project_id"`
	Host          string      `json:"host"`
	Database      string      `json:"database"`
	ServerVersion string      `json:"server_version"`
	PgDumpVersion string      `json:"pg_dump_version"`
	PgDumpArgs    []string    `json:"pg_dump_args"`
	Format        Format      `json:"format"`
	Compression   Compression `json:"compression"`
	Level         int         `json:"compression_level,omitempty"`
	Encryption    *Encryption `json:"encryption"` // nil: not encrypted
	Object        string      `json:"object"`     // the dump's key, relative to the destination
	Bytes         int64       `json:"bytes"`      // the object's size
	SHA256        string      `json:"sha256"`     // of the object, hex
	DumpBytes     int64       `json:"dump_bytes"` // pg_dump's output, before compression
	Snapshot      string      `json:"snapshot"`   // the exported snapshot pg_dump and the row counts shared
	StartedAt     time.Time   `json:"started_at"`
	FinishedAt    time.Time   `json:"finished_at"`
	Tables        []Table     `json:"tables"` // every table's rows, counted in the dump's snapshot
}

// Encryption says who can read an encrypted dump.
type Encryption struct {
	Scheme     string   `json:"scheme"`     // "age"
	Recipients []string `json:"recipients"` // public keys
}

// Table is one table's row count.
type Table struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
}

// String is schema.name, quoted only where a name needs it.
func (t Table) String() string { return QualifiedName(t.Schema, t.Name) }

// Rows is the sum of every table's rows.
func (m *Manifest) Rows() int64 {
	var n int64
	for _, t := range m.Tables {
		n += t.Rows
	}
	return n
}

// Encrypted reports whether the dump is encrypted.
func (m *Manifest) Encrypted() bool { return m.Encryption != nil && len(m.Encryption.Recipients) > 0 }

// Marshal encodes the manifest, indented for people who open it.
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ReadManifest fetches and decodes the manifest at key, and checks it
// describes a dump pgfleet can restore.
func ReadManifest(ctx context.Context, s storage.Store, key string) (*Manifest, error) {
	r, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", key, err)
	}
	if len(b) > maxManifestBytes {
		return nil, fmt.Errorf("manifest %s is larger than %d bytes", key, maxManifestBytes)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest %s is not valid JSON: %w", key, err)
	}
	switch {
	case m.Version != ManifestVersion:
		return nil, fmt.Errorf("manifest %s has version %d; this pgfleet reads version %d", key, m.Version, ManifestVersion)
	case m.Format != Custom && m.Format != Plain:
		return nil, fmt.Errorf("manifest %s: unknown format %q", key, m.Format)
	case m.Compression != Zstd && m.Compression != Gzip && m.Compression != None:
		return nil, fmt.Errorf("manifest %s: unknown compression %q", key, m.Compression)
	case len(m.SHA256) != 64:
		return nil, fmt.Errorf("manifest %s has no sha256", key)
	case m.Encryption != nil && m.Encryption.Scheme != "age":
		return nil, fmt.Errorf("manifest %s: unknown encryption %q", key, m.Encryption.Scheme)
	}
	return &m, nil
}

var simpleIdent = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// QualifiedName is schema.name for people: each part quoted only when it
// needs quotes.
func QualifiedName(schema, name string) string {
	q := func(s string) string {
		if simpleIdent.MatchString(s) {
			return s
		}
		return pgx.Identifier{s}.Sanitize()
	}
	return q(schema) + "." + q(name)
}
