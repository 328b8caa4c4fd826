package syncsecrets

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// GitHub cannot hand a secret's value back, so what pgfleet wrote is
// remembered beside it, in an Actions variable of the same target: a keyed
// fingerprint of the value (HMAC-SHA256, never a plain hash: a connection
// string's password could be guessed from one) and the secret's updated_at
// as GitHub reported it right after the write. A secret is current when
// both match: the value pgfleet would write now has the recorded
// fingerprint, and nobody has written the secret since.

// variablePrefix starts the name of every fingerprint variable: the
// variable of secret ACME_DATABASE_URL is PGFLEET_FP_ACME_DATABASE_URL.
const variablePrefix = "PGFLEET_FP_"

// recordVersion starts every fingerprint variable's value.
const recordVersion = "pgfleet-fp-v2"

// Labels that separate the two ways of getting the HMAC key: a
// fingerprint-key and a Neon API key never give the same key.
const (
	labelGivenKey = "pgfleet sync-secrets fingerprint key v1: fingerprint-key"
	labelNeonKey  = "pgfleet sync-secrets fingerprint key v1: neon-api-key"
)

// fingerprinter computes fingerprints with one key. The key never leaves
// it, and no fingerprint is ever printed.
type fingerprinter struct{ key []byte }

// newFingerprinter derives the HMAC key from fingerprint-key when given,
// else from the Neon API key (rotating either rewrites every secret once).
func newFingerprinter(fingerprintKey, neonAPIKey string) fingerprinter {
	material, label := fingerprintKey, labelGivenKey
	if material == "" {
		material, label = neonAPIKey, labelNeonKey
	}
	m := hmac.New(sha256.New, []byte(material))
	m.Write([]byte(label))
	return fingerprinter{key: m.Sum(nil)}
}

// sum is the fingerprint of value as the secret name of the target where
// (which includes, for an organization, the visibility the secret is written
// with: changing it rewrites the secret).
func (f fingerprinter) sum(where, name, value string) string {
	m := hmac.New(sha256.New, f.key)
	for _, s := range []string{where, name, value} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// owner tags the records of one configuration (target kind, templates,
// pooled or direct): prune deletes only secrets whose record carries this
// run's tag, never those another configuration wrote into the same
// repository, however alike their names ({{NAME}}_DATABASE_URL also
// matches STAGING_ACME_DATABASE_URL). Keyed, so it says nothing readable.
func (f fingerprinter) owner(kind, secretTemplate, envTemplate string, pooled bool) string {
	return f.sum("owner", kind+"|"+secretTemplate+"|"+envTemplate, fmt.Sprint(pooled))[:16]
}

// encodeRecord is a fingerprint variable's value: version, fingerprint,
// the secret's updated_at, the owner tag, and the id and name of the tenant
// it was written for (path-escaped), so that prune can say whose secret it
// deletes once the tenant is gone. Records written before the tenant was
// kept end after the owner tag, and stay valid.
func encodeRecord(sum string, updatedAt time.Time, owner, tenantID, tenantName string) string {
	return recordVersion + " " + sum + " " + updatedAt.UTC().Truncate(time.Second).Format(time.RFC3339) + " " + owner +
		" " + url.PathEscape(tenantID) + " " + url.PathEscape(tenantName)
}

// parseRecord reads a fingerprint variable's value.
func parseRecord(s string) (sum string, updatedAt time.Time, owner string, ok bool) {
	f := strings.Fields(s)
	if (len(f) != 4 && len(f) != 6) || f[0] != recordVersion {
		return "", time.Time{}, "", false
	}
	t, err := time.Parse(time.RFC3339, f[2])
	if err != nil {
		return "", time.Time{}, "", false
	}
	return f[1], t, f[3], true
}

// recordTenant is the tenant a record says its secret was written for;
// ok is false for a record that does not say (or cannot be read).
func recordTenant(s string) (id, name string, ok bool) {
	f := strings.Fields(s)
	if len(f) != 6 || f[0] != recordVersion {
		return "", "", false
	}
	id, err1 := url.PathUnescape(f[4])
	name, err2 := url.PathUnescape(f[5])
	return id, name, err1 == nil && err2 == nil
}
