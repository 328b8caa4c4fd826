package migrations

import (
	"fmt"
	"strconv"
	"strings"
)

// VersionCell is a version in a report's table: "none" for no version.
func VersionCell(v string) string {
	if v == "" {
		return "none"
	}
	return v
}

// FilesCell is the number of files, and their names when there are at most 3.
func FilesCell(files []string) string {
	switch {
	case len(files) == 0:
		return "0"
	case len(files) > 3:
		return strconv.Itoa(len(files))
	}
	return fmt.Sprintf("%d: %s", len(files), strings.Join(files, ", "))
}
