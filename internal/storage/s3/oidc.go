package s3

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/pgfleet/pgfleet/internal/httpurl"
)

// githubIDToken fetches the job's OIDC token from GitHub Actions for the
// audience STS expects: stscreds.IdentityTokenRetriever, called each time
// the cached credentials need refreshing. Its errors never hold the request
// token or the ID token.
type githubIDToken struct {
	requestURL   *url.URL
	requestToken string
	client       *http.Client
}

// stsAudience is the audience AWS's GitHub OIDC provider is set up with.
const stsAudience = "sts.amazonaws.com"

func newGitHubIDToken(getenv func(string) string, client *http.Client) (*githubIDToken, error) {
	rawURL, token := getenv("ACTIONS_ID_TOKEN_REQUEST_URL"), getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
	if rawURL == "" || token == "" {
		return nil, errors.New("assuming a role needs GitHub Actions' OIDC token, and ACTIONS_ID_TOKEN_REQUEST_URL or ACTIONS_ID_TOKEN_REQUEST_TOKEN is not set: " +
			"give the job `permissions: id-token: write` (or use access keys outside GitHub Actions)")
	}
	u, ok := httpurl.Parse(rawURL)
	if !ok {
		return nil, errors.New("ACTIONS_ID_TOKEN_REQUEST_URL is not an http(s) URL")
	}
	q := u.Query()
	q.Set("audience", stsAudience)
	u.RawQuery = q.Encode()
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return &githubIDToken{requestURL: u, requestToken: token, client: client}, nil
}

// GetIdentityToken is `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=sts.amazonaws.com`
// with the request token as bearer; the answer is {"value": "<JWT>"}.
func (g *githubIDToken) GetIdentityToken() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.requestURL.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("GitHub OIDC token: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+g.requestToken)
	req.Header.Set("Accept", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return nil, fmt.Errorf("GitHub OIDC token: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GitHub OIDC token: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			hint = " (does the job have `permissions: id-token: write`?)"
		}
		return nil, fmt.Errorf("GitHub OIDC token: HTTP %d%s", resp.StatusCode, hint)
	}
	var v struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Value == "" {
		return nil, errors.New("GitHub OIDC token: the answer holds no token")
	}
	return []byte(v.Value), nil
}
