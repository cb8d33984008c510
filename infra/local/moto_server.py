"""The embedded emulator's entry point: moto server, with Queries narrowed as DynamoDB does them."""

from __future__ import annotations

from moto import server

from infra.local.moto_queries import install

if __name__ == "__main__":
    install()
    server.main()
