"""The outbound policy: which addresses the core's client may connect to, checked after DNS resolution, on
the address that was checked, at every redirect hop; real servers on 127.0.0.1 and 127.0.0.2 (the whole
of 127/8 is loopback on Linux), and a resolver of the test's own where a hostile DNS answer is needed."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from quaero.api import ConfigError, OutboundRefused
from quaero.engine.addresses import AddressPolicy
from quaero.engine.outbound import GuardedTransport, make_client
from quaero.settings import load_settings


class Server:
    """A tiny HTTP server on ``host``: ``routes`` maps a path to ``(status, headers)``; it records requests."""

    def __init__(self, host: str, routes: dict[str, tuple[int, dict[str, str]]] | None = None, port: int = 0) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.routes = routes or {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers.items())))
                status, headers = server.routes.get(self.path, (200, {}))
                body = b"ok"
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for server in made:
        server.close()


def serve(servers: list[Server], host: str = "127.0.0.1", port: int = 0,
          **routes: tuple[int, dict[str, str]]) -> Server:
    server = Server(host, {"/" + path.replace("_", "-"): answer for path, answer in routes.items()}, port)
    servers.append(server)
    return server


def policy(*networks: str) -> AddressPolicy:
    return AddressPolicy(ipaddress.ip_network(n) for n in networks)


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"), ("127.9.9.9", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fd12::1", "private"),
    ("169.254.169.254", "link-local, the cloud metadata address"), ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("100.64.0.1", "shared address space of carrier-grade NAT"), ("224.0.0.1", "multicast"),
    ("239.1.1.1", "multicast"), ("ff02::1", "multicast"), ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"), ("192.0.2.1", "special-purpose, not globally routable"),
    ("2001:db8::1", "special-purpose, not globally routable"),
    ("::ffff:127.0.0.1", "loopback: the IPv4 address 127.0.0.1 in IPv6 form"),
    ("::ffff:10.0.0.1", "private: the IPv4 address 10.0.0.1 in IPv6 form"),
    ("64:ff9b::a9fe:a9fe", "link-local, the cloud metadata address: the IPv4 address 169.254.169.254 in IPv6 form"),
    ("2002:7f00:1::", "loopback: the IPv4 address 127.0.0.1 in IPv6 form"),
])
def test_addresses_that_are_not_public_are_refused_saying_why(address, reason):
    assert AddressPolicy().refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8",
                                     "64:ff9b::808:808"])
def test_public_addresses_are_allowed(address):
    assert AddressPolicy().refusal(ipaddress.ip_address(address)) is None


def test_allowed_networks_come_from_the_settings_and_cover_the_ipv4_mapped_form():
    settings = load_settings(environ={"QUAERO_ALLOW_PRIVATE_NETWORKS": "127.0.0.0/8,::1/128, 10.1.0.0/16"})
    assert settings.allow_private_networks == ["127.0.0.0/8", "::1/128", "10.1.0.0/16"]
    allowed = AddressPolicy.from_settings(settings)
    for address in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1", "10.1.200.3"):
        assert allowed.refusal(ipaddress.ip_address(address)) is None, address
    for address in ("10.2.0.1", "169.254.169.254", "192.168.0.1"):
        assert allowed.refusal(ipaddress.ip_address(address)) is not None, address
    with pytest.raises(ConfigError, match="write an address or a CIDR"):
        load_settings(environ={"QUAERO_ALLOW_PRIVATE_NETWORKS": "localhost"})


def test_literal_hosts_and_localhost_are_refused_before_any_lookup():
    strict = AddressPolicy()
    assert "127.0.0.1 (loopback)" in strict.url_refusal("http://127.0.0.1:8085/settings")
    assert "localhost, which resolves to 127.0.0.1 (loopback)" in strict.url_refusal("http://LOCALHOST:8085/")
    assert "169.254.169.254" in strict.url_refusal("http://169.254.169.254/latest/meta-data/")
    assert strict.url_refusal("http://[::ffff:7f00:1]/") is not None
    assert strict.url_refusal("http://app.localhost/") is not None
    assert strict.url_refusal("https://example.com/") is None  # only the connection can tell
    assert policy("127.0.0.0/8").url_refusal("http://localhost:8085/") is None
    assert policy("127.0.0.0/8").url_refusal("http://127.0.0.1/") is None


def test_the_client_refuses_loopback_by_address_and_by_name_and_says_which_setting_allows_it(servers):
    server = serve(servers)
    client = make_client()
    with pytest.raises(OutboundRefused) as refused:
        client.get(server.url + "/", timeout=5)
    message = str(refused.value)
    assert "127.0.0.1 (loopback)" in message
    assert "allow_private_networks" in message and "QUAERO_ALLOW_PRIVATE_NETWORKS=127.0.0.1/32" in message
    assert refused.value.request.url == server.url + "/"
    with pytest.raises(OutboundRefused, match=r"localhost, which resolves to 127\.0\.0\.1 \(loopback\)"):
        client.get(f"http://localhost:{server.port}/", timeout=5)
    with pytest.raises(httpx.ConnectError):  # code that handles httpx's errors handles the refusal too
        client.get(f"http://[::ffff:127.0.0.1]:{server.port}/", timeout=5)
    with pytest.raises(OutboundRefused, match="0.0.0.0 \\(unspecified\\)"):
        client.get(f"http://0.0.0.0:{server.port}/", timeout=5)
    assert server.requests == []


def test_an_allowed_network_is_reached(servers):
    server = serve(servers)
    client = make_client(policy("127.0.0.0/8", "::1/128"))
    assert client.get(server.url + "/", timeout=5).text == "ok"
    assert client.get(f"http://localhost:{server.port}/", timeout=5).status_code == 200
    assert client.get(f"http://[::ffff:127.0.0.1]:{server.port}/", timeout=5).status_code == 200
    assert len(server.requests) == 3


def test_every_redirect_hop_is_checked(servers):
    refused = serve(servers, "127.0.0.1")
    allowed = serve(servers, "127.0.0.2", moved=(302, {"Location": refused.url + "/inside"}))
    client = make_client(policy("127.0.0.2/32"))
    assert client.get(allowed.url + "/moved", timeout=5).status_code == 302  # not followed by itself
    with pytest.raises(OutboundRefused, match=r"127\.0\.0\.1 \(loopback\)"):
        client.get(allowed.url + "/moved", timeout=5, follow_redirects=True)
    assert [path for path, _ in allowed.requests] == ["/moved", "/moved"]
    assert refused.requests == []


def test_the_connection_goes_to_the_address_that_was_checked(servers):
    # A hostile resolver: the name has a refused address and an allowed one, and answers differently each
    # time it is asked (DNS rebinding). The name is resolved once per connection, and the connection goes
    # to the allowed address that was checked; TLS and Host still name the host.
    allowed = serve(servers, "127.0.0.2")
    port = allowed.port
    refused = serve(servers, "127.0.0.1", port)  # the same port on the refused address
    answers = [["127.0.0.1", "127.0.0.2"], ["127.0.0.1"]]
    asked: list[str] = []

    def resolver(host, port_, *args, **kwargs):
        asked.append(host)
        addresses = answers[min(len(asked) - 1, len(answers) - 1)]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port_)) for address in addresses]

    transport = GuardedTransport(policy("127.0.0.2/32"), limits=httpx.Limits(max_keepalive_connections=0),
                                 resolver=resolver)
    with httpx.Client(transport=transport) as client:
        assert client.get(f"http://rebinding.test:{port}/first", timeout=5).status_code == 200
        with pytest.raises(OutboundRefused, match=r"rebinding\.test, which resolves to 127\.0\.0\.1 \(loopback\)"):
            client.get(f"http://rebinding.test:{port}/second", timeout=5)
    assert asked == ["rebinding.test", "rebinding.test"]
    [(path, headers)] = allowed.requests
    assert path == "/first" and headers["Host"] == f"rebinding.test:{port}"
    assert refused.requests == []


def test_a_refusal_survives_pickling_with_its_message():
    import pickle

    refused = OutboundRefused("intranet.example", ["10.0.0.7"], ["private"])
    again = pickle.loads(pickle.dumps(refused))
    assert isinstance(again, OutboundRefused) and str(again) == str(refused)
    assert (again.host, again.addresses, again.reasons) == ("intranet.example", ("10.0.0.7",), ("private",))
    assert "intranet.example, which resolves to 10.0.0.7 (private)" in str(refused)
    assert "QUAERO_ALLOW_PRIVATE_NETWORKS=10.0.0.7/32" in str(refused)
