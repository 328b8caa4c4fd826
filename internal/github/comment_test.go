package github_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pgfleet/pgfleet/internal/github"
	"github.com/pgfleet/pgfleet/internal/testenv/githubapi"
)

func TestUpsertCommentKeepsOneComment(t *testing.T) {
	f := setup(t, githubapi.Config{}, github.Options{})
	ctx := context.Background()
	const marker = "<!-- pgfleet:rehearsal -->"
	// Other people's comments, more than a page of them, come first.
	for i := range 120 {
		if _, err := f.client.UpsertComment(ctx, "acme", "app", 7, fmt.Sprintf("<!-- other %d -->", i), fmt.Sprintf("<!-- other %d --> hello", i)); err != nil {
			t.Fatal(err)
		}
	}
	created, err := f.client.UpsertComment(ctx, "acme", "app", 7, marker, marker+"\nfirst verdict")
	if err != nil || !created {
		t.Fatalf("first: created %v, %v", created, err)
	}
	created, err = f.client.UpsertComment(ctx, "acme", "app", 7, marker, marker+"\nsecond verdict")
	if err != nil || created {
		t.Fatalf("second: created %v, %v", created, err)
	}
	var ours []string
	for _, b := range f.srv.Comments("acme", "app", 7) {
		if strings.Contains(b, marker) {
			ours = append(ours, b)
		}
	}
	if len(ours) != 1 || !strings.Contains(ours[0], "second verdict") {
		t.Fatalf("comments with the marker: %q, want one, updated", ours)
	}
	if _, err := f.client.UpsertComment(ctx, "acme", "app", 7, marker, marker+strings.Repeat("x", github.MaxCommentBody)); err == nil {
		t.Error("a body over GitHub's limit was sent")
	}
	if _, err := f.client.UpsertComment(ctx, "acme", "app", 7, marker, "no marker"); err == nil {
		t.Error("a body without its marker was sent")
	}
}
