package imdsfacts

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoCopiesOfTheCommands fails when a Go string literal outside this
// package spells an enforcement command's arguments itself, instead of
// rendering it with MetadataOptions or Enforce. Comments, help prose that
// names a command, and tests are not checked.
func TestNoCopiesOfTheCommands(t *testing.T) {
	root := filepath.Join("..", "..")
	markers := []string{"--http-tokens", "--http-put-response-hop-limit", "--http-endpoint", "--instance-metadata-tags",
		"--http-protocol-ipv6", "EnforceIMDSv2=", "MetadataAccess="}
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			if filepath.Base(path) == "imdsfacts" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			for _, m := range markers {
				if strings.Contains(lit.Value, m) {
					t.Errorf("%s: string literal %s spells %q: render the command with imdsfacts.MetadataOptions or Enforce",
						path, lit.Value, m)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read %d Go files under %s: the walk did not find the module", files, root)
	}
}
