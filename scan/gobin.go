package scan

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"io/fs"
	"runtime/debug"
)

const (
	// minGoBinary: executables smaller than this are scripts or tiny tools;
	// the smallest Go program is over a megabyte.
	minGoBinary = 256 << 10
	// maxGoBinaryRead bounds what is read of one executable: its headers and
	// the build information blob, or, for a non-ELF executable, the data
	// segment debug/buildinfo searches.
	maxGoBinaryRead = 16 << 20
)

// goModules maps module paths to products.
var goModules = map[string]product{
	"github.com/aws/aws-sdk-go":    prodGoV1,
	"github.com/aws/aws-sdk-go-v2": prodGoV2,
}

// checkGoBinary reads the module list the Go linker embeds in every binary
// built in module mode (what `go version -m` prints) and reports old AWS SDK
// modules. Binaries built without modules carry no list and are not judged.
func checkGoBinary(w *walker, name string, _ fs.FileInfo) {
	mf, ok := w.open(name, maxGoBinaryRead)
	if !ok {
		return
	}
	defer mf.Close()
	var magic [4]byte
	if n, _ := mf.ReadAt(magic[:], 0); n < len(magic) {
		if mf.limitErr != nil {
			w.failed(mf.limitErr)
		}
		return
	}
	switch {
	case bytes.Equal(magic[:], []byte("\x7fELF")):
		// Go's linker always writes a .go.buildinfo section into ELF files;
		// without one this is a C program or library, and there is no need
		// to let debug/buildinfo search its data segment.
		ef, err := elf.NewFile(mf)
		if err != nil {
			if mf.limitErr != nil {
				w.failed(mf.limitErr)
			}
			return
		}
		if ef.Section(".go.buildinfo") == nil {
			return
		}
	case bytes.HasPrefix(magic[:], []byte("MZ")), isMachO(magic):
	default:
		return // a script or data
	}
	bi, err := buildinfo.Read(mf)
	if err != nil {
		if mf.limitErr != nil {
			w.failed(mf.limitErr)
		}
		return // not a Go binary, or one without module information
	}
	for _, f := range goModuleFindings(displayPath(name), bi) {
		w.add(f)
	}
}

// goModuleFindings judges the AWS SDK modules in a binary's module list.
// A replaced module is judged by its replacement's version; one replaced by
// a local directory has none and is not judged.
func goModuleFindings(path string, bi *buildinfo.BuildInfo) []Finding {
	var out []Finding
	for _, m := range append([]*debug.Module{&bi.Main}, bi.Deps...) {
		if m == nil {
			continue
		}
		p, ok := goModules[m.Path]
		if !ok {
			continue
		}
		version := m.Version
		if m.Replace != nil {
			if m.Replace.Version == "" {
				continue
			}
			version = m.Replace.Version
		}
		evidence := fmt.Sprintf("Go module list of %s, built with %s", bi.Path, bi.GoVersion)
		if f, ok := checkVersion(p, path, version, evidence); ok {
			out = append(out, f)
		}
	}
	return out
}

func isMachO(m [4]byte) bool {
	switch string(m[:]) {
	case "\xfe\xed\xfa\xce", "\xfe\xed\xfa\xcf", "\xce\xfa\xed\xfe", "\xcf\xfa\xed\xfe", "\xca\xfe\xba\xbe":
		return true
	}
	return false
}
