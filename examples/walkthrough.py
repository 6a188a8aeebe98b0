"""The seed post's walkthrough with the Python API (run as root: python examples/walkthrough.py)."""

from __future__ import annotations

import threading

from nslab import Namespace, probe
from nslab.ifconfig import format_all

PORT = 8900

with Namespace.create("ns1") as ns:  # deleted, with everything in it, when the block ends
    print(format_all(ns.links()) or "(ifconfig shows nothing: no interface is up)")

    ready, stop = threading.Event(), threading.Event()
    server = threading.Thread(
        target=probe.listen, args=(PORT,),
        kwargs={"ready": ready, "stop": stop, "answer_http": True, "netns": "ns1"}, daemon=True,
    )
    server.start()
    ready.wait(5)

    result = probe.connect("127.0.0.1", PORT, netns="ns1")
    print(f"connect with lo down: {result.reason}")  # network is unreachable

    ns.link("lo").up()
    reply = probe.http(f"http://localhost:{PORT}/index.html", netns="ns1")
    print(f"with lo up: HTTP {reply.status}")

    print(format_all(ns.links()))  # lo UP,RUNNING with packets counted
    stop.set()
    server.join()
