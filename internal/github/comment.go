package github

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	gh "github.com/google/go-github/v66/github"
)

// Routes of the sticky pull-request comment:
//
//	GET   /repos/{owner}/{repo}/issues/{number}/comments (per_page=100, every page)
//	POST  /repos/{owner}/{repo}/issues/{number}/comments
//	PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}

// MaxCommentBody is GitHub's limit on an issue or pull request comment's
// body, in characters.
const MaxCommentBody = 65536

// commentsPerPage is the largest page GitHub serves for issue comments.
const commentsPerPage = 100

// UpsertComment keeps one comment on pull request (or issue) number, found
// by marker (a hidden line such as "<!-- pgfleet:rehearsal -->" that body
// must contain): the first comment holding the marker is edited in place,
// or, when there is none, one is created. So every push updates one
// comment instead of adding one, as atlas-action and Neon's schema-diff
// action do. It reports whether the comment was created.
func (c *Client) UpsertComment(ctx context.Context, owner, repo string, number int, marker, body string) (created bool, err error) {
	target := fmt.Sprintf("%s/%s#%d", owner, repo, number)
	o := op{verb: "comment on", target: target}
	if err := validPathSegment("owner", owner); err != nil {
		return false, local(o, err)
	}
	if err := validPathSegment("repository", repo); err != nil {
		return false, local(o, err)
	}
	switch {
	case marker == "" || !strings.Contains(body, marker):
		return false, local(o, fmt.Errorf("the comment's body must contain its marker %q", marker))
	case len([]rune(body)) > MaxCommentBody:
		return false, local(o, fmt.Errorf("the comment's body has %d characters, over GitHub's %d", len([]rune(body)), MaxCommentBody))
	}
	var found int64
	err = list(ctx, c, op{verb: "list comments of", target: target},
		fmt.Sprintf("repos/%s/%s/issues/%d/comments", owner, repo, number), commentsPerPage,
		func(p *[]*gh.IssueComment) {
			for _, cm := range *p {
				if found == 0 && cm != nil && strings.Contains(cm.GetBody(), marker) {
					found = cm.GetID()
				}
			}
		})
	if err != nil {
		return false, err
	}
	in := map[string]string{"body": body}
	if found != 0 {
		_, err = c.do(ctx, op{verb: "update comment", name: fmt.Sprint(found), target: target}, http.MethodPatch,
			fmt.Sprintf("repos/%s/%s/issues/comments/%d", owner, repo, found), in, nil)
		return false, err
	}
	_, err = c.do(ctx, op{verb: "create comment", target: target}, http.MethodPost,
		fmt.Sprintf("repos/%s/%s/issues/%d/comments", owner, repo, number), in, nil)
	return err == nil, err
}
