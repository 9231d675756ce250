package imageref

import (
	"fmt"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
)

// WithDefaultTag adds ":latest" to a reference with neither tag nor digest,
// in the form the user wrote it ("nginx" -> "nginx:latest"); others, and
// references that do not parse, come back unchanged. The docker client does
// this to every service image it sends.
func WithDefaultTag(image string) string {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return image
	}
	return reference.FamiliarString(reference.TagNameOnly(named))
}

// Pin adds the digest dgst to image, keeping its tag ("app:v1" ->
// "app:v1@sha256:..."). An image that already has a digest, or does not
// parse, comes back unchanged.
func Pin(image, dgst string) string {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return image
	}
	if _, ok := named.(reference.Canonical); ok {
		return image
	}
	d, err := digest.Parse(dgst)
	if err != nil {
		return image
	}
	pinned, err := reference.WithDigest(named, d)
	if err != nil {
		return image
	}
	return reference.FamiliarString(pinned)
}

// StripDigest is image without its digest ("app:v1@sha256:..." ->
// "app:v1"), as `service ls` and `service ps` show it; a reference with a
// digest and no tag keeps the digest, one that does not parse comes back
// unchanged.
func StripDigest(image string) string {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return image
	}
	tagged, ok := named.(reference.NamedTagged)
	if !ok {
		return image
	}
	t, err := reference.WithTag(reference.TrimNamed(tagged), tagged.Tag())
	if err != nil {
		return image
	}
	return reference.FamiliarString(t)
}

// Warning is docker's stderr text when an image's digest cannot be
// recorded; the tag is kept and each node resolves it on its own.
func Warning(image string) string {
	return fmt.Sprintf("image %s could not be accessed on a registry to record\n"+
		"its digest. Each node will access %s independently,\n"+
		"possibly leading to different nodes running different\n"+
		"versions of the image.\n", image, image)
}
