package githubapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Issue and pull request comments, as GitHub serves them:
//
//	GET   /repos/{owner}/{repo}/issues/{number}/comments (per_page 30 by default, at most 100)
//	POST  /repos/{owner}/{repo}/issues/{number}/comments (201)
//	PATCH /repos/{owner}/{repo}/issues/comments/{comment_id} (200)
//
// A body over 65,536 characters answers 422, as GitHub does.

// MaxCommentBody is GitHub's limit on a comment's body, in characters.
const MaxCommentBody = 65536

type issueComment struct {
	id                   int64
	body                 string
	createdAt, updatedAt time.Time
}

func (c *issueComment) json() map[string]any {
	return map[string]any{"id": c.id, "body": c.body, "created_at": timestamp(c.createdAt), "updated_at": timestamp(c.updatedAt)}
}

func issueKey(r *http.Request) string {
	return strings.ToLower(r.PathValue("owner")+"/"+r.PathValue("repo")) + "#" + r.PathValue("number")
}

func commentBody(r *http.Request) (string, *apiError) {
	var in struct {
		Body *string `json:"body"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Body == nil {
		return "", invalid("IssueComment", "body", "missing_field", "body is required", "")
	}
	if utf8.RuneCountInString(*in.Body) > MaxCommentBody {
		return "", invalid("IssueComment", "body", "custom", fmt.Sprintf("Body is too long (maximum is %d characters)", MaxCommentBody), "")
	}
	return *in.Body, nil
}

func (s *Server) commentRoutes(mux *http.ServeMux) {
	s.list(mux, "GET /repos/{owner}/{repo}/issues/{number}/comments", func(r *http.Request) ([]any, func(int, []any) any, int, int, *apiError) {
		if _, e := s.repository(r); e != nil {
			return nil, nil, 0, 0, e
		}
		var items []any
		for _, c := range s.comments[issueKey(r)] {
			items = append(items, c.json())
		}
		return items, func(_ int, page []any) any { return nonNil(page) }, 30, 100, nil
	})
	s.handle(mux, "POST /repos/{owner}/{repo}/issues/{number}/comments", func(r *http.Request, now time.Time) (int, any, *apiError) {
		if _, e := s.repository(r); e != nil {
			return 0, nil, e
		}
		body, e := commentBody(r)
		if e != nil {
			return 0, nil, e
		}
		if s.comments == nil {
			s.comments = map[string][]*issueComment{}
		}
		c := &issueComment{id: s.newID(), body: body, createdAt: now, updatedAt: now}
		s.comments[issueKey(r)] = append(s.comments[issueKey(r)], c)
		return http.StatusCreated, c.json(), nil
	})
	s.handle(mux, "PATCH /repos/{owner}/{repo}/issues/comments/{id}", func(r *http.Request, now time.Time) (int, any, *apiError) {
		repo, e := s.repository(r)
		if e != nil {
			return 0, nil, e
		}
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		prefix := strings.ToLower(repo.owner+"/"+repo.name) + "#"
		for key, list := range s.comments {
			if !strings.HasPrefix(key, prefix) {
				continue
			}
			for _, c := range list {
				if c.id == id {
					body, e := commentBody(r)
					if e != nil {
						return 0, nil, e
					}
					c.body, c.updatedAt = body, now
					return http.StatusOK, c.json(), nil
				}
			}
		}
		return 0, nil, notFound()
	})
}

// Comments returns the bodies of the comments on issue or pull request
// number of owner/repo, oldest first.
func (s *Server) Comments(owner, repo string, number int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.comments[strings.ToLower(owner+"/"+repo)+"#"+strconv.Itoa(number)] {
		out = append(out, c.body)
	}
	return out
}
