package pgconnect

import (
	"net"
	"strings"
)

// Endpoint is one (host, port, database) a connection string reaches,
// normalised so that two spellings of one database compare equal.
type Endpoint struct {
	Host     string
	Port     uint16
	Database string
}

// loopback stands for every name of this machine's own server: localhost,
// 127.0.0.0/8, ::1 and a Unix socket all reach it, so they compare equal.
// That is deliberately wide (two servers on 127.0.0.1 and 127.0.0.2 would
// be taken for one): it is used to refuse writing into a tenant, where a
// false "same" costs a clear refusal and a false "different" costs data.
const loopback = "loopback"

// Endpoints are the (host, port, database) rawURL reaches, one per host
// of a multi-host string, read by the one parser (ParseURL). Hosts are
// lower-cased without a trailing dot, IP addresses in their canonical
// form, local hosts as one; a missing database is the user's, as libpq and
// the server take it.
func Endpoints(rawURL string) ([]Endpoint, error) {
	cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	db := cfg.Database
	if db == "" {
		db = cfg.User
	}
	eps := []Endpoint{{Host: normalHost(cfg.Host), Port: cfg.Port, Database: db}}
	for _, f := range cfg.Fallbacks {
		eps = append(eps, Endpoint{Host: normalHost(f.Host), Port: f.Port, Database: db})
	}
	return eps, nil
}

func normalHost(h string) string {
	if strings.HasPrefix(h, "/") { // a Unix socket folder: this machine's server
		return loopback
	}
	h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return loopback
	}
	if ip := net.ParseIP(h); ip != nil {
		if ip.IsLoopback() {
			return loopback
		}
		return ip.String()
	}
	return h
}

// SameDatabase reports whether a and b can reach the same database: some
// host of one, with its port and the database, is some host of the other.
// Users, passwords and parameters do not matter. A string that does not
// parse is the same as nothing.
func SameDatabase(a, b string) bool {
	ea, err := Endpoints(a)
	if err != nil {
		return false
	}
	eb, err := Endpoints(b)
	if err != nil {
		return false
	}
	for _, x := range ea {
		for _, y := range eb {
			if x == y {
				return true
			}
		}
	}
	return false
}
