package sftest

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// loginRequest is the body of /session/v1/login-request.
type loginRequest struct {
	Data struct {
		AccountName       string         `json:"ACCOUNT_NAME"`
		LoginName         string         `json:"LOGIN_NAME"`
		Password          string         `json:"PASSWORD"`
		Authenticator     string         `json:"AUTHENTICATOR"`
		Token             string         `json:"TOKEN"`
		SessionParameters map[string]any `json:"SESSION_PARAMETERS"`
	} `json:"data"`
}

var (
	errBadPassword = sfError{"390100", "08004", "Incorrect username or password was specified."}
	errBadJWT      = sfError{"390144", "08004", "JWT token is invalid."}
	errNoSession   = sfError{"390104", "08004", "User must login again to access the service."}
)

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := readBody(r, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d := req.Data
	name, e := s.authenticate(d.AccountName, d.LoginName, d.Password, d.Authenticator, d.Token)
	if e != nil {
		writeError(w, *e, "")
		return
	}
	token, master := randomHex(24), randomHex(24)
	s.mu.Lock()
	s.nextID++
	sess := &session{id: s.nextID, user: name, role: DefaultRole}
	if role := r.URL.Query().Get("roleName"); role != "" {
		sess.role = identifier(role)
	}
	s.sessions[token] = sess
	s.mu.Unlock()
	s.logins.Add(1)

	// The session parameters the client set come back as the session's
	// parameters, as Snowflake answers them.
	params := []map[string]any{}
	for k, v := range d.SessionParameters {
		params = append(params, map[string]any{"name": k, "value": v})
	}
	q := r.URL.Query()
	writeJSON(w, map[string]any{
		"success": true, "code": nil, "message": nil,
		"data": map[string]any{
			"token": token, "validityInSeconds": 3600,
			"masterToken": master, "masterValidityInSeconds": 14400,
			"sessionId": sess.id, "serverVersion": "9.0.0 (sftest)",
			"displayUserName": name, "firstLogin": false, "healthCheckInterval": 45,
			"parameters": params,
			"sessionInfo": map[string]any{
				"databaseName": q.Get("databaseName"), "schemaName": q.Get("schemaName"),
				"warehouseName": q.Get("warehouse"), "roleName": q.Get("roleName"),
			},
		},
	})
}

// authenticate checks a password or a key-pair JWT and returns the user.
func (s *Server) authenticate(account, login, password, authenticator, token string) (string, *sfError) {
	if !strings.EqualFold(account, Account) {
		return "", &errBadPassword
	}
	if strings.EqualFold(authenticator, "SNOWFLAKE_JWT") {
		name, err := verifyJWT(token, account, func(name string) *rsa.PublicKey { return s.user(name).publicKey })
		if err != nil {
			return "", &errBadJWT
		}
		return name, nil
	}
	name := strings.ToUpper(login)
	if u := s.user(name); u.password == "" || u.password != password {
		return "", &errBadPassword
	}
	return name, nil
}

func (s *Server) user(name string) user {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[name]
}

// verifyJWT checks a key-pair login token: signed RS256 by the user's key,
// subject ACCOUNT.USER, issuer ACCOUNT.USER.SHA256:<public key fingerprint>,
// not expired. It returns the user.
func verifyJWT(token, account string, keyOf func(user string) *rsa.PublicKey) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	var claims struct {
		Iss string `json:"iss"`
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", err
	}
	prefix := strings.ToUpper(account) + "."
	name, ok := strings.CutPrefix(claims.Sub, prefix)
	if !ok {
		return "", fmt.Errorf("subject %q is not in account %s", claims.Sub, account)
	}
	key := keyOf(name)
	if key == nil {
		return "", fmt.Errorf("user %s has no public key", name)
	}
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	if claims.Iss != claims.Sub+".SHA256:"+base64.StdEncoding.EncodeToString(sum[:]) {
		return "", errors.New("issuer does not name the user's key")
	}
	if time.Now().Unix() > claims.Exp {
		return "", errors.New("token expired")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", err
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig); err != nil {
		return "", err
	}
	return name, nil
}
