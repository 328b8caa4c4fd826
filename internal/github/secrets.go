package github

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"time"

	gh "github.com/google/go-github/v66/github"
	"golang.org/x/crypto/nacl/box"
)

// PublicKey is the key a target's secrets are encrypted with.
type PublicKey struct {
	ID  string   // GitHub's key_id, sent back with each secret
	Key [32]byte // curve25519 public key
}

// Secret is what GitHub tells about a stored secret: never its value.
type Secret struct {
	Name      string // as GitHub stores it: upper-cased
	CreatedAt time.Time
	UpdatedAt time.Time
	// Visibility of an organization secret; "" elsewhere.
	Visibility string
}

// PutResult is the outcome of PutSecret.
type PutResult struct {
	Secret  Secret // as GitHub reports it right after the write
	Created bool   // GitHub answered 201 (a new secret), not 204 (updated)
}

// secretsPerPage is the largest page GitHub serves for secret lists.
const secretsPerPage = 100

// PublicKey returns the target's public key, fetched once per target and
// client.
func (c *Client) PublicKey(ctx context.Context, t Target) (PublicKey, error) {
	o := op{verb: "get public key of", target: t.String()}
	if err := t.Validate(); err != nil {
		return PublicKey{}, local(o, err)
	}
	c.mu.Lock()
	k, ok := c.keys[t.secretsPath()]
	c.mu.Unlock()
	if ok {
		return k, nil
	}
	return c.fetchPublicKey(ctx, t)
}

func (c *Client) fetchPublicKey(ctx context.Context, t Target) (PublicKey, error) {
	o := op{verb: "get public key of", target: t.String()}
	var pk gh.PublicKey
	if _, err := c.do(ctx, o, http.MethodGet, t.secretsPath()+"/public-key", nil, &pk); err != nil {
		return PublicKey{}, err
	}
	raw, err := base64.StdEncoding.DecodeString(pk.GetKey())
	if err != nil || len(raw) != 32 || pk.GetKeyID() == "" {
		return PublicKey{}, local(o, fmt.Errorf("GitHub sent a public key that is not a base64 curve25519 key with an id"))
	}
	k := PublicKey{ID: pk.GetKeyID()}
	copy(k.Key[:], raw)
	c.mu.Lock()
	c.keys[t.secretsPath()] = k
	c.mu.Unlock()
	return k, nil
}

// ListSecrets lists the target's secrets, every page of them.
func (c *Client) ListSecrets(ctx context.Context, t Target) ([]Secret, error) {
	return listItems(ctx, c, op{verb: "list secrets of", target: t.String()}, t.Validate(),
		t.secretsPath(), secretsPerPage, secretsOf, secretOf)
}

// ListRepoOrgSecrets lists the organization secrets that owner/repo can
// use, every page: the ones its workflows see (only the first 100 of them,
// MaxVisibleOrgSecrets).
func (c *Client) ListRepoOrgSecrets(ctx context.Context, owner, repo string) ([]Secret, error) {
	return listItems(ctx, c, op{verb: "list organization secrets visible to", target: "repository " + owner + "/" + repo}, checkRepo(owner, repo),
		repoPath(owner, repo)+"/actions/organization-secrets", secretsPerPage, secretsOf, secretOf)
}

// GetSecret returns what GitHub tells about one secret; IsNotFound(err)
// when there is no such secret.
func (c *Client) GetSecret(ctx context.Context, t Target, name string) (Secret, error) {
	o := op{verb: "get secret", name: name, target: t.String()}
	if err := checkSecretOp(t, name); err != nil {
		return Secret{}, local(o, err)
	}
	var s gh.Secret
	if _, err := c.do(ctx, o, http.MethodGet, t.secretPath(name), nil, &s); err != nil {
		return Secret{}, err
	}
	return secretOf(&s), nil
}

// PutSecret encrypts value with the target's public key and writes it as
// the secret name (creating or replacing it), then reads the secret back to
// learn its updated_at as GitHub reports it. An organization secret gets
// the target's visibility and selected repositories. value never appears
// in an error.
func (c *Client) PutSecret(ctx context.Context, t Target, name, value string) (PutResult, error) {
	o := op{verb: "put secret", name: name, target: t.String()}
	if err := checkSecretOp(t, name); err != nil {
		return PutResult{}, local(o, err)
	}
	if len(value) > MaxSecretValueSize {
		return PutResult{}, local(o, fmt.Errorf("%w: the value is %d bytes, more than the %d that fit in GitHub's %d-byte limit once encrypted", ErrTooLarge, len(value), MaxSecretValueSize, MaxSecretSize))
	}
	key, err := c.PublicKey(ctx, t)
	if err != nil {
		return PutResult{}, err
	}
	resp, err := c.putSecret(ctx, o, t, name, value, key)
	if err != nil && StatusOf(err) == http.StatusUnprocessableEntity {
		// The cached key may have been rotated since it was fetched:
		// GitHub then refuses its key_id. Fetch it again, and try once more
		// if it changed.
		fresh, ferr := c.fetchPublicKey(ctx, t)
		if ferr == nil && fresh.ID != key.ID {
			resp, err = c.putSecret(ctx, o, t, name, value, fresh)
		}
	}
	if err != nil {
		return PutResult{}, err
	}
	created := resp.StatusCode == http.StatusCreated
	s, err := c.GetSecret(ctx, t, name)
	if err != nil {
		return PutResult{Created: created}, err
	}
	return PutResult{Secret: s, Created: created}, nil
}

func (c *Client) putSecret(ctx context.Context, o op, t Target, name, value string, key PublicKey) (*gh.Response, error) {
	sealed, err := box.SealAnonymous(nil, []byte(value), &key.Key, rand.Reader)
	if err != nil {
		return nil, local(o, fmt.Errorf("encrypt: %w", err))
	}
	body := &gh.EncryptedSecret{KeyID: key.ID, EncryptedValue: base64.StdEncoding.EncodeToString(sealed)}
	if t.isOrg() {
		body.Visibility = t.Visibility
		if t.Visibility == VisibilitySelected {
			body.SelectedRepositoryIDs = gh.SelectedRepoIDs(t.SelectedRepositoryIDs)
		}
	}
	return c.do(ctx, o, http.MethodPut, t.secretPath(name), body, nil)
}

// DeleteSecret deletes the secret name; IsNotFound(err) when there was no
// such secret.
func (c *Client) DeleteSecret(ctx context.Context, t Target, name string) error {
	o := op{verb: "delete secret", name: name, target: t.String()}
	if err := checkSecretOp(t, name); err != nil {
		return local(o, err)
	}
	_, err := c.do(ctx, o, http.MethodDelete, t.secretPath(name), nil, nil)
	return err
}

func checkSecretOp(t Target, name string) error {
	if err := t.Validate(); err != nil {
		return err
	}
	return ValidSecretName(name)
}

func secretsOf(p *gh.Secrets) []*gh.Secret { return p.Secrets }

func secretOf(s *gh.Secret) Secret {
	return Secret{Name: s.Name, CreatedAt: s.CreatedAt.Time, UpdatedAt: s.UpdatedAt.Time, Visibility: s.Visibility}
}
