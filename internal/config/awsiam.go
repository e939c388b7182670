package config

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sasl/aws"
)

// awsEnv is the part of the standard AWS credential chain Sluice follows,
// as read from the environment: static keys, or a web identity (EKS IAM
// roles for service accounts set AWS_ROLE_ARN and
// AWS_WEB_IDENTITY_TOKEN_FILE) exchanged at STS for temporary keys.
// Shared config files, instance metadata and SSO are not followed.
type awsEnv struct {
	AccessKey, SecretKey, SessionToken string
	RoleARN, TokenFile, SessionName    string
	Region                             string
	STSEndpoint                        string // default https://sts.<region>.amazonaws.com, or the global one
}

func awsFromEnv(vars map[string]string) awsEnv {
	e := awsEnv{
		AccessKey: vars["AWS_ACCESS_KEY_ID"], SecretKey: vars["AWS_SECRET_ACCESS_KEY"], SessionToken: vars["AWS_SESSION_TOKEN"],
		RoleARN: vars["AWS_ROLE_ARN"], TokenFile: vars["AWS_WEB_IDENTITY_TOKEN_FILE"], SessionName: vars["AWS_ROLE_SESSION_NAME"],
		Region: vars["AWS_REGION"], STSEndpoint: vars["AWS_ENDPOINT_URL_STS"],
	}
	if e.Region == "" {
		e.Region = vars["AWS_DEFAULT_REGION"]
	}
	if e.SessionName == "" {
		e.SessionName = "sluice"
	}
	if e.STSEndpoint == "" {
		e.STSEndpoint = "https://sts.amazonaws.com"
		if e.Region != "" {
			e.STSEndpoint = "https://sts." + e.Region + ".amazonaws.com"
		}
	}
	return e
}

// problem says what is missing for MSK IAM, or "".
func (e awsEnv) problem() string {
	switch {
	case e.AccessKey != "" || e.SecretKey != "":
		if e.AccessKey == "" || e.SecretKey == "" {
			return "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together"
		}
	case e.RoleARN != "" && e.TokenFile != "":
		if _, err := os.Stat(e.TokenFile); err != nil {
			return "AWS_WEB_IDENTITY_TOKEN_FILE: cannot read the file: " + unwrapAll(err).Error()
		}
	default:
		return "aws-msk-iam needs AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (IRSA)"
	}
	return ""
}

// mechanism is the AWS_MSK_IAM SASL mechanism with e's credentials.
func (e awsEnv) mechanism(client *http.Client) func(context.Context) (aws.Auth, error) {
	if e.AccessKey != "" {
		a := aws.Auth{AccessKey: e.AccessKey, SecretKey: e.SecretKey, SessionToken: e.SessionToken, UserAgent: "sluice"}
		return func(context.Context) (aws.Auth, error) { return a, nil }
	}
	w := &webIdentity{env: e, client: client}
	return w.auth
}

// webIdentity exchanges the web identity token for temporary credentials
// and keeps them until five minutes before they expire. The token file is
// read at every exchange: the kubelet rotates it.
type webIdentity struct {
	env    awsEnv
	client *http.Client

	mu      sync.Mutex
	cached  aws.Auth
	expires time.Time
}

func (w *webIdentity) auth(ctx context.Context) (aws.Auth, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if time.Until(w.expires) > 5*time.Minute {
		return w.cached, nil
	}
	tok, err := os.ReadFile(w.env.TokenFile)
	if err != nil {
		return aws.Auth{}, fmt.Errorf("AWS_WEB_IDENTITY_TOKEN_FILE: %w", err)
	}
	form := url.Values{
		"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"},
		"RoleArn": {w.env.RoleARN}, "RoleSessionName": {w.env.SessionName},
		"WebIdentityToken": {strings.TrimSpace(string(tok))},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.env.STSEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return aws.Auth{}, fmt.Errorf("sts: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := w.client.Do(req)
	if err != nil {
		return aws.Auth{}, fmt.Errorf("sts AssumeRoleWithWebIdentity: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		// STS errors name the problem (an untrusted role, an expired
		// token) in a <Code> and never echo the token.
		var e struct {
			Code    string `xml:"Error>Code"`
			Message string `xml:"Error>Message"`
		}
		_ = xml.Unmarshal(body, &e)
		return aws.Auth{}, fmt.Errorf("sts AssumeRoleWithWebIdentity %s: %s: %s", w.env.RoleARN, resp.Status, e.Code+" "+e.Message)
	}
	var out struct {
		Creds struct {
			AccessKeyID     string    `xml:"AccessKeyId"`
			SecretAccessKey string    `xml:"SecretAccessKey"`
			SessionToken    string    `xml:"SessionToken"`
			Expiration      time.Time `xml:"Expiration"`
		} `xml:"AssumeRoleWithWebIdentityResult>Credentials"`
	}
	if err := xml.Unmarshal(body, &out); err != nil || out.Creds.AccessKeyID == "" {
		return aws.Auth{}, errors.New("sts AssumeRoleWithWebIdentity: no credentials in the answer")
	}
	w.cached = aws.Auth{AccessKey: out.Creds.AccessKeyID, SecretKey: out.Creds.SecretAccessKey,
		SessionToken: out.Creds.SessionToken, UserAgent: "sluice"}
	w.expires = out.Creds.Expiration
	return w.cached, nil
}
