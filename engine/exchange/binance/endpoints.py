"""Where a Binance USDⓈ-M environment lives: REST base URL and the routed WebSocket bases.

Since 2026-04-23 market streams must use the ``/market`` route and user data the ``/private``
route (protocol notes §0.3, §7.1); the legacy un-routed URLs only carry book data.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoints:
    rest_url: str
    ws_market_url: str
    ws_private_url: str
    name: str  # "mainnet" | "testnet" | "sim"

    @classmethod
    def mainnet(cls) -> Endpoints:
        return cls(
            rest_url="https://fapi.binance.com",
            ws_market_url="wss://fstream.binance.com/market",
            ws_private_url="wss://fstream.binance.com/private",
            name="mainnet",
        )

    @classmethod
    def testnet(cls) -> Endpoints:
        # The docs name demo-fapi as the testnet REST base; the SDK also ships
        # testnet.binancefuture.com. Which WS host demo accounts need is unverified (§1): use
        # the documented fstream.binancefuture.com; pass another via ``Endpoints(...)`` if needed.
        return cls(
            rest_url="https://demo-fapi.binance.com",
            ws_market_url="wss://fstream.binancefuture.com/market",
            ws_private_url="wss://fstream.binancefuture.com/private",
            name="testnet",
        )

    @classmethod
    def local(cls, rest_url: str, ws_url: str) -> Endpoints:
        """A Binance-compatible local server, e.g. ``local("http://127.0.0.1:8080", "ws://127.0.0.1:8081")``."""
        ws = ws_url.rstrip("/")
        return cls(rest_url=rest_url.rstrip("/"), ws_market_url=ws + "/market", ws_private_url=ws + "/private",
                   name="sim")

    @property
    def is_mainnet(self) -> bool:
        return self.name == "mainnet"


# ``Credentials`` lives in ``signing`` (with the signers); importable from here too, next to Endpoints.
from engine.exchange.binance.signing import Credentials  # noqa: E402

__all__ = ["Credentials", "Endpoints"]
