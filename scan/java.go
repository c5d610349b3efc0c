package scan

import (
	"archive/zip"
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strings"
)

const (
	// maxJarRead bounds what is read of one archive: its central directory and
	// the pom.properties entries, never the classes.
	maxJarRead = 32 << 20
	// maxPomProperties bounds one pom.properties (they are a few lines).
	maxPomProperties = 64 << 10
)

var (
	// aws-java-sdk-core-1.11.500.jar, aws-java-sdk-bundle-1.11.500.jar and the
	// all-in-one aws-java-sdk-1.11.500.jar. The versions of the 1.x artifacts
	// move in lockstep, so each tells the core's version.
	reJavaV1Jar = regexp.MustCompile(`^aws-java-sdk(-core|-bundle)?-(\d[0-9A-Za-z._-]*)\.jar$`)
	// sdk-core-2.10.0.jar, auth-2.10.0.jar, bundle-2.10.0.jar: names too
	// generic to trust without a Maven or Gradle cache path, or the jar's own
	// pom.properties, saying software.amazon.awssdk.
	reJavaV2Jar = regexp.MustCompile(`^(sdk-core|auth|bundle)-(2\.[0-9A-Za-z._-]*)\.jar$`)
)

// javaV1VersionInfo is where aws-java-sdk-core keeps its version (VersionInfoUtils).
const javaV1VersionInfo = "com/amazonaws/sdk/versionInfo.properties"

// javaArtifacts maps Maven groupId/artifactId to products.
var javaArtifacts = map[string]product{
	"com.amazonaws/aws-java-sdk-core":   prodJavaV1,
	"com.amazonaws/aws-java-sdk-bundle": prodJavaV1Bundle,
	"software.amazon.awssdk/sdk-core":   prodJavaV2,
	"software.amazon.awssdk/auth":       prodJavaV2,
	"software.amazon.awssdk/bundle":     prodJavaV2,
}

// javaFromFileName recognises an SDK jar by its file name alone.
func javaFromFileName(name string) (product, string, bool) {
	base := path.Base(name)
	if m := reJavaV1Jar.FindStringSubmatch(base); m != nil {
		if m[1] == "-bundle" {
			return prodJavaV1Bundle, m[2], true
		}
		return prodJavaV1, m[2], true
	}
	if m := reJavaV2Jar.FindStringSubmatch(base); m != nil &&
		(strings.Contains(name, "software/amazon/awssdk/") || strings.Contains(name, "software.amazon.awssdk/")) {
		return prodJavaV2, m[2], true
	}
	return product{}, "", false
}

// checkJar reports an old Java SDK in a jar, war or ear: from the file name
// when it carries the version, otherwise from the archive's directory: the
// pom.properties Maven writes into every jar it builds (also kept in shaded
// jars), and jars nested in a Spring Boot or web application archive.
func checkJar(w *walker, name string, info fs.FileInfo) {
	if p, v, ok := javaFromFileName(name); ok {
		if f, ok := checkVersion(p, displayPath(name), v, "file name"); ok {
			w.add(f)
		}
		return
	}
	mf, ok := w.open(name, maxJarRead)
	if !ok {
		return
	}
	defer mf.Close()
	zr, err := zip.NewReader(mf, info.Size())
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		w.failedArchive(mf, err)
		return
	}
	seen := map[string]bool{}
	report := func(p product, version, evidence string) {
		if f, ok := checkVersion(p, displayPath(name), version, evidence); ok && !seen[p.sdk.ID+" "+f.Version] {
			seen[p.sdk.ID+" "+f.Version] = true
			w.add(f)
		}
	}
	for _, zf := range zr.File {
		p, isPom := pomArtifact(zf.Name)
		// Shaded jars often drop Maven's pom.properties but keep
		// versionInfo.properties, which the SDK reads for its User-Agent.
		isVersionInfo := zf.Name == javaV1VersionInfo
		if !isPom && !isVersionInfo {
			if p, v, ok := nestedJar(zf.Name); ok {
				report(p, v, "nested "+zf.Name)
			}
			continue
		}
		data, err := readZipEntry(zf, maxPomProperties)
		if err != nil {
			w.failedArchive(mf, err)
			if mf.limitErr != nil {
				return
			}
			continue
		}
		group, artifact, version := parsePomProperties(data)
		switch {
		case version == "":
		case isVersionInfo:
			report(prodJavaV1, version, zf.Name)
		case group == "" || artifact == "" || javaArtifacts[group+"/"+artifact].pkg == p.pkg:
			report(p, version, zf.Name)
		}
	}
}

// pomArtifact recognises META-INF/maven/<groupId>/<artifactId>/pom.properties
// of an SDK artifact.
func pomArtifact(entry string) (product, bool) {
	rest, ok := strings.CutPrefix(entry, "META-INF/maven/")
	if !ok {
		return product{}, false
	}
	ga, ok := strings.CutSuffix(rest, "/pom.properties")
	if !ok {
		return product{}, false
	}
	p, ok := javaArtifacts[ga]
	return p, ok
}

// nestedJar recognises an SDK jar inside an application archive
// (BOOT-INF/lib/, WEB-INF/lib/, lib/). A nested sdk-core-2.x.jar is taken as
// the AWS one: nothing else of that name ships in version 2.
func nestedJar(entry string) (product, string, bool) {
	if !strings.HasSuffix(entry, ".jar") || !strings.Contains(entry, "lib/") {
		return product{}, "", false
	}
	base := path.Base(entry)
	if m := reJavaV1Jar.FindStringSubmatch(base); m != nil {
		if m[1] == "-bundle" {
			return prodJavaV1Bundle, m[2], true
		}
		return prodJavaV1, m[2], true
	}
	if m := reJavaV2Jar.FindStringSubmatch(base); m != nil && m[1] == "sdk-core" {
		return prodJavaV2, m[2], true
	}
	return product{}, "", false
}

func readZipEntry(zf *zip.File, limit int64) ([]byte, error) {
	if zf.UncompressedSize64 > uint64(limit) {
		return nil, errTooLarge
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errTooLarge
	}
	return data, nil
}

// failedArchive accounts for an archive that could not be read: a limit
// (recorded by the metered file, since archive/zip may wrap the error), or a
// malformed archive, counted as unreadable.
func (w *walker) failedArchive(mf *meteredFile, err error) {
	if mf.limitErr != nil {
		w.failed(mf.limitErr)
		return
	}
	if errors.Is(err, errTooLarge) {
		w.skipped()
		return
	}
	w.unreadable()
}

// parsePomProperties reads groupId, artifactId and version from a Java
// properties file as Maven writes it (key=value lines, # comments).
func parsePomProperties(data []byte) (group, artifact, version string) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 1024), maxPomProperties)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		i := strings.IndexAny(line, "=: \t")
		if i < 0 {
			continue
		}
		key := line[:i]
		value := strings.TrimSpace(line[i+1:])
		value = strings.TrimSpace(strings.TrimLeft(value, "=:"))
		switch key {
		case "groupId":
			group = value
		case "artifactId":
			artifact = value
		case "version":
			version = value
		}
	}
	return group, artifact, version
}
