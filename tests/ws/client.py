"""A real WebSocket client library (Python's `websockets`, 10.x legacy asyncio client)
against fazt: echo and broadcast between two clients, binary, ping, a 1009 close and a
clean close. Run by tests/integration/websocket.rs as

    /usr/bin/python3 tests/ws/client.py PORT SITE MESSAGE_MAX

Prints one line per step; any failure raises (non-zero exit, traceback on stderr)."""

import asyncio
import sys

import websockets

WAIT = 5


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), WAIT)


def connect(port, site, **kwargs):
    # The URI gives the Host header (the site); host/port say where to connect.
    uri = "ws://%s.localhost:%d/ws" % (site, port)
    return websockets.connect(uri, host="127.0.0.1", port=port, open_timeout=WAIT, **kwargs)


async def main(port, site, message_max):
    async with connect(port, site) as a, connect(port, site) as b:
        await a.send("hello")
        assert await recv(a) == "hello", "no echo"
        print("echo ok")
        assert await recv(b) == "hello", "no broadcast"
        print("broadcast ok")

        await b.send(b"\x00\x01\xff")
        assert await recv(a) == b"\x00\x01\xff", "binary changed"
        assert await recv(b) == b"\x00\x01\xff", "binary changed"
        print("binary ok")

        pong = await a.ping(b"py-ping")
        await asyncio.wait_for(pong, WAIT)
        print("ping ok")

        # The client's own limit must not stop the server's answer.
        async with connect(port, site, max_size=None) as big:
            await big.send("x" * (message_max + 1))
            try:
                await recv(big)
                raise AssertionError("an oversized message was taken")
            except websockets.exceptions.ConnectionClosed as closed:
                print("oversized closed %d" % closed.code)

        await a.close()
        print("close %d" % a.close_code)


if __name__ == "__main__":
    port, site, message_max = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    asyncio.run(main(port, site, message_max))
