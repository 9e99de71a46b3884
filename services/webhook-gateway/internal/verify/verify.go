// Package verify decides whether a webhook delivery comes from BigCommerce.
//
// Two mechanisms exist because BigCommerce documents both and it is not
// settled which hooks are signed (see docs/bigcommerce.md): a Standard
// Webhooks signature keyed with the app's client secret, and a shared secret
// in a custom header. A delivery must carry at least one configured
// credential, and every one it carries must be right: a store's hooks made
// by an app are signed, those made with a store API account may carry only
// the header. Configuring none is possible only when explicitly insecure,
// for development.
//
// The package does no I/O: it looks at headers and the raw body the caller
// has already read, so it can be tested without a server.
package verify

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Sentinel errors returned (wrapped) by Verifier.Verify. Callers answer 401 to
// all of them; the distinction is for logs.
var (
	// ErrSignature means the Standard Webhooks signature is missing, malformed,
	// does not match, or its timestamp is outside the replay window.
	ErrSignature = errors.New("webhook signature not verified")
	// ErrSharedSecret means the shared-secret header is missing or wrong.
	ErrSharedSecret = errors.New("webhook shared secret not verified")
)

// ErrNoMechanism is returned by New when no mechanism is configured and
// insecure operation was not asked for.
var ErrNoMechanism = errors.New("no webhook verification mechanism configured")

// Options configures a Verifier. Empty fields disable their mechanism.
type Options struct {
	// ClientSecret is the BigCommerce app client secret. Its raw bytes are the
	// HMAC key (BigCommerce's own samples base64-encode it before giving it to
	// the library, which decodes it again).
	ClientSecret string
	// SecretHeader and Secret: the header BigCommerce was told to send, and
	// its expected value. Both or neither.
	SecretHeader string
	Secret       string
	// Insecure allows a Verifier with no mechanism, which accepts everything.
	Insecure bool
}

// Verifier checks deliveries. It is safe for concurrent use.
type Verifier struct {
	signature    *standardwebhooks.Webhook // nil: not checked
	secretHeader string                    // "": not checked
	secretDigest [sha256.Size]byte
}

// New builds a Verifier. It returns ErrNoMechanism when opts enables nothing
// and opts.Insecure is false, and an error when only half of the shared-secret
// pair is given.
func New(opts Options) (*Verifier, error) {
	v := &Verifier{}
	if opts.ClientSecret != "" {
		wh, err := standardwebhooks.NewWebhookRaw([]byte(opts.ClientSecret))
		if err != nil {
			return nil, fmt.Errorf("verify: signature key: %w", err)
		}
		v.signature = wh
	}
	if (opts.SecretHeader == "") != (opts.Secret == "") {
		return nil, errors.New("verify: shared-secret header name and value must be given together")
	}
	if opts.SecretHeader != "" {
		v.secretHeader = http.CanonicalHeaderKey(opts.SecretHeader)
		v.secretDigest = sha256.Sum256([]byte(opts.Secret))
	}
	if !v.Enabled() && !opts.Insecure {
		return nil, ErrNoMechanism
	}
	return v, nil
}

// Enabled reports whether at least one mechanism is checked. A Verifier that
// is not enabled accepts every delivery.
func (v *Verifier) Enabled() bool { return v.signature != nil || v.secretHeader != "" }

// signatureHeaders are the Standard Webhooks headers; any of them present
// means the delivery claims a signature.
var signatureHeaders = []string{"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"}

// Checked names what authenticated a delivery, for the log.
type Checked string

const (
	CheckedNothing   Checked = "none" // no mechanism configured (insecure)
	CheckedSignature Checked = "signature"
	CheckedSecret    Checked = "shared-secret"
	CheckedBoth      Checked = "signature+shared-secret"
)

// Verify checks body and header. It returns what was checked when the
// delivery carries at least one configured credential and every configured
// credential it carries is right; else an error wrapping ErrSignature or
// ErrSharedSecret (both when it carries none). Errors never contain secrets.
func (v *Verifier) Verify(header http.Header, body []byte) (Checked, error) {
	if !v.Enabled() {
		return CheckedNothing, nil
	}
	var secretOK, signatureOK bool
	if v.secretHeader != "" && len(header.Values(v.secretHeader)) > 0 {
		// One value, and the right one: a second value is refused rather
		// than ignored.
		vals := header.Values(v.secretHeader)
		// Comparing digests keeps the comparison constant-time in the
		// length of the secret too; ConstantTimeCompare returns early on a
		// length mismatch.
		got := sha256.Sum256([]byte(vals[0]))
		if len(vals) != 1 || subtle.ConstantTimeCompare(got[:], v.secretDigest[:]) != 1 {
			return "", ErrSharedSecret
		}
		secretOK = true
	}
	if v.signature != nil && (v.secretHeader == "" || carriesAny(header, signatureHeaders)) {
		// Standard Webhooks sends the signatures (several while a key
		// rotates) space-separated in one header; a proxy may split them
		// over several lines, of which the library reads only the first.
		if sigs := header.Values("Webhook-Signature"); len(sigs) > 1 {
			header = header.Clone()
			header.Set("Webhook-Signature", strings.Join(sigs, " "))
		}
		// Verify enforces the ±5 minute timestamp window against replays.
		if err := v.signature.Verify(body, header); err != nil {
			return "", fmt.Errorf("%w: %w", ErrSignature, err)
		}
		signatureOK = true
	}
	switch {
	case secretOK && signatureOK:
		return CheckedBoth, nil
	case secretOK:
		return CheckedSecret, nil
	case signatureOK:
		return CheckedSignature, nil
	}
	switch {
	case v.signature == nil:
		return "", fmt.Errorf("%w: header missing", ErrSharedSecret)
	case v.secretHeader == "":
		return "", fmt.Errorf("%w: unsigned", ErrSignature)
	}
	return "", fmt.Errorf("neither signed nor carrying the shared-secret header: %w, %w", ErrSignature, ErrSharedSecret)
}

func carriesAny(h http.Header, names []string) bool {
	for _, n := range names {
		if len(h.Values(n)) > 0 {
			return true
		}
	}
	return false
}
