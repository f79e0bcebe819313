"""A TLS- and SASL-terminating gateway in front of a Kafka-protocol broker, for tests.

Tansu 0.6.0 (the test broker) cannot serve TLS from its release build, and its SCRAM users
cannot be stored in the storage engines that build has, so the secure-Kafka tests put this
gateway between the engine and the broker. Clients speak real TLS (certificate and host-name
verification by librdkafka) and real SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 per RFC 5802 /
KIP-84, OAUTHBEARER per RFC 7628 / KIP-255) to the gateway; once a connection has authenticated, its bytes are
relayed to the broker unchanged. Before that, only ApiVersions is relayed and any other
request closes the connection, as a broker requiring authentication does. The broker must
advertise the gateway's address so that every connection comes back through it.

For OAUTHBEARER with OIDC (KIP-768) the gateway is also the identity provider: `--oidc-port`
serves a client-credentials token endpoint at `/token` that issues a JWT to `--user` with the
password as client secret (HTTP Basic), and OAUTHBEARER accepts exactly the tokens it issued.

Usage: gateway.py --listen PORT --upstream HOST:PORT --ready FILE --user NAME
                  --password-file FILE [--cert PEM --key PEM] [--oidc-port PORT]
Log lines (stderr) name users and outcomes, never passwords.
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import ssl
import json
import struct
import sys
import time

SASL_HANDSHAKE, SASL_AUTHENTICATE, API_VERSIONS = 17, 36, 18
UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED = 33, 34, 58
MECHANISMS = {
    "PLAIN": None,
    "OAUTHBEARER": None,
    "SCRAM-SHA-256": hashlib.sha256,
    "SCRAM-SHA-512": hashlib.sha512,
}
ISSUED_TOKENS = set()
SCRAM_ITERATIONS = 4096


def log(message):
    print(f"gateway: {message}", file=sys.stderr, flush=True)


async def read_frame(reader):
    size = struct.unpack(">i", await reader.readexactly(4))[0]
    return await reader.readexactly(size)


def frame(body):
    return struct.pack(">i", len(body)) + body


def uvarint(data, at):
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def encode_uvarint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Request:
    """One request: header fields and where the body starts (request header v1 or v2)."""

    def __init__(self, data):
        self.data = data
        self.api_key, self.version, self.correlation_id = struct.unpack(">hhi", data[:8])
        client_id_length = struct.unpack(">h", data[8:10])[0]
        at = 10 + max(client_id_length, 0)
        # SaslAuthenticate v2 is the only flexible version handled here.
        self.flexible = self.api_key == SASL_AUTHENTICATE and self.version >= 2
        if self.flexible:
            tags, at = uvarint(data, at)
            for _ in range(tags):
                _, at = uvarint(data, at)
                size, at = uvarint(data, at)
                at += size
        self.body = at

    def string(self):
        size = struct.unpack(">h", self.data[self.body : self.body + 2])[0]
        return self.data[self.body + 2 : self.body + 2 + size].decode()

    def auth_bytes(self):
        if self.flexible:
            size, at = uvarint(self.data, self.body)
            return self.data[at : at + size - 1]
        size = struct.unpack(">i", self.data[self.body : self.body + 4])[0]
        return self.data[self.body + 4 : self.body + 4 + size]

    def answer(self, body):
        header = struct.pack(">i", self.correlation_id)
        if self.flexible:
            header += b"\x00"
        return frame(header + body)


def handshake_answer(request, error):
    names = list(MECHANISMS)
    body = struct.pack(">hi", error, len(names))
    for name in names:
        body += struct.pack(">h", len(name)) + name.encode()
    return request.answer(body)


def authenticate_answer(request, error, message, auth):
    if request.flexible:
        text = message.encode() if message else None
        body = struct.pack(">h", error)
        body += encode_uvarint(0) if text is None else encode_uvarint(len(text) + 1) + text
        body += encode_uvarint(len(auth) + 1) + auth + struct.pack(">q", 0) + b"\x00"
        return request.answer(body)
    body = struct.pack(">h", error)
    if message is None:
        body += struct.pack(">h", -1)
    else:
        body += struct.pack(">h", len(message)) + message.encode()
    body += struct.pack(">i", len(auth)) + auth
    if request.version >= 1:
        # Session lifetime 0: no re-authentication (KIP-368) inside the relayed stream.
        body += struct.pack(">q", 0)
    return request.answer(body)


class Scram:
    """The server side of one SCRAM exchange (RFC 5802), for the configured user."""

    def __init__(self, digest, user, password):
        self.digest, self.user = digest, user
        self.salt = os.urandom(16)
        self.salted = hashlib.pbkdf2_hmac(
            digest().name, password.encode(), self.salt, SCRAM_ITERATIONS
        )
        self.first_bare = self.server_first = None

    def hmac(self, key, message):
        return hmac.new(key, message.encode(), self.digest).digest()

    def first(self, message):
        """client-first → server-first, or None when the user is unknown."""
        self.first_bare = message.split(",", 2)[2]
        fields = dict(item.split("=", 1) for item in self.first_bare.split(","))
        if fields.get("n") != self.user:
            return None
        nonce = fields["r"] + base64.b64encode(os.urandom(18)).decode()
        salt = base64.b64encode(self.salt).decode()
        self.server_first = f"r={nonce},s={salt},i={SCRAM_ITERATIONS}"
        return self.server_first

    def final(self, message):
        """client-final → server-final, or None when the proof is wrong."""
        without_proof, proof = message.rsplit(",p=", 1)
        auth_message = f"{self.first_bare},{self.server_first},{without_proof}"
        client_key = self.hmac(self.salted, "Client Key")
        stored_key = self.digest(client_key).digest()
        signature = self.hmac(stored_key, auth_message)
        expected = bytes(a ^ b for a, b in zip(client_key, signature))
        if not hmac.compare_digest(expected, base64.b64decode(proof)):
            return None
        server_key = self.hmac(self.salted, "Server Key")
        return "v=" + base64.b64encode(self.hmac(server_key, auth_message)).decode()


async def authenticate(reader, writer, upstream_reader, upstream_writer, options):
    """Runs the pre-authentication part of a connection; True once the client is in."""
    mechanism, scram = None, None
    while True:
        request = Request(await read_frame(reader))
        if request.api_key == API_VERSIONS:
            upstream_writer.write(frame(request.data))
            await upstream_writer.drain()
            writer.write(frame(await read_frame(upstream_reader)))
        elif request.api_key == SASL_HANDSHAKE:
            mechanism = request.string()
            error = 0 if mechanism in MECHANISMS else UNSUPPORTED_SASL_MECHANISM
            writer.write(handshake_answer(request, error))
            if error:
                log(f"refused mechanism {mechanism}")
                return False
            if MECHANISMS[mechanism] is not None:
                scram = Scram(MECHANISMS[mechanism], options.user, options.password)
        elif request.api_key == SASL_AUTHENTICATE and mechanism == "PLAIN":
            _, user, password = request.auth_bytes().decode().split("\x00")
            good = user == options.user and hmac.compare_digest(password, options.password)
            writer.write(
                authenticate_answer(
                    request,
                    0 if good else SASL_AUTHENTICATION_FAILED,
                    None if good else "Authentication failed: invalid credentials",
                    b"",
                )
            )
            log(f"PLAIN {'authenticated' if good else 'refused'} user {user}")
            return good
        elif request.api_key == SASL_AUTHENTICATE and mechanism == "OAUTHBEARER":
            # RFC 7628 client response: "n,,\x01auth=Bearer <token>\x01\x01".
            fields = request.auth_bytes().decode().split("\x01")
            auth = next((f for f in fields if f.startswith("auth=Bearer ")), "")
            good = auth[len("auth=Bearer ") :] in ISSUED_TOKENS
            writer.write(
                authenticate_answer(
                    request,
                    0 if good else SASL_AUTHENTICATION_FAILED,
                    None if good else "invalid token",
                    b"",
                )
            )
            log(f"OAUTHBEARER {'authenticated' if good else 'refused'} a bearer token")
            return good
        elif request.api_key == SASL_AUTHENTICATE and scram is not None:
            message = request.auth_bytes().decode()
            if scram.server_first is None:
                answer = scram.first(message)
                if answer is None:
                    writer.write(
                        authenticate_answer(
                            request, SASL_AUTHENTICATION_FAILED, "unknown user", b""
                        )
                    )
                    log(f"{mechanism} refused an unknown user")
                    return False
                writer.write(authenticate_answer(request, 0, None, answer.encode()))
            else:
                answer = scram.final(message)
                good = answer is not None
                writer.write(
                    authenticate_answer(
                        request,
                        0 if good else SASL_AUTHENTICATION_FAILED,
                        None if good else "Authentication failed: invalid credentials",
                        answer.encode() if good else b"",
                    )
                )
                log(f"{mechanism} {'authenticated' if good else 'refused'} user {scram.user}")
                return good
        else:
            log(f"closed an unauthenticated connection that sent api key {request.api_key}")
            return False
        await writer.drain()


async def relay(source, destination):
    try:
        while data := await source.read(65536):
            destination.write(data)
            await destination.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        destination.close()


async def serve_connection(reader, writer, options):
    host, port = options.upstream.rsplit(":", 1)
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
    except OSError as error:
        log(f"upstream unreachable: {error}")
        writer.close()
        return
    try:
        if await authenticate(reader, writer, upstream_reader, upstream_writer, options):
            await writer.drain()
            await asyncio.gather(
                relay(reader, upstream_writer), relay(upstream_reader, writer)
            )
            return
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, ValueError) as error:
        log(f"connection ended before authentication: {type(error).__name__}")
    writer.close()
    upstream_writer.close()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issue_token(subject):
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + 3600, "scope": "kafka"}
    token = f"{header}.{b64url(json.dumps(claims).encode())}.{b64url(os.urandom(16))}"
    ISSUED_TOKENS.add(token)
    return token


async def serve_token(reader, writer, options):
    """A minimal OAuth 2.0 client-credentials token endpoint (RFC 6749 4.4)."""
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
        headers = {name.lower(): value for name, value in headers.items()}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        form = dict(
            pair.split("=", 1) for pair in body.decode().split("&") if "=" in pair
        )
        client, secret = form.get("client_id"), form.get("client_secret")
        basic = headers.get("authorization", "")
        if basic.startswith("Basic "):
            client, secret = base64.b64decode(basic[6:]).decode().split(":", 1)
        good = (
            form.get("grant_type") == "client_credentials"
            and client == options.user
            and secret is not None
            and hmac.compare_digest(secret, options.password)
        )
        if good:
            status, answer = "200 OK", {
                "access_token": issue_token(client),
                "token_type": "bearer",
                "expires_in": 3600,
            }
        else:
            status, answer = "401 Unauthorized", {"error": "invalid_client"}
        log(f"token endpoint {'issued a token to' if good else 'refused'} client {client}")
        payload = json.dumps(answer).encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError) as error:
        log(f"token request failed: {type(error).__name__}")
    writer.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--oidc-port", type=int)
    options = parser.parse_args()
    with open(options.password_file) as file:
        options.password = file.read().strip()
    context = None
    if options.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(options.cert, options.key)
    server = await asyncio.start_server(
        lambda r, w: serve_connection(r, w, options), "127.0.0.1", options.listen, ssl=context
    )
    if options.oidc_port:
        await asyncio.start_server(
            lambda r, w: serve_token(r, w, options), "127.0.0.1", options.oidc_port
        )
    with open(options.ready, "w") as file:
        file.write(str(options.listen))
    log(f"listening on 127.0.0.1:{options.listen} ({'TLS' if context else 'plaintext'})")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
