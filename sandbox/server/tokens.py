"""The Entra emulator's signing key, and minting/validating the access tokens it issues.

Access tokens are RS256 JWTs like Entra's: v1 issuer form `https://sts.windows.net/<tid>/` for the
ARM and Storage audiences (those resources accept v1 tokens, and Azurite's OAuth mode checks that
prefix), `oid`, `tid`, `appid`, `idtyp: app`.
"""
from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .http import ApiError

TOKEN_LIFETIME = 3599


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    def __init__(self, directory: Path, tenant_id: str):
        self.tenant_id = tenant_id
        path = directory / "entra-signing.key"
        if not path.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
            os.chmod(tmp, 0o600)
            tmp.replace(path)
        self.key = serialization.load_pem_private_key(path.read_bytes(), None)
        self.public_key = self.key.public_key()
        der = self.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = b64url(hashlib.sha256(der).digest())[:27]

    def jwks(self) -> dict:
        numbers = self.public_key.public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        return {"keys": [{"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid, "n": b64url(n), "e": b64url(e)}]}

    def v1_issuer(self, tenant_id: str | None = None) -> str:
        return f"https://sts.windows.net/{tenant_id or self.tenant_id}/"

    def mint(self, *, audience: str, object_id: str, app_id: str, tenant_id: str | None = None,
             lifetime: int = TOKEN_LIFETIME, extra: dict | None = None) -> tuple[str, int]:
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": self.v1_issuer(tenant_id),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": app_id,
            "appidacr": "1",
            "idp": self.v1_issuer(tenant_id),
            "idtyp": "app",
            "oid": object_id,
            "sub": object_id,
            "tid": tenant_id or self.tenant_id,
            "uti": b64url(uuid.uuid4().bytes),
            "ver": "1.0",
        }
        if extra:
            claims.update(extra)
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid, "x5t": self.kid})
        return token, lifetime

    def verify_arm(self, authorization: str | None, audiences: list[str]) -> dict:
        """Validate a bearer token the way ARM does; raise ARM's 401 errors."""
        challenge = {"WWW-Authenticate": 'Bearer authorization_uri="%s", error="invalid_token", '
                     'error_description="The authentication failed because of missing \'Authorization\' header."'
                     % self.v1_issuer()}
        if not authorization:
            raise ApiError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.",
                           headers=challenge)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "AuthenticationFailed",
                           "Authentication failed. The 'Authorization' header is provided in an invalid format.")
        try:
            claims = jwt.decode(token, self.public_key, algorithms=["RS256"], options={"verify_aud": False,
                                                                                     "verify_exp": False})
        except jwt.PyJWTError:
            raise ApiError(401, "InvalidAuthenticationToken", "The access token is invalid.")
        if claims.get("iss") != self.v1_issuer(claims.get("tid")):
            raise ApiError(401, "InvalidAuthenticationToken", "The access token is from the wrong issuer "
                           f"'{claims.get('iss')}'. It must match the tenant '{self.v1_issuer()}' associated with "
                           "this subscription. Please use the authority (URL) "
                           f"'{self.v1_issuer()}' to get the token.")
        now = int(time.time())
        if int(claims.get("exp", 0)) <= now:
            raise ApiError(401, "ExpiredAuthenticationToken",
                           f"The access token expiry UTC time '{_utc(claims.get('exp', 0))}' is earlier than "
                           f"current UTC time '{_utc(now)}'.")
        if int(claims.get("nbf", 0)) > now + 300:
            raise ApiError(401, "InvalidAuthenticationToken", "The access token is not yet valid.")
        if claims.get("aud") not in audiences:
            allowed = ",".join(f"'{a}'" for a in audiences)
            raise ApiError(401, "InvalidAuthenticationTokenAudience",
                           f"The access token has been obtained for wrong audience or resource '{claims.get('aud')}'. "
                           f"It should exactly match with one of the allowed audiences {allowed}.")
        return claims


def _utc(ts) -> str:
    return time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime(int(ts)))
