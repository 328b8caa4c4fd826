// Package httpurl checks the one kind of URL pgfleet's HTTP clients are
// given (the Neon and GitHub APIs, an S3 endpoint, GitHub's OIDC token
// URL): absolute, http or https, with a host. It is its own package so that
// the lowest floors (storage backends, API clients) can use it without
// importing config.
package httpurl

import "net/url"

// Parse parses raw and reports whether it is an http:// or https:// URL
// with a host. The URL is nil when it is not.
func Parse(raw string) (*url.URL, bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, false
	}
	return u, true
}
