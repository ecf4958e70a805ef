"""TLS: the server's ssl.SSLContext from the --ssl-* options, and the ASGI `tls` extension.

Rules:
1. `create_ssl_context(config)` is the only place that reads certificates and keys. It
   runs in every serving process (an SSLContext cannot cross a process boundary); a
   supervisor calls it once before starting workers, so a bad certificate is one
   error and exit code 1, not one per worker.
2. Everything a user can get wrong (a missing file, a file that holds no certificate or
   key, an encrypted key without its password, a wrong password, a key that does not
   match the certificate, a cipher string OpenSSL rejects) is a ConfigError naming the
   option and the fix. OpenSSL is never allowed to prompt for a pass phrase on the
   terminal.
3. What is the same for every connection (the server certificate as PEM, the IANA
   numbers of the cipher suites) is computed once, with the context; `tls_extension`
   does a few attribute reads per connection (ASGI HTTP spec, "TLS extension").
4. ALPN offers h2 and http/1.1 (io/h2.py alpn_protocols: --http 1 or 2 offers one).
"""

from __future__ import annotations

import base64
import os
import re
import ssl
from typing import TYPE_CHECKING, Any

from pier.errors import ConfigError

if TYPE_CHECKING:
    from pier.config import Config

__all__ = ["ServerSSLContext", "create_ssl_context", "tls_extension"]

CERT_REQS = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}

# ssl.SSLObject.version() to the number the ASGI spec asks for (the TLS record version).
TLS_VERSIONS = {
    "SSLv3": 0x0300,
    "TLSv1": 0x0301,
    "TLSv1.1": 0x0302,
    "TLSv1.2": 0x0303,
    "TLSv1.3": 0x0304,
}

# RFC 4514 section 3: attribute type short names for a distinguished name string.
_DN_SHORT_NAMES = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}

_PEM_CERT_BEGIN = "-----BEGIN CERTIFICATE-----"
_PEM_CERT_END = "-----END CERTIFICATE-----"


class ServerSSLContext(ssl.SSLContext):
    """An SSLContext that also carries what the `tls` scope extension reports."""

    server_cert_pem: str | None
    cipher_suites: dict[str, int]


def create_ssl_context(config: Config) -> ServerSSLContext | None:
    """The server-side TLS context the config asks for, or None when TLS is off."""
    certfile: str | None = config.ssl_certfile
    if certfile is None:
        return None
    keyfile: str | None = config.ssl_keyfile
    password: str | None = config.ssl_keyfile_password
    cert_text = _read_pem(certfile, "--ssl-certfile")
    if _PEM_CERT_BEGIN not in cert_text:
        raise ConfigError(
            f"--ssl-certfile {certfile} holds no PEM certificate (-----BEGIN CERTIFICATE-----);"
            " pass the certificate file, not the key"
        )
    key_text = cert_text if keyfile is None else _read_pem(keyfile, "--ssl-keyfile")
    if "PRIVATE KEY-----" not in key_text:
        if keyfile is None:
            raise ConfigError(
                f"--ssl-certfile {certfile} holds no private key; give the key with"
                " --ssl-keyfile PATH"
            )
        raise ConfigError(
            f"--ssl-keyfile {keyfile} holds no PEM private key (-----BEGIN ... PRIVATE"
            " KEY-----); pass the key file"
        )

    context = ServerSSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.ssl_version == ssl.PROTOCOL_TLSv1_2:  # uvicorn's --ssl-version 5
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    asked_for_password = False

    def give_password() -> bytes:
        # Called by OpenSSL only for an encrypted key; never let it prompt instead.
        nonlocal asked_for_password
        asked_for_password = True
        return (password or "").encode("utf-8")

    key_name = "--ssl-keyfile" if keyfile is not None else "--ssl-certfile"
    key_path = keyfile or certfile
    try:
        context.load_cert_chain(certfile, keyfile, password=give_password)
    except ssl.SSLError as exc:
        # OpenSSL's reason for a key of another type is NO_CERTIFICATE_ASSIGNED or
        # KEY_VALUES_MISMATCH, neither of which says what is wrong.
        cert_kind, key_kind = _key_kind(cert_text, "CERTIFICATE"), _key_kind(key_text, "KEY")
        if cert_kind and key_kind and cert_kind != key_kind:
            raise ConfigError(
                f"--ssl-certfile {certfile} holds an {cert_kind} certificate but"
                f" {key_name} {key_path} an {key_kind} private key; pass the {cert_kind}"
                " key that certificate was issued for"
            ) from None
        if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
            raise ConfigError(
                f"{key_name} {key_path} is not the private key of the certificate in"
                f" --ssl-certfile {certfile}; pass the matching key"
            ) from None
        if asked_for_password and password is None:
            raise ConfigError(
                f"{key_name} {key_path} is encrypted; give its password with"
                " --ssl-keyfile-password (or PIER_SSL_KEYFILE_PASSWORD)"
            ) from None
        if asked_for_password:
            raise ConfigError(
                f"--ssl-keyfile-password does not decrypt {key_name} {key_path}; check"
                " the password"
            ) from None
        raise ConfigError(
            f"cannot load the certificate {certfile} and key {key_path}: {_reason(exc)};"
            " check that both are PEM files"
        ) from None

    context.verify_mode = CERT_REQS[config.ssl_cert_reqs]
    if config.ssl_ca_certs is not None:
        _read_pem(config.ssl_ca_certs, "--ssl-ca-certs")
        try:
            context.load_verify_locations(cafile=config.ssl_ca_certs)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"--ssl-ca-certs {config.ssl_ca_certs} holds no usable CA certificate"
                f" ({_reason(exc)}); pass a PEM file of CA certificates"
            ) from None
    if config.ssl_ciphers is not None:
        try:
            context.set_ciphers(config.ssl_ciphers)
        except ssl.SSLError:
            raise ConfigError(
                f"--ssl-ciphers {config.ssl_ciphers!r} selects no cipher OpenSSL knows;"
                " see `openssl ciphers -v` for the names, or leave the option out"
            ) from None
    from pier.io.h2 import alpn_protocols

    context.set_alpn_protocols(alpn_protocols(config))

    context.server_cert_pem = _first_certificate(cert_text)
    # get_ciphers() ids are OpenSSL's 0x0300XXXX; the low 16 bits are the IANA number.
    context.cipher_suites = {
        cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()
    }
    return context


def tls_extension(ssl_object: Any) -> dict[str, Any]:
    """The ASGI `tls` scope extension for one TLS connection (an ssl.SSLObject)."""
    context = ssl_object.context
    cipher = ssl_object.cipher()
    version = ssl_object.version()
    chain: list[str] = []
    name: str | None = None
    leaf = ssl_object.getpeercert(binary_form=True)
    if leaf:
        # Python 3.13+ can give the whole chain the client sent; before, only the leaf.
        get_chain = getattr(ssl_object, "get_unverified_chain", None)
        ders = get_chain() if get_chain is not None else None
        chain = [_der_to_pem(der) for der in ders] if ders else [_der_to_pem(leaf)]
        # getpeercert() decodes the subject only for a verified certificate.
        details = ssl_object.getpeercert()
        if details:
            name = distinguished_name(details.get("subject", ()))
    suites: dict[str, int] = getattr(context, "cipher_suites", {})
    return {
        "server_cert": getattr(context, "server_cert_pem", None),
        "client_cert_chain": chain,
        "client_cert_name": name,
        # OpenSSL fails the handshake on a client certificate that does not verify,
        # so a connection that exists has none to report.
        "client_cert_error": None,
        "tls_version": TLS_VERSIONS.get(version) if version else None,
        "cipher_suite": suites.get(cipher[0]) if cipher else None,
    }


def distinguished_name(subject: Any) -> str:
    """getpeercert()'s subject as an RFC 4514 string: most specific RDN first."""
    parts = []
    for rdn in reversed(subject):
        parts.append(
            "+".join(
                f"{_DN_SHORT_NAMES.get(key, key)}={_escape_dn_value(value)}"
                for key, value in rdn
            )
        )
    return ",".join(parts)


def _escape_dn_value(value: str) -> str:
    # RFC 4514 section 2.4: these are escaped anywhere; '#' and ' ' at the start, ' ' at the end.
    escaped = "".join("\\" + char if char in ',+"\\<>;' else char for char in value)
    if escaped.startswith(("#", " ")):
        escaped = "\\" + escaped
    if value.endswith(" ") and len(value) > 1:
        escaped = escaped[:-1] + "\\ "
    return escaped


def _der_to_pem(der: Any) -> str:
    if not isinstance(der, bytes):  # a certificate object: ask it for DER
        der = der.public_bytes(ssl.ENCODING_DER)  # type: ignore[attr-defined]
    return ssl.DER_cert_to_PEM_cert(der)


def _first_certificate(text: str) -> str | None:
    start = text.find(_PEM_CERT_BEGIN)
    end = text.find(_PEM_CERT_END, start)
    if start < 0 or end < 0:
        return None
    return text[start : end + len(_PEM_CERT_END)] + "\n"


def _read_pem(path: str, option: str) -> str:
    if not os.path.isfile(path):
        raise ConfigError(f"{option} {path} does not exist; fix the path")
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {option} {path}: {exc.strerror}") from None


# DER of the algorithm OIDs (RFC 3279, RFC 5480, RFC 8410) as they appear, tag and
# length included, in a certificate's SubjectPublicKeyInfo and a PKCS#8 private key.
_KEY_OIDS = {
    bytes.fromhex("06092a864886f70d010101"): "RSA",  # rsaEncryption
    bytes.fromhex("06072a8648ce3d0201"): "EC",  # id-ecPublicKey
    bytes.fromhex("06032b6570"): "Ed25519",
    bytes.fromhex("06032b6571"): "Ed448",
}


def _key_kind(pem: str, label: str) -> str | None:
    """RSA, EC, Ed25519 or Ed448 for the first PEM block whose label ends in `label`."""
    match = re.search(r"-----BEGIN ([A-Z0-9 ]*" + label + r")-----(.*?)-----END \1-----",
                      pem, re.S)
    if match is None:
        return None
    if match.group(1).startswith(("RSA ", "EC ")):  # traditional (PKCS#1, SEC 1) keys
        return match.group(1).split()[0]
    try:
        der = base64.b64decode("".join(match.group(2).split()), validate=True)
    except ValueError:
        return None
    found = {kind for oid, kind in _KEY_OIDS.items() if oid in der}
    return found.pop() if len(found) == 1 else None


def _reason(exc: ssl.SSLError) -> str:
    return str(getattr(exc, "reason", None) or exc.args[-1]).strip()
