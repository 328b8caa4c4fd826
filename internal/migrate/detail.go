package migrate

// Detail is what migrate reports about one tenant beyond its status.
type Detail struct {
	From    string   `json:"from_version"`          // highest applied version before the run ("" = none)
	To      string   `json:"to_version"`            // highest applied version after the run
	Applied []string `json:"applied,omitempty"`     // files applied by this run, in order
	Pending []string `json:"pending,omitempty"`     // files still pending (dry run, or left by a failure)
	DryRun  bool     `json:"dry_run,omitempty"`     // nothing was changed
	Failed  string   `json:"failed_file,omitempty"` // the file whose migration failed
	Log     string   `json:"-"`                     // dbmate's own log lines for this tenant
}
