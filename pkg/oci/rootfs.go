package oci

import (
	"fmt"
	"io"
)

// readLimited reads all of r, refusing more than max bytes: the file may
// have grown since it was checked.
func readLimited(r io.Reader, name string, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, max)
	}
	return data, nil
}
