// Command pgfleet operates on a fleet of tenant Postgres databases: it runs
// as a GitHub Action (inputs as INPUT_* variables) or as a CLI.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgfleet/pgfleet/internal/app"
)

func main() {
	// A cancelled workflow run sends SIGINT, then SIGTERM: both stop new
	// tenants from starting and let in-flight ones finish or roll back.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.MainWithStdin(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
