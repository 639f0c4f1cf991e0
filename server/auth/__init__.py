"""Who is calling and what they may do: API keys, scopes, channel binding, TLS and mTLS
(README "Security"). ``principal`` holds the caller of the running call; ``scopes`` the one
table of method -> scope; ``api_keys`` the key format and hashing; ``authenticator`` turns a
call's credentials into a Principal; ``interceptor`` enforces it on every method."""
