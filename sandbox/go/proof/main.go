// Command workload-proof is the sandbox's demo workload: run in a pod whose ServiceAccount is federated
// with a managed identity, it proves what the pod can do with Azure, without a secret.
//
// Each round it exchanges the projected service-account token the kubelet keeps fresh
// (AZURE_FEDERATED_TOKEN_FILE, injected by the workload identity webhook with AZURE_CLIENT_ID,
// AZURE_TENANT_ID and AZURE_AUTHORITY_HOST) for an Entra token with azidentity's
// WorkloadIdentityCredential, then makes one ARM read (expected 200) and one ARM write (expected
// 403 AuthorizationFailed: the identity may read, not write). It prints one JSON line per round:
//
//	{"round":1,"exchange":"ok","read":200,"write":403,"write_code":"AuthorizationFailed","proof":"ok",...}
//
// A failed exchange prints Entra's AADSTS code and message. A new credential is made every round, so
// every round is a real exchange (azidentity caches tokens per credential).
//
// Settings (environment): ARCWI_ARM_ENDPOINT (https://management.azure.com/ in Azure), ARCWI_ARM_SCOPE
// (the ARM audience + "/.default"), ARCWI_READ_PATH and ARCWI_WRITE_PATH (ARM paths with api-version),
// ARCWI_WRITE_BODY (JSON), ARCWI_INTERVAL (seconds between rounds; 0: one round, then idle),
// ARCWI_ROUNDS (stop after this many rounds; 0: never). SSL_CERT_FILE names extra CAs (Go reads it).
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

const version = "arcwi-sandbox workload-proof v1.0.0"

type round struct {
	Round        int    `json:"round"`
	Time         string `json:"time"`
	Exchange     string `json:"exchange"`
	AADSTS       string `json:"aadsts,omitempty"`
	Error        string `json:"error,omitempty"`
	AssertionIss string `json:"assertion_iss,omitempty"`
	AssertionSub string `json:"assertion_sub,omitempty"`
	AssertionKid string `json:"assertion_kid,omitempty"`
	Read         int    `json:"read,omitempty"`
	Write        int    `json:"write,omitempty"`
	WriteCode    string `json:"write_code,omitempty"`
	Proof        string `json:"proof"`
}

var aadsts = regexp.MustCompile(`AADSTS\d+`)

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func number(name string, fallback int) int {
	v, err := strconv.Atoi(env(name, strconv.Itoa(fallback)))
	if err != nil || v < 0 {
		fmt.Fprintf(os.Stderr, "%s must be a whole number >= 0\n", name)
		os.Exit(2)
	}
	return v
}

// claims of the assertion (the kubelet's token) that Entra compares with the federated credential
func claims(path string) (iss, sub, kid string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", "", ""
	}
	parts := strings.Split(strings.TrimSpace(string(raw)), ".")
	if len(parts) != 3 {
		return "", "", ""
	}
	var header struct {
		Kid string `json:"kid"`
	}
	var body struct {
		Iss string `json:"iss"`
		Sub string `json:"sub"`
	}
	if b, err := base64.RawURLEncoding.DecodeString(parts[0]); err == nil {
		_ = json.Unmarshal(b, &header)
	}
	if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
		_ = json.Unmarshal(b, &body)
	}
	return body.Iss, body.Sub, header.Kid
}

func arm(ctx context.Context, client *http.Client, method, url, token string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var answer struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(data, &answer)
	return resp.StatusCode, answer.Error.Code, nil
}

func prove(ctx context.Context, n int, client *http.Client) round {
	r := round{Round: n, Time: time.Now().UTC().Format(time.RFC3339), Proof: "failed"}
	r.AssertionIss, r.AssertionSub, r.AssertionKid = claims(os.Getenv("AZURE_FEDERATED_TOKEN_FILE"))
	// AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST come from the
	// webhook; instance discovery is Entra's public metadata, which a sovereign or sandbox authority lacks
	cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
		DisableInstanceDiscovery: os.Getenv("AZURE_AUTHORITY_HOST") != "" &&
			!strings.HasPrefix(os.Getenv("AZURE_AUTHORITY_HOST"), "https://login.microsoftonline.com"),
	})
	if err != nil {
		r.Exchange, r.Error = "failed", err.Error()
		return r
	}
	scope := env("ARCWI_ARM_SCOPE", "https://management.azure.com/.default")
	token, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		r.Exchange, r.Error, r.AADSTS = "failed", firstLine(err.Error()), aadsts.FindString(err.Error())
		return r
	}
	r.Exchange = "ok"
	endpoint := strings.TrimRight(env("ARCWI_ARM_ENDPOINT", "https://management.azure.com/"), "/")
	if path := os.Getenv("ARCWI_READ_PATH"); path != "" {
		status, _, err := arm(ctx, client, http.MethodGet, endpoint+path, token.Token, nil)
		if err != nil {
			r.Error = "read: " + err.Error()
			return r
		}
		r.Read = status
	}
	if path := os.Getenv("ARCWI_WRITE_PATH"); path != "" {
		status, code, err := arm(ctx, client, http.MethodPut, endpoint+path, token.Token,
			[]byte(env("ARCWI_WRITE_BODY", "{}")))
		if err != nil {
			r.Error = "write: " + err.Error()
			return r
		}
		r.Write, r.WriteCode = status, code
	}
	if (r.Read == 0 || r.Read == http.StatusOK) && (r.Write == 0 || (r.Write == http.StatusForbidden && r.WriteCode == "AuthorizationFailed")) {
		r.Proof = "ok"
	}
	return r
}

func firstLine(s string) string {
	for _, line := range strings.Split(s, "\n") {
		if m := aadsts.FindString(line); m != "" {
			return strings.TrimSpace(line)
		}
	}
	return strings.TrimSpace(strings.SplitN(s, "\n", 2)[0])
}

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Println(version)
		return
	}
	interval := number("ARCWI_INTERVAL", 0)
	rounds := number("ARCWI_ROUNDS", 0)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	client := &http.Client{Timeout: 30 * time.Second}
	out := json.NewEncoder(os.Stdout)
	for n := 1; ; n++ {
		_ = out.Encode(prove(ctx, n, client))
		if rounds > 0 && n >= rounds {
			return
		}
		wait := time.Duration(interval) * time.Second
		if interval == 0 {
			wait = 365 * 24 * time.Hour // one round, then idle until stopped
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return
			}
		case <-time.After(wait):
		}
	}
}
