// Package lambdazip writes Lambda deployment zips reproducibly: entries in
// the given order, a fixed modification time, fixed Unix modes (0755 for
// executables, 0644 otherwise) and no extra fields, so the same inputs always
// give the same bytes. The standard zip tools stamp the files' mtimes and
// the builder's uid/gid; archive/zip with a fixed header does not.
package lambdazip

import (
	"archive/zip"
	"compress/flate"
	"fmt"
	"io"
	"io/fs"
	"time"
)

// ModTime is the modification time of every entry: 1980-01-01, the earliest
// time the zip format's MS-DOS fields can hold (what many reproducible-build
// tools use).
var ModTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// File is one entry of the zip.
type File struct {
	Name       string
	Data       []byte
	Executable bool // mode 0755 (bootstrap must be executable)
}

// Write writes files as a zip to w, deflate-compressed at the best level.
func Write(w io.Writer, files []File) error {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, flate.BestCompression)
	})
	for _, f := range files {
		h := &zip.FileHeader{Name: f.Name, Method: zip.Deflate}
		// Set only the MS-DOS fields: Modified would add an extended
		// timestamp field in local time semantics; ModifiedTime/Date
		// are plain numbers.
		h.ModifiedDate = uint16((ModTime.Year()-1980)<<9 | int(ModTime.Month())<<5 | ModTime.Day())
		h.ModifiedTime = 0
		mode := fs.FileMode(0o644)
		if f.Executable {
			mode = 0o755
		}
		h.SetMode(mode)
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return fmt.Errorf("zip %s: %w", f.Name, err)
		}
		if _, err := fw.Write(f.Data); err != nil {
			return fmt.Errorf("zip %s: %w", f.Name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("close zip: %w", err)
	}
	return nil
}
