"""
The Python reference client's quick start against socketd-broker: send, send_and_request and
send_and_subscribe, from a caller to a service named `svc`, both Python clients (docs/clients.md, "Python").

    PYTHONPATH=/path/to/socket.d/python/socketd /usr/bin/python3 examples/python/quickstart.py \
        [--tcp sd:tcp://127.0.0.1:8602/] [--ws sd:ws://127.0.0.1:8604/] [--big 204800]

It runs the quick start over each URL given (both by default), prints what each step got back, and exits 0
only when every step got what it expected. The client itself is not part of this repository: it is the
package `socket.d` (PyPI), or `python/socketd` of github.com/noear/socket.d on PYTHONPATH.
"""
import argparse
import asyncio
import ssl
import sys

try:
    import websockets.protocol  # noqa: F401  (websockets 11 and later)
except ImportError:
    # socket.d pins websockets 12; Debian 12 ships 10.4, which has everything socket.d imports but under two
    # other names: the module State comes from is websockets.connection, and HeadersLike is not re-exported
    # at the top. These two aliases are all it takes (docs/clients.md, "Python").
    import websockets
    import websockets.connection
    import websockets.datastructures
    sys.modules["websockets.protocol"] = websockets.connection
    if not hasattr(websockets, "HeadersLike"):
        websockets.HeadersLike = websockets.datastructures.HeadersLike

from socketd import SocketD
from socketd.transport.core.entity.StringEntity import StringEntity
from socketd.transport.core.listener.EventListener import EventListener

TIMEOUT_S = 10


def service_listener(got_messages: list):
    """`svc`: records Messages, answers a Request once and a Subscribe with three Replies and a ReplyEnd."""

    async def on_hello(session, message):
        if message.is_request():
            await session.reply_end(message, StringEntity("re:" + message.data_as_string()))
        elif message.is_subscribe():
            for i in range(3):
                await session.reply(message, StringEntity(f"part{i}:" + message.data_as_string()))
            await session.reply_end(message, StringEntity("end:" + message.data_as_string()))
        else:
            got_messages.append(message.data_as_string())

    async def on_big(session, message):
        if message.is_request():
            await session.reply_end(message, StringEntity(str(len(message.data_as_string()))))

    return EventListener().do_on("hello", on_hello).do_on("big", on_big)


def to_svc(text: str) -> StringEntity:
    entity = StringEntity(text)
    entity.meta_put("@", "svc")
    return entity


async def quickstart(url: str, big: int, tls: ssl.SSLContext | None = None) -> list:
    """Returns the failed steps (empty when all passed). With `tls`, `url` is an sd:ws:// URL the client turns
    into wss:// itself."""
    failures = []
    sep = "&" if "?" in url else "?"
    got_messages: list = []

    def configure(config):
        if tls is not None:
            config.ssl_context(tls)

    svc = await SocketD.create_client(url + sep + "@=svc").config(configure).listen(service_listener(got_messages)).open_or_throw()
    caller = await SocketD.create_client(url).config(configure).open_or_throw()
    try:
        # send: fire and forget, seen by svc
        caller.send("hello", to_svc("m1"))
        for _ in range(TIMEOUT_S * 10):
            if got_messages:
                break
            await asyncio.sleep(0.1)
        report(failures, "send", got_messages == ["m1"], got_messages)

        # send_and_request: one answer
        reply = await caller.send_and_request("hello", to_svc("q1")).waiter()
        report(failures, "send_and_request", reply.data_as_string() == "re:q1", reply.data_as_string())

        # send_and_subscribe: a stream of answers up to the ReplyEnd. The broker relays them in order, but this
        # client runs every received frame in a task of its own, so its callbacks may see them in another order
        # (docs/clients.md, "Python"): all four are waited for, and the order is printed.
        parts = []
        expected = ["part0:s1", "part1:s1", "part2:s1", "end:s1"]
        caller.send_and_subscribe("hello", to_svc("s1")).then_reply(lambda r: parts.append(r.data_as_string()))
        for _ in range(TIMEOUT_S * 10):
            if len(parts) >= len(expected):
                break
            await asyncio.sleep(0.1)
        report(failures, "send_and_subscribe", sorted(parts) == sorted(expected), parts)

        if big > 0:
            reply = await caller.send_and_request("big", to_svc("x" * big)).waiter()
            report(failures, f"send_and_request of {big} bytes", reply.data_as_string() == str(big), reply.data_as_string())
    finally:
        await caller.close()
        await svc.close()
    return failures


def report(failures: list, step: str, ok: bool, got) -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {step}: {got!r}", flush=True)
    if not ok:
        failures.append(step)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tcp", default="sd:tcp://127.0.0.1:8602/", help="tcp URL, with a path (the client reads the port up to a /) ('' to skip)")
    parser.add_argument("--ws", default="sd:ws://127.0.0.1:8604/", help="ws URL ('' to skip)")
    parser.add_argument("--wss", default="", help="a wss listener, written sd:ws://host:port/ (the client makes it wss)")
    parser.add_argument("--cafile", default="", help="with --wss: the CA (or self-signed) certificate to trust")
    parser.add_argument("--big", type=int, default=0, help="also request with a payload of this many bytes")
    args = parser.parse_args()
    print(f"socket.d {SocketD.version()} on Python {sys.version.split()[0]}", flush=True)
    failed = []
    tls = ssl.create_default_context(cafile=args.cafile or None) if args.wss else None
    runs = [(u, None) for u in (args.tcp, args.ws) if u] + ([(args.wss, tls)] if args.wss else [])
    for url, context in runs:
        print(url + (" with TLS" if context else ""), flush=True)
        try:
            failed += [f"{url} {step}" for step in await asyncio.wait_for(quickstart(url, args.big, context), 4 * TIMEOUT_S)]
        except Exception as error:  # a failed connect or a timeout: reported, not raised
            print(f"  FAIL {type(error).__name__}: {error}", flush=True)
            failed.append(url)
    print("all passed" if not failed else f"failed: {', '.join(failed)}", flush=True)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
