package input

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	testDryRun      = &Input{Name: "dry-run", Default: "false", Bool: true, Description: "Change nothing."}
	testLockTimeout = &Input{Name: "lock-timeout", Default: "1m", Description: "Wait."}
	testToken       = &Input{Name: "token", Secret: true, Env: "SYNC_TOKEN", Description: "Token."}
)

func testTable() *Table {
	return NewTable([]ModeDecl{
		{Name: "migrate", Inputs: []*Input{testDryRun, testLockTimeout}, Outputs: []Output{{Name: "pending", Description: "Pending."}}},
		{Name: "sync", Inputs: []*Input{testDryRun, testToken}},
	})
}

func TestTableMergesInputsDeclaredByTwoModes(t *testing.T) {
	tb := testTable()
	in, ok := tb.Lookup("dry-run")
	if !ok || strings.Join(in.Modes, ",") != "migrate,sync" {
		t.Fatalf("dry-run = %+v, want one entry for both modes", in)
	}
	if c, _ := tb.Lookup("concurrency"); c.Modes != nil || !c.UsedBy("sync") {
		t.Errorf("a shared input is every mode's: %+v", c)
	}
	if m, _ := tb.Lookup("mode"); !strings.HasSuffix(m.Description, "migrate, sync.") {
		t.Errorf("the mode input lists the modes: %q", m.Description)
	}
	defer func() {
		if recover() == nil {
			t.Error("two different declarations of one input must panic")
		}
	}()
	NewTable([]ModeDecl{
		{Name: "a", Inputs: []*Input{{Name: "x", Default: "1"}}},
		{Name: "b", Inputs: []*Input{{Name: "x", Default: "2"}}},
	})
}

func TestParseArgs(t *testing.T) {
	tb := testTable()
	cases := []struct {
		args []string
		want map[string]string
		err  string
	}{
		{[]string{"migrate", "--concurrency=5", "--lock-timeout", "2m"}, map[string]string{"mode": "migrate", "concurrency": "5", "lock-timeout": "2m"}, ""},
		{[]string{"migrate", "--dry-run"}, map[string]string{"mode": "migrate", "dry-run": "true"}, ""},
		{[]string{"migrate", "--dry-run=false", "--concurrency", "3"}, map[string]string{"mode": "migrate", "dry-run": "false", "concurrency": "3"}, ""},
		{[]string{"--mode=sync", "-token", "t"}, map[string]string{"mode": "sync", "token": "t"}, ""},
		{[]string{"migrate", "--bogus=1"}, nil, "flag provided but not defined: -bogus"},
		{[]string{"migrate", "--concurrency"}, nil, "flag needs an argument"},
		{[]string{"migrate", "--concurrency", "3", "secret-word"}, nil, "unexpected argument after the flags"},
		{[]string{"migrate", "--token", "t"}, nil, "flag --token is not used by mode migrate (it is for sync)"},
	}
	for _, c := range cases {
		got, err := tb.ParseArgs(c.args)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseArgs(%q) err = %v, want %q", c.args, err, c.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret-word") {
				t.Errorf("ParseArgs(%q) quotes a stray argument (it may be part of a secret): %v", c.args, err)
			}
			continue
		}
		if err != nil || len(got) != len(c.want) {
			t.Errorf("ParseArgs(%q) = %v, %v; want %v", c.args, got, err, c.want)
			continue
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("ParseArgs(%q)[%s] = %q, want %q", c.args, k, got[k], v)
			}
		}
	}
	if _, err := tb.ParseArgs([]string{"migrate", "--help"}); !errors.Is(err, ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}

func TestHelpListsAModesInputsWithDefaults(t *testing.T) {
	h := testTable().Help("migrate", map[string]string{"migrate": "Apply migrations."})
	for _, want := range []string{"--lock-timeout (default 1m)", "--dry-run (default false)", "--concurrency (default 10)", "Apply migrations.", "pending"} {
		if !strings.Contains(h, want) {
			t.Errorf("help lacks %q:\n%s", want, h)
		}
	}
	if strings.Contains(h, "--token") {
		t.Errorf("migrate's help lists sync's input")
	}
	if strings.Contains(h, "report merge") {
		t.Errorf("one mode's help lists the report command")
	}
	if all := testTable().Help("", nil); !strings.Contains(all, "report merge") {
		t.Errorf("the top-level help lacks the report command:\n%s", all)
	}
}

func TestValues(t *testing.T) {
	tb := testTable()
	raw := map[string]string{"concurrency": " 7 ", "tenant-timeout": "soon", "dry-run": "maybe", "max-failures": "-1"}
	v := NewValues(tb, func(name string) string { return raw[name] })
	if v.Int(Concurrency, 1, 1000, "tenants") != 7 || v.Duration(testLockTimeout) != time.Minute || v.String(NeonAPIURL) != "https://console.neon.tech/api/v2" {
		t.Error("values or defaults wrong")
	}
	v.Duration(TenantTimeout)
	v.Bool(testDryRun)
	v.Int(MaxFailures, 0, 10, "failures")
	var names []string
	for _, e := range Split(v.Err()) {
		var ie *Error
		if !errors.As(e, &ie) {
			t.Fatalf("%v is not an *Error", e)
		}
		names = append(names, ie.Input)
	}
	if strings.Join(names, ",") != "tenant-timeout,dry-run,max-failures" {
		t.Errorf("problems named %v", names)
	}
}

// An input no mode declared is a bug: reading it panics at once, in any
// test that reads it, rather than quietly giving "".
func TestReadingAnUndeclaredInputPanics(t *testing.T) {
	v := NewValues(testTable(), func(string) string { return "" })
	defer func() {
		if recover() == nil {
			t.Error("reading an input outside the table must panic")
		}
	}()
	v.String(&Input{Name: "not-declared"})
}
