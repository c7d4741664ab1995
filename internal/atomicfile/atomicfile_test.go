package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for _, content := range []string{"first", "second, longer"} {
		if err := Write(path, []byte(content), "state.json.tmp*"); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != content {
			t.Fatalf("read back %q, %v; want %q", b, err, content)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("%d files in the folder: a temporary file was left", len(entries))
	}
	// A folder that is not there: an error, and nothing left behind.
	if err := Write(filepath.Join(dir, "missing", "x"), []byte("x"), "x.tmp*"); err == nil {
		t.Fatal("writing into a missing folder succeeded")
	}
}
