#!/usr/bin/env python3
"""Docker Engine API version shim: lets new API clients talk to an older engine.

Why: Debian 12's `docker.io` is Docker 20.10, whose API stops at v1.41 and which answers
"client version 1.52 is too new" to any request for a newer version. testcontainers 0.27
(through bollard 0.20) pins API v1.52 and does not negotiate. This shim listens on a unix
socket (normally /var/run/docker.sock), forwards everything to the real engine's socket, and
rewrites the version prefix of each request line (`POST /v1.52/containers/create`) down to
the engine's maximum when it is newer. Request bodies and responses pass through untouched;
the engine ignores JSON fields it does not know. Connections that are upgraded or hijacked
(attach, exec) become plain byte pipes after their request head.

Only the Python standard library is used. Started and supervised by scripts/ensure-docker.sh.
"""

from __future__ import annotations

import argparse
import asyncio
import grp
import json
import os
import re
import signal
import socket
import stat
import sys
import time

VERSIONED = re.compile(rb"^/v(\d+)\.(\d+)(/.*)?$")
HIJACKING = re.compile(rb"^(/v[\d.]+)?/(containers/[^/]+/attach|exec/[^/]+/start)(\?.*)?$")
MAX_HEAD = 1 << 20


def log(msg: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"{stamp} docker-api-shim: {msg}", file=sys.stderr, flush=True)


def engine_api_version(upstream: str, timeout: float) -> tuple[int, int]:
    """Ask the engine (unversioned GET /version) for its maximum API version."""
    deadline = time.monotonic() + timeout
    last_err: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(upstream)
                s.sendall(b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            body = data.split(b"\r\n\r\n", 1)[1]
            major, minor = json.loads(body)["ApiVersion"].split(".")
            return int(major), int(minor)
        except (OSError, ValueError, KeyError, IndexError) as err:
            last_err = err
            time.sleep(0.5)
    raise SystemExit(f"docker-api-shim: engine at {upstream} did not answer /version: {last_err}")


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


async def copy_exact(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
    while n > 0:
        data = await reader.read(min(n, 65536))
        if not data:
            raise asyncio.IncompleteReadError(b"", n)
        writer.write(data)
        await writer.drain()
        n -= len(data)


async def copy_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        line = await reader.readuntil(b"\r\n")
        writer.write(line)
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            # trailers, then the empty line
            while True:
                trailer = await reader.readuntil(b"\r\n")
                writer.write(trailer)
                if trailer == b"\r\n":
                    await writer.drain()
                    return
        await copy_exact(reader, writer, size + 2)  # chunk data + CRLF


class Shim:
    def __init__(self, upstream: str, max_version: tuple[int, int]) -> None:
        self.upstream = upstream
        self.max_version = max_version
        self.rewritten = 0

    def rewrite_target(self, target: bytes) -> bytes:
        m = VERSIONED.match(target)
        if not m:
            return target
        wanted = (int(m.group(1)), int(m.group(2)))
        if wanted <= self.max_version:
            return target
        self.rewritten += 1
        if self.rewritten == 1:
            log(f"rewriting API v{wanted[0]}.{wanted[1]} requests to v{self.max_version[0]}.{self.max_version[1]}")
        return b"/v%d.%d%s" % (self.max_version[0], self.max_version[1], m.group(3) or b"")

    async def client_to_engine(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as err:
                    if err.partial:
                        writer.write(err.partial)
                    break
                lines = head.split(b"\r\n")
                parts = lines[0].split(b" ")
                if len(parts) != 3:
                    # Not an HTTP request head we understand: stop parsing, pass bytes through.
                    writer.write(head)
                    await writer.drain()
                    await pipe(reader, writer)
                    return
                method, target, version = parts
                target = self.rewrite_target(target)
                length = 0
                chunked = False
                upgrade = False
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    value = value.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"transfer-encoding" and b"chunked" in value:
                        chunked = True
                    elif name == b"upgrade" or (name == b"connection" and b"upgrade" in value):
                        upgrade = True
                writer.write(b" ".join((method, target, version)) + b"\r\n" + b"\r\n".join(lines[1:]))
                if chunked:
                    await copy_chunked(reader, writer)
                elif length:
                    await copy_exact(reader, writer, length)
                await writer.drain()
                if upgrade or HIJACKING.match(target):
                    await pipe(reader, writer)
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as err:
            log(f"client stream ended: {err!r}")
        finally:
            try:
                if writer.can_write_eof():
                    writer.write_eof()
            except (OSError, RuntimeError):
                pass

    async def handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            e_reader, e_writer = await asyncio.open_unix_connection(self.upstream)
        except OSError as err:
            log(f"cannot reach engine at {self.upstream}: {err}")
            c_writer.close()
            return
        try:
            await asyncio.gather(
                self.client_to_engine(c_reader, e_writer),
                pipe(e_reader, c_writer),
            )
        finally:
            for w in (c_writer, e_writer):
                try:
                    w.close()
                except OSError:
                    pass


def prepare_socket_path(path: str) -> None:
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise SystemExit(f"docker-api-shim: {path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale socket left by a stopped process
        else:
            raise SystemExit(f"docker-api-shim: something already listens on {path}")
        finally:
            probe.close()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", default="/var/run/docker.sock")
    ap.add_argument("--upstream", default="/var/run/docker-engine.sock")
    ap.add_argument(
        "--listen-tcp",
        metavar="HOST:PORT",
        help="also listen on this TCP address (loopback only, e.g. 127.0.0.1:2375); "
        "with DOCKER_HOST=tcp://127.0.0.1:2375 testcontainers reaches published ports on 127.0.0.1",
    )
    ap.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the engine")
    args = ap.parse_args()

    max_version = engine_api_version(args.upstream, args.wait)
    prepare_socket_path(args.listen)
    shim = Shim(args.upstream, max_version)
    servers = [await asyncio.start_unix_server(shim.handle, path=args.listen, limit=MAX_HEAD)]
    os.chmod(args.listen, 0o660)
    try:
        os.chown(args.listen, 0, grp.getgrnam("docker").gr_gid)
    except (KeyError, PermissionError):
        pass
    where = args.listen
    if args.listen_tcp:
        host, _, port = args.listen_tcp.rpartition(":")
        if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
            raise SystemExit(f"docker-api-shim: refusing to listen on non-loopback address {args.listen_tcp}")
        servers.append(await asyncio.start_server(shim.handle, host.strip("[]"), int(port), limit=MAX_HEAD))
        where += f" and tcp://{args.listen_tcp}"
    log(f"listening on {where}, engine {args.upstream} speaks API v{max_version[0]}.{max_version[1]}")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()
    try:
        os.unlink(args.listen)
    except OSError:
        pass
    log("stopped")


if __name__ == "__main__":
    asyncio.run(main())
