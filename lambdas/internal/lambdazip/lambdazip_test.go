package lambdazip_test

import (
	"archive/zip"
	"bytes"
	"io"
	"testing"

	"github.com/clickstream-go/clickstream/lambdas/internal/lambdazip"
)

func TestWrite_SameInputGivesSameBytesWithFixedHeaders(t *testing.T) {
	files := []lambdazip.File{{Name: "bootstrap", Data: bytes.Repeat([]byte("ELF binary "), 1000), Executable: true}, {Name: "README", Data: []byte("hi")}}
	var a, b bytes.Buffer
	if err := lambdazip.Write(&a, files); err != nil {
		t.Fatal(err)
	}
	if err := lambdazip.Write(&b, files); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two writes of the same files differ")
	}
	zr, err := zip.NewReader(bytes.NewReader(a.Bytes()), int64(a.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 2 {
		t.Fatalf("%d entries", len(zr.File))
	}
	for i, f := range zr.File {
		if f.Name != files[i].Name {
			t.Fatalf("entry %d = %s, want %s (order kept)", i, f.Name, files[i].Name)
		}
		want := "-rw-r--r--"
		if files[i].Executable {
			want = "-rwxr-xr-x"
		}
		if f.Mode().String() != want {
			t.Errorf("%s mode %s, want %s", f.Name, f.Mode(), want)
		}
		if !f.Modified.Equal(lambdazip.ModTime) || len(f.Extra) != 0 {
			t.Errorf("%s modified %v extra %x: want the fixed time and no extra fields", f.Name, f.Modified, f.Extra)
		}
		rc, _ := f.Open()
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, files[i].Data) {
			t.Errorf("%s content differs", f.Name)
		}
	}
}
