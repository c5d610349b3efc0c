package scan

import (
	"io/fs"
	"path"
	"regexp"
	"strings"
)

// checker examines one file whose name classify found relevant; info comes
// from stat (links followed).
type checker func(w *walker, name string, info fs.FileInfo)

// classify decides by name (and, for executables, by mode and size) whether
// a file is worth reading, and how. It reads nothing.
func classify(name string, info fs.FileInfo) checker {
	base := path.Base(name)
	dir := parentName(name)
	dirBase := path.Base(dir)
	lower := strings.ToLower(base)
	switch {
	case base == "config" && dirBase == ".aws":
		return checkAWSConfig
	case isEnvFile(name, base, dirBase):
		return checkEnvFile
	case strings.HasSuffix(lower, ".jar") || strings.HasSuffix(lower, ".war") || strings.HasSuffix(lower, ".ear"):
		return checkJar
	case base == "package.json" && npmPackageAt(dir) != "":
		return checkNodePackage
	case dirBase == "specifications" && strings.HasPrefix(base, "aws-sdk-core-") && strings.HasSuffix(base, ".gemspec"):
		return checkGemspec
	case strings.HasSuffix(name, "aws/aws-sdk-php/src/Sdk.php"):
		return checkPHPSdk
	case base == "version.py" && dirBase == "cloudinit":
		return checkCloudInitVersion
	case strings.HasSuffix(lower, ".egg-info"):
		if _, _, ok := splitDistDir(base); ok {
			return checkEggInfoFile
		}
	case info.Mode()&0o111 != 0 && info.Size() >= minGoBinary:
		return checkGoBinary
	}
	return nil
}

// checkGemspec reads the version from the name of an installed gem's
// specification, specifications/aws-sdk-core-3.78.0.gemspec. Version 2 of the
// Ruby SDK (aws-sdk-core 2.x) also compares as older than 3.79.0; whether late
// 2.x releases send tokens is unverified, and that line is out of support.
func checkGemspec(w *walker, name string, _ fs.FileInfo) {
	v := strings.TrimSuffix(strings.TrimPrefix(path.Base(name), "aws-sdk-core-"), ".gemspec")
	if f, ok := checkVersion(prodRuby, displayPath(name), v, "gemspec file name"); ok {
		w.add(f)
	}
}

// maxPHPSdk bounds the read of Sdk.php; the VERSION constant is near the top.
const maxPHPSdk = 64 << 10

var rePHPVersion = regexp.MustCompile(`const\s+VERSION\s*=\s*['"]([0-9A-Za-z._-]{1,40})['"]`)

// checkPHPSdk reads the VERSION constant of aws/aws-sdk-php/src/Sdk.php, as
// installed by Composer under vendor/.
func checkPHPSdk(w *walker, name string, info fs.FileInfo) {
	data, ok := w.readHead(name, info.Size(), maxPHPSdk)
	if !ok {
		return
	}
	m := rePHPVersion.FindSubmatch(data)
	if m == nil {
		return
	}
	if f, ok := checkVersion(prodPHP, displayPath(name), string(m[1]), "Sdk::VERSION"); ok {
		w.add(f)
	}
}
