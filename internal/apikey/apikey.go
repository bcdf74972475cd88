// Package apikey is how the collector and the read API authenticate
// callers: bearer keys (`Authorization: Bearer KEY`) compared in constant
// time, loaded from flags, a file or AWS Secrets Manager.
package apikey

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// MinLength is the shortest key accepted: shorter ones are guessable.
const MinLength = 16

// Keyring holds keys as SHA-256 digests.
type Keyring struct {
	hashes [][sha256.Size]byte
}

// New returns a keyring of keys; empty strings are skipped.
func New(keys []string) *Keyring {
	k := &Keyring{}
	for _, key := range keys {
		if key != "" {
			k.hashes = append(k.hashes, sha256.Sum256([]byte(key)))
		}
	}
	return k
}

// Len is the number of keys.
func (k *Keyring) Len() int { return len(k.hashes) }

// Match returns the index of the key the Authorization header carries, or
// -1. Keys are compared as SHA-256 digests with subtle.ConstantTimeCompare
// against every key, so neither a key's length nor how many bytes matched
// leaks through timing.
func (k *Keyring) Match(authorization string) int {
	token, ok := Bearer(authorization)
	if !ok {
		return -1
	}
	sum := sha256.Sum256([]byte(token))
	match := -1
	for i := range k.hashes {
		if subtle.ConstantTimeCompare(sum[:], k.hashes[i][:]) == 1 {
			match = i
		}
	}
	return match
}

// Bearer returns the token of an "Authorization: Bearer TOKEN" header.
func Bearer(h string) (string, bool) {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	t := strings.TrimSpace(h[len(prefix):])
	return t, t != ""
}

// Require wraps next: a request without one of the keys gets 401 with a JSON
// body that says what to send, and a WWW-Authenticate header.
func Require(k *Keyring, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if k.Match(r.Header.Get("Authorization")) < 0 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="clickstream"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			msg := "missing API key: send the header Authorization: Bearer KEY"
			if r.Header.Get("Authorization") != "" {
				msg = "invalid API key: send the header Authorization: Bearer KEY with a key the server was given"
			}
			_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// SecretsAPI is the part of the Secrets Manager client Load uses.
type SecretsAPI interface {
	GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

var _ SecretsAPI = (*secretsmanager.Client)(nil)

// Sources say where keys come from; Load merges them.
type Sources struct {
	Keys []string // given directly (flags, environment)
	// File holds one key per line; blank lines and lines starting with #
	// are skipped.
	File string
	// SecretID is a Secrets Manager secret (ARN or name) whose string is a
	// JSON array of keys, as infra/ creates it. Needs SM.
	SecretID string
	SM       SecretsAPI
}

// ErrShortKey: a key shorter than MinLength.
var ErrShortKey = fmt.Errorf("API keys must be at least %d characters", MinLength)

// Load returns the keys of every source, refusing keys shorter than
// MinLength. No keys at all is not an error here: the caller decides
// whether serving without them is allowed.
func Load(ctx context.Context, s Sources) ([]string, error) {
	keys := append([]string(nil), s.Keys...)
	if s.File != "" {
		b, err := os.ReadFile(s.File)
		if err != nil {
			return nil, fmt.Errorf("read API keys: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
				keys = append(keys, line)
			}
		}
	}
	if s.SecretID != "" {
		if s.SM == nil {
			return nil, errors.New("read API keys: no Secrets Manager client")
		}
		out, err := s.SM.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s.SecretID)})
		if err != nil {
			return nil, fmt.Errorf("read API keys from %s: %w", s.SecretID, err)
		}
		var fromSecret []string
		if err := json.Unmarshal([]byte(aws.ToString(out.SecretString)), &fromSecret); err != nil {
			return nil, fmt.Errorf("read API keys from %s: the secret must be a JSON array of strings: %w", s.SecretID, err)
		}
		keys = append(keys, fromSecret...)
	}
	out := keys[:0]
	for _, k := range keys {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		if len(k) < MinLength {
			return nil, fmt.Errorf("%w (one has %d)", ErrShortKey, len(k))
		}
		out = append(out, k)
	}
	return out, nil
}
