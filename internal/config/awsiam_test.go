package config

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sasl/aws"
)

// TestMSKIAMSigningInput: the first AWS_MSK_IAM message franz-go sends
// with the credentials Sluice hands it names the region of the broker's
// host, the credential scope of the access key, the session token, and a
// SigV4 signature that this test computes again on its own from the AWS
// Signature Version 4 rules (a presigned GET / with only the host header
// signed, empty payload). What MSK itself accepts could not be tested here.
func TestMSKIAMSigningInput(t *testing.T) {
	e := awsFromEnv(map[string]string{"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
		"AWS_SESSION_TOKEN": "session/token+1"})
	if p := e.problem(); p != "" {
		t.Fatal(p)
	}
	const host = "b-1.demo.abc123.c2.kafka.eu-west-1.amazonaws.com"
	_, first, err := aws.ManagedStreamingIAM(e.mechanism(nil)).Authenticate(context.Background(), host+":9098")
	if err != nil {
		t.Fatal(err)
	}
	var msg map[string]string
	if err := json.Unmarshal(first, &msg); err != nil {
		t.Fatalf("first message %s: %v", first, err)
	}
	date := msg["x-amz-date"]
	if len(date) != 16 {
		t.Fatalf("x-amz-date %q", date)
	}
	scope := date[:8] + "/eu-west-1/kafka-cluster/aws4_request"
	for k, want := range map[string]string{
		"version": "2020_10_22", "host": host, "user-agent": "sluice", "action": "kafka-cluster:Connect",
		"x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": "AKIDEXAMPLE/" + scope,
		"x-amz-security-token": "session/token+1", "x-amz-signedheaders": "host", "x-amz-expires": "900", // 15 min, as AWS's own library (franz-go v1.22.3)
	} {
		if msg[k] != want {
			t.Errorf("%s: %q, want %q", k, msg[k], want)
		}
	}

	q := url.Values{}
	for _, k := range []string{"Action", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Security-Token"} {
		q.Set(k, msg[strings.ToLower(k)])
	}
	empty := sha256.Sum256(nil)
	canonical := strings.Join([]string{"GET", "/", strings.ReplaceAll(q.Encode(), "+", "%20"), "host:" + host, "", "host", hex.EncodeToString(empty[:])}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	toSign := strings.Join([]string{"AWS4-HMAC-SHA256", date, scope, hex.EncodeToString(sum[:])}, "\n")
	mac := func(key []byte, s string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(s))
		return h.Sum(nil)
	}
	key := []byte("AWS4" + "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
	for _, part := range []string{date[:8], "eu-west-1", "kafka-cluster", "aws4_request"} {
		key = mac(key, part)
	}
	if want := hex.EncodeToString(mac(key, toSign)); msg["x-amz-signature"] != want {
		t.Errorf("signature %s, want %s (computed here from the SigV4 rules)", msg["x-amz-signature"], want)
	}
}

// stsStandIn answers AssumeRoleWithWebIdentity as STS does (the XML of
// its API reference), after checking the request. It is a stand-in: AWS
// STS could not be reached from here.
func stsStandIn(t *testing.T, role string, token *atomic.Value, expires time.Duration, calls *atomic.Int64) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		if r.Method != http.MethodPost || r.Form.Get("Action") != "AssumeRoleWithWebIdentity" || r.Form.Get("Version") != "2011-06-15" ||
			r.Form.Get("RoleArn") != role || r.Form.Get("RoleSessionName") != "sluice" {
			t.Errorf("request %s %v", r.Method, r.Form)
		}
		if r.Form.Get("WebIdentityToken") != token.Load().(string) {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Incorrect token audience</Message></Error></ErrorResponse>`)
			return
		}
		n := calls.Load()
		fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>
<Credentials><AccessKeyId>ASIA%d</AccessKeyId><SecretAccessKey>secret%d</SecretAccessKey><SessionToken>tok%d</SessionToken>
<Expiration>%s</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>`,
			n, n, n, time.Now().Add(expires).UTC().Format(time.RFC3339))
	}))
	t.Cleanup(s.Close)
	return s
}

// TestMSKIAMWebIdentity: with AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE
// (IRSA), the token in the file is exchanged for temporary credentials,
// which are kept while they have more than 5 min to live; a rotated token
// file is read at the next exchange; an STS refusal is an error naming its
// code, not quoting the token.
func TestMSKIAMWebIdentity(t *testing.T) {
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte("jwt-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var token atomic.Value
	token.Store("jwt-1")
	var calls atomic.Int64
	const role = "arn:aws:iam::123456789012:role/sluice"
	sts := stsStandIn(t, role, &token, time.Hour, &calls)
	e := awsFromEnv(map[string]string{"AWS_ROLE_ARN": role, "AWS_WEB_IDENTITY_TOKEN_FILE": f, "AWS_ENDPOINT_URL_STS": sts.URL})
	if p := e.problem(); p != "" {
		t.Fatal(p)
	}
	auth := e.mechanism(sts.Client())
	for range 3 {
		a, err := auth(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if a.AccessKey != "ASIA1" || a.SecretKey != "secret1" || a.SessionToken != "tok1" {
			t.Errorf("credentials %+v, want the first exchange's", a)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("%d exchanges for credentials valid an hour, want 1", calls.Load())
	}

	// Credentials about to expire are exchanged again, with the token the
	// file holds now.
	short := stsStandIn(t, role, &token, 2*time.Minute, &calls)
	e.STSEndpoint = short.URL
	auth = e.mechanism(short.Client())
	if _, err := auth(context.Background()); err != nil {
		t.Fatal(err)
	}
	token.Store("jwt-2")
	if err := os.WriteFile(f, []byte("jwt-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := auth(context.Background())
	if err != nil || a.AccessKey != fmt.Sprintf("ASIA%d", calls.Load()) || calls.Load() != 3 {
		t.Errorf("after rotation: %+v, %v, %d exchanges (want 3)", a, err, calls.Load())
	}
	token.Store("jwt-3") // the file still holds jwt-2: refused
	_, err = auth(context.Background())
	if err == nil || !strings.Contains(err.Error(), "InvalidIdentityToken") || strings.Contains(err.Error(), "jwt-2") {
		t.Errorf("a refused token: %v", err)
	}
}

// TestMSKIAMConfig: aws-msk-iam without credentials in the environment is
// refused naming what to set; with them it loads.
func TestMSKIAMConfig(t *testing.T) {
	_, err := Load(append(slicesClone(kafkaBase), "SLUICE_KAFKA_SASL_MECHANISM=aws-msk-iam"))
	if err == nil || !strings.Contains(err.Error(), "SLUICE_KAFKA_SASL_MECHANISM") || !strings.Contains(err.Error(), "AWS_WEB_IDENTITY_TOKEN_FILE") {
		t.Errorf("no credentials: %v", err)
	}
	_, err = Load(append(slicesClone(kafkaBase), "SLUICE_KAFKA_SASL_MECHANISM=aws-msk-iam", "AWS_ACCESS_KEY_ID=AKID"))
	if err == nil || !strings.Contains(err.Error(), "must be set together") {
		t.Errorf("half the keys: %v", err)
	}
	cfg := load(t, append(kafkaBase, "SLUICE_KAFKA_SASL_MECHANISM=aws-msk-iam", "AWS_ACCESS_KEY_ID=AKID", "AWS_SECRET_ACCESS_KEY=s")...)
	if len(cfg.Consumer.Kafka.Opts) == 0 {
		t.Error("no SASL option")
	}
}
