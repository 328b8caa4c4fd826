package app

import (
	"os"
	"path/filepath"
)

// readFileUp reads name from the nearest directory at or above this one.
func readFileUp(name string) (string, error) {
	dir, _ := os.Getwd()
	for {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			return string(b), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", err
		}
		dir = parent
	}
}
