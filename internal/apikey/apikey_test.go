package apikey

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

type fakeSM struct{ secret string }

func (f fakeSM) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	if aws.ToString(in.SecretId) != "api-keys" {
		return nil, errors.New("no such secret")
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(f.secret)}, nil
}

func TestLoad_MergesFlagsFileAndSecretAndRefusesShortKeys(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte("# service keys\nkey-from-file-0123456789\n\n  key-two-from-file-0123456789  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Load(context.Background(), Sources{Keys: []string{"key-from-flag-0123456789"}, File: file,
		SecretID: "api-keys", SM: fakeSM{`["key-from-secret-0123456789"]`}})
	want := []string{"key-from-flag-0123456789", "key-from-file-0123456789", "key-two-from-file-0123456789", "key-from-secret-0123456789"}
	if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := Load(context.Background(), Sources{Keys: []string{"short"}}); !errors.Is(err, ErrShortKey) {
		t.Errorf("short key: %v", err)
	}
	if _, err := Load(context.Background(), Sources{SecretID: "api-keys", SM: fakeSM{`"one"`}}); err == nil || !strings.Contains(err.Error(), "JSON array") {
		t.Errorf("secret not an array: %v", err)
	}
	if keys, err := Load(context.Background(), Sources{}); err != nil || len(keys) != 0 {
		t.Errorf("no sources: %q, %v", keys, err)
	}
}

func TestRequire_AnswersWithoutAValidKey401AndSaysWhatToSend(t *testing.T) {
	h := Require(New([]string{"good-key-0123456789"}), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for auth, want := range map[string]int{
		"":                           http.StatusUnauthorized,
		"Bearer bad-key-0123456789":  http.StatusUnauthorized,
		"Basic Z29vZC1rZXk=":         http.StatusUnauthorized,
		"Bearer good-key-0123456789": http.StatusTeapot,
		"bearer good-key-0123456789": http.StatusTeapot,
	} {
		r := httptest.NewRequest(http.MethodGet, "/v1/metrics", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("%q: %d, want %d", auth, w.Code, want)
		}
		if want == http.StatusUnauthorized {
			var body struct{ Error string }
			if json.Unmarshal(w.Body.Bytes(), &body) != nil || !strings.Contains(body.Error, "Authorization: Bearer KEY") || w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%q: body %s, headers %v", auth, w.Body, w.Header())
			}
		}
	}
}
