"""A real mosquitto broker on a free loopback port, a subscriber that records what it gets, and a
proxy that stalls the link between a client and the broker."""

from __future__ import annotations

import contextlib
import getpass
import os
import selectors
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


@dataclass
class Broker:
    folder: Path
    port: int = field(default_factory=free_port)
    users: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.folder / "mosquitto.conf"
        # as root, mosquitto would drop to user "mosquitto", who cannot read pytest's private tmp dirs
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", f"user {getpass.getuser()}"]
        if self.users:
            pw = self.folder / "passwd"
            for i, (user, password) in enumerate(self.users.items()):
                create = ["-c"] if i == 0 else []
                subprocess.run(["mosquitto_passwd", *create, "-b", str(pw), user, password], check=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port)
        return self

    def pause(self) -> None:
        """Hang the broker (SIGSTOP): its machine still accepts and acknowledges TCP data, it reads none."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            self.resume()  # a stopped process would not act on SIGTERM
            self.proc.terminate()
            self.proc.wait(timeout=5)
            self.proc = None


@dataclass
class Recorder:
    """Subscribes to everything under a prefix and keeps (topic, payload, retained) in order."""

    port: int
    prefix: str = "casavox"
    messages: list[tuple[str, str]] = field(default_factory=list)
    username: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        import paho.mqtt.client as mqtt

        self._ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"recorder-{time.time_ns()}")
        if self.username:
            self.client.username_pw_set(self.username, self.password)

        def on_connect(client, *_):
            client.subscribe(f"{self.prefix}/#", qos=1)

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload.decode()))
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self._ready.wait(5), "recorder could not subscribe"

    def wait_for(self, n: int, timeout: float = 5.0) -> list[tuple[str, str]]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class StallProxy:
    """Forwards loopback TCP from ``port`` to ``target_port``, and can stall like a dead network link.

    While stalled it moves no bytes and accepts no connections: what a client sends waits unread, as
    unacknowledged segments wait in the sender's retransmit queue during an outage. On ``resume`` it
    first drops every connection the client reset meanwhile, with what it held, as a network never
    delivers a reset connection's retransmissions; a connection closed gracefully (FIN) still has its
    bytes delivered, as TCP would. One thread, bounded waits; ``close`` ends it.
    """

    target_port: int
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._flowing = threading.Event()
        self._flowing.set()
        self._idle = threading.Event()  # set by the thread once it honours a stall
        self._stop = threading.Event()
        self._peers: dict[socket.socket, socket.socket] = {}
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, name="stall-proxy", daemon=True)
        self._thread.start()

    def stall(self) -> None:
        self._idle.clear()
        self._flowing.clear()
        assert self._idle.wait(2), "proxy did not stall"

    def resume(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._stop.set()
        self._flowing.set()
        self._thread.join(timeout=5)
        for sock in [*self._peers, self._listener]:
            with contextlib.suppress(OSError):
                sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._flowing.is_set():
                self._idle.set()
                self._flowing.wait(0.05)
                if self._flowing.is_set():
                    self._drop_reset()
                continue
            for key, _ in self._selector.select(timeout=0.05):
                if key.fileobj is self._listener:
                    self._accept()
                elif key.fileobj in self._peers:
                    self._forward(key.fileobj)

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
        for a, b in ((client, upstream), (upstream, client)):
            self._peers[a] = b
            self._selector.register(a, selectors.EVENT_READ)

    def _forward(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
            if data:
                self._peers[sock].sendall(data)
                return
        except OSError:
            pass
        self._close_pair(sock)

    def _drop_reset(self) -> None:
        """Connections whose client reset while stalled: closed unread (their bytes never arrive)."""
        for sock in list(self._peers):
            if sock in self._peers and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self._close_pair(sock)

    def _close_pair(self, sock: socket.socket) -> None:
        peer = self._peers.pop(sock, None)
        for s in (sock, peer):
            if s is None:
                continue
            self._peers.pop(s, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(s)
            with contextlib.suppress(OSError):
                s.close()
