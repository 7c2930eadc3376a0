"""SMTP front for the deskprobe test harness: aiosmtpd on loopback that hands every message to
Dovecot's LMTP socket and answers 250 only after LMTP accepted it for every recipient.

Run by /usr/bin/python3 (Debian's python3-aiosmtpd). Listens on --port (plaintext, STARTTLS
offered, AUTH PLAIN/LOGIN allowed without TLS) and --tls-port (implicit TLS). With
--exit-on-stdin-eof it exits when its stdin closes, so it does not outlive the test process.
"""

import argparse
import os
import asyncio
import logging
import ssl
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class LmtpError(Exception):
    def __init__(self, reply):
        super().__init__(reply)
        self.reply = reply


class Lmtp:
    """A minimal asyncio LMTP client (RFC 2033): one reply per accepted recipient after DATA."""

    def __init__(self, path):
        self.path = path

    async def _reply(self, reader):
        lines = []
        while True:
            line = await reader.readline()
            if not line:
                raise LmtpError("451 4.4.2 LMTP connection closed")
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), " ".join(l[4:] for l in lines)

    async def deliver(self, mail_from, rcpts, content):
        try:
            reader, writer = await asyncio.open_unix_connection(self.path)
        except OSError as e:
            return f"451 4.4.1 cannot reach LMTP: {e}"
        try:
            return await self._deliver(reader, writer, mail_from, rcpts, content)
        except LmtpError as e:
            return e.reply
        except OSError as e:
            return f"451 4.4.2 LMTP failed: {e}"
        finally:
            writer.close()

    async def _deliver(self, reader, writer, mail_from, rcpts, content):
        async def cmd(line):
            writer.write(line.encode("utf-8") + b"\r\n")
            await writer.drain()
            return await self._reply(reader)

        code, text = await self._reply(reader)
        if code != 220:
            return f"451 4.4.1 LMTP greeting: {code} {text}"
        code, text = await cmd("LHLO localhost")
        if code != 250:
            return f"451 4.4.1 LMTP LHLO: {code} {text}"
        code, text = await cmd(f"MAIL FROM:<{mail_from}>")
        if code != 250:
            return f"{code} {text}"
        accepted = []
        for rcpt in rcpts:
            code, text = await cmd(f"RCPT TO:<{rcpt}>")
            if code != 250:
                await cmd("QUIT")
                return f"{code} {text}"
            accepted.append(rcpt)
        code, text = await cmd("DATA")
        if code != 354:
            return f"{code} {text}"
        writer.write(dot_stuff(content))
        await writer.drain()
        failures = []
        for rcpt in accepted:
            code, text = await self._reply(reader)
            if code != 250:
                failures.append(f"{code} {text}")
        try:
            await cmd("QUIT")
        except LmtpError:
            pass
        if failures:
            return failures[0]
        return "250 2.0.0 OK delivered"


def dot_stuff(content):
    lines = content.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = bytearray()
    for line in lines:
        if line.startswith(b"."):
            out += b"."
        out += line + b"\r\n"
    out += b".\r\n"
    return bytes(out)


class Relay:
    def __init__(self, lmtp, hold_file=None):
        self.lmtp = lmtp
        self.hold_file = hold_file

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        reply = await self.lmtp.deliver(envelope.mail_from, envelope.rcpt_tos, content)
        print(f"DATA from={envelope.mail_from} to={envelope.rcpt_tos} -> {reply}", flush=True)
        # Tests open the window between "the server took the message" and "the client heard
        # 250": while the hold file exists, the answer is held back (the mail is delivered).
        while self.hold_file and os.path.exists(self.hold_file):
            await asyncio.sleep(0.02)
        return reply


class Authenticator:
    def __init__(self, users):
        self.users = users

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if self.users.get(login.split("@")[0]) == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


class DropLoginDataWarning(logging.Filter):
    """aiosmtpd 1.4 warns about its own use of a deprecated attribute on every AUTH."""

    def filter(self, record):
        return "login_data is deprecated" not in record.getMessage()


async def main():
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("mail.log").addFilter(DropLoginDataWarning())
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--lmtp", required=True)
    parser.add_argument("--user", action="append", default=[], help="name:password")
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    parser.add_argument("--hold-file", help="hold each 250 after DATA while this file exists")
    args = parser.parse_args()

    loop = asyncio.get_running_loop()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(args.cert, args.key)
    handler = Relay(Lmtp(args.lmtp), args.hold_file)
    auth = Authenticator(dict(u.split(":", 1) for u in args.user))

    def smtp(starttls):
        return SMTP(
            handler,
            hostname="localhost",
            ident="deskprobe test SMTP",
            tls_context=tls if starttls else None,
            require_starttls=False,
            auth_required=False,
            auth_require_tls=False,
            authenticator=auth,
            enable_SMTPUTF8=True,
            loop=loop,
        )

    plain = await loop.create_server(lambda: smtp(True), "127.0.0.1", args.port)
    implicit = await loop.create_server(lambda: smtp(False), "127.0.0.1", args.tls_port, ssl=tls)
    ports = [srv.sockets[0].getsockname()[1] for srv in (plain, implicit)]
    print(f"READY smtp={ports[0]} smtps={ports[1]}", flush=True)

    if args.exit_on_stdin_eof:
        # The harness keeps our stdin open as a pipe; it closes when the test process ends,
        # even if the process was killed before it could stop us.
        stdin_closed = loop.create_future()

        def watch_stdin():
            while sys.stdin.buffer.read1(4096):
                pass
            loop.call_soon_threadsafe(stdin_closed.set_result, None)

        threading.Thread(target=watch_stdin, daemon=True).start()
        await stdin_closed
    else:
        await asyncio.Event().wait()
    plain.close()
    implicit.close()


if __name__ == "__main__":
    asyncio.run(main())
