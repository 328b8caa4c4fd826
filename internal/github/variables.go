package github

import (
	"context"
	"fmt"
	"net/http"
	"time"

	gh "github.com/google/go-github/v66/github"
)

// Variable is one Actions configuration variable. Its value is not secret:
// anyone who can read the repository's settings can read it.
type Variable struct {
	Name      string // as GitHub stores it: upper-cased
	Value     string
	CreatedAt time.Time
	UpdatedAt time.Time
	// Visibility of an organization variable; "" elsewhere.
	Visibility string
}

// variablesPerPage is the largest page GitHub serves for variable lists.
const variablesPerPage = 30

// ListVariables lists the target's variables, every page of them.
func (c *Client) ListVariables(ctx context.Context, t Target) ([]Variable, error) {
	return listItems(ctx, c, op{verb: "list variables of", target: t.String()}, t.Validate(),
		t.variablesPath(), variablesPerPage, func(p *gh.ActionsVariables) []*gh.ActionsVariable { return p.Variables }, variableOf)
}

// GetVariable returns one variable; IsNotFound(err) when there is none.
func (c *Client) GetVariable(ctx context.Context, t Target, name string) (Variable, error) {
	o := op{verb: "get variable", name: name, target: t.String()}
	if err := checkVariableOp(t, name, ""); err != nil {
		return Variable{}, local(o, err)
	}
	var v gh.ActionsVariable
	if _, err := c.do(ctx, o, http.MethodGet, t.variablePath(name), nil, &v); err != nil {
		return Variable{}, err
	}
	return variableOf(&v), nil
}

// CreateVariable creates the variable name; GitHub answers 409 if it
// exists. An organization variable gets the target's visibility.
func (c *Client) CreateVariable(ctx context.Context, t Target, name, value string) error {
	o := op{verb: "create variable", name: name, target: t.String()}
	if err := checkVariableOp(t, name, value); err != nil {
		return local(o, err)
	}
	_, err := c.do(ctx, o, http.MethodPost, t.variablesPath(), variableBody(t, name, value), nil)
	return err
}

// UpdateVariable replaces the value of the variable name; IsNotFound(err)
// when there is none.
func (c *Client) UpdateVariable(ctx context.Context, t Target, name, value string) error {
	o := op{verb: "update variable", name: name, target: t.String()}
	if err := checkVariableOp(t, name, value); err != nil {
		return local(o, err)
	}
	_, err := c.do(ctx, o, http.MethodPatch, t.variablePath(name), variableBody(t, name, value), nil)
	return err
}

// DeleteVariable deletes the variable name; IsNotFound(err) when there was
// none.
func (c *Client) DeleteVariable(ctx context.Context, t Target, name string) error {
	o := op{verb: "delete variable", name: name, target: t.String()}
	if err := checkVariableOp(t, name, ""); err != nil {
		return local(o, err)
	}
	_, err := c.do(ctx, o, http.MethodDelete, t.variablePath(name), nil, nil)
	return err
}

func variableBody(t Target, name, value string) *gh.ActionsVariable {
	v := &gh.ActionsVariable{Name: name, Value: value}
	if t.isOrg() {
		v.Visibility = gh.String(t.Visibility)
		if t.Visibility == VisibilitySelected {
			ids := gh.SelectedRepoIDs(t.SelectedRepositoryIDs)
			v.SelectedRepositoryIDs = &ids
		}
	}
	return v
}

func checkVariableOp(t Target, name, value string) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if err := ValidVariableName(name); err != nil {
		return err
	}
	if len(value) > MaxVariableSize {
		return fmt.Errorf("%w: the value is %d bytes, more than GitHub's %d", ErrTooLarge, len(value), MaxVariableSize)
	}
	return nil
}

func variableOf(v *gh.ActionsVariable) Variable {
	return Variable{Name: v.Name, Value: v.Value, CreatedAt: timeOf(v.CreatedAt), UpdatedAt: timeOf(v.UpdatedAt), Visibility: v.GetVisibility()}
}
