"""Real parts for tests: a moto_server process on loopback and aiohttp webhook servers."""
