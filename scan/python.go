package scan

import (
	"bufio"
	"bytes"
	"io/fs"
	"path"
	"regexp"
	"strings"

	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

// maxMetadataHead is how much of a METADATA or PKG-INFO file is read: the
// headers come first, the (possibly long) description after them.
const maxMetadataHead = 64 << 10

// pythonProducts maps normalized distribution names (PEP 503) to products.
var pythonProducts = map[string]product{
	"botocore":   prodBotocore,
	"boto3":      prodBoto3,
	"awscli":     prodAWSCLIv1,
	"cloud-init": prodCloudInit,
}

// pythonProduct refines p by the version found: the awscli distribution is
// the AWS CLI v2 from major version 2 on (Debian 12 packages awscli 2.9.19
// as a Python distribution).
func pythonProduct(p product, version string) product {
	if p.pkg != prodAWSCLIv1.pkg {
		return p
	}
	if v, err := imdsfacts.ParseVersion(version); err == nil {
		if major, ok := v.Major(); ok && major >= 2 {
			return prodAWSCLIv2
		}
	}
	return p
}

// normalizePythonName applies PEP 503: lower case, runs of -_. become "-".
func normalizePythonName(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	sep := false
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '-' || c == '_' || c == '.' {
			sep = true
			continue
		}
		if sep && b.Len() > 0 {
			b.WriteByte('-')
		}
		sep = false
		b.WriteByte(s[i])
	}
	return b.String()
}

// splitDistDir splits "botocore-1.12.0.dist-info" or
// "botocore-1.12.0-py3.7.egg-info" into its product and the version in the
// name ("" when the name has none, as in "botocore.egg-info"). ok is false
// for distributions this scan does not look at.
func splitDistDir(base string) (p product, nameVersion string, ok bool) {
	stem := base
	for _, ext := range []string{".dist-info", ".egg-info", ".egg"} {
		if strings.HasSuffix(strings.ToLower(stem), ext) {
			stem = stem[:len(stem)-len(ext)]
			break
		}
	}
	name, rest, _ := strings.Cut(stem, "-")
	p, ok = pythonProducts[normalizePythonName(name)]
	if !ok {
		return product{}, "", false
	}
	nameVersion, _, _ = strings.Cut(rest, "-") // drop "-py3.7"
	return p, nameVersion, true
}

// parsePythonMetadata reads the Name and Version headers of a METADATA or
// PKG-INFO file (RFC 822 style; the headers end at the first empty line).
func parsePythonMetadata(data []byte) (name, version string) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxMetadataHead)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // continuation of a previous header
		}
		key, value, found := strings.Cut(line, ":")
		if !found {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "name":
			if name == "" {
				name = strings.TrimSpace(value)
			}
		case "version":
			if version == "" {
				version = strings.TrimSpace(value)
			}
		}
	}
	return name, version
}

// checkMetadataDir handles a directory that holds one Python distribution's
// metadata (*.dist-info, *.egg-info, an .egg's EGG-INFO): it reports whether
// name was such a directory, in which case the walk does not enter it (it
// holds nothing else of interest).
func (w *walker) checkMetadataDir(name string) bool {
	base := path.Base(name)
	lower := strings.ToLower(base)
	var metaFile string
	distDir := base
	switch {
	case strings.HasSuffix(lower, ".dist-info"):
		metaFile = "METADATA"
	case strings.HasSuffix(lower, ".egg-info"):
		metaFile = "PKG-INFO"
	case base == "EGG-INFO":
		metaFile = "PKG-INFO"
		distDir = path.Base(parentName(name)) // botocore-1.12.0-py2.7.egg
	default:
		return false
	}
	p, nameVersion, ok := splitDistDir(distDir)
	if !ok {
		return true
	}
	w.checkPythonMetadata(p, name, path.Join(name, metaFile), nameVersion)
	return true
}

// checkEggInfoFile handles a distutils "*.egg-info" file, which is itself a
// PKG-INFO.
func checkEggInfoFile(w *walker, name string, info fs.FileInfo) {
	p, nameVersion, ok := splitDistDir(path.Base(name))
	if ok {
		w.checkPythonMetadataFile(p, name, name, nameVersion, info.Size())
	}
}

func (w *walker) checkPythonMetadata(p product, distPath, metaPath, nameVersion string) {
	info, err := w.src.stat(metaPath)
	if err != nil {
		w.failed(err)
		w.pythonFromName(p, distPath, nameVersion)
		return
	}
	if !w.countFile() {
		return
	}
	w.checkPythonMetadataFile(p, distPath, metaPath, nameVersion, info.Size())
}

func (w *walker) checkPythonMetadataFile(p product, distPath, metaPath, nameVersion string, size int64) {
	data, ok := w.readHead(metaPath, size, maxMetadataHead)
	if !ok {
		w.pythonFromName(p, distPath, nameVersion)
		return
	}
	name, version := parsePythonMetadata(data)
	if name != "" {
		if q, ok := pythonProducts[normalizePythonName(name)]; !ok || q.pkg != p.pkg {
			return // the directory name said botocore, the metadata says otherwise
		}
	}
	if version == "" {
		w.pythonFromName(p, distPath, nameVersion)
		return
	}
	w.addPython(pythonProduct(p, version), distPath, version, path.Base(metaPath)+" Version")
}

// pythonFromName falls back to the version in the directory name when the
// metadata file cannot be read.
func (w *walker) pythonFromName(p product, distPath, nameVersion string) {
	if nameVersion == "" {
		return
	}
	w.addPython(pythonProduct(p, nameVersion), distPath, nameVersion, "directory name (metadata unreadable)")
}

// maxCloudInitVersion bounds the read of cloudinit/version.py (1 KiB in 22.4.2).
const maxCloudInitVersion = 64 << 10

var (
	reCloudInitVersion  = regexp.MustCompile(`(?m)^__VERSION__\s*=\s*["']([0-9A-Za-z._+-]{1,40})["']`)
	reCloudInitPackaged = regexp.MustCompile(`(?m)^_PACKAGED_VERSION\s*=\s*["']([0-9A-Za-z._+~:-]{1,60})["']`)
)

// parseCloudInitVersion reads cloud-init's upstream version (__VERSION__) and
// the distribution's (_PACKAGED_VERSION, "" while it is the "@@" template)
// from cloudinit/version.py.
func parseCloudInitVersion(data []byte) (version, packaged string) {
	if m := reCloudInitVersion.FindSubmatch(data); m != nil {
		version = string(m[1])
	}
	if m := reCloudInitPackaged.FindSubmatch(data); m != nil {
		packaged = string(m[1])
	}
	return version, packaged
}

// checkCloudInitVersion judges cloud-init by the version file of its Python
// package, for installs without a cloud_init-*.egg-info or .dist-info beside
// it (where there is one, its finding comes first and this one is dropped as
// the same software: see walker.add).
func checkCloudInitVersion(w *walker, name string, info fs.FileInfo) {
	data, ok := w.readHead(name, info.Size(), maxCloudInitVersion)
	if !ok {
		return
	}
	version, packaged := parseCloudInitVersion(data)
	evidence := "cloudinit/version.py __VERSION__"
	if packaged != "" {
		evidence += " (packaged as " + packaged + ")"
	}
	w.addPython(prodCloudInit, parentName(name), version, evidence)
}

// addPython judges the Python distribution (or package directory) at name,
// in a site-packages or dist-packages directory, and records the finding.
func (w *walker) addPython(p product, name, version, evidence string) {
	f, ok := checkVersion(p, displayPath(name), version, evidence)
	if !ok {
		return
	}
	if f.Kind == KindOldSDK && p.sdk == prodCloudInit.sdk && w.cloudInitAsksForTokens(parentName(name)) {
		// A distribution backported IMDSv2 to an older cloud-init (as
		// Amazon Linux 2 is said to have done to 19.3; unverified here): its
		// code decides, not the version.
		p.canUse(&f)
		f.Evidence += "; its DataSourceEc2.py asks for a token, a backport to this release"
	}
	w.add(f)
}

// maxDataSourceEc2 bounds the read of cloud-init's Ec2 data source (35 KiB
// in 22.4.2).
const maxDataSourceEc2 = 256 << 10

// cloudInitAsksForTokens reports whether the cloud-init package in the
// directory sitePackages has the token request of IMDSv2 in its Ec2 data
// source (API_TOKEN_ROUTE = "latest/api/token" since 19.4).
func (w *walker) cloudInitAsksForTokens(sitePackages string) bool {
	name := path.Join(sitePackages, "cloudinit/sources/DataSourceEc2.py")
	info, err := w.src.stat(name)
	if err != nil || !info.Mode().IsRegular() || info.Size() > maxDataSourceEc2 {
		return false
	}
	data, ok := w.readHead(name, info.Size(), maxDataSourceEc2)
	return ok && bytes.Contains(data, []byte("latest/api/token"))
}
