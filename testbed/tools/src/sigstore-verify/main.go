// sigstore-verify: checks, as cosign does with a key (`cosign verify --key K
// --insecure-ignore-tlog` and `cosign verify-attestation --key K --insecure-ignore-tlog
// --type T`), the signatures pipelinelib writes into a registry — with sigstore's own
// verifier library (github.com/sigstore/sigstore, the version cosign v2.6.5 uses) and its
// DSSE envelope verifier (go-securesystemslib), so the layout is proven by sigstore's code
// rather than by ours. A cold build of cosign itself takes longer than CI allows
// (docs/security.md). Registry access: anonymous, plain HTTP, loopback testbed registries.
//
//	sigstore-verify image       --key attestation.pub HOST:PORT/REPO@sha256:HEX
//	sigstore-verify attestation --key attestation.pub --type PREDICATE_TYPE HOST:PORT/REPO@sha256:HEX
//
// Prints one JSON line per verified signature or attestation (the decoded payload) and exits
// 0; exits 1 naming what failed (no signature, a bad signature, a subject or digest that is
// not the image's); 2 on bad usage.
package main

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
)

const (
	ociManifest      = "application/vnd.oci.image.manifest.v1+json"
	dockerManifest   = "application/vnd.docker.distribution.manifest.v2+json"
	simpleSigning    = "application/vnd.dev.cosign.simplesigning.v1+json"
	dsseLayer        = "application/vnd.dsse.envelope.v1+json"
	inTotoType       = "application/vnd.in-toto+json"
	signatureAnno    = "dev.cosignproject.cosign/signature"
	cosignImageClaim = "cosign container image signature"
)

type layer struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Annotations map[string]string `json:"annotations"`
}

type manifest struct {
	Layers []layer `json:"layers"`
}

var client = &http.Client{Timeout: 30 * time.Second}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "sigstore-verify: "+format+"\n", args...)
	os.Exit(code)
}

func get(url, accept string) ([]byte, int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return body, resp.StatusCode, err
}

// splitRef: HOST:PORT/REPO@sha256:HEX -> host, repo, digest.
func splitRef(ref string) (string, string, string) {
	at := strings.LastIndex(ref, "@")
	slash := strings.Index(ref, "/")
	if at < 0 || slash < 0 || slash > at || !strings.HasPrefix(ref[at+1:], "sha256:") ||
		len(ref[at+1:]) != len("sha256:")+64 {
		fail(2, "want HOST:PORT/REPOSITORY@sha256:<64 hex>, got %q", ref)
	}
	return ref[:slash], ref[slash+1 : at], ref[at+1:]
}

// tagManifest: the manifest under the cosign tag sha256-<hex>.<suffix>.
func tagManifest(host, repo, digest, suffix string) manifest {
	tag := strings.Replace(digest, ":", "-", 1) + "." + suffix
	body, status, err := get(fmt.Sprintf("http://%s/v2/%s/manifests/%s", host, repo, tag),
		ociManifest+", "+dockerManifest)
	if err != nil {
		fail(1, "%s/%s:%s: %v", host, repo, tag, err)
	}
	if status == http.StatusNotFound {
		fail(1, "no signatures found: %s/%s:%s does not exist", host, repo, tag)
	}
	if status != http.StatusOK {
		fail(1, "%s/%s:%s: HTTP %d", host, repo, tag, status)
	}
	var m manifest
	if err := json.Unmarshal(body, &m); err != nil {
		fail(1, "%s/%s:%s is not an OCI manifest: %v", host, repo, tag, err)
	}
	return m
}

func blob(host, repo, digest string) []byte {
	body, status, err := get(fmt.Sprintf("http://%s/v2/%s/blobs/%s", host, repo, digest), "")
	if err != nil || status != http.StatusOK {
		fail(1, "blob %s of %s: HTTP %d %v", digest, repo, status, err)
	}
	return body
}

func verifier(keyPath string) signature.Verifier {
	pem, err := os.ReadFile(keyPath)
	if err != nil {
		fail(2, "--key: %v", err)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pem)
	if err != nil {
		fail(2, "--key %s: %v", keyPath, err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		fail(2, "--key %s: %v", keyPath, err)
	}
	return v
}

// verifyImage: cosign's simple-signing check (verifyOCISignature + SimpleClaimVerifier).
func verifyImage(v signature.Verifier, host, repo, digest string) {
	m := tagManifest(host, repo, digest, "sig")
	verified := 0
	for _, l := range m.Layers {
		if l.MediaType != simpleSigning {
			continue
		}
		payload := blob(host, repo, l.Digest)
		sig, err := base64.StdEncoding.DecodeString(l.Annotations[signatureAnno])
		if err != nil || len(sig) == 0 {
			fmt.Fprintf(os.Stderr, "sigstore-verify: layer %s: no %s annotation\n", l.Digest, signatureAnno)
			continue
		}
		if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(payload)); err != nil {
			fmt.Fprintf(os.Stderr, "sigstore-verify: layer %s: %v\n", l.Digest, err)
			continue
		}
		var claim struct {
			Critical struct {
				Image struct {
					Digest string `json:"docker-manifest-digest"`
				} `json:"image"`
				Type string `json:"type"`
			} `json:"critical"`
		}
		if err := json.Unmarshal(payload, &claim); err != nil || claim.Critical.Image.Digest != digest ||
			claim.Critical.Type != cosignImageClaim {
			fmt.Fprintf(os.Stderr, "sigstore-verify: layer %s: signed payload is not a claim for %s\n", l.Digest, digest)
			continue
		}
		fmt.Println(string(payload))
		verified++
	}
	if verified == 0 {
		fail(1, "no matching signatures: none of %d layer(s) verifies with the key", len(m.Layers))
	}
}

// verifyAttestation: cosign's verifyOCIAttestation (DSSE, payloadType in-toto; the adapter
// without a public key, as cosign builds it, so an envelope's keyid is not compared) + the
// in-toto subject claim check, keeping the statements of --type.
func verifyAttestation(v signature.Verifier, host, repo, digest, predicateType string) {
	m := tagManifest(host, repo, digest, "att")
	dv, err := ssldsse.NewEnvelopeVerifier(&sigdsse.VerifierAdapter{SignatureVerifier: v})
	if err != nil {
		fail(2, "%v", err)
	}
	verified := 0
	for _, l := range m.Layers {
		if l.MediaType != dsseLayer {
			continue
		}
		raw := blob(host, repo, l.Digest)
		env := ssldsse.Envelope{}
		if err := json.Unmarshal(raw, &env); err != nil || env.PayloadType != inTotoType {
			fmt.Fprintf(os.Stderr, "sigstore-verify: layer %s: not a DSSE envelope of %s\n", l.Digest, inTotoType)
			continue
		}
		if _, err := dv.Verify(context.Background(), &env); err != nil {
			fmt.Fprintf(os.Stderr, "sigstore-verify: layer %s: %v\n", l.Digest, err)
			continue
		}
		payload, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			continue
		}
		var st struct {
			PredicateType string `json:"predicateType"`
			Subject       []struct {
				Digest map[string]string `json:"digest"`
			} `json:"subject"`
		}
		if err := json.Unmarshal(payload, &st); err != nil {
			continue
		}
		if st.PredicateType != predicateType {
			continue
		}
		ours := false
		for _, s := range st.Subject {
			ours = ours || "sha256:"+s.Digest["sha256"] == digest
		}
		if !ours {
			fmt.Fprintf(os.Stderr, "sigstore-verify: layer %s: subject is not %s\n", l.Digest, digest)
			continue
		}
		fmt.Println(string(payload))
		verified++
	}
	if verified == 0 {
		fail(1, "no matching attestations: none of %d layer(s) of type %s verifies with the key",
			len(m.Layers), predicateType)
	}
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "image" && os.Args[1] != "attestation") {
		fail(2, "usage: sigstore-verify image|attestation --key PUB [--type T] HOST/REPO@DIGEST")
	}
	flags := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	key := flags.String("key", "", "PEM public key (cosign's --key)")
	ptype := flags.String("type", "", "predicate type (cosign verify-attestation --type)")
	_ = flags.Parse(os.Args[2:])
	if *key == "" || flags.NArg() != 1 || (os.Args[1] == "attestation" && *ptype == "") {
		fail(2, "usage: sigstore-verify image|attestation --key PUB [--type T] HOST/REPO@DIGEST")
	}
	host, repo, digest := splitRef(flags.Arg(0))
	v := verifier(*key)
	if os.Args[1] == "image" {
		verifyImage(v, host, repo, digest)
	} else {
		verifyAttestation(v, host, repo, digest, *ptype)
	}
}
